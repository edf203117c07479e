"""SLO capacity search: the highest request rate (or concurrency) whose p99 TTFT and TPOT meet targets.

Pure: this module measures nothing. :func:`next_step` reads the history of probed points (value, verdict)
and says which value to measure next, or why to stop; :func:`point_verdict` decides whether one measured
point meets the SLO; :func:`operating_point` turns the history into ``run["operating_point"]``. The loop
that measures lives in :mod:`probes.plan.sweep`, so these are tested against a fake latency model.

Search, over values ``min_value .. max_value`` (request rate in req/s, or concurrency):

1. **bracket** from ``start``: while every point passed, multiply the highest pass by ``growth``; while every
   point failed, divide the lowest failure by ``growth``;
2. **bisect** geometrically, ``next = sqrt(lo * hi)`` (rounded for concurrency), where ``hi`` is the lowest
   failing value and ``lo`` the highest passing value below it, until ``hi / lo <= 1 + precision``
   (concurrency: also when no integer lies strictly between);
3. stop after ``max_points`` points whatever the state (``converged`` False, the reason says so).

Noise: a pass above the lowest failure (non-monotone points) never raises ``lo``: the answer stays the
conservative one, and the reason says the points were not monotone.

A point passes when it completed requests, none failed, its client was not CPU-bound
(:func:`can_be_operating_point`), its p99 TTFT and TPOT are within the targets, and, by rate, it kept up
with the offered rate: ``duration_s <= (sent / rate + e2el_p99_s) * (1 + rate_tolerance)`` (arrivals
end at ``sent / rate``; the last response should follow within a tail latency).

>>> s = SloSearch(ttft_p99_target_ms=500, start=1.0, growth=4.0, precision=0.1, max_points=12)
>>> next_step(s, []).next_value
1.0
>>> next_step(s, [Probe(1.0, True, ""), Probe(4.0, True, "")]).next_value
16.0
>>> step = next_step(s, [Probe(1.0, True, ""), Probe(4.0, False, "p99 TTFT")])
>>> step.next_value, step.lower, step.upper
(2.0, 1.0, 4.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SEARCH_BY",
    "SloSearch",
    "Probe",
    "SearchStep",
    "next_step",
    "point_verdict",
    "can_be_operating_point",
    "keeps_up",
    "operating_point",
    "describe_operating_point",
]

SEARCH_BY = ("request_rate", "concurrency")
MILLISECONDS_PER_SECOND = 1000.0


@dataclass(frozen=True)
class SloSearch:
    """What to search: p99 targets (ms, at least one), the variable, the range and the budget of points.

    ``by="request_rate"``: open loop (gamma/Poisson arrivals) at the probed rate, in-flight requests capped
    by ``max_concurrency`` (None = uncapped). ``by="concurrency"``: closed loop at the probed concurrency.
    ``precision`` is relative (0.1 = the bracket ends within 10 %).
    """

    ttft_p99_target_ms: float | None = None
    tpot_p99_target_ms: float | None = None
    by: str = "request_rate"
    start: float = 1.0
    growth: float = 4.0
    precision: float = 0.1
    max_points: int = 12
    min_value: float | None = None  # default: 0.1 req/s, or concurrency 1
    max_value: float | None = None  # default: 10,000 req/s, or concurrency 4,096
    max_concurrency: int | None = None
    rate_tolerance: float = 0.1

    def __post_init__(self) -> None:
        if self.by not in SEARCH_BY:
            raise ValueError(f"by must be one of {SEARCH_BY}, got {self.by!r}")
        if self.ttft_p99_target_ms is None and self.tpot_p99_target_ms is None:
            raise ValueError("an SLO search needs a p99 TTFT target, a p99 TPOT target, or both")
        for name in ("ttft_p99_target_ms", "tpot_p99_target_ms"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0 ms or None, got {value!r}")
        if not (math.isfinite(self.growth) and self.growth > 1):
            raise ValueError(f"growth must be a finite number > 1, got {self.growth!r}")
        if not (math.isfinite(self.precision) and self.precision > 0):
            raise ValueError(f"precision must be a finite number > 0, got {self.precision!r}")
        if isinstance(self.max_points, bool) or not isinstance(self.max_points, int) or self.max_points < 1:
            raise ValueError(f"max_points must be an integer >= 1, got {self.max_points!r}")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be None (uncapped) or >= 1, got {self.max_concurrency!r}")
        if not 0 <= self.rate_tolerance < 10:
            raise ValueError(f"rate_tolerance must be in [0, 10), got {self.rate_tolerance!r}")
        low, high = self.low, self.high
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= self.start <= high):
            raise ValueError(f"need 0 < min_value <= start <= max_value (finite), got {low!r} <= "
                             f"{self.start!r} <= {high!r}")
        if self.by == "concurrency" and (self.start != int(self.start) or low != int(low)):
            raise ValueError(f"a concurrency search starts at an integer, got start={self.start!r}, "
                             f"min_value={low!r}")

    @property
    def low(self) -> float:
        """The lowest value the search may probe."""
        return self.min_value if self.min_value is not None else (0.1 if self.by == "request_rate" else 1.0)

    @property
    def high(self) -> float:
        """The highest value the search may probe."""
        return self.max_value if self.max_value is not None else (10_000.0 if self.by == "request_rate"
                                                                  else 4096.0)

    def settings_dict(self) -> dict[str, Any]:
        """The run JSON's ``settings.search`` block (defaults resolved)."""
        return {"by": self.by, "ttft_p99_target_ms": self.ttft_p99_target_ms,
                "tpot_p99_target_ms": self.tpot_p99_target_ms, "start": self.start, "growth": self.growth,
                "precision": self.precision, "max_points": self.max_points, "min_value": self.low,
                "max_value": self.high, "max_concurrency": self.max_concurrency,
                "rate_tolerance": self.rate_tolerance}


@dataclass(frozen=True)
class Probe:
    """One probed value and whether it met the SLO (``why``: the first reason it did not, or "")."""

    value: float
    ok: bool
    why: str


@dataclass(frozen=True)
class SearchStep:
    """What to do next: measure ``next_value``, or stop (None) with ``converged`` and ``reason``.

    ``lower``: the highest passing value below ``upper``, the lowest failing one (None while unknown).
    """

    next_value: float | None
    converged: bool
    reason: str
    lower: float | None
    upper: float | None


def _unit(search: SloSearch) -> str:
    return "req/s" if search.by == "request_rate" else "concurrent requests"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _bounds(history: Sequence[Probe]) -> tuple[float | None, float | None, list[float]]:
    """(lo, hi, passes above hi) of a history: hi = lowest failure, lo = highest pass below hi."""
    fails = [p.value for p in history if not p.ok]
    hi = min(fails) if fails else None
    passes = [p.value for p in history if p.ok]
    below = [v for v in passes if hi is None or v < hi]
    above = sorted(v for v in passes if hi is not None and v >= hi)
    return (max(below) if below else None), hi, above


def _converged(search: SloSearch, lo: float, hi: float) -> bool:
    if hi <= lo * (1.0 + search.precision):
        return True
    return search.by == "concurrency" and hi - lo <= 1


def _midpoint(search: SloSearch, lo: float, hi: float) -> float:
    mid = math.sqrt(lo * hi)
    if search.by == "concurrency":
        return float(min(max(round(mid), int(lo) + 1), int(hi) - 1))
    return mid


def next_step(search: SloSearch, history: Sequence[Probe]) -> SearchStep:
    """The next value to probe from the history, or why to stop (see the module docstring).

    >>> s = SloSearch(tpot_p99_target_ms=50, by="concurrency", start=1, growth=2)
    >>> next_step(s, [Probe(1, False, "p99 TPOT 80 ms > 50 ms")]).reason
    'the SLO is not met even at the lowest concurrency (1): p99 TPOT 80 ms > 50 ms'
    >>> next_step(s, [Probe(1, True, ""), Probe(2, True, ""), Probe(4, False, "x"), Probe(3, True, "")])
    SearchStep(next_value=None, converged=True, reason='bracketed: 3 concurrent requests meet the SLO, 4 do not', \
lower=3, upper=4)
    """
    if not history:
        return SearchStep(float(search.start), False, "start", None, None)
    lo, hi, above = _bounds(history)
    noisy = (f"; the points were not monotone (passed at {', '.join(_fmt(v) for v in above)} above the failure "
             f"at {_fmt(hi)}), the lower bound is kept") if above and hi is not None else ""
    unit = _unit(search)
    if lo is not None and hi is not None and _converged(search, lo, hi):
        return SearchStep(None, True, f"bracketed: {_fmt(lo)} {unit} meet the SLO, {_fmt(hi)} do not{noisy}",
                          lo, hi)
    if hi is not None and lo is None and hi <= search.low:
        why = next((p.why for p in history if p.value == hi and not p.ok), "")
        return SearchStep(None, False, f"the SLO is not met even at the lowest {search.by.replace('_', ' ')} "
                          f"({_fmt(search.low)}): {why}", None, hi)
    if hi is None and lo is not None and lo >= search.high:
        return SearchStep(None, False, f"the SLO is met up to the highest value allowed ({_fmt(search.high)} "
                          f"{unit}): the capacity is above it", lo, None)
    if len(history) >= search.max_points:
        where = (f"between {_fmt(lo)} and {_fmt(hi)}" if lo is not None and hi is not None
                 else f"above {_fmt(lo)}" if lo is not None else f"below {_fmt(hi)}" if hi is not None else "")
        return SearchStep(None, False, f"stopped at the cap of {search.max_points} points: the capacity is {where} "
                          f"{unit}{noisy}", lo, hi)
    if hi is None:
        assert lo is not None
        nxt = min(lo * search.growth, search.high)
    elif lo is None:
        nxt = max(hi / search.growth, search.low)
    else:
        nxt = _midpoint(search, lo, hi)
    if search.by == "concurrency":
        nxt = float(max(1, round(nxt)))
    return SearchStep(nxt, False, "bracketing" if lo is None or hi is None else "bisecting", lo, hi)


def can_be_operating_point(point: Mapping[str, Any]) -> bool:
    """False for a point whose client was CPU-bound: the client, not the server, set its numbers.

    >>> can_be_operating_point({"client_bound": True}), can_be_operating_point({"client_bound": False})
    (False, True)
    """
    return not point.get("client_bound")


def _p99(point: Mapping[str, Any], metric: str) -> float | None:
    stats = point.get(metric)
    value = stats.get("p99") if isinstance(stats, Mapping) else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def keeps_up(point: Mapping[str, Any], request_rate: float, tolerance: float) -> bool:
    """True when an open-loop point ended within a tail latency of its last arrival:
    ``duration_s <= (sent / rate + e2el_p99_s) * (1 + tolerance)``.

    >>> keeps_up({"completed": 10, "failed": 0, "duration_s": 6.0, "e2el_ms": {"p99": 1000}}, 2.0, 0.1)
    True
    >>> keeps_up({"completed": 10, "failed": 0, "duration_s": 9.0, "e2el_ms": {"p99": 1000}}, 2.0, 0.1)
    False
    """
    sent = int(point.get("completed") or 0) + int(point.get("failed") or 0)
    duration = point.get("duration_s")
    if not sent or not isinstance(duration, int | float) or not math.isfinite(request_rate):
        return True
    tail_s = (_p99(point, "e2el_ms") or 0.0) / MILLISECONDS_PER_SECOND
    return duration <= (sent / request_rate + tail_s) * (1.0 + tolerance)


def point_verdict(search: SloSearch, point: Mapping[str, Any], value: float) -> Probe:
    """Whether one measured point meets the SLO, with the first reason it does not.

    >>> s = SloSearch(ttft_p99_target_ms=200, tpot_p99_target_ms=20, by="concurrency")
    >>> pt = {"completed": 8, "failed": 0, "ttft_ms": {"p99": 150.0}, "tpot_ms": {"p99": 25.0}}
    >>> point_verdict(s, pt, 4)
    Probe(value=4, ok=False, why='p99 TPOT 25 ms > target 20 ms')
    """
    if not point.get("completed"):
        return Probe(value, False, "no request completed")
    if point.get("failed"):
        errors = point.get("errors") or []
        total = int(point["failed"]) + int(point.get("completed") or 0)
        return Probe(value, False, f"{point['failed']} of {total} requests failed" + (
            f" ({errors[0]})" if errors else ""))
    if not can_be_operating_point(point):
        return Probe(value, False, "the client was CPU-bound (its numbers measure the client, not the server)")
    for metric, label, target in (("ttft_ms", "TTFT", search.ttft_p99_target_ms),
                                  ("tpot_ms", "TPOT", search.tpot_p99_target_ms)):
        if target is None:
            continue
        got = _p99(point, metric)
        if got is None:
            return Probe(value, False, f"no p99 {label} measured")
        if got > target:
            return Probe(value, False, f"p99 {label} {got:.4g} ms > target {target:.4g} ms")
    if search.by == "request_rate" and not keeps_up(point, value, search.rate_tolerance):
        return Probe(value, False, f"throughput did not follow the offered rate ({_fmt(value)} req/s: "
                     f"{float(point.get('requests_per_s') or 0):.4g} req/s achieved over "
                     f"{float(point.get('duration_s') or 0):.4g} s)")
    return Probe(value, True, "")


def operating_point(search: SloSearch, measured: Sequence[tuple[float, Mapping[str, Any]]], step: SearchStep,
                    *, stopped: str | None = None) -> dict[str, Any]:
    """``run["operating_point"]``: the point at the search's lower bound (None fields when no value passed).

    ``concurrency`` is the searched concurrency, or for a rate search the in-flight cap it ran under (None =
    uncapped); ``lower``/``upper`` bracket the capacity; ``points`` counts the measured points.

    ``measured``: (value, point) per probed point in order; ``stopped``: why the run ended before the search
    did (server died, interrupted), which then overrides ``step.reason``.

    >>> s = SloSearch(ttft_p99_target_ms=500)
    >>> pt = {"request_rate": 4.0, "output_tokens_per_s": 512.0, "requests_per_s": 3.9, "completed": 40,
    ...       "failed": 0, "ttft_ms": {"p99": 300.0}, "tpot_ms": {"p99": 12.0}}
    >>> op = operating_point(s, [(4.0, pt)], SearchStep(None, True, "bracketed", 4.0, 5.0))
    >>> op["request_rate"], op["output_tokens_per_s_per_replica"], op["ttft_p99_ms"], op["converged"]
    (4.0, 512.0, 300.0, True)
    """
    chosen = next((p for v, p in measured if step.lower is not None and v == step.lower
                   and point_verdict(search, p, v).ok), None)
    by_rate = search.by == "request_rate"
    return {
        "by": search.by,
        "request_rate": (step.lower if by_rate else None) if chosen is not None else None,
        "concurrency": (int(step.lower) if not by_rate and step.lower is not None else
                        (search.max_concurrency if by_rate else None)) if chosen is not None else None,
        "output_tokens_per_s_per_replica": chosen.get("output_tokens_per_s") if chosen else None,
        "requests_per_s": chosen.get("requests_per_s") if chosen else None,
        "ttft_p99_ms": _p99(chosen, "ttft_ms") if chosen else None,
        "tpot_p99_ms": _p99(chosen, "tpot_ms") if chosen else None,
        "ttft_p99_target_ms": search.ttft_p99_target_ms,
        "tpot_p99_target_ms": search.tpot_p99_target_ms,
        "lower": step.lower,
        "upper": step.upper,
        "points": len(measured),
        "converged": step.converged and stopped is None,
        "reason": stopped or step.reason,
    }


def describe_operating_point(op: Mapping[str, Any]) -> str:
    """One line for a console or a caption.

    >>> describe_operating_point({"by": "request_rate", "request_rate": 4.0, "concurrency": None,
    ...     "output_tokens_per_s_per_replica": 512.0, "requests_per_s": 3.9, "ttft_p99_ms": 300.0,
    ...     "tpot_p99_ms": 12.0, "ttft_p99_target_ms": 500.0, "tpot_p99_target_ms": None, "points": 7,
    ...     "converged": True, "reason": "bracketed: 4 req/s meet the SLO, 4.3 do not"})
    'operating point: 4 req/s, 512 output tok/s per replica (3.9 req/s achieved), p99 TTFT 300 ms (target 500), \
p99 TPOT 12 ms (no target); 7 points, converged (bracketed: 4 req/s meet the SLO, 4.3 do not)'
    """
    def target(key: str) -> str:
        value = op.get(key)
        return f"target {value:.6g}" if isinstance(value, int | float) else "no target"

    state = "converged" if op.get("converged") else "not converged"
    tail = f"{op.get('points', 0)} points, {state} ({op.get('reason')})"
    value = op.get("request_rate") if op.get("by") == "request_rate" else op.get("concurrency")
    if value is None:
        return f"operating point: none meets the SLO; {tail}"
    where = f"{value:.4g} req/s" if op.get("by") == "request_rate" else f"concurrency {value}"

    def num(key: str) -> str:
        v = op.get(key)
        return f"{v:.4g}" if isinstance(v, int | float) else "-"

    return (f"operating point: {where}, {num('output_tokens_per_s_per_replica')} output tok/s per replica "
            f"({num('requests_per_s')} req/s achieved), p99 TTFT {num('ttft_p99_ms')} ms "
            f"({target('ttft_p99_target_ms')}), p99 TPOT {num('tpot_p99_ms')} ms ({target('tpot_p99_target_ms')}); "
            f"{tail}")
