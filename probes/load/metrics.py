"""Per-point metrics from per-request results: the definitions of ``vllm bench serve`` (``calculate_metrics``).

Over the SUCCESSFUL requests (failed ones only count in ``failed``):

* ``output_len`` = the request's ``output_tokens`` (0 counts as 1, vLLM's rule without a tokenizer)
* TTFT = ``ttft_s``; E2EL = ``latency_s``; ITL = every inter-chunk gap of every request, pooled
* TPOT = ``(latency_s - ttft_s) / (output_len - 1)``, only for ``output_len > 1``
* a request is *good* when every given target holds: ``target_ms / 1000 >= value_s`` for TTFT, TPOT and E2EL
  (TPOT counts as 0 for ``output_len <= 1`` here, as in vLLM)
* ``requests_per_s = completed / duration_s``; ``output_tokens_per_s = sum(output_len) / duration_s``;
  ``total_tokens_per_s = (sum(prompt_tokens) + sum(output_len)) / duration_s``;
  ``goodput_requests_per_s = good / duration_s`` (None when no target is given)
* output-length check: a successful request whose ``requested_output_tokens`` is known (> 0) and whose
  ``output_tokens`` differs from it is a *mismatch* (e.g. a server without ``ignore_eos`` stopped at an
  end-of-sequence token); ``output_length_mismatches`` counts them and ``output_length_min_ratio`` is the
  smallest ``output_tokens / requested_output_tokens`` (None when no request knows what it asked). A
  mismatch changes the workload, not the metric definitions above: the point is flagged, not failed
* Stats: mean, median, p90, p99 (``numpy.percentile``, linear interpolation) and std (population), in ms.
  With no value (all requests failed, or no request had 2+ tokens for TPOT) every stat is 0.0, as vLLM
  reports: read ``completed`` before trusting a latency.

Added beside vLLM's numbers (never replacing them):

* ``steady_output_tokens_per_s``, ``ramp_up_s``, ``drain_s``, ``steady_window_s``, ``steady_note``: output
  tokens/s over the steady window, ramp-up and drain excluded (:mod:`probes.load.steady`; needs the point's
  ``concurrency`` and ``request_rate``). ``steady_note`` is empty when the window was used, else why the whole
  run was.
* ``queue_ms``: client queue time ``queue_s = start_s - scheduled_s`` of the successful requests (semaphore
  wait plus client lateness; :mod:`probes.load.client`); ``e2el_incl_queue_ms``: ``latency_s + queue_s``
  (vLLM's ``e2el_including_client_queue``).
* ``client_cpu_s`` (all event loops), ``client_cpu_fraction`` (the busiest loop's CPU / wall, 1.0 = a core),
  ``client_bound`` (fraction > 0.7), ``client_workers``: from ``cpu=LoadResult.cpu``; None without it.

>>> from probes.load.client import RequestResult
>>> r = RequestResult(index=0, success=True, prompt_tokens=10, output_tokens=3,
...                   ttft_s=0.1, itl_s=[0.02, 0.04], latency_s=0.16)
>>> m = summarize([r], duration_s=0.5)
>>> m.completed, m.output_tokens_per_s, round(m.tpot_ms.mean, 9), m.itl_ms.median
(1, 6.0, 30.0, 30.0)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from probes.load.client import RequestResult
from probes.load.limits import CpuUsage
from probes.load.steady import steady_window

__all__ = [
    "Stats",
    "PointMetrics",
    "stats_ms",
    "summarize",
    "metrics_to_dict",
    "request_samples",
    "output_length_mismatch",
]

MILLISECONDS_PER_SECOND = 1000.0
_MAX_ERROR_KINDS = 10


@dataclass(frozen=True)
class Stats:
    """Summary of one latency metric, in milliseconds."""

    mean: float
    median: float
    p90: float
    p99: float
    std: float


@dataclass(frozen=True)
class PointMetrics:
    """One load point, summarised as ``vllm bench serve`` does."""

    completed: int
    failed: int
    duration_s: float
    total_input_tokens: int
    total_output_tokens: int
    requests_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    goodput_requests_per_s: float | None
    ttft_ms: Stats
    tpot_ms: Stats
    itl_ms: Stats
    e2el_ms: Stats
    errors: tuple[str, ...]
    output_length_mismatches: int = 0
    output_length_min_ratio: float | None = None
    steady_output_tokens_per_s: float = 0.0
    ramp_up_s: float = 0.0
    drain_s: float = 0.0
    steady_window_s: float = 0.0
    steady_note: str = ""
    queue_ms: Stats = Stats(0.0, 0.0, 0.0, 0.0, 0.0)
    e2el_incl_queue_ms: Stats = Stats(0.0, 0.0, 0.0, 0.0, 0.0)
    client_cpu_s: float | None = None
    client_cpu_fraction: float | None = None
    client_bound: bool | None = None
    client_workers: int | None = None


def stats_ms(values_s: Sequence[float]) -> Stats:
    """Mean/median/p90/p99/std in ms of values in seconds; all 0.0 for no values (vLLM's ``x or 0``).

    >>> s = stats_ms([0.001, 0.002, 0.003, 0.004])
    >>> round(s.mean, 6), round(s.median, 6), round(s.p90, 6), round(s.p99, 6), round(s.std, 6)
    (2.5, 2.5, 3.7, 3.97, 1.118034)
    >>> stats_ms([])
    Stats(mean=0.0, median=0.0, p90=0.0, p99=0.0, std=0.0)
    """
    data: Any = list(values_s) or 0
    return Stats(
        mean=float(np.mean(data) * MILLISECONDS_PER_SECOND),
        median=float(np.median(data) * MILLISECONDS_PER_SECOND),
        p90=float(np.percentile(data, 90) * MILLISECONDS_PER_SECOND),
        p99=float(np.percentile(data, 99) * MILLISECONDS_PER_SECOND),
        std=float(np.std(data) * MILLISECONDS_PER_SECOND),
    )


def _check_target(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{name} must be > 0 ms or None, got {value!r}")


def _error_kinds(results: Sequence[RequestResult]) -> tuple[str, ...]:
    """Distinct error messages, most frequent first, as ``"N× message"`` (at most 10 kinds)."""
    counts = Counter(r.error or "failed (no message)" for r in results if not r.success)
    return tuple(f"{n}× {msg}" for msg, n in counts.most_common(_MAX_ERROR_KINDS))


def output_length_mismatch(r: RequestResult) -> bool:
    """True for a successful request that did not return the output length it asked for.

    >>> output_length_mismatch(RequestResult(index=0, success=True, output_tokens=7, requested_output_tokens=8))
    True
    >>> output_length_mismatch(RequestResult(index=0, success=True, output_tokens=7))  # asked length unknown
    False
    """
    return r.success and r.requested_output_tokens > 0 and r.output_tokens != r.requested_output_tokens


def summarize(
    results: Sequence[RequestResult],
    duration_s: float,
    *,
    goodput_ttft_ms: float | None = None,
    goodput_tpot_ms: float | None = None,
    goodput_e2el_ms: float | None = None,
    concurrency: int | None = None,
    request_rate: float = math.inf,
    cpu: Sequence[CpuUsage] = (),
) -> PointMetrics:
    """Summarise one point's requests measured over ``duration_s`` seconds (formulas in the module docstring).

    >>> from probes.load.client import RequestResult
    >>> ok = RequestResult(index=0, success=True, prompt_tokens=4, output_tokens=1, ttft_s=0.2, latency_s=0.2)
    >>> bad = RequestResult(index=1, error="HTTP 500")
    >>> m = summarize([ok, bad], 2.0, goodput_ttft_ms=100)
    >>> m.completed, m.failed, m.requests_per_s, m.goodput_requests_per_s, m.tpot_ms.mean, m.errors
    (1, 1, 0.5, 0.0, 0.0, ('1× HTTP 500',))
    >>> short = RequestResult(index=2, success=True, output_tokens=3, requested_output_tokens=4, latency_s=0.1)
    >>> m = summarize([ok, short], 1.0)
    >>> m.output_length_mismatches, m.output_length_min_ratio
    (1, 0.75)
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s!r}")
    _check_target("goodput_ttft_ms", goodput_ttft_ms)
    _check_target("goodput_tpot_ms", goodput_tpot_ms)
    _check_target("goodput_e2el_ms", goodput_e2el_ms)

    ttfts: list[float] = []
    tpots: list[float] = []
    all_tpots: list[float] = []
    itls: list[float] = []
    e2els: list[float] = []
    queues: list[float] = []
    total_input = 0
    total_output = 0
    completed = 0
    for r in results:
        if not r.success:
            continue
        output_len = r.output_tokens or 1
        total_output += output_len
        total_input += r.prompt_tokens
        tpot = 0.0
        if output_len > 1:
            tpot = (r.latency_s - r.ttft_s) / (output_len - 1)
            tpots.append(tpot)
        all_tpots.append(tpot)
        itls.extend(r.itl_s)
        ttfts.append(r.ttft_s)
        e2els.append(r.latency_s)
        queues.append(r.queue_s)
        completed += 1

    goodput: float | None = None
    targets = [
        (values, ms / MILLISECONDS_PER_SECOND)
        for values, ms in ((ttfts, goodput_ttft_ms), (all_tpots, goodput_tpot_ms), (e2els, goodput_e2el_ms))
        if ms is not None
    ]
    if targets:
        slos_s = [slo_s for _, slo_s in targets]
        rows = zip(*(values for values, _ in targets), strict=True)
        good = sum(all(s >= v for s, v in zip(slos_s, row, strict=True)) for row in rows)
        goodput = good / duration_s

    ratios = [r.output_tokens / r.requested_output_tokens for r in results
              if r.success and r.requested_output_tokens > 0]
    window = steady_window(results, duration_s, concurrency=concurrency, request_rate=request_rate)
    busiest = max(cpu, key=lambda u: u.cpu_fraction) if cpu else None
    return PointMetrics(
        completed=completed,
        failed=sum(1 for r in results if not r.success),
        duration_s=duration_s,
        total_input_tokens=total_input,
        total_output_tokens=total_output,
        requests_per_s=completed / duration_s,
        output_tokens_per_s=total_output / duration_s,
        total_tokens_per_s=(total_input + total_output) / duration_s,
        goodput_requests_per_s=goodput,
        ttft_ms=stats_ms(ttfts),
        tpot_ms=stats_ms(tpots),
        itl_ms=stats_ms(itls),
        e2el_ms=stats_ms(e2els),
        errors=_error_kinds(results),
        output_length_mismatches=sum(1 for r in results if output_length_mismatch(r)),
        output_length_min_ratio=min(ratios) if ratios else None,
        steady_output_tokens_per_s=window.output_tokens_per_s,
        ramp_up_s=window.ramp_up_s,
        drain_s=window.drain_s,
        steady_window_s=window.window_s,
        steady_note=window.note,
        queue_ms=stats_ms(queues),
        e2el_incl_queue_ms=stats_ms([e + q for e, q in zip(e2els, queues, strict=True)]),
        client_cpu_s=sum(u.cpu_s for u in cpu) if cpu else None,
        client_cpu_fraction=busiest.cpu_fraction if busiest else None,
        client_bound=busiest.client_bound if busiest else None,
        client_workers=len(cpu) if cpu else None,
    )


def metrics_to_dict(m: PointMetrics) -> dict[str, Any]:
    """A JSON-ready dict: scalar fields (with ``output_length_mismatches`` and ``output_length_min_ratio``, the
    point's flag for a changed workload), each latency as ``{"mean", "median", "p90", "p99", "std"}``,
    ``errors`` as a list.

    >>> d = metrics_to_dict(summarize([], 1.0))
    >>> d["completed"], sorted(d["ttft_ms"]), d["errors"]
    (0, ['mean', 'median', 'p90', 'p99', 'std'], [])
    """
    out = asdict(m)
    out["errors"] = list(m.errors)
    return out


def request_samples(results: Sequence[RequestResult]) -> list[dict[str, Any]]:
    """Per-request records for the run JSON (times in ms, ``start_s`` in s from the point's start;
    ``queue_ms`` = client queue time, send time minus scheduled arrival).

    >>> request_samples([RequestResult(index=3, success=True, ttft_s=0.5, itl_s=[0.25], latency_s=0.75)])[0]
    {'index': 3, 'success': True, 'error': '', 'prompt_tokens': 0, 'output_tokens': 0, \
'requested_output_tokens': 0, 'ttft_ms': 500.0, 'latency_ms': 750.0, 'itl_ms': [250.0], 'start_s': 0.0, \
'queue_ms': 0.0}
    """
    return [
        {
            "index": r.index,
            "success": r.success,
            "error": r.error,
            "prompt_tokens": r.prompt_tokens,
            "output_tokens": r.output_tokens,
            "requested_output_tokens": r.requested_output_tokens,
            "ttft_ms": r.ttft_s * MILLISECONDS_PER_SECOND,
            "latency_ms": r.latency_s * MILLISECONDS_PER_SECOND,
            "itl_ms": [x * MILLISECONDS_PER_SECOND for x in r.itl_s],
            "start_s": r.start_s,
            "queue_ms": r.queue_s * MILLISECONDS_PER_SECOND,
        }
        for r in results
    ]
