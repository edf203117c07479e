"""Memoised pure calculators, keyed on the frozen ``Scenario`` (hashable), and the one cached NVML reading the
launch plans use (``free_gib_at_start``).

The four calculators (``evaluate`` and the three Break-even curves) use ``functools.lru_cache``, not
``st.cache_data``: they take 0.4-1.0 ms to compute, while ``st.cache_data`` spends 1.5-2.0 ms on a hit and
2.2-4.0 ms on a miss hashing the scenario and copying the result (measured on this 2-core VM, see
benchmarks/README.md, App speed). Every cache is bounded (``_MAX`` entries; STYLE.md rule 8) and shared by all
sessions, which is safe: the results are pure functions of the scenario and the price data, and ``clear()``
empties them when the price data is updated. Results are shared objects: never mutate them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import pandas as pd
import streamlit as st

from calculators import catalog, cost, curves
from calculators.launch import free_gib_at_start_measured
from calculators.scenario import Scenario

__all__ = ["evaluate", "cost_vs_volume", "usd_per_mtok_vs_utilization", "savings_heatmap", "clear_calculators",
           "nvml_devices", "devices_from_snapshot", "free_gib_at_start"]

_MAX = 64
_T = TypeVar("_T")


def _memo(fn: Callable[[Scenario], _T]) -> Callable[[Scenario], _T]:
    return functools.lru_cache(maxsize=_MAX)(fn)


@_memo
def evaluate(s: Scenario) -> cost.Report:
    """``calculators.cost.evaluate(s)``, memoised."""
    return cost.evaluate(s)


@_memo
def cost_vs_volume(s: Scenario) -> pd.DataFrame:
    """``calculators.curves.cost_vs_volume(s)``, memoised."""
    return curves.cost_vs_volume(s)


@_memo
def usd_per_mtok_vs_utilization(s: Scenario) -> pd.DataFrame:
    """``calculators.curves.usd_per_mtok_vs_utilization(s)``, memoised."""
    return curves.usd_per_mtok_vs_utilization(s)


@_memo
def savings_heatmap(s: Scenario) -> pd.DataFrame:
    """``calculators.curves.savings_heatmap(s)``, memoised."""
    return curves.savings_heatmap(s)


def clear_calculators() -> None:
    """Forget every memoised result (the price data changed, so the same scenario prices differently)."""
    for fn in (evaluate, cost_vs_volume, usd_per_mtok_vs_utilization, savings_heatmap):
        fn.cache_clear()  # type: ignore[attr-defined]


def devices_from_snapshot(snapshot: dict) -> list[tuple[str | None, float | None]]:
    """(catalog GPU id, free MiB) per GPU of a ``probes.observe.gpu.snapshot_to_dict`` snapshot; [] without GPUs."""
    from probes.results.reference import gpu_catalog_id  # noqa: PLC0415 - light: json/re only

    if not snapshot.get("available"):
        return []
    out: list[tuple[str | None, float | None]] = []
    for g in snapshot.get("gpus") or []:
        total, used = g.get("memory_total_mib"), g.get("memory_used_mib")
        out.append((gpu_catalog_id(g.get("name")), None if total is None or used is None else float(total - used)))
    return out


@st.cache_data(ttl=30, max_entries=1, show_spinner=False)
def nvml_devices() -> list[tuple[str | None, float | None]]:
    """What NVML sees now (``probes.observe.gpu``, the one pynvml adapter), re-read at most every 30 s."""
    from probes.observe import gpu as gpu_mod  # noqa: PLC0415

    return devices_from_snapshot(gpu_mod.snapshot_to_dict(gpu_mod.inspect()))


def free_gib_at_start(gpu_id: str, tensor_parallel_size: int,
                      devices: list[tuple[str | None, float | None]] | None = None) -> tuple[float | None, str]:
    """Free GiB per GPU at vLLM's start for a plan on ``gpu_id`` x TP, measured here when this machine has
    that GPU (None and the reason otherwise: the plan then assumes an idle GPU)."""
    devices = nvml_devices() if devices is None else devices
    return free_gib_at_start_measured(catalog.gpu(gpu_id), tensor_parallel_size, devices)
