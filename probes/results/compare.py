"""Several probe runs side by side: who each run is (GPU, model, request shape, date) and one long row per
measured point, throughput normalised per GPU; the Results page's table rows and its comparison's default
choice. Pure (no streamlit, no pandas): ``ui.compare_view`` turns the rows into a DataFrame and charts.

Per-GPU normalisation: ``output tok/s per GPU = output tok/s / GPUs``, where GPUs is the replica's GPU count
(:func:`probes.results.reference.tensor_parallel_size`: ``--tensor-parallel-size``, else the recorded GPU count)
times the number of replicas of a fleet run (``run["fleet"]["replicas"]``). A run without a GPU (a toy CPU run,
or an imported ``vllm bench serve`` file that does not say) has no per-GPU value (None).

>>> run = {"gpu": {"name": "NVIDIA H100 80GB HBM3", "count": 2}, "model": "meta-llama/Llama-3.3-70B-Instruct",
...        "created_at": "2026-11-28T00:18:47Z", "server": {"serve_args": ["-tp", "2"]},
...        "workload": {"input_tokens": 512, "output_tokens": 256, "distribution": "fixed"},
...        "points": [{"concurrency": 8, "output_tokens_per_s": 500.0, "ttft_ms": {"median": 70.0, "p99": 90.0}}]}
>>> info = run_info("store:7", run, host="box-1")
>>> info.label
'2× H100 80GB HBM3 · Llama-3.3-70B-Instruct · 512/256 · 2026-11-28 · #7'
>>> row = compare_rows([("store:7", run)])[0]
>>> (row["concurrency"], row["output_tokens_per_s"], row["output_tokens_per_s_per_gpu"], row["ttft_ms_p90"])
(8, 500.0, 250.0, None)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from probes.results import reference, rows

__all__ = [
    "PERCENTILES",
    "LATENCY_METRICS",
    "ROW_KEYS",
    "RunInfo",
    "is_cpu_gpu",
    "gpu_short",
    "shape_text",
    "short_id",
    "unique_labels",
    "run_info",
    "compare_rows",
    "table_row",
    "preselect",
]

# percentile name on screen -> the stat key in a point's latency block
PERCENTILES = {"p50": "median", "p90": "p90", "p99": "p99"}
LATENCY_METRICS = {"ttft_ms": "TTFT", "tpot_ms": "TPOT"}
ROW_KEYS = ("run", "key", "gpu", "model", "shape", "gpus", "concurrency", "output_tokens_per_s",
            "output_tokens_per_s_per_gpu", *(f"{m}_{p}" for m in LATENCY_METRICS for p in PERCENTILES))


@dataclass(frozen=True)
class RunInfo:
    """Who a run is: ``key`` (``store:<id>`` or ``ref:<campaign>/<name>``), the NVML GPU name (None: no GPU
    recorded), its catalog id, GPUs per replica times replicas, model, request shape, UTC date, host."""

    key: str
    gpu_name: str | None
    gpu_id: str | None
    gpu_count: int
    gpus: int
    model: str | None
    shape: str
    date: str
    host: str | None

    @property
    def is_cpu(self) -> bool:
        """No GPU recorded, or a CPU "GPU": a toy run, never evidence for a GPU scenario."""
        return is_cpu_gpu(self.gpu_name)

    @property
    def gpu(self) -> str:
        """The GPU as the table shows it: ``2× H100 80GB HBM3``, ``CPU`` when there is none."""
        name = gpu_short(self.gpu_name)
        return f"{self.gpu_count}× {name}" if self.gpu_count != 1 and not self.is_cpu else name

    @property
    def label(self) -> str:
        """GPU · model (without its organisation) · in/out tokens · date · short id; unique per run."""
        model = (self.model or "model ?").rsplit("/", 1)[-1]
        return " · ".join([self.gpu, model, self.shape, self.date or "undated", short_id(self.key)])


def is_cpu_gpu(name: str | None) -> bool:
    """Whether a recorded GPU name means no GPU (a toy CPU run).

    >>> is_cpu_gpu(None), is_cpu_gpu(""), is_cpu_gpu("cpu"), is_cpu_gpu("NVIDIA L4")
    (True, True, True, False)
    """
    return not name or not str(name).strip() or "cpu" in str(name).lower()


def gpu_short(name: str | None) -> str:
    """The GPU name without the vendor prefix; ``CPU`` when there is no GPU.

    >>> gpu_short("NVIDIA H100 80GB HBM3"), gpu_short(None)
    ('H100 80GB HBM3', 'CPU')
    """
    if is_cpu_gpu(name):
        return "CPU"
    return str(name).strip().removeprefix("NVIDIA ").removeprefix("AMD ").strip()


def _positive(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return float(value) if ok else None


def shape_text(workload: Any) -> str:
    """``input/output`` tokens per request of a run's workload; ``~`` in front when lengths vary; ``?`` unknown.

    >>> shape_text({"input_tokens": 512, "output_tokens": 256}), shape_text({"input_tokens": 2048.4,
    ...     "output_tokens": 128, "distribution": "uniform", "input_spread": 0.2}), shape_text(None)
    ('512/256', '~2,048/128', '?')
    """
    if not isinstance(workload, Mapping):
        return "?"
    tin, tout = _positive(workload.get("input_tokens")), _positive(workload.get("output_tokens"))
    if tin is None or tout is None:
        return "?"
    varies = workload.get("distribution") not in (None, "fixed") and any(
        _positive(workload.get(k)) for k in ("input_spread", "output_spread"))
    return ("~" if varies else "") + f"{tin:,.0f}/{tout:,.0f}"


def short_id(key: str) -> str:
    """``#7`` for stored run 7, ``ref`` for a bundled reference run (its GPU, model and date tell them apart;
    :func:`unique_labels` adds its name when they do not).

    >>> short_id("store:7"), short_id("ref:h100-vllm0.26-2026-11-28/llama-3.1-8b-bf16")
    ('#7', 'ref')
    """
    if key.startswith("store:"):
        return "#" + key.removeprefix("store:")
    if key.startswith("ref:"):
        return "ref"
    return key


def unique_labels(infos: Iterable[RunInfo]) -> dict[str, str]:
    """Run key -> :attr:`RunInfo.label`, with the run's own name appended where two labels would be equal.

    >>> a, b = (run_info(f"ref:campaign/{n}", {"model": "m"}) for n in ("x", "y"))
    >>> list(unique_labels([a, b]).values())
    ['CPU · m · ? · undated · ref (x)', 'CPU · m · ? · undated · ref (y)']
    """
    infos = list(infos)
    seen: dict[str, int] = {}
    for i in infos:
        seen[i.label] = seen.get(i.label, 0) + 1
    return {i.key: i.label if seen[i.label] == 1 else f"{i.label} ({i.key.split(':', 1)[-1].rsplit('/', 1)[-1]})"
            for i in infos}


def _replicas(run: Mapping[str, Any]) -> int:
    fleet = run.get("fleet")
    replicas = fleet.get("replicas") if isinstance(fleet, Mapping) else None
    return max(1, len(replicas)) if isinstance(replicas, list) else 1


def run_info(key: str, run: Mapping[str, Any], *, host: str | None = None) -> RunInfo:
    """:class:`RunInfo` of a run JSON (``host``: the store's column, else the run's own)."""
    gpu = run.get("gpu") if isinstance(run.get("gpu"), Mapping) else {}
    name = gpu.get("name") if isinstance(gpu.get("name"), str) else None
    count = gpu.get("count") if isinstance(gpu.get("count"), int) and gpu.get("count") >= 1 else 1
    model = run.get("model") if isinstance(run.get("model"), str) else None
    created = rows.utc_text(run.get("created_at"), "") if run.get("created_at") else ""
    return RunInfo(key=key, gpu_name=name, gpu_id=reference.gpu_catalog_id(name), gpu_count=count,
                   gpus=reference.tensor_parallel_size(run) * _replicas(run), model=model,
                   shape=shape_text(run.get("workload")), date=created[:10],
                   host=host if host is not None else (run.get("host") if isinstance(run.get("host"), str) else None))


def _stat(point: Mapping[str, Any], metric: str, stat: str) -> float | None:
    block = point.get(metric)
    value = block.get(stat) if isinstance(block, Mapping) else None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def compare_rows(runs: Sequence[tuple[str, Mapping[str, Any]]], *,
                 hosts: Mapping[str, str | None] | None = None) -> list[dict[str, Any]]:
    """One row (keys :data:`ROW_KEYS`) per measured point of each ``(key, run)``, in the given order; points
    without a concurrency >= 1 (a rate or trace replay point) or without a throughput are left out (a chart
    against concurrency cannot place them). ``run`` is the run's label (:func:`unique_labels`).

    >>> runs = [("store:1", {"gpu": {"name": "NVIDIA L4"}, "points": [{"concurrency": 1,
    ...          "output_tokens_per_s": 40.0}, {"concurrency": None, "output_tokens_per_s": 9.0}]}),
    ...         ("store:2", {"points": [{"concurrency": 2, "output_tokens_per_s": 3.0}]})]
    >>> [(r["run"], r["concurrency"], r["output_tokens_per_s_per_gpu"]) for r in compare_rows(runs)]
    [('L4 · model ? · ? · undated · #1', 1, 40.0), ('CPU · model ? · ? · undated · #2', 2, None)]
    """
    infos = [run_info(key, run, host=(hosts or {}).get(key)) for key, run in runs]
    labels = unique_labels(infos)
    out: list[dict[str, Any]] = []
    for info, (key, run) in zip(infos, runs, strict=True):
        for p in run.get("points") or []:
            if not isinstance(p, Mapping):
                continue
            c, tps = p.get("concurrency"), _positive(p.get("output_tokens_per_s"))
            if isinstance(c, bool) or not isinstance(c, int) or c < 1 or tps is None:
                continue
            row: dict[str, Any] = {
                "run": labels[key], "key": key, "gpu": info.gpu, "model": info.model, "shape": info.shape,
                "gpus": None if info.is_cpu else info.gpus, "concurrency": c, "output_tokens_per_s": tps,
                "output_tokens_per_s_per_gpu": None if info.is_cpu else tps / info.gpus,
            }
            for metric in LATENCY_METRICS:
                for name, stat in PERCENTILES.items():
                    row[f"{metric}_{name}"] = _stat(p, metric, stat)
            out.append(row)
    return out


def table_row(info: RunInfo, *, best_output_tokens_per_s: float | None, status: str | None = None) -> dict[str, Any]:
    """The Results table's row of a run: run, GPU, model (without its organisation), shape, best output tok/s,
    date, host, status.

    >>> info = run_info("ref:c/x", {"model": "org/m", "gpu": {"name": "NVIDIA L40S"}, "created_at": "2026-12-01"})
    >>> table_row(info, best_output_tokens_per_s=12.5)
    {'run': 'ref', 'GPU': 'L40S', 'model': 'm', 'shape': '?', 'best tok/s': 12.5, 'date': '2026-12-01', \
'host': None, 'status': 'complete'}
    """
    model = info.model.rsplit("/", 1)[-1] if info.model else None
    return {"run": short_id(info.key), "GPU": info.gpu, "model": model, "shape": info.shape,
            "best tok/s": best_output_tokens_per_s, "date": info.date or None, "host": info.host,
            "status": status or "complete"}


def preselect(infos: Iterable[RunInfo], *, gpu_id: str | None, model: str | None = None,
              limit: int = 4) -> list[str]:
    """The runs a comparison starts with: those on the scenario's GPU kind (catalog id ``gpu_id``), and of its
    ``model`` when it names one and some run matches it; at most ``limit``, in the given order (newest first).
    A CPU run is never preselected for a GPU scenario; no GPU in the scenario (``None`` or ``"cpu"``) gives none.

    >>> a = run_info("store:1", {"gpu": {"name": "NVIDIA H100 80GB HBM3"}, "model": "x/a"})
    >>> b = run_info("store:2", {"gpu": None, "model": "x/a"})
    >>> c = run_info("store:3", {"gpu": {"name": "NVIDIA H100 PCIe"}, "model": "x/b"})
    >>> preselect([a, b, c], gpu_id="h100-sxm"), preselect([a, b, c], gpu_id="h100-pcie", model="x/a")
    (['store:1'], ['store:3'])
    """
    if is_cpu_gpu(gpu_id):
        return []
    on_gpu = [i for i in infos if not i.is_cpu and i.gpu_id == gpu_id]
    same_model = [i for i in on_gpu if model and i.model == model]
    return [i.key for i in (same_model or on_gpu)][:limit]
