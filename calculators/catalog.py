"""Catalogs shipped as CSV data files (calculators/data/), each row with ``source`` and ``as_of``.

- ``gpus.csv``: memory (marketing GB and the GiB CUDA really exposes), bandwidth, dense TFLOPS, TDP and the
  low/high on-demand $/GPU-hour (the cheapest and dearest on-demand rows of ``gpu_prices.csv``, see
  ``calculators.gpuprices``). ``estimate`` lists the columns of that row that are estimates.
- ``api_models.csv``: NOT prices (those come from genai-prices, ``calculators.apiprices``) but our overlay on
  them: an id we accept (our old catalog ids are aliases), the genai-prices provider and model it maps to
  (empty: the database lacks it), a tier (frontier | mid | small | open-weight), the shutdown date and
  successor of a retired or retiring model, a source check (``check``), notes, source and as_of.

>>> gpu("h100-sxm").mem_bandwidth_tbps
3.35
>>> api_overlay()["gpt-5-mini"].retires
'2026-12-11'
>>> gpu("h100")
Traceback (most recent call last):
...
ValueError: unknown GPU 'h100'; known: h100-sxm, h100-pcie, h200, b200, a100-80gb, a100-40gb, l40s, l4, a10g, rtx-4090, mi300x
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["DATA_DIR", "Gpu", "ApiOverlay", "gpus", "gpu", "api_overlay", "overlay_for"]

DATA_DIR = Path(__file__).with_name("data")


@dataclass(frozen=True)
class Gpu:
    id: str
    name: str
    memory_gb: float
    usable_memory_gib: float
    mem_bandwidth_tbps: float
    bf16_dense_tflops: float
    fp8_dense_tflops: float | None
    tdp_w: float
    usd_per_gpu_hour_low: float
    usd_per_gpu_hour_high: float
    estimate: tuple[str, ...]
    notes: str
    source: str
    as_of: str


@dataclass(frozen=True)
class ApiOverlay:
    """Our note on one API model; ``provider``/``model`` are genai-prices ids ("" when it lacks the model)."""

    id: str
    provider: str
    model: str
    tier: str  # frontier | mid | small | open-weight
    retires: str  # ISO date the vendor shuts it down ("" if none announced)
    successor: str  # the vendor's named successor ("" if none named)
    check: str  # matches | alias | not in data | "" (no check of ours)
    notes: str
    source: str
    as_of: str

    @property
    def in_data(self) -> bool:
        return bool(self.model)


def _opt(s: str) -> float | None:
    return float(s) if s.strip() else None


def _rows(name: str) -> list[dict[str, str]]:
    with open(DATA_DIR / name, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if not r.get("source") or not r.get("as_of"):
            raise ValueError(f"{name}: row {r.get('id')!r} lacks source or as_of")
    return rows


@cache
def gpus() -> dict[str, Gpu]:
    """All GPUs by id, in file order."""
    out: dict[str, Gpu] = {}
    for r in _rows("gpus.csv"):
        out[r["id"]] = Gpu(
            id=r["id"],
            name=r["name"],
            memory_gb=float(r["memory_gb"]),
            usable_memory_gib=float(r["usable_memory_gib"]),
            mem_bandwidth_tbps=float(r["mem_bandwidth_tbps"]),
            bf16_dense_tflops=float(r["bf16_dense_tflops"]),
            fp8_dense_tflops=_opt(r["fp8_dense_tflops"]),
            tdp_w=float(r["tdp_w"]),
            usd_per_gpu_hour_low=float(r["usd_per_gpu_hour_low"]),
            usd_per_gpu_hour_high=float(r["usd_per_gpu_hour_high"]),
            estimate=tuple(x for x in r["estimate"].split(";") if x),
            notes=r["notes"],
            source=r["source"],
            as_of=r["as_of"],
        )
    return out


def gpu(gpu_id: str) -> Gpu:
    """One GPU by id; ValueError listing the known ids otherwise."""
    table = gpus()
    if gpu_id not in table:
        raise ValueError(f"unknown GPU {gpu_id!r}; known: {', '.join(table)}")
    return table[gpu_id]


@cache
def api_overlay() -> dict[str, ApiOverlay]:
    """All overlay rows by id, in file order."""
    fields = [f for f in ApiOverlay.__dataclass_fields__]
    return {r["id"]: ApiOverlay(**{f: r[f] for f in fields}) for r in _rows("api_models.csv")}


def overlay_for(provider: str, model: str) -> ApiOverlay | None:
    """The overlay row of a genai-prices (provider, model), if we have one (an id row first, then an alias)."""
    rows = [r for r in api_overlay().values() if r.provider == provider and r.model == model]
    rows.sort(key=lambda r: r.id != r.model)
    return rows[0] if rows else None
