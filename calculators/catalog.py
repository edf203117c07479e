"""Catalogs shipped as CSV data files (calculators/data/), each row with ``source`` and ``as_of``.

- ``gpus.csv``: memory (marketing GB and the GiB CUDA really exposes), bandwidth, dense TFLOPS, TDP and a
  low/high on-demand $/GPU-hour. ``estimate`` lists the columns of that row that are estimates.
- ``api_models.csv``: $/M input, cached-input and output tokens. An empty cached price means the provider
  has no cache discount: cached input is billed at the input price. ``status`` is official, transcribed,
  estimate or unverified.

>>> gpu("h100-sxm").mem_bandwidth_tbps
3.35
>>> api_model("gpt-5-mini").output_usd_per_mtok
2.0
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

__all__ = ["DATA_DIR", "Gpu", "ApiModel", "gpus", "gpu", "api_models", "api_model"]

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
class ApiModel:
    id: str
    provider: str
    model: str
    tier: str  # frontier | mid | small | open-weight
    input_usd_per_mtok: float
    cached_input_usd_per_mtok: float
    output_usd_per_mtok: float
    status: str
    notes: str
    source: str
    as_of: str

    @property
    def label(self) -> str:
        flag = "" if self.status in ("official", "transcribed") else f" [{self.status}]"
        return f"{self.provider} {self.model}{flag}"


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
def api_models() -> dict[str, ApiModel]:
    """All API models by id, in file order."""
    out: dict[str, ApiModel] = {}
    for r in _rows("api_models.csv"):
        inp = float(r["input_usd_per_mtok"])
        cached = _opt(r["cached_input_usd_per_mtok"])
        out[r["id"]] = ApiModel(
            id=r["id"],
            provider=r["provider"],
            model=r["model"],
            tier=r["tier"],
            input_usd_per_mtok=inp,
            cached_input_usd_per_mtok=inp if cached is None else cached,
            output_usd_per_mtok=float(r["output_usd_per_mtok"]),
            status=r["status"],
            notes=r["notes"],
            source=r["source"],
            as_of=r["as_of"],
        )
    return out


def api_model(model_id: str) -> ApiModel:
    """One API model by id; ValueError listing the known ids otherwise."""
    table = api_models()
    if model_id not in table:
        raise ValueError(f"unknown API model {model_id!r}; known: {', '.join(table)}")
    return table[model_id]
