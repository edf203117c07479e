"""On-box validation on a real GPU: our probe and ``vllm bench serve`` against the SAME vLLM server.

Run on a GPU box where vLLM is importable by ``--vllm-python`` (default: this interpreter)::

    python benchmarks/gpu_validate.py --synthetic meta-llama/Llama-3.1-8B-Instruct \
        --concurrency 1,8,32,128 --input-tokens 512 --output-tokens 256 --out-dir OUT \
        --vllm-arg=--max-model-len --vllm-arg=4096

What it does, in one process group we own (``probes.target.server.VllmServer``):

1. writes a synthetic model directory (``probes.target.synthetic``: real shape, ``--load-format dummy``);
2. starts vLLM (``--no-enable-prefix-caching`` by default so that neither client's prompts are served from the
   prefix cache: ``vllm bench serve``'s random prompts were seen to hit it by accident), records the cold
   start and keeps the server log;
3. runs our probe's sweep (``probes.plan.sweep.run_sweep``: NVML power sampling, ``/metrics`` scraping), one
   point per concurrency with ``max(min_requests, rounds × concurrency)`` requests, saves the run in a SQLite
   store and as JSON;
4. runs ``vllm bench serve`` (random dataset, same input/output lengths, ``--ignore-eos``, same request count
   and ``--max-concurrency``) against the same server for each point, saving its ``--save-result`` files;
5. stops the server (always: the context manager kills the whole process group).

The comparison table is made afterwards by ``benchmarks/compare_gpu_runs.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.load.workload import WorkloadSpec  # noqa: E402
from probes.observe import gpu as gpu_mod  # noqa: E402
from probes.observe.vllmlog import parse_startup, startup_notes  # noqa: E402
from probes.plan.sweep import SweepConfig, best_point, new_run, parse_int_list, run_sweep  # noqa: E402
from probes.results.store import ResultStore  # noqa: E402
from probes.target.server import VllmServer  # noqa: E402
from probes.target.synthetic import read_vocab_size, write_model_dir  # noqa: E402

__all__ = ["main"]


def _bench_serve(python: str, base_url: str, model: str, tokenizer: str, *, input_tokens: int,
                 output_tokens: int, num_prompts: int, concurrency: int, out_dir: Path, name: str) -> dict:
    """One ``vllm bench serve`` point; returns its --save-result JSON (or an error record)."""
    argv = [python, "-m", "vllm.entrypoints.cli.main", "bench", "serve", "--backend", "vllm",
            "--base-url", base_url, "--endpoint", "/v1/completions", "--model", model, "--tokenizer", tokenizer,
            "--dataset-name", "random", "--random-input-len", str(input_tokens),
            "--random-output-len", str(output_tokens), "--random-range-ratio", "0",
            "--num-prompts", str(num_prompts), "--max-concurrency", str(concurrency),
            "--request-rate", "inf", "--ignore-eos", "--seed", "7",
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
            "--save-result", "--result-dir", str(out_dir), "--result-filename", name]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    (out_dir / (name + ".log")).write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr[-20000:])
    path = out_dir / name
    if proc.returncode != 0 or not path.exists():
        return {"error": f"vllm bench serve exited {proc.returncode}", "tail": proc.stderr[-2000:]}
    data = json.loads(path.read_text())
    data["_wall_s"] = time.perf_counter() - t0
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synthetic", required=True, help="catalog/HF id or config.json of the model shape")
    ap.add_argument("--label", default=None, help="name of this configuration in the output files")
    ap.add_argument("--concurrency", default="1,8,32,128")
    ap.add_argument("--input-tokens", type=int, default=512)
    ap.add_argument("--output-tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3, help="requests per point = max(min, rounds x concurrency)")
    ap.add_argument("--min-requests", type=int, default=8)
    ap.add_argument("--max-requests", type=int, default=100000)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--vllm-python", default=os.environ.get("VLLM_PYTHON") or sys.executable)
    ap.add_argument("--vllm-arg", action="append", default=[], help="extra vllm serve flag (repeatable)")
    ap.add_argument("--prefix-caching", action="store_true", help="leave prefix caching on")
    ap.add_argument("--skip-bench", action="store_true", help="do not run vllm bench serve")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--startup-timeout", type=float, default=900.0)
    ns = ap.parse_args(argv)

    out = Path(ns.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    label = ns.label or ns.synthetic.split("/")[-1]
    concurrencies = parse_int_list(ns.concurrency)
    model_dir = write_model_dir(ns.synthetic, out / f"model-{label}")
    serve_args = ["--load-format", "dummy", *ns.vllm_arg]
    if not ns.prefix_caching:
        serve_args.append("--no-enable-prefix-caching")
    snapshot = gpu_mod.inspect()
    log_path = out / f"vllm-{label}.log"
    summary: dict = {"label": label, "synthetic": ns.synthetic, "serve_args": serve_args,
                     "gpu_inspect": gpu_mod.snapshot_to_dict(snapshot), "bench": {}}
    server = VllmServer(model=str(model_dir), serve_args=serve_args, vllm_python=ns.vllm_python,
                        served_model_name=label, log_path=str(log_path), startup_timeout_s=ns.startup_timeout)
    store = ResultStore(out / "results.sqlite")
    with server:
        print(f"[{label}] vLLM ready after {server.cold_start_s:.1f} s", flush=True)
        base = SweepConfig(workload=WorkloadSpec(input_tokens=ns.input_tokens, output_tokens=ns.output_tokens,
                                                 num_requests=ns.min_requests, seed=1),
                           concurrencies=concurrencies, warmup_requests=ns.warmup, saturation_gain=0.0)
        run = new_run(model=ns.synthetic, weights="synthetic", config=base, vllm_version=server.version(),
                      gpu=gpu_mod.gpu_summary(snapshot, [0]), cold_start_s=server.cold_start_s,
                      server={"mode": "managed", "base_url": server.base_url, "argv": server.argv,
                              "serve_args": serve_args},
                      notes=["synthetic weights (--load-format dummy), output length forced (ignore_eos)",
                             "requests per point: max(min_requests, rounds x concurrency)"])
        run["startup"] = parse_startup(log_path.read_text(errors="replace"))
        run["notes"].extend(startup_notes(run["startup"]))
        vocab = read_vocab_size(model_dir) or 32000
        for c in concurrencies:
            n = min(ns.max_requests, max(ns.min_requests, ns.rounds * c))
            cfg = replace(base, workload=replace(base.workload, num_requests=n), concurrencies=(c,))
            t0 = time.perf_counter()
            part = new_run(model=ns.synthetic, weights="synthetic", config=cfg, server=run["server"])
            part = run_sweep(part, cfg, base_url=server.base_url, model=label, vocab_size=vocab,
                             alive=server.is_running, gpu_indices=[0])
            run["points"].extend(part["points"])
            run["notes"].extend(x for x in part["notes"] if x not in run["notes"])
            p = part["points"][-1] if part["points"] else {}
            print(f"[{label}] probe c={c} n={n}: {p.get('output_tokens_per_s', 0):.1f} tok/s, "
                  f"status {part['status']} ({time.perf_counter() - t0:.0f} s)", flush=True)
            if part["status"] not in ("complete",):
                run["status"], run["error"] = part["status"], part.get("error")
                break
            if not ns.skip_bench:
                b = _bench_serve(ns.vllm_python, server.base_url, label, str(model_dir),
                                 input_tokens=ns.input_tokens, output_tokens=ns.output_tokens, num_prompts=n,
                                 concurrency=c, out_dir=out, name=f"bench-{label}-c{c}.json")
                summary["bench"][str(c)] = {k: b.get(k) for k in (
                    "completed", "output_throughput", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms",
                    "p99_tpot_ms", "median_itl_ms", "median_e2el_ms", "error", "tail", "_wall_s")}
                print(f"[{label}] bench c={c}: {b.get('output_throughput')} tok/s", flush=True)
        else:
            run["status"] = "complete"
        run["best_point"] = best_point(run["points"])
        run["run_id"] = store.save_run(run)
    (out / f"probe-{label}.json").write_text(json.dumps(run, indent=1))
    (out / f"summary-{label}.json").write_text(json.dumps(summary, indent=1))
    print(f"[{label}] done: status {run['status']}, server stopped", flush=True)
    return 0 if run["status"] == "complete" else 1


if __name__ == "__main__":
    sys.exit(main())
