"""Side-by-side table of our probe and ``vllm bench serve`` for the reference GPU runs, with the roofline.

Reads a results folder written by ``benchmarks/gpu_validate.py`` (``probe-LABEL.json`` and
``bench-LABEL-cC.json`` per concurrency) and prints a Markdown table per configuration:

- output tok/s: ours, vLLM's, ratio (ours / vLLM's);
- median TTFT and TPOT: ours, vLLM's, ratio;
- the memory-bandwidth roofline for the point (``calculators.roofline.decode_point`` at the mean decode
  context, input + output/2 tokens) and the measured model-bandwidth utilisation, MBU = bytes read per
  decode step / (median TPOT × peak bandwidth).

Usage: ``python benchmarks/compare_gpu_runs.py benchmarks/results/h100-vllm0.26-2026-11-28``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calculators.catalog import gpu as catalog_gpu  # noqa: E402
from calculators.modelspec import load_model  # noqa: E402
from calculators.roofline import RooflineInput, decode_point  # noqa: E402

__all__ = ["compare", "main"]

# How the reference runs map onto the catalogs (the run JSON names the model and the GPU as vLLM/NVML saw it).
GPU_IDS = {"NVIDIA H100 80GB HBM3": "h100-sxm", "NVIDIA H200": "h200"}


def _weight_dtype(serve_args: list[str]) -> str:
    if "--quantization" in serve_args:
        return serve_args[serve_args.index("--quantization") + 1]
    return "bf16"


def compare(folder: Path) -> list[dict]:
    """One row per (configuration, concurrency) with ours, vLLM's and the roofline."""
    rows = []
    for probe_path in sorted(folder.glob("probe-*.json")):
        label = probe_path.stem.removeprefix("probe-")
        run = json.loads(probe_path.read_text())
        serve_args = run["server"]["serve_args"]
        arch = load_model(run["model"])
        gpu = catalog_gpu(GPU_IDS[run["gpu"]["name"]])
        wl = run["workload"]
        inp = RooflineInput(arch=arch, gpu=gpu, weight_dtype=_weight_dtype(serve_args),
                            context_tokens=int(wl["input_tokens"] + wl["output_tokens"] / 2))
        for p in run["points"]:
            c = p["concurrency"]
            bench_path = folder / f"bench-{label}-c{c}.json"
            b = json.loads(bench_path.read_text()) if bench_path.exists() else {}
            roof = decode_point(inp, c)
            mbu = roof.bytes_read_per_gpu / (p["tpot_ms"]["median"] / 1e3) / (gpu.mem_bandwidth_tbps * 1e12)
            rows.append({
                "config": label, "concurrency": c, "requests": p["completed"] + p["failed"],
                "ours_tps": p["output_tokens_per_s"], "vllm_tps": b.get("output_throughput"),
                "ours_ttft": p["ttft_ms"]["median"], "vllm_ttft": b.get("median_ttft_ms"),
                "ours_tpot": p["tpot_ms"]["median"], "vllm_tpot": b.get("median_tpot_ms"),
                "ours_ttft_mean": p["ttft_ms"]["mean"], "vllm_ttft_mean": b.get("mean_ttft_ms"),
                "ours_e2el_mean": p["e2el_ms"]["mean"], "vllm_e2el_mean": b.get("mean_e2el_ms"),
                "roofline_tps": roof.decode_tokens_per_s_max, "mbu": mbu,
                "kv_peak": (p.get("server_metrics") or {}).get("kv_cache_usage_peak"),
                "preemptions": (p.get("server_metrics") or {}).get("preemptions"),
                "j_per_token": (p.get("power") or {}).get("j_per_output_token"),
            })
    return rows


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.3f}" if a and b else "—"


def markdown(rows: list[dict]) -> str:
    head = ("| config | c | requests | out tok/s ours | vLLM bench | ratio | median TTFT ms ours | vLLM | ratio "
            "| median TPOT ms ours | vLLM | ratio | BW roofline tok/s | measured MBU | KV peak | preempt. "
            "| J/out token |\n|" + "---|" * 17)
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['concurrency']} | {r['requests']} | {r['ours_tps']:,.1f} | "
            f"{r['vllm_tps']:,.1f} | {_ratio(r['ours_tps'], r['vllm_tps'])} | {r['ours_ttft']:,.1f} | "
            f"{r['vllm_ttft']:,.1f} | {_ratio(r['ours_ttft'], r['vllm_ttft'])} | {r['ours_tpot']:.2f} | "
            f"{r['vllm_tpot']:.2f} | {_ratio(r['ours_tpot'], r['vllm_tpot'])} | {r['roofline_tps']:,.0f} | "
            f"{r['mbu']:.0%} | {r['kv_peak']:.0%} | {r['preemptions']:.0f} | {r['j_per_token']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python benchmarks/compare_gpu_runs.py RESULTS_FOLDER", file=sys.stderr)
        return 2
    print(markdown(compare(Path(args[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
