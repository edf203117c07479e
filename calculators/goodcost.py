"""Cost of good tokens: self-hosted $ per million tokens counted only over requests that met the latency SLO,
idle time included, next to the API's prices.

Pure (plain numbers and dicts; no ``probes`` import). A request is *good* when it succeeded and met every
given target, per request, as ``vllm bench serve``'s goodput counts it (``probes.load.metrics``)::

    TPOT = (latency - TTFT) / (output_tokens - 1)      (0 for output_tokens <= 1)
    good = success and TTFT <= ttft_target and TPOT <= tpot_target
    good_fraction = good requests / requests sent      (failed requests are never good)

The cost is reserved capacity, not usage: the month's whole self-host bill (every replica for 730 hours,
idle or not, plus ops and API fallback) divided by the good tokens delivered at the scenario's traffic::

    good_requests = requests_per_month * ((1 - fallback) * good_fraction + fallback)   (fallback: API, good)
    usd_per_m_good_output_all_in = self_host_usd_per_month / (good_requests * output_tokens) * 1e6

Effective $/M input and $/M output split the bill by where a replica's time goes
(``cost.replica_busy_s_per_request``): prefill share ``s = input * (1 - cached) / prefill_tokens_per_s / busy_s``
(0 without a prefill rate)::

    usd_per_m_output = bill * (1 - s) / (good_requests * output_tokens) * 1e6
    usd_per_m_input  = bill * s / (good_requests * input_tokens) * 1e6

>>> g = good_token_costs(self_host_usd_per_month=7300.0, requests_per_month=1e6, input_tokens=1000,
...     output_tokens=500, good_fraction=0.8, prefill_share=0.25, api_input_usd_per_mtok=3.0,
...     api_output_usd_per_mtok=15.0, api_cached_input_usd_per_mtok=0.3)
>>> g.good_requests_per_month, g.usd_per_m_good_output_all_in, g.usd_per_m_output, g.usd_per_m_input
(800000.0, 18.25, 13.6875, 2.28125)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GoodTokenCost", "good_fraction_from_samples", "good_fraction_of_point", "good_fraction_at", "good_token_costs",
           "good_tokens_to_dict"]


def _f(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def good_fraction_from_samples(samples: Iterable[Mapping[str, Any]], ttft_ms: float | None,
                               tpot_ms: float | None) -> float | None:
    """The share of sent requests that succeeded and met every given target (per-request records of the run
    JSON: ``success``, ``ttft_ms``, ``latency_ms``, ``output_tokens``); None for no record.

    >>> recs = [{"success": True, "ttft_ms": 100.0, "latency_ms": 1100.0, "output_tokens": 101},   # TPOT 10
    ...         {"success": True, "ttft_ms": 600.0, "latency_ms": 1100.0, "output_tokens": 51},    # TTFT misses
    ...         {"success": True, "ttft_ms": 100.0, "latency_ms": 2100.0, "output_tokens": 101},   # TPOT 20 misses
    ...         {"success": False, "error": "HTTP 500"}]
    >>> good_fraction_from_samples(recs, 500, 15)
    0.25
    >>> good_fraction_from_samples(recs, 500, None), good_fraction_from_samples([], 500, None)
    (0.5, None)
    """
    sent = good = 0
    for r in samples:
        sent += 1
        if not r.get("success"):
            continue
        ttft, latency = _f(r.get("ttft_ms")), _f(r.get("latency_ms"))
        out = int(r.get("output_tokens") or 0) or 1
        if ttft is None or latency is None:
            continue
        tpot = (latency - ttft) / (out - 1) if out > 1 else 0.0
        if (ttft_ms is None or ttft <= ttft_ms) and (tpot_ms is None or tpot <= tpot_ms):
            good += 1
    return good / sent if sent else None


def good_fraction_of_point(point: Mapping[str, Any], ttft_ms: float | None, tpot_ms: float | None,
                           goodput_targets: tuple[float | None, float | None] | None = None
                           ) -> tuple[float | None, str]:
    """(good fraction, where it came from) for one measured point: its per-request records when stored, else
    its ``goodput_requests_per_s / requests_per_s`` when the run measured goodput with these same targets
    (``goodput_targets`` = the run's ``settings.goodput_ttft_ms``, ``goodput_tpot_ms``), else (None, why).

    >>> good_fraction_of_point({"goodput_requests_per_s": 3.0, "requests_per_s": 4.0, "failed": 0}, 500, 50,
    ...                        (500.0, 50.0))
    (0.75, 'goodput measured by the run')
    >>> good_fraction_of_point({"requests_per_s": 4.0}, 500, 50)[0] is None
    True
    """
    samples = point.get("samples")
    if isinstance(samples, list) and samples:
        return good_fraction_from_samples(samples, ttft_ms, tpot_ms), "per-request records"
    goodput, rps = _f(point.get("goodput_requests_per_s")), _f(point.get("requests_per_s"))
    if goodput is not None and rps and goodput_targets is not None and tuple(goodput_targets) == (ttft_ms, tpot_ms):
        done, failed = _f(point.get("completed")) or 0.0, _f(point.get("failed")) or 0.0
        sent_share = done / (done + failed) if done + failed else 1.0  # goodput counts successes only
        return min(goodput / rps, 1.0) * sent_share, "goodput measured by the run"
    return None, "no per-request records or goodput with these targets in the run"


@dataclass(frozen=True)
class GoodTokenCost:
    """The cost of good tokens (module docstring), with the API's prices beside it. ``prefix_cache_hit_rate``:
    the measured one (None when the run has none); ``cached_input_fraction``: what the scenario assumes."""

    good_fraction: float
    good_requests_per_month: float
    good_output_tokens_per_month: float
    usd_per_m_good_output_all_in: float | None
    usd_per_m_output: float | None
    usd_per_m_input: float | None
    prefill_share: float
    api_usd_per_m_output: float
    api_usd_per_m_input: float
    api_usd_per_m_cached_input: float
    cached_input_fraction: float = 0.0
    prefix_cache_hit_rate: float | None = None


def _per_m(usd: float, tokens: float) -> float | None:
    v = usd / tokens * 1e6 if tokens > 0 else math.inf
    return v if math.isfinite(v) else None


def good_token_costs(*, self_host_usd_per_month: float, requests_per_month: float, input_tokens: float,
                     output_tokens: float, good_fraction: float, prefill_share: float,
                     api_input_usd_per_mtok: float, api_output_usd_per_mtok: float,
                     api_cached_input_usd_per_mtok: float, fallback_fraction: float = 0.0,
                     cached_input_fraction: float = 0.0,
                     prefix_cache_hit_rate: float | None = None) -> GoodTokenCost:
    """The cost of good tokens (formulas in the module docstring); $/M values None at zero good tokens.

    >>> good_token_costs(self_host_usd_per_month=100.0, requests_per_month=0.0, input_tokens=10, output_tokens=5,
    ...     good_fraction=1.0, prefill_share=0.0, api_input_usd_per_mtok=1, api_output_usd_per_mtok=2,
    ...     api_cached_input_usd_per_mtok=0.1).usd_per_m_good_output_all_in is None
    True
    >>> good_token_costs(self_host_usd_per_month=1, requests_per_month=1, input_tokens=1, output_tokens=1,
    ...     good_fraction=1.5, prefill_share=0, api_input_usd_per_mtok=1, api_output_usd_per_mtok=1,
    ...     api_cached_input_usd_per_mtok=1)
    Traceback (most recent call last):
    ...
    ValueError: good_fraction must be in [0, 1], got 1.5
    """
    for name, value in (("good_fraction", good_fraction), ("prefill_share", prefill_share),
                        ("fallback_fraction", fallback_fraction), ("cached_input_fraction", cached_input_fraction)):
        if _f(value) is None or not 0 <= value <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    good_req = requests_per_month * ((1 - fallback_fraction) * good_fraction + fallback_fraction)
    good_out = good_req * output_tokens
    return GoodTokenCost(
        good_fraction=good_fraction, good_requests_per_month=good_req, good_output_tokens_per_month=good_out,
        usd_per_m_good_output_all_in=_per_m(self_host_usd_per_month, good_out),
        usd_per_m_output=_per_m(self_host_usd_per_month * (1 - prefill_share), good_out),
        usd_per_m_input=_per_m(self_host_usd_per_month * prefill_share, good_req * input_tokens),
        prefill_share=prefill_share, api_usd_per_m_output=api_output_usd_per_mtok,
        api_usd_per_m_input=api_input_usd_per_mtok, api_usd_per_m_cached_input=api_cached_input_usd_per_mtok,
        cached_input_fraction=cached_input_fraction, prefix_cache_hit_rate=prefix_cache_hit_rate)


def good_tokens_to_dict(g: GoodTokenCost) -> dict[str, Any]:
    """JSON-ready (the report's ``good_tokens``)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in vars(g).items()}


def good_fraction_at(run: Mapping[str, Any], op: Any) -> tuple[float | None, str]:
    """The good fraction at an operating point (``calculators.operating.OperatingPoint``) of ``run``: each
    bracketing measured point's (:func:`good_fraction_of_point`, targets = the SLO's), interpolated linearly in
    load between ``op.lower`` and ``op.upper`` as the rates are; the lower point's alone when nothing brackets.

    >>> from calculators.operating import OperatingPoint, SloTarget
    >>> rec = lambda ttft: {"success": True, "ttft_ms": ttft, "latency_ms": ttft + 100, "output_tokens": 11}
    >>> run = {"points": [{"concurrency": 1, "samples": [rec(100), rec(200)]},
    ...                   {"concurrency": 3, "samples": [rec(100), rec(900)]}]}
    >>> op = OperatingPoint("interpolated", "concurrency", 2.0, 1, 1, 1, 1, None, None, 1, 1,
    ...                     SloTarget(ttft_ms=500), lower=1.0, upper=3.0)
    >>> good_fraction_at(run, op)
    (0.75, 'per-request records')
    """
    settings = run.get("settings") if isinstance(run.get("settings"), Mapping) else {}
    measured = (_f(settings.get("goodput_ttft_ms")), _f(settings.get("goodput_tpot_ms")))
    slo = op.slo
    targets = (None if slo.ttft_ms is None else float(slo.ttft_ms), None if slo.tpot_ms is None else float(slo.tpot_ms))

    def at(load: float | None) -> tuple[float | None, str]:
        point = next((p for p in run.get("points") or [] if isinstance(p, Mapping)
                      and _f(p.get(op.load_axis)) == load), None)
        if point is None:
            return None, f"no measured point at {op.load_axis} {load}"
        return good_fraction_of_point(point, *targets, goodput_targets=measured)

    lo, why = at(op.lower)
    if lo is None or op.upper is None or op.lower is None or op.upper == op.lower or op.status == "extrapolated":
        return lo, why
    hi, why_hi = at(op.upper)
    if hi is None:
        return lo, why
    t = min(max((op.load - op.lower) / (op.upper - op.lower), 0.0), 1.0)
    return lo + t * (hi - lo), why
