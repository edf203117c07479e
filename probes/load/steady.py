"""Steady-state throughput of one load point: output tokens/s with the ramp-up and the drain left out.

A point's whole-run ``output_tokens_per_s`` (vLLM's definition, kept as is) divides by the run's wall time,
which includes the ramp-up (connections opening, the first prompts filling the batch) and the drain (the last
requests finishing with fewer and fewer in flight). The steady window is the part between.

Each request occupies the client from ``start_s`` to ``end = max(end_s, start_s + latency_s)`` (failed ones
too: they hold a slot). ``n(t)`` = requests in flight at ``t``. Target ``k = min(concurrency, requests)``
(all requests when uncapped). Times are seconds from the run's start (``duration_s`` is its end).

* closed loop (``request_rate`` inf): window start ``t0`` = first time ``n(t) >= k``; window end ``t1`` =
  first time at or after the last send where ``n(t) < k`` (the first completion no new request replaces).
* open loop (finite rate): ``t0`` = the first completion (before it, arrivals only pile up);
  ``t1`` = the last arrival actually sent (after it, requests only leave).

``ramp_up_s = t0``, ``drain_s = duration_s - t1``, ``window_s = t1 - t0``. Output tokens in the window:
each successful request's token chunks arrive at ``start_s + ttft_s + itl_s[0] + ... + itl_s[j-1]`` (vLLM's
``max_output_tokens_per_s`` uses the same times); a chunk counts when ``t0 < time <= t1`` and weighs
``output_tokens / chunks`` (1 on vLLM, which streams a token per chunk).
``steady_output_tokens_per_s = tokens in window / window_s``.

Fallback, on purpose: when the window is empty, shorter than 10 % of the run, or holds no token, the whole run
is used (``output_tokens / duration_s``, ramp-up and drain 0) and ``note`` says why.

>>> from probes.load.client import RequestResult
>>> def r(i, start, ttft, itl):
...     lat = ttft + sum(itl)
...     return RequestResult(index=i, success=True, output_tokens=1 + len(itl), start_s=start, ttft_s=ttft,
...                          itl_s=itl, latency_s=lat, end_s=start + lat)
>>> w = steady_window([r(0, 0.0, 1.0, [1.0, 1.0]), r(1, 0.5, 1.0, [1.0, 1.0]), r(2, 3.0, 1.0, [1.0])], 5.0,
...                   concurrency=2)
>>> w.start_s, w.end_s, w.ramp_up_s, w.drain_s, w.output_tokens, w.output_tokens_per_s, w.note
(0.5, 3.5, 0.5, 1.5, 6.0, 2.0, '')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from probes.load.client import RequestResult

__all__ = ["SteadyWindow", "steady_window", "MIN_WINDOW_FRACTION"]

MIN_WINDOW_FRACTION = 0.1


@dataclass(frozen=True)
class SteadyWindow:
    """The window used for steady throughput; ``note`` is empty when it is the steady window, else the reason
    the whole run was used."""

    start_s: float
    end_s: float
    ramp_up_s: float
    drain_s: float
    window_s: float
    output_tokens: float
    output_tokens_per_s: float
    note: str = ""


def _end_s(r: RequestResult) -> float:
    return max(r.end_s, r.start_s + r.latency_s)


def _closed_loop_bounds(results: Sequence[RequestResult], target: int) -> tuple[float | None, float | None]:
    events = sorted([(r.start_s, 1) for r in results] + [(_end_s(r), -1) for r in results])
    last_send = max(r.start_s for r in results)
    t0 = t1 = None
    count = 0
    i = 0
    while i < len(events):
        t = events[i][0]
        while i < len(events) and events[i][0] == t:  # every event of one instant at once
            count += events[i][1]
            i += 1
        if t0 is None and count >= target:
            t0 = t
        if t0 is not None and t >= last_send and count < target:
            t1 = t
            break
    return t0, t1


def _whole_run(results: Sequence[RequestResult], duration_s: float, why: str) -> SteadyWindow:
    tokens = float(sum(r.output_tokens or 1 for r in results if r.success))
    return SteadyWindow(0.0, duration_s, 0.0, 0.0, duration_s, tokens, tokens / duration_s, f"whole run: {why}")


def steady_window(
    results: Sequence[RequestResult],
    duration_s: float,
    *,
    concurrency: int | None = None,
    request_rate: float = math.inf,
) -> SteadyWindow:
    """The steady window of one point and its output tokens/s (definition in the module docstring).

    >>> steady_window([], 1.0).note
    'whole run: no request'
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s!r}")
    if not results:
        return _whole_run(results, duration_s, "no request")
    if math.isinf(request_rate):
        target = min(concurrency or len(results), len(results))
        t0, t1 = _closed_loop_bounds(results, target)
        if t0 is None:
            return _whole_run(results, duration_s, f"never {target} requests in flight")
        if t1 is None:
            return _whole_run(results, duration_s, "no completion after the last send")
    else:
        t0 = min(_end_s(r) for r in results)
        t1 = max(r.start_s for r in results)
    window_s = t1 - t0
    if not window_s > 0:
        return _whole_run(results, duration_s, "empty steady window (too few requests for this concurrency)")
    if window_s < MIN_WINDOW_FRACTION * duration_s:
        return _whole_run(results, duration_s, f"steady window {window_s:.3g} s is under "
                                               f"{MIN_WINDOW_FRACTION:.0%} of the {duration_s:.3g} s run")
    tokens = 0.0
    for r in results:
        if not r.success:
            continue
        chunks = 1 + len(r.itl_s)
        weight = (r.output_tokens or chunks) / chunks
        first = r.start_s + r.ttft_s
        tokens += weight * sum(1 for t in accumulate(r.itl_s, initial=first) if t0 < t <= t1)
    if tokens == 0:
        return _whole_run(results, duration_s, "no token arrived inside the steady window")
    return SteadyWindow(t0, t1, t0, max(0.0, duration_s - t1), window_s, tokens, tokens / window_s)
