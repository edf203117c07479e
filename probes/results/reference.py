"""Bundled reference runs and the pure shaping the Results and Probe pages share (no streamlit, no pandas).

Reference runs are real measurements shipped with the app under ``benchmarks/results/<campaign>/``:
``probe-<name>.json`` is our probe's run JSON (schema ``selfhost-vs-api/probe-run/1``) and
``bench-<name>-c<N>.json`` are ``vllm bench serve --save-result`` files of the same server and workload at
concurrency ``N``. :func:`discover` finds them; :func:`load_run` and :func:`load_bench` read them.

Shaping for display: :func:`point_rows` (one flat dict per sweep point), :func:`server_rows`,
:func:`bench_rows` (probe vs ``vllm bench`` at the same concurrency, with the relative difference
``(probe - bench) / bench``), and for the "use in break-even" button: :func:`gpu_catalog_id` (NVML's
GPU name -> the GPU catalog's id), :func:`tensor_parallel_size` and :func:`operating_point_source`.

>>> gpu_catalog_id("NVIDIA H100 80GB HBM3"), gpu_catalog_id("NVIDIA H100 PCIe"), gpu_catalog_id("Tesla T4")
('h100-sxm', 'h100-pcie', None)
>>> reference_label({"gpu": {"name": "NVIDIA H100 80GB HBM3", "count": 1}, "vllm_version": "0.26.0",
...                  "weights": "synthetic", "created_at": "2026-11-28T00:11:37Z"})
'reference: H100 80GB HBM3, vLLM 0.26.0, synthetic weights, 2026-11-28'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probes.results.store import RUN_SCHEMA, vllm_bench_to_run

__all__ = [
    "REFERENCE_ROOT",
    "ReferenceRun",
    "discover",
    "load_run",
    "load_bench",
    "reference_label",
    "gpu_catalog_id",
    "tensor_parallel_size",
    "operating_point_source",
    "best_index",
    "point_rows",
    "server_rows",
    "bench_rows",
    "relative_diff",
]

REFERENCE_ROOT = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "results"

# NVML device name -> GPU catalog id (calculators/data/gpus.csv); first match wins, so specific before generic.
_GPU_RULES: tuple[tuple[str, str], ...] = (
    (r"H100.*(PCIE|NVL)", "h100-pcie"),
    (r"H100", "h100-sxm"),
    (r"GH200|H200", "h200"),
    (r"B200", "b200"),
    (r"A100.*80\s*GB", "a100-80gb"),
    (r"A100", "a100-40gb"),
    (r"L40S", "l40s"),
    (r"\bL4\b", "l4"),
    (r"A10G", "a10g"),
    (r"RTX\s*4090", "rtx-4090"),
    (r"MI300X", "mi300x"),
)
_BENCH_NAME = re.compile(r"^bench-(?P<name>.+)-c(?P<concurrency>\d+)\.json$")


@dataclass(frozen=True)
class ReferenceRun:
    """One bundled run: ``key`` is ``<campaign>/<name>``; ``bench_paths`` sorted by concurrency."""

    key: str
    name: str
    path: Path
    bench_paths: tuple[Path, ...] = ()


def discover(root: str | Path = REFERENCE_ROOT) -> tuple[ReferenceRun, ...]:
    """Every ``probe-*.json`` under ``root`` (any depth), with the ``bench-<name>-c<N>.json`` beside it.

    A missing ``root`` gives ``()``.
    """
    base = Path(root)
    if not base.is_dir():
        return ()
    found = []
    for path in sorted(base.glob("**/probe-*.json")):
        name = path.stem.removeprefix("probe-")
        benches = []
        for b in path.parent.glob(f"bench-{name}-c*.json"):
            m = _BENCH_NAME.match(b.name)
            if m and m["name"] == name:
                benches.append((int(m["concurrency"]), b))
        key = f"{path.parent.relative_to(base).as_posix()}/{name}".lstrip("./")
        found.append(ReferenceRun(key, name, path, tuple(b for _, b in sorted(benches))))
    return tuple(found)


def load_run(path: str | Path, *, keep_samples: bool = False) -> dict[str, Any]:
    """A run JSON file; ``ValueError`` naming the file if it is not one. Per-request samples are dropped
    unless ``keep_samples`` (they are most of the file and no chart needs them)."""
    p = Path(path)
    try:
        run = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p.name}: not a readable run JSON ({exc})") from exc
    if not isinstance(run, dict) or run.get("schema") != RUN_SCHEMA or not isinstance(run.get("points"), list):
        raise ValueError(f"{p.name}: run.schema must be {RUN_SCHEMA!r} with a list of points")
    if not keep_samples:
        run["points"] = [{k: v for k, v in pt.items() if k != "samples"} for pt in run["points"]]
    return run


def load_bench(paths: Sequence[str | Path], *, label: str = "") -> dict[str, Any] | None:
    """The ``vllm bench serve`` files as one run (one point per file); None when there are none."""
    if not paths:
        return None
    lines = []
    for p in paths:
        try:
            lines.append(json.dumps(json.loads(Path(p).read_text(encoding="utf-8"))))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{Path(p).name}: not a readable vllm bench result ({exc})") from exc
    run = vllm_bench_to_run("\n".join(lines), label=label)
    for pt in run["points"]:
        pt.pop("samples", None)
    return run


def _gpu_name(run: Mapping[str, Any]) -> str | None:
    gpu = run.get("gpu")
    return str(gpu["name"]) if isinstance(gpu, Mapping) and gpu.get("name") else None


def reference_label(run: Mapping[str, Any]) -> str:
    """``reference: <GPU>, vLLM <version>, <weights> weights, <date>`` (what the run JSON records)."""
    name = _gpu_name(run)
    gpu = name.removeprefix("NVIDIA ").strip() if name else "no GPU recorded"
    count = (run.get("gpu") or {}).get("count") or 1
    if name and count != 1:
        gpu = f"{count}× {gpu}"
    version = run.get("vllm_version") or "?"
    date = str(run.get("created_at") or "")[:10] or "undated"
    return f"reference: {gpu}, vLLM {version}, {run.get('weights') or 'unknown'} weights, {date}"


def gpu_catalog_id(name: str | None) -> str | None:
    """The GPU catalog id for an NVML device name (or a catalog name); None when unknown.

    >>> [gpu_catalog_id(n) for n in ("NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-40GB", "NVIDIA L4", "NVIDIA L40S")]
    ['a100-80gb', 'a100-40gb', 'l4', 'l40s']
    >>> gpu_catalog_id(None) is None
    True
    """
    if not name:
        return None
    upper = name.upper()
    for pattern, gpu_id in _GPU_RULES:
        if re.search(pattern, upper):
            return gpu_id
    return None


def tensor_parallel_size(run: Mapping[str, Any]) -> int:
    """GPUs per replica: ``--tensor-parallel-size``/``-tp`` in the serve args, else the GPU count, else 1.

    >>> tensor_parallel_size({"server": {"serve_args": ["--tensor-parallel-size", "2"]}})
    2
    >>> tensor_parallel_size({"server": {"serve_args": ["-tp=4"]}}), tensor_parallel_size({"gpu": {"count": 8}})
    (4, 8)
    >>> tensor_parallel_size({})
    1
    """
    args = [str(a) for a in ((run.get("server") or {}).get("serve_args") or [])]
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag in ("--tensor-parallel-size", "-tp"):
            if not eq:
                value = args[i + 1] if i + 1 < len(args) else ""
            if value.isdigit() and int(value) >= 1:
                return int(value)
    count = (run.get("gpu") or {}).get("count") if isinstance(run.get("gpu"), Mapping) else None
    return int(count) if isinstance(count, int) and count >= 1 else 1


def operating_point_source(run_name: str, point: Mapping[str, Any]) -> str:
    """The scenario's ``throughput_source`` for a measured point.

    >>> operating_point_source("probe run 3", {"concurrency": 8})
    'measured: probe run 3, c=8'
    """
    return f"measured: {run_name}, c={point.get('concurrency', '?')}"


def best_index(run: Mapping[str, Any]) -> int:
    """Index in ``run["points"]`` of the run's best point (by concurrency), else of the highest output tok/s;
    0 for a run without points.

    >>> best_index({"points": [{"concurrency": 1, "output_tokens_per_s": 5}, {"concurrency": 4,
    ...             "output_tokens_per_s": 9}], "best_point": {"concurrency": 1}})
    0
    >>> best_index({"points": [{"concurrency": 1, "output_tokens_per_s": 5}, {"concurrency": 4,
    ...             "output_tokens_per_s": 9}]})
    1
    """
    points = list(run.get("points") or [])
    best = run.get("best_point")
    if isinstance(best, Mapping):
        for i, p in enumerate(points):
            if p.get("concurrency") == best.get("concurrency"):
                return i
    if not points:
        return 0
    return max(range(len(points)), key=lambda i: points[i].get("output_tokens_per_s") or 0.0)


def _stat(point: Mapping[str, Any], metric: str, stat: str) -> float | None:
    block = point.get(metric)
    value = block.get(stat) if isinstance(block, Mapping) else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _num(block: Any, key: str) -> float | None:
    value = block.get(key) if isinstance(block, Mapping) else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def point_rows(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per point: throughput, latency medians and p99, counts, energy per token.

    >>> point_rows({"points": [{"concurrency": 2, "output_tokens_per_s": 10.0, "requests_per_s": 1.0,
    ...   "ttft_ms": {"median": 20.0, "p99": 30.0}, "completed": 4, "failed": 0}]})[0]["ttft_ms_p99"]
    30.0
    """
    rows = []
    for p in run.get("points") or []:
        rows.append({
            "concurrency": p.get("concurrency"),
            "output_tokens_per_s": _num(p, "output_tokens_per_s"),
            "requests_per_s": _num(p, "requests_per_s"),
            "ttft_ms_median": _stat(p, "ttft_ms", "median"),
            "ttft_ms_p99": _stat(p, "ttft_ms", "p99"),
            "tpot_ms_median": _stat(p, "tpot_ms", "median"),
            "tpot_ms_p99": _stat(p, "tpot_ms", "p99"),
            "itl_ms_median": _stat(p, "itl_ms", "median"),
            "e2el_ms_median": _stat(p, "e2el_ms", "median"),
            "completed": p.get("completed"),
            "failed": p.get("failed"),
            "power_w_mean": _num(p.get("power"), "mean_w"),
            "j_per_output_token": _num(p.get("power"), "j_per_output_token"),
        })
    return rows


def server_rows(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """vLLM's own ``/metrics`` per point (points without a scrape are left out): KV-cache peak (fraction),
    preemptions, most requests running/waiting, prefix-cache hit rate, KV-cache size in tokens."""
    rows = []
    for p in run.get("points") or []:
        m = p.get("server_metrics")
        if not isinstance(m, Mapping):
            continue
        rows.append({
            "concurrency": p.get("concurrency"),
            "kv_cache_usage_peak": _num(m, "kv_cache_usage_peak"),
            "preemptions": _num(m, "preemptions"),
            "requests_running_max": _num(m, "num_requests_running_max"),
            "requests_waiting_max": _num(m, "num_requests_waiting_max"),
            "prefix_cache_hit_rate": _num(m, "prefix_cache_hit_rate"),
            "kv_cache_size_tokens": _num(m, "kv_cache_size_tokens"),
        })
    return rows


def relative_diff(value: float | None, reference: float | None) -> float | None:
    """``(value - reference) / reference``; None when either is missing or the reference is 0.

    >>> relative_diff(101.0, 100.0), relative_diff(1.0, 0.0), relative_diff(None, 3.0)
    (0.01, None, None)
    """
    if value is None or reference is None or reference == 0:
        return None
    return (value - reference) / reference


def bench_rows(run: Mapping[str, Any], bench: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Probe and ``vllm bench serve`` side by side at every concurrency both measured (probe order)."""
    by_c = {p.get("concurrency"): p for p in bench.get("points") or []}
    rows = []
    for p in run.get("points") or []:
        b = by_c.get(p.get("concurrency"))
        if b is None:
            continue
        row: dict[str, Any] = {"concurrency": p.get("concurrency")}
        for label, get in (("output_tokens_per_s", lambda x: _num(x, "output_tokens_per_s")),
                           ("ttft_ms_median", lambda x: _stat(x, "ttft_ms", "median")),
                           ("tpot_ms_median", lambda x: _stat(x, "tpot_ms", "median"))):
            ours, theirs = get(p), get(b)
            row[f"{label} probe"] = ours
            row[f"{label} vllm bench"] = theirs
            row[f"{label} diff"] = relative_diff(ours, theirs)
        row["completed probe"], row["completed vllm bench"] = p.get("completed"), b.get("completed")
        rows.append(row)
    return rows
