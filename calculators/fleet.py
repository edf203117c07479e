"""Fleet capacity plan: replicas at mean and peak, autoscaling headroom for a cold start, and the share of
traffic an API fallback takes while the fleet scales or while replicas are down, with its cost.

The seed article's deployment: vLLM replicas behind a load balancer, autoscaled on queue depth, with "a
fallback to API for when your GPUs are saturated or down". One replica serves ``c = 1 / busy_s`` requests/s
at the scenario's operating point (``cost.replica_busy_s_per_request``: the SLO operating point once the
Capacity page or a probe run set the throughput). Demand is a rate series ``λ_i`` (requests/s in bins of
``step_s``): a trace's arrival rate scaled to the scenario's requests/day, or a synthetic day
(:func:`synthetic_day`, a stated shape). Formulas::

    replicas_mean = max(min_replicas, ceil(mean / c))
    replicas_peak = max(min_replicas, ceil(mean * peak_to_mean / c))         (cost.replicas_needed)
    rise          = max over i and 0 < j <= L of (λ_{i+j} - λ_i),  L = ceil(cold_start_s / step_s)
    headroom      = ceil(rise / c)          spare replicas to keep so that demand growing for one cold start
                                            stays within ready capacity
    replicas_peak_with_headroom = max(min_replicas, ceil((peak + rise) / c))
    headroom_utilization        = peak / (peak + rise)    the scale-up trigger that absorbs a cold start at peak

Autoscaler (:func:`simulate`), bin by bin: it wants ``max(min_replicas, ceil(λ_i / (u c)) + extra)`` replicas
(``u``: the scale-up utilization trigger; ``extra``: headroom kept); replicas launched at bin ``i`` are ready
from bin ``i + L``; surplus ready replicas are stopped at once (no scale-down delay). What exceeds the ready
capacity goes to the API::

    fallback_i = max(0, λ_i - ready_i * c)        fallback share = Σ fallback_i / Σ λ_i

Outage: ``k`` of the ``replicas_peak`` provisioned replicas down (not replaced) for the whole series::

    outage share = Σ max(0, λ_i - (replicas_peak - k) c) / Σ λ_i

Cost at the API's price per request ``p`` (``cost.evaluate``'s rates), the series standing for a typical day::

    scaling fallback $/month = share * mean * 86400 * 730/24 * p;   outage $/day down = outage share * mean * 86400 * p

>>> rate = np.array([1.0] * 10 + [3.0] * 10)          # 1 req/s, then 3 req/s; bins of 60 s
>>> p = plan(FleetInput(replica_req_per_s=1.0, mean_req_per_s=2.0, peak_to_mean=1.5, cold_start_s=300,
...          api_usd_per_request=0.01, scale_up_utilization=1.0, rate_req_per_s=tuple(rate), step_s=60))
>>> p.replicas_mean, p.replicas_peak, p.headroom_replicas, p.replicas_peak_with_headroom, p.headroom_utilization
(2, 3, 2, 5, 0.6)
>>> p.scaling_fallback_share    # 2 req/s over 5 bins of 60 s = 600 of 2,400 requests
0.25
>>> p.headroom_fallback_share, p.outage_fallback_share   # with 2 spare: none; 2 of 3 up: 1 req/s x 600 s
(0.0, 0.25)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calculators.cost import HOURS_PER_MONTH, SECONDS_PER_DAY, evaluate
from calculators.scenario import Scenario
from calculators.traffic import arrival_rate
from calculators.validation import require_finite, require_int

__all__ = [
    "DEFAULT_STEP_S",
    "DEFAULT_SCALE_UP_UTILIZATION",
    "DEFAULT_RAMP_S",
    "DEFAULT_HOLD_S",
    "ARTICLE_COLD_START_S",
    "MAX_SERIES_POINTS",
    "PEAK_MISMATCH",
    "FleetInput",
    "Timeline",
    "FleetPlan",
    "synthetic_day",
    "trace_series",
    "steepest_rise",
    "simulate",
    "plan",
    "plan_from_scenario",
    "cold_start_from_run",
    "plan_to_dict",
]

DEFAULT_STEP_S = 60.0  # one-minute bins: 1,440 a day
DEFAULT_SCALE_UP_UTILIZATION = 0.8  # add a replica when demand passes 80 % of ready capacity
DEFAULT_RAMP_S = 3600.0  # synthetic day: an hour from night level to peak (assumption)
DEFAULT_HOLD_S = 8 * 3600.0  # synthetic day: eight hours at peak (office hours; assumption)
ARTICLE_COLD_START_S = 120.0  # the article: "Cold start for vLLM is 60-120 seconds (model loading)"
MAX_SERIES_POINTS = 10_000  # a longer series is a mistake (a trace is binned to at most 1,440 points)
PEAK_MISMATCH = 0.10  # a series peak more than 10 % off the scenario's peak gets a note
_DAY_START_S = 8 * 3600.0  # the synthetic ramp starts at 08:00
_SHARE_TOLERANCE = 1e-12  # relative: fallback below this share of demand is float noise


@dataclass(frozen=True)
class FleetInput:
    """What the plan needs. ``replica_req_per_s``: one replica's requests/s at the operating point;
    ``mean_req_per_s`` and ``peak_to_mean``: the demand offered to the fleet; ``rate_req_per_s``: the demand
    series in bins of ``step_s`` (empty: the synthetic day of :func:`synthetic_day` with ``ramp_s``/``hold_s``);
    ``replicas_down``: replicas lost in the outage case; ``api_usd_per_request``: the fallback's price."""

    replica_req_per_s: float
    mean_req_per_s: float
    peak_to_mean: float
    cold_start_s: float
    api_usd_per_request: float
    min_replicas: int = 1
    scale_up_utilization: float = DEFAULT_SCALE_UP_UTILIZATION
    replicas_down: int = 1
    rate_req_per_s: tuple[float, ...] = ()
    step_s: float = DEFAULT_STEP_S
    ramp_s: float = DEFAULT_RAMP_S
    hold_s: float = DEFAULT_HOLD_S
    series_source: str = ""  # where the series came from, for the assumptions ("" = synthetic day)

    def __post_init__(self) -> None:
        require_finite("replica_req_per_s", self.replica_req_per_s, low=0, low_inclusive=False, high=1e12)
        require_finite("mean_req_per_s", self.mean_req_per_s, low=0, high=1e12)
        require_finite("peak_to_mean", self.peak_to_mean, low=1, high=100)
        require_finite("cold_start_s", self.cold_start_s, low=0, high=7 * SECONDS_PER_DAY)
        require_finite("api_usd_per_request", self.api_usd_per_request, low=0, high=1e6)
        require_int("min_replicas", self.min_replicas, low=1, high=1000)
        require_finite("scale_up_utilization", self.scale_up_utilization, low=0.01, high=1)
        require_int("replicas_down", self.replicas_down, low=0, high=1000)
        require_finite("step_s", self.step_s, low=1, high=SECONDS_PER_DAY)
        require_finite("ramp_s", self.ramp_s, low=0, high=SECONDS_PER_DAY / 2)
        require_finite("hold_s", self.hold_s, low=0, high=SECONDS_PER_DAY)
        if len(self.rate_req_per_s) > MAX_SERIES_POINTS:
            raise ValueError(f"rate_req_per_s has {len(self.rate_req_per_s):,} points, over {MAX_SERIES_POINTS:,}")
        r = np.asarray(self.rate_req_per_s, dtype=float)
        if r.size and (not np.all(np.isfinite(r)) or np.any(r < 0)):
            raise ValueError("rate_req_per_s must be finite numbers >= 0")


@dataclass(frozen=True, eq=False)
class Timeline:
    """The autoscaler's day, bin by bin (numpy arrays of equal length): bin start ``t_s``, ``demand`` and
    ``capacity`` (ready replicas x c) in requests/s, ``ready`` replicas, ``scaling`` (a launched replica is
    still starting), ``fallback`` requests/s sent to the API."""

    t_s: np.ndarray
    demand: np.ndarray
    capacity: np.ndarray
    ready: np.ndarray
    scaling: np.ndarray
    fallback: np.ndarray


@dataclass(frozen=True, eq=False)
class FleetPlan:
    """The plan (formulas in the module docstring); shares are of the requests offered to the fleet."""

    replica_req_per_s: float
    mean_req_per_s: float
    peak_req_per_s: float
    replicas_mean: int
    replicas_peak: int
    cold_start_s: float
    rise_req_per_s: float  # steepest demand growth within one cold start
    headroom_replicas: int
    replicas_peak_with_headroom: int
    headroom_utilization: float  # scale up at or below this utilization to absorb one cold start at peak; 1 if no rise
    scaling_fallback_share: float  # autoscaled at the utilization trigger
    scaling_fallback_usd_per_month: float
    headroom_fallback_share: float  # autoscaled keeping the headroom (trigger 100 %)
    outage_fallback_share: float  # replicas_peak - replicas_down up, all day
    outage_fallback_share_at_peak: float
    outage_usd_per_day: float
    mean_ready_replicas: float  # the autoscaled fleet's average size
    replicas_down: int
    scale_up_utilization: float
    assumptions: tuple[str, ...]
    timeline: Timeline = field(repr=False)


def _check_series(rate: np.ndarray, step_s: float) -> tuple[np.ndarray, float]:
    r = np.asarray(rate, dtype=float)
    if r.ndim != 1 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError("a rate series must be a 1-D array of finite requests/s >= 0")
    return r, require_finite("step_s", step_s, low=0, low_inclusive=False)


def synthetic_day(mean_req_per_s: float, peak_to_mean: float, *, step_s: float = DEFAULT_STEP_S,
                  ramp_s: float = DEFAULT_RAMP_S, hold_s: float = DEFAULT_HOLD_S) -> np.ndarray:
    """A stated daily shape when no trace is given: a night level ``b``, a linear ramp over ``ramp_s`` from
    08:00 to the peak ``P = mean * peak_to_mean``, ``hold_s`` at the peak, the same ramp down, then night::

        b = (mean * 86400 - P * (hold + ramp)) / (86400 - hold - ramp)      (the day's mean is ``mean``)

    When that ``b`` would be negative the night is 0 and the hold shrinks to ``mean * 86400 / P - ramp``
    (then the ramp, if the hold reaches 0). Sampled at bin centres and rescaled so its mean is exactly ``mean``.

    >>> d = synthetic_day(1.0, 2.0, step_s=3600, ramp_s=3600, hold_s=8 * 3600)
    >>> round(float(d.mean()), 9), float(d.max()), round(float(d.min()), 4)   # b = (86400 - 2*32400) / 54000
    (1.0, 2.0, 0.4)
    >>> synthetic_day(0.5, 1.0, step_s=21600).tolist()
    [0.5, 0.5, 0.5, 0.5]
    """
    mean = require_finite("mean_req_per_s", mean_req_per_s, low=0)
    p2m = require_finite("peak_to_mean", peak_to_mean, low=1, high=100)
    step = require_finite("step_s", step_s, low=1, high=SECONDS_PER_DAY)
    r = require_finite("ramp_s", ramp_s, low=0, high=SECONDS_PER_DAY / 2)
    h = require_finite("hold_s", hold_s, low=0, high=SECONDS_PER_DAY)
    n = max(1, math.ceil(SECONDS_PER_DAY / step))
    if mean == 0 or p2m == 1:
        return np.full(n, mean)
    peak = mean * p2m
    h = min(h, SECONDS_PER_DAY - 2 * r)
    base = (mean * SECONDS_PER_DAY - peak * (h + r)) / (SECONDS_PER_DAY - h - r)
    if base < 0:  # the peak is too high for so long a hold: no night traffic, a shorter hold
        base = 0.0
        h = mean * SECONDS_PER_DAY / peak - r
        if h < 0:
            h, r = 0.0, mean * SECONDS_PER_DAY / peak
    t = (np.arange(n) + 0.5) * step
    start = min(_DAY_START_S, SECONDS_PER_DAY - 2 * r - h)
    knots_t = [0.0, start, start + r, start + r + h, start + 2 * r + h, SECONDS_PER_DAY]
    shape = np.interp(t, knots_t, [base, base, peak, peak, base, base])
    return shape * (mean / shape.mean()) if shape.mean() > 0 else np.full(n, mean)


def trace_series(t_s: np.ndarray, mean_req_per_s: float, *, step_s: float = DEFAULT_STEP_S
                 ) -> tuple[np.ndarray, float]:
    """A trace's arrival rate (``traffic.arrival_rate``, at most 1,440 bins of ``max(step_s, span/1440)``)
    scaled so its mean is ``mean_req_per_s`` (the trace gives the shape, the scenario the volume);
    returns (rate, bin width in s).

    >>> rate, w = trace_series(np.array([0.0, 10, 20, 70, 130, 150]), 1.0)
    >>> w, rate.tolist()        # 3, 1 and 2 arrivals in three minutes, scaled to a mean of 1 req/s
    (60.0, [1.5, 0.5, 1.0])
    """
    mean = require_finite("mean_req_per_s", mean_req_per_s, low=0)
    t = np.asarray(t_s, dtype=float)
    if t.size < 2 or not t[-1] > t[0]:
        raise ValueError("a trace needs arrivals at two distinct times for a rate over time")
    start, rate = arrival_rate(t, step_s, max_points=1440)
    width = float(start[1] - start[0]) if start.size > 1 else float(step_s)
    return rate * (mean / rate.mean()), width


def steepest_rise(rate: np.ndarray, step_s: float, window_s: float) -> float:
    """The largest growth of demand within ``window_s``: ``max(λ[i+j] - λ[i])`` over ``0 < j <= L``,
    ``L = ceil(window_s / step_s)`` bins (at least 1); 0 when demand never rises (or one bin).

    >>> steepest_rise(np.array([1.0, 1, 2, 4, 4, 1]), 60, 120)   # 1 -> 4 within two bins
    3.0
    >>> steepest_rise(np.array([5.0, 4, 3]), 60, 600)
    0.0
    """
    r, step = _check_series(rate, step_s)
    lags = max(1, math.ceil(require_finite("window_s", window_s, low=0) / step - 1e-9))
    best = 0.0
    for j in range(1, min(lags, r.size - 1) + 1):
        best = max(best, float(np.max(r[j:] - r[:-j])))
    return best


def _want(rate: np.ndarray, c: float, u: float, extra: int, minimum: int) -> np.ndarray:
    need = np.ceil(rate / (u * c) * (1 - 1e-9))  # float noise does not add a replica (cost.REPLICA_TOLERANCE)
    return np.maximum(minimum, need + extra)


def simulate(rate: np.ndarray, step_s: float, replica_req_per_s: float, cold_start_s: float, *,
             min_replicas: int = 1, utilization: float = 1.0, extra_replicas: int = 0) -> Timeline:
    """The reactive autoscaler of the module docstring over ``rate`` (requests/s per bin of ``step_s``).

    The fleet starts with the replicas the first bin wants, ready. Each bin: launches ready ``L`` bins later
    arrive; the wanted count ``max(min_replicas, ceil(λ / (u c)) + extra)`` is compared with ready + starting
    replicas and the difference launched; ready replicas above it are stopped at once. Ready capacity serves
    up to ``ready * c``; the rest is fallback. A zero cold start makes launches ready in the same bin.

    >>> tl = simulate(np.array([1.0, 1, 3, 3, 3, 3]), 60, 1.0, 120)
    >>> tl.ready.tolist(), tl.fallback.tolist(), tl.scaling.tolist()
    ([1, 1, 1, 1, 3, 3], [0.0, 0.0, 2.0, 2.0, 0.0, 0.0], [False, False, True, True, False, False])
    """
    r, step = _check_series(rate, step_s)
    c = require_finite("replica_req_per_s", replica_req_per_s, low=0, low_inclusive=False)
    cold = require_finite("cold_start_s", cold_start_s, low=0)
    u = require_finite("utilization", utilization, low=0.01, high=1)
    lag = math.ceil(cold / step - 1e-9)
    want = _want(r, c, u, int(extra_replicas), int(min_replicas))
    n = r.size
    ready_out = np.zeros(n, dtype=np.int64)
    scaling = np.zeros(n, dtype=bool)
    arriving: dict[int, int] = {}
    ready = int(want[0]) if n else 0
    starting = 0
    for i in range(n):
        came = arriving.pop(i, 0)
        ready += came
        starting -= came
        w = int(want[i])
        if w > ready + starting:
            if lag == 0:
                ready = w
            else:
                arriving[i + lag] = arriving.get(i + lag, 0) + w - ready - starting
                starting = w - ready
        if ready > w:
            ready = w
        ready_out[i] = ready
        scaling[i] = starting > 0
    capacity = ready_out * c
    over = r - capacity
    fallback = np.where(over > 1e-9 * r, over, 0.0)  # within float noise of capacity: served
    return Timeline(np.arange(n) * step, r, capacity, ready_out, scaling, fallback)


def _share(fallback: np.ndarray, demand: np.ndarray) -> float:
    """Σ fallback / Σ demand; 0 with no demand (nothing to send anywhere)."""
    total = float(demand.sum())
    if total <= 0:
        return 0.0
    s = float(fallback.sum()) / total
    return 0.0 if s < _SHARE_TOLERANCE else s


def _replicas(rate: float, c: float, minimum: int) -> int:
    return max(minimum, math.ceil(rate / c * (1 - 1e-9)))


def plan(inp: FleetInput) -> FleetPlan:
    """The fleet plan for ``inp`` (module docstring); the series is ``inp.rate_req_per_s`` or the synthetic day."""
    if not isinstance(inp, FleetInput):
        raise ValueError(f"plan expects a FleetInput, got {type(inp).__name__}")
    c, mean = inp.replica_req_per_s, inp.mean_req_per_s
    if inp.rate_req_per_s:
        rate = np.asarray(inp.rate_req_per_s, dtype=float)
        source = inp.series_source or "the given rate series"
        shape_note = (f"Demand over time: {source}, in {len(rate):,} bins of {inp.step_s:,.0f} s, scaled to "
                      f"{mean * SECONDS_PER_DAY:,.0f} requests/day; the series stands for a typical day.")
    else:
        rate = synthetic_day(mean, inp.peak_to_mean, step_s=inp.step_s, ramp_s=inp.ramp_s, hold_s=inp.hold_s)
        shape_note = (f"Demand over time: a synthetic day, not a trace: a night level, a {inp.ramp_s / 60:,.0f}-min "
                      f"ramp from 08:00 to the peak ({inp.peak_to_mean:g}x mean), {inp.hold_s / 3600:,.1f} h at "
                      "the peak, the same ramp down (give a trace for the real shape).")
    peak = mean * inp.peak_to_mean
    series_peak = float(rate.max(initial=0.0))
    if inp.rate_req_per_s and peak > 0 and abs(series_peak / peak - 1) > PEAK_MISMATCH:
        shape_note += (f" Its busiest {inp.step_s:,.0f} s bin is {series_peak / mean:,.2f}x the mean, the scenario's "
                       f"peak_to_mean {inp.peak_to_mean:g}: replicas at peak and the outage case use the scenario's.")
    n_mean, n_peak = _replicas(mean, c, inp.min_replicas), _replicas(peak, c, inp.min_replicas)
    rise = steepest_rise(rate, inp.step_s, inp.cold_start_s)
    headroom = math.ceil(rise / c * (1 - 1e-9)) if rise > 0 else 0
    tl = simulate(rate, inp.step_s, c, inp.cold_start_s, min_replicas=inp.min_replicas,
                  utilization=inp.scale_up_utilization)
    kept = simulate(rate, inp.step_s, c, inp.cold_start_s, min_replicas=inp.min_replicas, extra_replicas=headroom)
    up = max(0, n_peak - inp.replicas_down)
    outage = np.maximum(0.0, rate - up * c)
    scaling_share = _share(tl.fallback, rate)
    outage_share = _share(outage, rate)
    per_day_usd = mean * SECONDS_PER_DAY * inp.api_usd_per_request
    assumptions = (
        f"One replica serves {c:,.4g} requests/s at the scenario's operating point (1 / replica busy time per "
        "request); the fleet's demand is the scenario's requests/day less any fixed fallback share.",
        shape_note,
        f"Cold start {inp.cold_start_s:,.0f} s from launch to serving; a new node's provisioning, image pull and "
        "weight download add to a server's own start where they are not in the measured figure.",
        f"Autoscaler: wants ceil(demand / ({inp.scale_up_utilization:.0%} x replica capacity)) replicas, at least "
        f"{inp.min_replicas}; it sees demand within one {inp.step_s:,.0f} s bin (queue depth), stops surplus "
        "replicas at once, and the load balancer spreads requests evenly over ready replicas.",
        f"Headroom: {headroom} spare replica(s) cover the steepest demand growth within one cold start "
        f"({rise:,.4g} requests/s); kept on top of demand (trigger 100 %), the fallback share is "
        "the headroom figure.",
        f"Outage: {inp.replicas_down} of the {n_peak} peak replicas down all day and not replaced "
        "(a replacement would end it after one cold start).",
        "Fallback cost: the API's price per request for the scenario's mean request (cost.evaluate's rates); "
        "requests over capacity are taken to be sent to the API at once, never queued.",
    )
    return FleetPlan(
        replica_req_per_s=c, mean_req_per_s=mean, peak_req_per_s=peak, replicas_mean=n_mean, replicas_peak=n_peak,
        cold_start_s=inp.cold_start_s, rise_req_per_s=rise, headroom_replicas=headroom,
        replicas_peak_with_headroom=_replicas(peak + rise, c, inp.min_replicas),
        headroom_utilization=peak / (peak + rise) if peak + rise > 0 else 1.0,
        scaling_fallback_share=scaling_share,
        scaling_fallback_usd_per_month=scaling_share * per_day_usd * HOURS_PER_MONTH / 24,
        headroom_fallback_share=_share(kept.fallback, rate), outage_fallback_share=outage_share,
        outage_fallback_share_at_peak=max(0.0, peak - up * c) / peak if peak > 0 else 0.0,
        outage_usd_per_day=outage_share * per_day_usd, mean_ready_replicas=float(tl.ready.mean()) if rate.size else 0.0,
        replicas_down=inp.replicas_down, scale_up_utilization=inp.scale_up_utilization,
        assumptions=assumptions, timeline=tl)


def plan_from_scenario(s: Scenario, *, cold_start_s: float, trace_t_s: np.ndarray | None = None,
                       trace_name: str = "", scale_up_utilization: float = DEFAULT_SCALE_UP_UTILIZATION,
                       replicas_down: int = 1, step_s: float = DEFAULT_STEP_S, ramp_s: float = DEFAULT_RAMP_S,
                       hold_s: float = DEFAULT_HOLD_S) -> FleetPlan:
    """The plan for a scenario: capacity ``1 / busy_s`` and the API price from ``cost.evaluate``, demand
    ``requests_per_day * (1 - fallback_fraction) / 86400``; ``trace_t_s`` (arrival times) gives the shape.

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> p = plan_from_scenario(DEFAULT_SCENARIO, cold_start_s=120)
    >>> p.replicas_peak == evaluate(DEFAULT_SCENARIO).self_host.replicas
    True
    """
    report = evaluate(s)
    busy = report.self_host.busy_s_per_request
    if not busy > 0:
        raise ValueError("a request takes no replica time (no output tokens, no prefill): nothing to plan")
    mean = s.traffic.requests_per_day * (1 - s.self_host.fallback_fraction) / SECONDS_PER_DAY
    rate: tuple[float, ...] = ()
    source = ""
    if trace_t_s is not None:
        series, step_s = trace_series(trace_t_s, mean, step_s=step_s)
        rate, source = tuple(series.tolist()), f"trace {trace_name or 'given'}"
    return plan(FleetInput(
        replica_req_per_s=1.0 / busy, mean_req_per_s=mean, peak_to_mean=s.traffic.peak_to_mean,
        cold_start_s=cold_start_s, api_usd_per_request=report.api.usd_per_request,
        min_replicas=s.self_host.min_replicas, scale_up_utilization=scale_up_utilization,
        replicas_down=replicas_down, rate_req_per_s=rate, step_s=step_s, ramp_s=ramp_s, hold_s=hold_s,
        series_source=source))


def cold_start_from_run(run: Mapping[str, Any], name: str = "run") -> float:
    """A probe run's measured cold start: ``run["cold_start_s"]`` (server launch to a healthy ``/health``).

    >>> cold_start_from_run({"cold_start_s": 212.2})
    212.2
    >>> cold_start_from_run({"cold_start_s": None}, "r.json")
    Traceback (most recent call last):
    ...
    ValueError: r.json: no cold_start_s recorded (an endpoint run does not start the server)
    """
    if not isinstance(run, Mapping):
        raise ValueError(f"{name}: not a run object")
    v = run.get("cold_start_s")
    if v is None:
        raise ValueError(f"{name}: no cold_start_s recorded (an endpoint run does not start the server)")
    return require_finite(f"{name}: cold_start_s", v, low=0, high=7 * SECONDS_PER_DAY)


def plan_to_dict(p: FleetPlan, *, timeline: bool = False) -> dict[str, Any]:
    """The JSON form (``python -m calculators fleet --json``); the timeline only when asked."""
    keys: Sequence[str] = [k for k in p.__dataclass_fields__ if k not in ("timeline", "assumptions")]
    out: dict[str, Any] = {k: getattr(p, k) for k in keys}
    out["assumptions"] = list(p.assumptions)
    if timeline:
        tl = p.timeline
        out["timeline"] = {"t_s": tl.t_s.tolist(), "demand": tl.demand.tolist(), "capacity": tl.capacity.tolist(),
                           "ready": tl.ready.tolist(), "scaling": tl.scaling.tolist(),
                           "fallback": tl.fallback.tolist()}
    return out
