"""Issue 14's multi-GPU measurement on 2 GPUs, as commands: print them (default, a dry run) or run them (``--run``).

Run on ``nvidia-h200-x2`` with vLLM 0.26.0 installed (``../shared/vllm/README.md`` recipe B)::

    python benchmarks/multigpu_matrix.py --out-dir OUT                  # dry run: the commands and the predictions
    python benchmarks/multigpu_matrix.py --out-dir OUT --run            # run them, one after another

The matrix (each an argv list, never a shell string):

1. Llama-3.3-70B shape, bf16, ``--tensor-parallel-size 2`` at vLLM's default utilization and at 0.85:
   ``benchmarks/gpu_validate.py`` (our probe beside ``vllm bench serve`` on the same server) at concurrency 1, 8, 32;
   the prediction to compare the logged startup with is ``plan_cluster`` (``calculators fit --gpus 2``): per-GPU
   weights, activation, KV cache GiB and tokens (goal: within 5 %).
2. Llama-3.1-8B shape: one GPU vs ``--tensor-parallel-size 2`` vs ``--data-parallel-size 2``, concurrency 1, 32, 128,
   through ``python -m probes run`` (which locks the GPUs of the group and pins ``CUDA_VISIBLE_DEVICES``).
3. The lock group: probe A (TP=2 on GPUs 0,1) in the background; once its status file lists its server, probe B
   asks for GPU 1 (must exit 1 naming A); A is SIGKILLed; ``nvidia-smi`` must show both GPUs free; probe B again on
   GPU 1 must start (here: run one point).

Nothing here was run on two GPUs yet (only a one-GPU machine was lent when it was written).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calculators.catalog import gpu  # noqa: E402
from calculators.modelspec import model  # noqa: E402
from calculators.multinode import Topology, plan_cluster  # noqa: E402

__all__ = ["matrix", "predictions", "main"]

L70, L8 = "meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"
SHAPE = ("--input-tokens", "512", "--output-tokens", "256")


def matrix(out: Path, python: str = "python3", vllm_python: str = "python3") -> list[tuple[str, list[str]]]:
    """(name, argv) of each measured run, in order.

    >>> names = [n for n, _ in matrix(Path("OUT"))]
    >>> names[:2], names[-1]
    (['l70-tp2-default', 'l70-tp2-u0.85'], 'l8-dp2')
    """
    runs: list[tuple[str, list[str]]] = []
    for label, util in (("default", None), ("u0.85", "0.85")):
        argv = [python, "benchmarks/gpu_validate.py", "--synthetic", L70, "--label", f"l70-tp2-{label}",
                "--concurrency", "1,8,32", *SHAPE, "--vllm-python", vllm_python, "--out-dir", str(out / "l70-tp2"),
                "--vllm-arg=--tensor-parallel-size", "--vllm-arg=2", "--vllm-arg=--max-model-len", "--vllm-arg=4096"]
        if util:
            argv += ["--vllm-arg=--gpu-memory-utilization", f"--vllm-arg={util}"]
        runs.append((f"l70-tp2-{label}", argv))
    for label, flags in (("1gpu", ["--gpu-ids", "0"]), ("tp2", ["--tensor-parallel-size", "2"]),
                         ("dp2", ["--data-parallel-size", "2"])):
        runs.append((f"l8-{label}", [python, "-m", "probes", "run", "--synthetic", L8, "--vllm-python", vllm_python,
                                     "--concurrency", "1,32,128", *SHAPE, "--requests", "128", "--max-model-len",
                                     "4096", *flags, "--log", str(out / f"l8-{label}.vllm.log"),
                                     "--out", str(out / f"l8-{label}.json"), "--db", str(out / "runs.sqlite")]))
    return runs


def predictions() -> dict[str, dict[str, object]]:
    """What the memory model predicts per GPU for each server of the matrix (H200, max_model_len 4096)."""
    h200 = gpu("h200")
    out = {}
    for name, arch, topo, util in (("l70-tp2-default", L70, Topology(2), None), ("l70-tp2-u0.85", L70, Topology(2), 0.85),
                                   ("l8-1gpu", L8, Topology(1), None), ("l8-tp2", L8, Topology(2), None),
                                   ("l8-dp2", L8, Topology(1, 1, 2), None)):
        plan = plan_cluster(model(arch), h200, topo, max_model_len=4096, gpu_memory_utilization=util)
        (s,) = plan.stages
        out[name] = {"weights_gib": round(s.weights_gib, 2), "activation_gib": round(s.activation_gib, 2),
                     "kv_cache_gib": round(s.kv_cache_gib, 2), "kv_tokens_per_replica": plan.kv_tokens_per_replica,
                     "kv_tokens_total": plan.kv_tokens_total, "serve_args": list(plan.serve_args)}
    return out


def lock_check(out: Path, python: str, vllm_python: str) -> dict[str, object]:
    """Item 3: probe A holds GPUs 0,1; probe B on GPU 1 is refused; killing A frees both."""
    env = {**os.environ, "APP__PROBE__DATA_DIR": str(out / "locks")}
    a_argv = [python, "-m", "probes", "run", "--synthetic", L8, "--vllm-python", vllm_python, "--tensor-parallel-size",
              "2", "--concurrency", "1", "--requests", "100000", "--max-model-len", "4096", "--no-store"]
    b_argv = [python, "-m", "probes", "run", "--synthetic", L8, "--vllm-python", vllm_python, "--gpu-ids", "1",
              "--concurrency", "1", "--requests", "8", "--max-model-len", "4096", "--no-store"]
    record: dict[str, object] = {"a": a_argv, "b": b_argv}
    a = subprocess.Popen(a_argv, env=env, stdout=subprocess.DEVNULL, stderr=open(out / "lock-a.err", "w"))  # noqa: SIM115
    status = out / "locks" / "probe-gpu1.json"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and a.poll() is None:
        if status.exists() and "server" in status.read_text():
            break
        time.sleep(2)
    b = subprocess.run(b_argv, env=env, capture_output=True, text=True, timeout=600)
    record["b_while_a_runs"] = {"rc": b.returncode, "stderr_tail": b.stderr[-600:]}
    os.kill(a.pid, signal.SIGKILL)  # no cleanup code of A runs: its supervisor must stop vLLM
    a.wait(timeout=60)
    time.sleep(20)
    smi = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=60)
    record["nvidia_smi_after_kill"] = smi.stdout.strip()
    b2 = subprocess.run(b_argv, env=env, capture_output=True, text=True, timeout=1200)
    record["b_after_kill"] = {"rc": b2.returncode, "stderr_tail": b2.stderr[-600:]}
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--python", default=sys.executable, help="interpreter of this repository")
    ap.add_argument("--vllm-python", default=os.environ.get("VLLM_PYTHON") or "python3")
    ap.add_argument("--run", action="store_true", help="run the matrix (default: print it)")
    a = ap.parse_args(argv)
    out = Path(a.out_dir)
    runs = matrix(out, a.python, a.vllm_python)
    print(json.dumps({"predictions": predictions()}, indent=1))
    for name, cmd in runs:
        print(f"# {name}\n{shlex.join(cmd)}")
    print("# lock check: probe A (TP=2) in the background, probe B on GPU 1, SIGKILL A, probe B again")
    if not a.run:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    (out / "predictions.json").write_text(json.dumps(predictions(), indent=1))
    for name, cmd in runs:
        t0 = time.monotonic()
        rc = subprocess.run(cmd, stdout=open(out / f"{name}.out", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            check=False).returncode
        print(f"{name}: rc {rc} in {time.monotonic() - t0:.0f} s", flush=True)
    (out / "lock-check.json").write_text(json.dumps(lock_check(out, a.python, a.vllm_python), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
