"""The operating point under a latency SLO: from a measured run's points, the highest load whose TTFT and TPOT
at a chosen percentile meet the targets, and the two rates the cost model needs there.

Pure: takes the run JSON as plain dicts (``run["points"]``, each with a load, ``output_tokens_per_s``,
``total_input_tokens``/``total_output_tokens``, ``completed``/``failed``, and ``ttft_ms``/``tpot_ms``/
``e2el_ms`` blocks of ``mean, median, p90, p99``); never imports ``probes``.

Load axis: ``request_rate`` when every point has a finite one (an SLO search by rate, a replay), else
``concurrency``. A point *passes* when it completed requests, none failed, its client was not CPU-bound, and
every given target holds at the percentile (``p50`` reads ``median``). A point whose targeted percentile is
missing or NaN cannot be judged: it is left out, with a note.

Walking up the load: the first failing point ``b`` and the last passing point ``a`` below it bracket the SLO.
When ``b`` failed on latency alone, each violated metric is taken as linear in load between ``a`` and ``b``::

    t = min over violated metrics of (target - value_a) / (value_b - value_a)      (0 <= t < 1)
    load = load_a + t * (load_b - load_a);  every rate = rate_a + t * (rate_b - rate_a)

else (failures, CPU-bound client) the point is ``a`` itself. No passing point below the first failure
raises :class:`SloNotMet`. When every point passes the SLO is *not binding in the measured range*: the answer
is the passing point with the most output tok/s, said so, never stretched beyond it unless ``extrapolate=True``
(then the last two points' lines are continued to the target, at most to twice the top load, and the
result is marked ``extrapolated``).

Two rates for the cost model (``calculators.cost.replica_busy_s_per_request``: ``busy_s = out/otps +
in*(1-cached)/ptps``). The measured output tok/s and input tok/s happened *at the same time*, so putting both in
as they are would count the replica's time twice. The measured time per request, ``1 / requests_per_s``, is
split by the share of a request's life spent before its first token, ``f = mean TTFT / mean E2EL``::

    prefill_tokens_per_s = input_tokens_per_s * (1 - measured prefix-cache hit rate) / f
    decode_tokens_per_s  = output_tokens_per_s / (1 - f)

so at the measured shape the cost model gives back exactly the measured requests/s, and a longer prompt costs
replica time in proportion (TTFT includes queueing, so ``f`` errs towards dearer input: conservative).

>>> pts = [{"concurrency": c, "output_tokens_per_s": 100.0 * c, "total_input_tokens": 512 * 10,
...         "total_output_tokens": 256 * 10, "completed": 10, "failed": 0, "duration_s": 25.6 / c,
...         "ttft_ms": {"mean": 10.0 * c, "p90": 20.0 * c}, "tpot_ms": {"mean": 5.0, "p90": 5.0 + c},
...         "e2el_ms": {"mean": 100.0 * c}} for c in (1, 2, 4, 8)]
>>> op = find_operating_point({"run_id": 7, "points": pts}, SloTarget(ttft_ms=100.0, percentile="p90"))
>>> op.status, op.load, op.output_tokens_per_s, op.input_tokens_per_s   # between c=4 (80 ms) and c=8 (160 ms)
('interpolated', 5.0, 500.0, 1000.0)
>>> round(op.prefill_time_share, 6), round(op.prefill_tokens_per_s, 3), round(op.decode_tokens_per_s, 3)
(0.1, 10000.0, 555.556)
>>> source_text(op)
'measured run 7 at SLO TTFT p90 ≤ 100 ms, c≈5 interpolated (512 in / 256 out tokens)'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PERCENTILES",
    "SHAPE_TOLERANCE",
    "SloTarget",
    "SloNotMet",
    "OperatingPoint",
    "find_operating_point",
    "point_rates",
    "source_text",
    "shape_warning",
    "measured_prefix_cache_hit_rate",
    "measured_shape",
    "latency_text",
    "point_latency_text",
]

PERCENTILES = {"p50": "median", "p90": "p90", "p99": "p99"}
"""The percentile a user picks -> the key of the run JSON's latency block."""
SHAPE_TOLERANCE = 0.10  # a scenario mean more than 10 % off the measured mean gets a warning
EXTRAPOLATION_LIMIT = 2.0  # never continue the lines past twice the highest measured load
_METRICS = (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"))


class SloNotMet(ValueError):
    """No measured point meets the SLO (the message says which point failed and why)."""


@dataclass(frozen=True)
class SloTarget:
    """Latency targets in ms (at least one) at one percentile (``p50``, ``p90`` or ``p99``).

    >>> SloTarget(ttft_ms=500, tpot_ms=50).describe()
    'TTFT p90 ≤ 500 ms, TPOT p90 ≤ 50 ms'
    >>> SloTarget()
    Traceback (most recent call last):
    ...
    ValueError: an SLO needs a TTFT target, a TPOT target, or both
    """

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    percentile: str = "p90"

    def __post_init__(self) -> None:
        if self.percentile not in PERCENTILES:
            raise ValueError(f"percentile must be one of {', '.join(PERCENTILES)}, got {self.percentile!r}")
        if self.ttft_ms is None and self.tpot_ms is None:
            raise ValueError("an SLO needs a TTFT target, a TPOT target, or both")
        for name in ("ttft_ms", "tpot_ms"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                                  or not math.isfinite(v) or v <= 0):
                raise ValueError(f"SLO {name} must be a finite number > 0 ms or empty, got {v!r}")

    def targets(self) -> list[tuple[str, str, float]]:
        """(run-JSON metric key, label, target ms) for each given target."""
        return [(key, label, float(t)) for (key, label), t in zip(_METRICS, (self.ttft_ms, self.tpot_ms),
                                                                  strict=True) if t is not None]

    def describe(self) -> str:
        return ", ".join(f"{label} {self.percentile} ≤ {t:,.4g} ms" for _, label, t in self.targets())


@dataclass(frozen=True)
class OperatingPoint:
    """The answer (module docstring). ``status``: ``measured`` (a measured point, the SLO binding just above it),
    ``interpolated``, ``not_binding`` (every point passed: the best measured) or ``extrapolated``.

    ``output_tokens_per_s``/``input_tokens_per_s``/``requests_per_s``: as measured (or interpolated);
    ``decode_tokens_per_s``/``prefill_tokens_per_s``: the split for the cost model (prefill None when the run
    gives no way to split); ``latency_ms``: the targeted percentiles there; ``lower``/``upper``: the
    bracketing measured loads (``upper`` None when nothing failed)."""

    status: str
    load_axis: str
    load: float
    output_tokens_per_s: float
    input_tokens_per_s: float
    requests_per_s: float
    decode_tokens_per_s: float
    prefill_tokens_per_s: float | None
    prefill_time_share: float | None
    mean_input_tokens: float
    mean_output_tokens: float
    slo: SloTarget
    run_id: Any = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    lower: float | None = None
    upper: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def extrapolated(self) -> bool:
        return self.status == "extrapolated"

    @property
    def binding(self) -> bool:
        """False when every measured point met the SLO (the true capacity under it lies above the range)."""
        return self.status != "not_binding"


def _f(value: Any) -> float | None:
    """A finite float, else None (missing, NaN, inf, text, bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _stat(point: Mapping[str, Any], metric: str, key: str) -> float | None:
    block = point.get(metric)
    return _f(block.get(key)) if isinstance(block, Mapping) else None


def _load_axis(points: Sequence[Mapping[str, Any]]) -> str:
    if points and all(_f(p.get("request_rate")) is not None and p["request_rate"] > 0 for p in points):
        return "request_rate"
    return "concurrency"


def _fmt_load(axis: str, value: float) -> str:
    return f"{value:.3g} req/s" if axis == "request_rate" else f"c={value:.3g}"


def point_rates(point: Mapping[str, Any], prefix_cache_hit_rate: float | None = None) -> dict[str, float | None]:
    """The measured rates of one point and their split for the cost model (module docstring).

    Keys: ``output_tokens_per_s``, ``input_tokens_per_s``, ``requests_per_s``, ``mean_input_tokens``,
    ``mean_output_tokens``, ``prefill_time_share``, ``decode_tokens_per_s``, ``prefill_tokens_per_s``.

    >>> r = point_rates({"output_tokens_per_s": 300.0, "total_input_tokens": 1200, "total_output_tokens": 600,
    ...                  "completed": 3, "duration_s": 2.0, "ttft_ms": {"mean": 50.0}, "e2el_ms": {"mean": 500.0}})
    >>> r["input_tokens_per_s"], r["requests_per_s"], r["prefill_tokens_per_s"], round(r["decode_tokens_per_s"], 3)
    (600.0, 1.5, 6000.0, 333.333)
    >>> point_rates({"output_tokens_per_s": 300.0, "completed": 3, "duration_s": 2.0})["prefill_tokens_per_s"] is None
    True
    """
    otps = _f(point.get("output_tokens_per_s")) or 0.0
    done = _f(point.get("completed")) or 0.0
    duration = _f(point.get("duration_s"))
    tin, tout = _f(point.get("total_input_tokens")), _f(point.get("total_output_tokens"))
    mean_out = tout / done if tout is not None and done else None
    rps = _f(point.get("requests_per_s"))
    if rps is None:
        rps = done / duration if duration and done else (otps / mean_out if mean_out else 0.0)
    mean_in = tin / done if tin is not None and done else 0.0
    mean_out = mean_out if mean_out is not None else (otps / rps if rps else 0.0)
    itps = mean_in * rps
    ttft, e2el = _stat(point, "ttft_ms", "mean"), _stat(point, "e2el_ms", "mean")
    share = ttft / e2el if ttft is not None and e2el and 0 < ttft < e2el else None
    hit = min(max(_f(prefix_cache_hit_rate) or 0.0, 0.0), 1.0)
    prefill = itps * (1 - hit) / share if share is not None and itps > 0 and hit < 1 else None
    decode = otps / (1 - share) if prefill is not None and share is not None else otps
    return {"output_tokens_per_s": otps, "input_tokens_per_s": itps, "requests_per_s": rps,
            "mean_input_tokens": mean_in, "mean_output_tokens": mean_out,
            "prefill_time_share": share if prefill is not None else None,
            "decode_tokens_per_s": decode, "prefill_tokens_per_s": prefill}


def _verdict(point: Mapping[str, Any], slo: SloTarget) -> tuple[bool | None, str, bool]:
    """(passes, why not, latency-only failure); passes None: the targeted percentile is missing or NaN."""
    key = PERCENTILES[slo.percentile]
    if not _f(point.get("completed")):
        return False, "no request completed", False
    if _f(point.get("failed")):
        return False, f"{int(point['failed'])} request(s) failed", False
    if point.get("client_bound"):
        return False, "the client was CPU-bound", False
    for metric, label, target in slo.targets():
        got = _stat(point, metric, key)
        if got is None:
            return None, f"no {label} {slo.percentile} recorded", False
        if got > target:
            return False, f"{label} {slo.percentile} {got:,.4g} ms > {target:,.4g} ms", True
    return True, "", True


def _lerp(a: float | None, b: float | None, t: float) -> float | None:
    return None if a is None or b is None else a + t * (b - a)


def _build(status: str, axis: str, la: float, lb: float, ra: Mapping[str, float | None],
           rb: Mapping[str, float | None], lat_a: Mapping[str, float], lat_b: Mapping[str, float], t: float,
           slo: SloTarget, run_id: Any, lower: float | None, upper: float | None,
           notes: list[str], hit: float | None) -> OperatingPoint:
    def mix(key: str) -> float | None:
        return _lerp(ra[key], rb[key], t)

    share = mix("prefill_time_share") if ra["prefill_time_share"] is not None and rb["prefill_time_share"] \
        is not None else None
    otps, itps = max(mix("output_tokens_per_s") or 0.0, 0.0), max(mix("input_tokens_per_s") or 0.0, 0.0)
    h = min(max(_f(hit) or 0.0, 0.0), 1.0)
    prefill = itps * (1 - h) / share if share is not None and 0 < share < 1 and itps > 0 and h < 1 else None
    if prefill is None and itps > 0:
        notes.append("no mean TTFT/E2EL to split prefill from decode: the break-even counts output tokens only")
    return OperatingPoint(
        status=status, load_axis=axis, load=la + t * (lb - la), output_tokens_per_s=otps,
        input_tokens_per_s=itps, requests_per_s=max(mix("requests_per_s") or 0.0, 0.0),
        decode_tokens_per_s=otps / (1 - share) if prefill is not None and share is not None else otps,
        prefill_tokens_per_s=prefill, prefill_time_share=share if prefill is not None else None,
        mean_input_tokens=mix("mean_input_tokens") or 0.0, mean_output_tokens=mix("mean_output_tokens") or 0.0,
        slo=slo, run_id=run_id, latency_ms={k: v for k in lat_a if (v := _lerp(lat_a[k], lat_b.get(k), t))
                                            is not None},
        lower=lower, upper=upper, notes=tuple(notes))


def find_operating_point(run: Mapping[str, Any], slo: SloTarget, *, run_id: Any = None,
                         extrapolate: bool = False) -> OperatingPoint:
    """The operating point of ``run`` under ``slo`` (module docstring); ``run_id`` defaults to
    ``run["run_id"]``. Raises :class:`SloNotMet` when no point passes, ValueError for a run without points.

    >>> pts = [{"concurrency": c, "output_tokens_per_s": 10.0 * c, "completed": 4, "failed": 0, "duration_s": 1.0,
    ...         "ttft_ms": {"p99": 10.0 * c}} for c in (1, 2)]
    >>> op = find_operating_point({"points": pts}, SloTarget(ttft_ms=500, percentile="p99"))
    >>> op.status, op.load, op.binding, op.notes[0]
    ('not_binding', 2.0, False, 'SLO not binding in measured range: every point meets TTFT p99 ≤ 500 ms \
(highest load c=2); the capacity under it is higher than measured')
    >>> find_operating_point({"points": pts}, SloTarget(ttft_ms=5, percentile="p99"))
    Traceback (most recent call last):
    ...
    calculators.operating.SloNotMet: no measured point meets TTFT p99 ≤ 5 ms: the lowest load, c=1, has TTFT p99 10 ms > 5 ms
    """
    rid = run.get("run_id") if run_id is None else run_id
    raw = [p for p in run.get("points") or [] if isinstance(p, Mapping)]
    if not raw:
        raise ValueError("the run has no measured point")
    axis = _load_axis(raw)
    hit = measured_prefix_cache_hit_rate(run)
    notes: list[str] = []
    if hit:
        notes.append(f"measured prefix-cache hit rate {hit:.1%}: the prefill rate is per uncached input token")
    judged: list[tuple[float, Mapping[str, Any], bool, str, bool]] = []
    for p in raw:
        load = _f(p.get(axis))
        if load is None:
            notes.append(f"a point without a {axis} was left out")
            continue
        ok, why, latency_only = _verdict(p, slo)
        if ok is None:
            notes.append(f"{_fmt_load(axis, load)} left out: {why}")
            continue
        judged.append((load, p, ok, why, latency_only))
    judged.sort(key=lambda j: j[0])
    if not judged:
        raise SloNotMet(f"no measured point can be judged against {slo.describe()}: " + "; ".join(notes))
    key = PERCENTILES[slo.percentile]

    def lat(p: Mapping[str, Any]) -> dict[str, float]:
        return {m: v for m, _, _ in slo.targets() if (v := _stat(p, m, key)) is not None}

    first_fail = next((i for i, j in enumerate(judged) if not j[2]), None)
    if first_fail == 0:
        load, _, _, why, _ = judged[0]
        raise SloNotMet(f"no measured point meets {slo.describe()}: the lowest load, {_fmt_load(axis, load)}, "
                        f"has {why}")
    if first_fail is None:
        best = max(judged, key=lambda j: _f(j[1].get("output_tokens_per_s")) or 0.0)
        top = judged[-1]
        if extrapolate and len(judged) >= 2:
            return _extrapolate(judged[-2], top, axis, slo, rid, notes, hit, lat)
        notes.insert(0, f"SLO not binding in measured range: every point meets {slo.describe()} (highest load "
                        f"{_fmt_load(axis, top[0])}); the capacity under it is higher than measured")
        r = point_rates(best[1], hit)
        return _build("not_binding", axis, best[0], best[0], r, r, lat(best[1]), lat(best[1]), 0.0, slo, rid,
                      best[0], None, notes, hit)
    above = [j[0] for j in judged[first_fail + 1:] if j[2]]
    if above:
        notes.append(f"points passed again above the first failure ({', '.join(_fmt_load(axis, v) for v in above)}):"
                     " not monotone, the lower answer is kept")
    a, b = judged[first_fail - 1], judged[first_fail]
    ra, rb = point_rates(a[1], hit), point_rates(b[1], hit)
    if not b[4]:
        notes.append(f"not interpolated: the next point, {_fmt_load(axis, b[0])}, failed for another reason than "
                     f"latency ({b[3]})")
        return _build("measured", axis, a[0], a[0], ra, ra, lat(a[1]), lat(a[1]), 0.0, slo, rid, a[0], b[0],
                      notes, hit)
    la, lb = lat(a[1]), lat(b[1])
    ts = [(target - la[m]) / (lb[m] - la[m]) for m, _, target in slo.targets()
          if m in la and m in lb and lb[m] > target and lb[m] > la[m]]
    t = min(ts) if ts else 0.0
    status = "interpolated" if t > 0 else "measured"
    notes.append(f"SLO reached between {_fmt_load(axis, a[0])} (passes) and {_fmt_load(axis, b[0])} ({b[3]})")
    return _build(status, axis, a[0], b[0], ra, rb, la, lb, t, slo, rid, a[0], b[0], notes, hit)


def _extrapolate(a: tuple, b: tuple, axis: str, slo: SloTarget, rid: Any, notes: list[str], hit: float | None,
                 lat: Any) -> OperatingPoint:
    """Continue the last two points' lines past ``b`` to the first target reached, at most to
    ``EXTRAPOLATION_LIMIT`` times ``b``'s load; the rates' lines too (a falling line is held flat)."""
    la, lb = lat(a[1]), lat(b[1])
    span = b[0] - a[0]
    t_max = (EXTRAPOLATION_LIMIT * b[0] - a[0]) / span if span > 0 else 1.0
    ts = [(target - la[m]) / (lb[m] - la[m]) for m, _, target in slo.targets()
          if m in la and m in lb and lb[m] > la[m]]
    t = min([*ts, t_max])
    ra, rb = point_rates(a[1], hit), point_rates(b[1], hit)
    rb_flat = {k: (max(v, ra[k]) if v is not None and ra[k] is not None else v) for k, v in rb.items()}
    notes.insert(0, f"extrapolated beyond the measured range: every point meets {slo.describe()}; the lines "
                    f"through {_fmt_load(axis, a[0])} and {_fmt_load(axis, b[0])} are continued to "
                    f"{_fmt_load(axis, a[0] + t * span)}" + (" (capped at twice the top load)" if t == t_max else ""))
    return _build("extrapolated", axis, a[0], b[0], ra, rb_flat, la, lb, t, slo, rid, b[0], None, notes, hit)


def measured_prefix_cache_hit_rate(run: Mapping[str, Any]) -> float | None:
    """The run's measured prefix-cache hit rate: a replay's, else the points' vLLM counters pooled."""
    replay = run.get("replay")
    if isinstance(replay, Mapping) and _f(replay.get("prefix_cache_hit_rate")) is not None:
        return _f(replay["prefix_cache_hit_rate"])
    hits = queries = 0.0
    for p in run.get("points") or []:
        m = p.get("server_metrics") if isinstance(p, Mapping) else None
        if isinstance(m, Mapping) and _f(m.get("prefix_cache_queries")):
            hits += _f(m.get("prefix_cache_hits")) or 0.0
            queries += _f(m.get("prefix_cache_queries")) or 0.0
    return hits / queries if queries else None


def source_text(op: OperatingPoint) -> str:
    """The scenario's ``throughput_source`` (at most 200 characters).

    >>> op = OperatingPoint("measured", "concurrency", 32.0, 3400.0, 6800.0, 13.3, 3500.0, 1e5, 0.03, 512.0,
    ...                     256.0, SloTarget(ttft_ms=500, tpot_ms=50), run_id=3)
    >>> source_text(op)
    'measured run 3 at SLO TTFT p90 ≤ 500 ms, TPOT p90 ≤ 50 ms, c=32 (512 in / 256 out tokens)'
    """
    where = {"measured": "", "interpolated": "≈", "not_binding": "", "extrapolated": "≈"}[op.status]
    load = (f"{op.load:.3g} req/s" if op.load_axis == "request_rate" else f"c{where or '='}{op.load:.3g}")
    if op.load_axis == "request_rate" and where:
        load = "≈" + load
    tag = {"measured": "", "interpolated": " interpolated", "not_binding": " (SLO not binding)",
           "extrapolated": " EXTRAPOLATED"}[op.status]
    rid = "?" if op.run_id is None else op.run_id
    text = (f"measured run {rid} at SLO {op.slo.describe()}, {load}{tag} "
            f"({op.mean_input_tokens:,.0f} in / {op.mean_output_tokens:,.0f} out tokens)")
    return text[:200]


def latency_text(latency_ms: Mapping[str, float], percentile: str) -> str:
    """The measured latencies as the scenario's ``throughput_latency`` keeps them ("" when none).

    >>> latency_text({"ttft_ms": 312.4, "tpot_ms": 41.04}, "p90")
    'TTFT p90 312 ms, TPOT p90 41 ms'
    >>> latency_text({"tpot_ms": 7.26}, "p50"), latency_text({}, "p90")
    ('TPOT p50 7.3 ms', '')
    """
    names = dict(_METRICS)
    return ", ".join(f"{names[m]} {percentile} {f'{v:,.0f}' if v >= 10 else f'{v:.2g}'} ms"
                     for m, v in latency_ms.items() if m in names and _f(v) is not None)


def point_latency_text(point: Mapping[str, Any], percentile: str = "p90") -> str:
    """TTFT and TPOT of one measured point at ``percentile`` (``p50`` reads the median), "" when missing.

    >>> point_latency_text({"ttft_ms": {"p90": 1234.5}, "tpot_ms": {"p90": 12.0, "median": 9.0}})
    'TTFT p90 1,234 ms, TPOT p90 12 ms'
    >>> point_latency_text({"tpot_ms": {"median": 9.0}}, "p50")
    'TPOT p50 9 ms'
    """
    key = PERCENTILES[percentile]
    found = {m: _stat(point, m, key) for m, _ in _METRICS}
    return latency_text({m: v for m, v in found.items() if v is not None}, percentile)


def shape_warning(measured: OperatingPoint | tuple[float, float], input_tokens: float, output_tokens: float,
                  tolerance: float = SHAPE_TOLERANCE) -> str | None:
    """A warning when the scenario's mean request shape is more than ``tolerance`` off the measured one
    (``measured``: an operating point, or its (input, output) tokens as :func:`measured_shape` reads them);
    None when it matches.

    >>> op = OperatingPoint("measured", "concurrency", 8.0, 1000.0, 2000.0, 3.9, 1e3, 1e4, 0.1, 512.0, 256.0,
    ...                     SloTarget(ttft_ms=500))
    >>> shape_warning(op, 6000, 256)
    "The scenario's request shape differs from the measured one: input 6,000 vs 512 tokens (×11.7). The \
prefill rate scales input cost linearly; long prompts may cost more (attention grows with length)."
    >>> shape_warning(op, 520, 250) is None
    True
    >>> shape_warning((512.0, 256.0), 512, 1024)
    "The scenario's request shape differs from the measured one: output 1,024 vs 256 tokens (×4)."
    """
    m_in, m_out = ((measured.mean_input_tokens, measured.mean_output_tokens)
                   if isinstance(measured, OperatingPoint) else measured)
    parts = []
    for label, want, got in (("input", input_tokens, m_in), ("output", output_tokens, m_out)):
        if got > 0 and abs(want / got - 1) > tolerance:
            parts.append(f"{label} {want:,.0f} vs {got:,.0f} tokens (×{want / got:.3g})")
        elif got <= 0 < want:
            parts.append(f"{label} {want:,.0f} vs 0 tokens measured")
    if not parts:
        return None
    tail = (" The prefill rate scales input cost linearly; long prompts may cost more (attention grows with "
            "length).") if any(p.startswith("input") for p in parts) else ""
    return "The scenario's request shape differs from the measured one: " + "; ".join(parts) + "." + tail


_SHAPE = re.compile(r"\(([\d,.]+) in / ([\d,.]+) out tokens\)$")


def measured_shape(throughput_source: str) -> tuple[float, float] | None:
    """The measured (input, output) tokens that :func:`source_text` wrote at the end of a scenario's
    ``throughput_source``; None for any other source (typed in, a catalog, an estimate).

    >>> measured_shape("measured run 3 at SLO TTFT p90 ≤ 500 ms, c=32 (6,000 in / 256 out tokens)")
    (6000.0, 256.0)
    >>> measured_shape("user input") is None
    True
    """
    m = _SHAPE.search(throughput_source or "")
    if m is None:
        return None
    try:
        return float(m[1].replace(",", "")), float(m[2].replace(",", ""))
    except ValueError:
        return None
