"""How sure is the verdict: a bootstrap interval on measured throughput, ranges on the inputs, the band they
give on monthly savings and break-even volume, and a tornado ranking of which input moves savings most.

Throughput (``bootstrap_ci``): a **percentile bootstrap**. Resample the n observations (per-request records
or per-repeat throughputs) with replacement ``n_boot`` times (``numpy.random.default_rng(seed)``), compute
the statistic on each resample, and take the ``(1-level)/2`` and ``(1+level)/2`` percentiles of those
statistics. Per request, the statistic is Little's law, ``tokens_per_s = c * sum(output_tokens) /
sum(latency_s)`` with c the point's measured mean occupancy (``throughput_ci_from_samples``). Requests of one
run share batches, so a per-request interval is optimistic; per-repeat (separate runs) is the honest one.

Inputs as ranges (``Range(low, high)`` per key of ``RANGE_KEYS``, keys are the scenario's URL keys plus
``api_price``, a multiplier on every effective API rate). The savings model is ``calculators.cost``'s own
array functions, with the API's effective rates (long-context tier, cache writes) computed once at the
base request shape; at the base values it equals ``cost.evaluate(s).savings_usd_per_month`` exactly:

* **corner band**: savings and break-even at all 2^k low/high corners; min and max over the corners.
  Savings is a step function of volume and tokens, so the band is over corners, not a proof of bounds.
* **Monte Carlo**: ``n`` seeded samples, each input drawn **triangular(low, base, high)** (the base value
  stays the most likely) independently; p5/p50/p95 of savings and break-even volume, and the share of
  samples where self-hosting is no dearer. All samples at once (numpy arrays, no loop per sample).
* **tornado**: each input alone at its low and at its high (others at base); sorted by swing
  ``max(lo, hi, base) - min(lo, hi, base)``, largest first.

>>> from calculators.scenario import DEFAULT_SCENARIO
>>> r = analyse(DEFAULT_SCENARIO, {"gpu_usd": Range(4.0, 6.0)}, n=500)
>>> r.base_savings_usd_per_month < 0, r.band.savings_low <= r.mc.savings_p5 <= r.mc.savings_p95
(True, True)
>>> r.tornado[0].key, round(r.tornado[0].savings_at_high - r.tornado[0].savings_at_low, 2)  # -2 * 730
('gpu_usd', -1460.0)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from calculators import cost
from calculators.scenario import LIMITS, Scenario

__all__ = [
    "CI",
    "bootstrap_ci",
    "littles_law_tokens_per_s",
    "throughput_ci_from_samples",
    "point_throughput_ci",
    "relative_range",
    "Range",
    "RANGE_KEYS",
    "DEFAULT_PCT",
    "MAX_PCT",
    "ranges_from_pct",
    "parse_ranges",
    "format_ranges",
    "parse_pct",
    "savings_model",
    "savings_band_vs_volume",
    "Band",
    "MonteCarlo",
    "TornadoBar",
    "Uncertainty",
    "analyse",
    "uncertainty_to_dict",
]

_CHUNK = 4_000_000  # elements per bootstrap block (bounded memory for long runs)


@dataclass(frozen=True)
class CI:
    """A confidence interval: the statistic on the data (``estimate``) and the percentile-bootstrap bounds."""

    estimate: float
    low: float
    high: float
    level: float
    n_obs: int
    n_boot: int
    method: str = "percentile bootstrap"


def _stat_fn(stat: str | Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    if callable(stat):
        return stat
    if stat == "mean":
        return lambda a: a.mean(axis=1)
    if stat == "median":
        return lambda a: np.median(a, axis=1)
    raise ValueError(f"stat must be 'mean', 'median' or a function, got {stat!r}")


def bootstrap_ci(values: Sequence[float] | np.ndarray, stat: str | Callable[[np.ndarray], np.ndarray] = "mean",
                 n: int = 2000, level: float = 0.95, seed: int = 0) -> CI:
    """Percentile-bootstrap interval of ``stat`` over ``values`` (1-D, or 2-D: rows are resampled together).

    ``stat`` is "mean", "median" or a function from resamples of shape (B, m, ...) to B statistics. With one
    observation the interval has zero width (nothing to resample; read ``n_obs``). ValueError on no values,
    non-finite values, ``n < 1`` or ``level`` outside (0, 1).

    >>> bootstrap_ci([3.0, 3.0, 3.0])                      # no spread, no interval
    CI(estimate=3.0, low=3.0, high=3.0, level=0.95, n_obs=3, n_boot=2000, method='percentile bootstrap')
    >>> c = bootstrap_ci([10.0, 12.0, 11.0, 13.0, 9.0], seed=1)   # mean 11; resample means lie in [9, 13]
    >>> c.estimate, 9.0 <= c.low < 11.0 < c.high <= 13.0
    (11.0, True)
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim not in (1, 2) or arr.shape[0] == 0:
        raise ValueError(f"values must be a non-empty 1-D or 2-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("values must be finite numbers")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1, got {n!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    fn = _stat_fn(stat)
    m = arr.shape[0]
    estimate = float(fn(arr[None])[0])
    rng = np.random.default_rng(seed)
    per_row = m * (arr.shape[1] if arr.ndim == 2 else 1)
    block = max(1, _CHUNK // per_row)
    stats = np.concatenate([fn(arr[rng.integers(0, m, size=(min(block, n - i), m))]) for i in range(0, n, block)])
    lo, hi = np.percentile(stats, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return CI(estimate, float(lo), float(hi), level, m, n)


def littles_law_tokens_per_s(concurrency: float) -> Callable[[np.ndarray], np.ndarray]:
    """Statistic for ``bootstrap_ci`` over rows (output_tokens, latency_s) of a closed-loop point::

        tokens_per_s = concurrency * sum(output_tokens) / sum(latency_s)

    (Little's law: c requests always in flight, each taking its latency.)

    >>> f = littles_law_tokens_per_s(4)
    >>> f(np.array([[[100.0, 2.0], [300.0, 2.0]]]))        # 4 * 400 / 4
    array([400.])
    """
    c = cost._num("concurrency", concurrency, low=0, low_inclusive=False)
    return lambda a: c * a[..., 0].sum(axis=1) / a[..., 1].sum(axis=1)


def throughput_ci_from_samples(samples: Sequence[Mapping[str, Any]], duration_s: float, n: int = 2000,
                               level: float = 0.95, seed: int = 0) -> CI:
    """Bootstrap CI of a point's output tokens/s from its per-request records (the run JSON's
    ``points[i].samples``: ``output_tokens``, ``latency_ms``, ``success``; failed requests are left out).

    The concurrency put into Little's law is the point's measured mean occupancy,
    ``c = sum(latency_s) / duration_s``, so the estimate is exactly ``sum(output_tokens) / duration_s``
    (the recorded whole-run throughput) and the interval shows how much it rests on the particular requests
    (ramp-up and drain are held as measured). ValueError when no request succeeded with a positive latency.

    >>> rows = [{"success": True, "output_tokens": 100, "latency_ms": 1000.0}] * 4
    >>> c = throughput_ci_from_samples(rows, duration_s=2.0)       # 400 tokens in 2 s, no spread
    >>> c.estimate, c.low, c.high
    (200.0, 200.0, 200.0)
    """
    duration_s = cost._num("duration_s", duration_s, low=0, low_inclusive=False)
    rows = []
    for i, r in enumerate(samples):
        try:
            if r.get("success") is True and r.get("latency_ms"):
                out, lat = cost._num("output_tokens", r["output_tokens"], low=0), cost._num(
                    "latency_ms", r["latency_ms"], low=0)
                rows.append((out, lat / 1000.0))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"samples[{i}]: {e}") from None
    if not rows:
        raise ValueError("samples: no successful request with a latency to resample")
    arr = np.array(rows)
    occupancy = float(arr[:, 1].sum()) / duration_s
    return bootstrap_ci(arr, littles_law_tokens_per_s(occupancy), n=n, level=level, seed=seed)


def point_throughput_ci(run: Mapping[str, Any], concurrency: int | None = None, n: int = 2000,
                        level: float = 0.95, seed: int = 0) -> tuple[Mapping[str, Any], CI]:
    """The point of a run JSON at ``concurrency`` (default: the point with samples and the highest
    ``output_tokens_per_s``) and its ``throughput_ci_from_samples``. ValueError naming what is missing."""
    points = [p for p in run.get("points") or [] if isinstance(p, Mapping) and p.get("samples")]
    if concurrency is not None:
        points = [p for p in points if p.get("concurrency") == concurrency]
    if not points:
        have = sorted({p.get("concurrency") for p in run.get("points") or [] if isinstance(p, Mapping)
                       and p.get("samples") and isinstance(p.get("concurrency"), int)})
        raise ValueError(f"no point{'' if concurrency is None else f' at concurrency {concurrency}'} with "
                         f"per-request samples (points with samples: {have or 'none'})")
    point = max(points, key=lambda p: float(p.get("output_tokens_per_s") or 0))
    return point, throughput_ci_from_samples(point["samples"], point.get("duration_s"), n=n, level=level,
                                             seed=seed)


def relative_range(base: float, ci: CI) -> Range:
    """The interval's relative width around ``base``: ``Range(base * low / estimate, base * high / estimate)``
    (a measured throughput's spread applied to the scenario's throughput).

    >>> relative_range(3000.0, CI(1000.0, 950.0, 1100.0, 0.95, 10, 2000))
    Range(low=2850.0, high=3300.0)
    """
    if not ci.estimate > 0:
        raise ValueError(f"the interval's estimate must be > 0, got {ci.estimate:g}")
    return Range(base * ci.low / ci.estimate, base * ci.high / ci.estimate)


# --- inputs as ranges -------------------------------------------------------------------------------------

RANGE_KEYS: dict[str, tuple[str | None, str]] = {
    "otps": ("self_host.output_tokens_per_s", "Throughput (output tokens/s per replica)"),
    "ptps": ("self_host.prefill_tokens_per_s", "Prefill rate (tokens/s per replica)"),
    "gpu_usd": ("self_host.gpu_usd_per_hour", "GPU price ($/GPU-hour)"),
    "rpd": ("traffic.requests_per_day", "Requests/day"),
    "in": ("traffic.input_tokens", "Input tokens/request"),
    "out": ("traffic.output_tokens", "Output tokens/request"),
    "peak": ("traffic.peak_to_mean", "Peak-to-mean"),
    "ops": ("self_host.ops_usd_per_month", "Ops ($/month)"),
    "api_price": (None, "API prices (all rates, multiplier)"),
}
"""Range key -> (scenario field, or None for the API price multiplier; label). Keys are the URL keys."""

DEFAULT_PCT: dict[str, float] = {"otps": 20, "ptps": 20, "gpu_usd": 15, "rpd": 30, "in": 20, "out": 20,
                                 "peak": 20, "ops": 25, "api_price": 10}
"""Assumed +/- % when nothing better is known (assumptions, not measurements)."""
MAX_PCT = 95.0
"""The widest +/- % (the page's input allows the same): -100% would be a zero throughput or price."""


@dataclass(frozen=True)
class Range:
    """An input's plausible interval, in the field's own unit (``api_price``: a multiplier, base 1)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"range {name} must be a finite number, got {v!r}")
        if self.low > self.high:
            raise ValueError(f"range low {self.low:g} is above high {self.high:g}")


def _base(s: Scenario, key: str) -> float | None:
    if key not in RANGE_KEYS:
        raise ValueError(f"unknown range key {key!r}; known: {', '.join(RANGE_KEYS)}")
    path = RANGE_KEYS[key][0]
    if path is None:
        return 1.0
    sec, _, field = path.partition(".")
    return getattr(getattr(s, sec), field)


def _check_range(s: Scenario, key: str, r: Range) -> Range:
    base = _base(s, key)
    if base is None:
        raise ValueError(f"{key}: the scenario has no {RANGE_KEYS[key][1].lower()} to vary")
    path = RANGE_KEYS[key][0]
    low, high = LIMITS[path] if path else (0.0, None)
    if r.low < (low or 0) or (high is not None and r.high > high):
        raise ValueError(f"{key}: range {r.low:g}..{r.high:g} leaves the field's limits {low:g}..{high:g}")
    if not r.low <= base <= r.high:
        raise ValueError(f"{key}: range {r.low:g}..{r.high:g} does not contain the scenario's value {base:g}")
    return r


def ranges_from_pct(s: Scenario, pct: Mapping[str, float]) -> dict[str, Range]:
    """``base * (1 -/+ pct/100)`` per key, clipped to the field's hard limits; keys the scenario cannot vary
    (no prefill rate) and 0% are left out. ValueError naming the key for a % outside [0, ``MAX_PCT``].

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> ranges_from_pct(DEFAULT_SCENARIO, {"otps": 20, "peak": 50})["peak"]   # peak_to_mean >= 1
    Range(low=1.0, high=3.0)
    """
    out: dict[str, Range] = {}
    for key, p in pct.items():
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= MAX_PCT:
            raise ValueError(f"{key}: +/- % must be in [0, {MAX_PCT:g}], got {p!r}")
        base = _base(s, key)
        if base is None or p == 0:
            continue
        path = RANGE_KEYS[key][0]
        low, high = LIMITS[path] if path else (0.0, None)
        lo, hi = base * (1 - p / 100), base * (1 + p / 100)
        out[key] = Range(max(lo, low or 0.0), hi if high is None else min(hi, high))
    return out


def parse_ranges(s: Scenario, spec: str) -> dict[str, Range]:
    """Ranges from text: comma-separated ``KEY=PCT`` (+/- % of the scenario's value; none when the scenario
    has no value, as ``ptps`` without a prefill rate, or at 0%) or ``KEY=LOW..HIGH`` (absolute). The URL's
    ``unc`` parameter and the CLI's ``--ranges`` use it. ValueError naming the item.

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> parse_ranges(DEFAULT_SCENARIO, "gpu_usd=4..6, otps=10")["gpu_usd"]
    Range(low=4.0, high=6.0)
    """
    out: dict[str, Range] = {}
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        key, eq, value = (x.strip() for x in item.partition("="))
        if not eq or key not in RANGE_KEYS:
            raise ValueError(f"range {item!r}: expected KEY=PCT or KEY=LOW..HIGH with KEY one of "
                             f"{', '.join(RANGE_KEYS)}")
        try:
            if ".." in value:
                lo, _, hi = value.partition("..")
                out[key] = _check_range(s, key, Range(_float(lo), _float(hi)))
            else:
                out.update(ranges_from_pct(s, {key: _float(value)}))  # a % of no prefill rate: nothing
        except ValueError as e:
            raise ValueError(f"range {item!r}: {str(e).removeprefix(key + ': ')}") from None
    return out


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number") from None


def parse_pct(spec: str) -> dict[str, float]:
    """The +/- % of a ``KEY=PCT,...`` text (the page's ``unc`` URL parameter; ``none``: nothing varies).
    ValueError naming the item for an unknown key, an absolute ``LOW..HIGH`` or a % outside [0, ``MAX_PCT``].

    >>> parse_pct("otps=20, gpu_usd=15"), parse_pct("none")
    ({'otps': 20.0, 'gpu_usd': 15.0}, {})
    """
    out: dict[str, float] = {}
    for item in (x.strip() for x in spec.split(",")):
        if not item or item == "none":
            continue
        key, eq, value = (x.strip() for x in item.partition("="))
        if not eq or key not in RANGE_KEYS or ".." in value:
            raise ValueError(f"range {item!r}: expected KEY=PCT (+/- %) with KEY one of {', '.join(RANGE_KEYS)}")
        try:
            p = _float(value)
        except ValueError as e:
            raise ValueError(f"range {item!r}: {e}") from None
        if not 0 <= p <= MAX_PCT:
            raise ValueError(f"range {item!r}: +/- % must be in [0, {MAX_PCT:g}]")
        out[key] = p
    return out


def format_ranges(pct: Mapping[str, float]) -> str:
    """The ``KEY=PCT`` text of ``parse_ranges`` (0% and unknown keys left out), in ``RANGE_KEYS`` order.

    >>> format_ranges({"gpu_usd": 15.0, "otps": 20, "rpd": 0})
    'otps=20,gpu_usd=15'
    """
    return ",".join(f"{k}={pct[k]:g}" for k in RANGE_KEYS if pct.get(k))


# --- the savings model over arrays ------------------------------------------------------------------------

def savings_model(s: Scenario, values: Mapping[str, Any], rates: cost.ApiRates | None = None) -> dict[str, Any]:
    """Monthly API and self-host cost, savings and (first-crossing) break-even volume, elementwise over
    arrays of input values (``values``: range key -> array; keys not given take the scenario's value).

    Uses ``cost.api_usd_per_request``, ``replica_busy_s_per_request``, ``replicas_needed`` and
    ``self_host_usd_per_month``; the API's effective rates are ``rates`` (default ``cost.api_rates(s)``),
    scaled by ``api_price``. Break-even follows ``cost.breakeven_requests_per_day`` (NaN: never).

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> m = savings_model(DEFAULT_SCENARIO, {})
    >>> float(m["savings_usd_per_month"]) == cost.evaluate(DEFAULT_SCENARIO).savings_usd_per_month
    True
    """
    t, h = s.traffic, s.self_host
    rates = cost.api_rates(s) if rates is None else rates

    def v(key: str) -> Any:
        return values[key] if key in values else _base(s, key)

    rpd, inp, out, peak, otps, price, ops = (v(k) for k in ("rpd", "in", "out", "peak", "otps", "gpu_usd", "ops"))
    scale = np.asarray(v("api_price"), dtype=float)
    per_req = cost.api_usd_per_request(inp, out, t.cached_input_fraction, rates.input_usd_per_mtok,
                                       rates.cached_input_usd_per_mtok, rates.output_usd_per_mtok) * scale
    api_month = np.asarray(rpd, dtype=float) * (cost.HOURS_PER_MONTH / 24) * per_req
    ptps = v("ptps")
    busy = cost.replica_busy_s_per_request(out, otps, inp, t.cached_input_fraction, ptps)
    replicas = cost.replicas_needed(rpd, busy, peak, h.min_replicas, h.fallback_fraction)
    self_month = cost.self_host_usd_per_month(replicas, h.gpus_per_replica, price, ops,
                                              h.fallback_fraction * api_month)
    be = _breakeven(per_req, busy, peak, h.min_replicas, h.gpus_per_replica, price, ops, h.fallback_fraction)
    return {"api_usd_per_month": api_month, "self_host_usd_per_month": self_month,
            "savings_usd_per_month": api_month - self_month, "replicas": replicas, "breakeven_requests_per_day": be}


def _breakeven(per_req: Any, busy: Any, peak: Any, m: int, g: int, price: Any, ops: Any, f: float) -> np.ndarray:
    """``cost.breakeven_requests_per_day``'s closed form over arrays (NaN where it returns None)."""
    per_req, busy, peak, price, ops = np.broadcast_arrays(*(np.asarray(x, dtype=float)
                                                            for x in (per_req, busy, peak, price, ops)))
    a = per_req * (cost.HOURS_PER_MONTH / 24)
    G = g * price * cost.HOURS_PER_MONTH
    b = (1 - f) * a
    k = (1 - f) * busy * peak / cost.SECONDS_PER_DAY
    d = b - G * k
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.where(d == 0, 0.0, ops * k / np.where(d == 0, 1.0, d))
        n0 = np.maximum(m, np.ceil(q * (1 - cost.REPLICA_TOLERANCE)))
        x = (n0 * G + ops) / b
    never = (b <= 0) | (d < 0) | ((d == 0) & (ops > 0)) | ~np.isfinite(q) | ~np.isfinite(x)
    out = np.where(never, np.nan, x)
    return np.where((G == 0) & (ops == 0), 0.0, out)


# --- band, Monte Carlo, tornado ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Band:
    """Min and max over the 2^k low/high corners (break-even None: never, at some corner)."""

    savings_low: float
    savings_high: float
    breakeven_low: float | None
    breakeven_high: float | None
    corners: int


@dataclass(frozen=True)
class MonteCarlo:
    """Percentiles over seeded triangular samples; break-even percentiles count "never" as infinite (None)."""

    samples: int
    seed: int
    savings_p5: float
    savings_p50: float
    savings_p95: float
    breakeven_p5: float | None
    breakeven_p50: float | None
    breakeven_p95: float | None
    share_self_host_cheaper: float  # share of samples with savings >= 0
    share_never_breaks_even: float


@dataclass(frozen=True)
class TornadoBar:
    key: str
    label: str
    low: float
    high: float
    savings_at_low: float
    savings_at_high: float
    swing: float


@dataclass(frozen=True)
class Uncertainty:
    ranges: dict[str, Range]
    base_savings_usd_per_month: float
    base_breakeven_requests_per_day: float | None
    band: Band
    mc: MonteCarlo
    tornado: tuple[TornadoBar, ...]
    distribution: str = "triangular(low, base, high), independent"


def _opt(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _draws(s: Scenario, ranges: Mapping[str, Range], n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` seeded triangular(low, base, high) draws per key, in ``RANGE_KEYS`` order (the same draws for
    ``analyse`` and ``savings_band_vs_volume``)."""
    rng = np.random.default_rng(seed)
    draws = {}
    for k in (k for k in RANGE_KEYS if k in ranges):
        lo, hi, mode = ranges[k].low, ranges[k].high, _base(s, k)
        draws[k] = np.full(n, lo) if lo == hi else rng.triangular(lo, mode, hi, size=n)
    return draws


def analyse(s: Scenario, ranges: Mapping[str, Range], n: int = 2000, seed: int = 0) -> Uncertainty:
    """Band, Monte Carlo and tornado of the monthly savings for ``ranges`` (see the module docstring).
    ValueError naming the key for a range the scenario cannot take; ``n`` in 1..1,000,000."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1_000_000:
        raise ValueError(f"samples must be a whole number in 1..1000000, got {n!r}")
    ranges = {k: _check_range(s, k, r) for k, r in ranges.items()}
    keys = [k for k in RANGE_KEYS if k in ranges]
    rates = cost.api_rates(s)
    base = savings_model(s, {}, rates)
    base_sav = float(base["savings_usd_per_month"])
    base_be = _opt(float(base["breakeven_requests_per_day"]))

    corners = np.array(list(itertools.product((0, 1), repeat=len(keys))), dtype=bool)
    corners = corners.reshape(2 ** len(keys), len(keys))  # (1, 0) when nothing varies
    cvals = {k: np.where(corners[:, i], ranges[k].high, ranges[k].low) for i, k in enumerate(keys)}
    cm = savings_model(s, cvals, rates) if keys else base
    csav = np.atleast_1d(cm["savings_usd_per_month"])
    cbe = np.atleast_1d(cm["breakeven_requests_per_day"])
    band = Band(float(csav.min()), float(csav.max()),
                None if np.all(np.isnan(cbe)) else float(np.nanmin(cbe)),
                None if np.any(np.isnan(cbe)) else float(np.max(cbe)), len(csav))

    draws = _draws(s, ranges, n, seed)
    mm = savings_model(s, draws, rates) if keys else base
    sav = np.broadcast_to(mm["savings_usd_per_month"], (n,))
    be = np.broadcast_to(mm["breakeven_requests_per_day"], (n,))
    s5, s50, s95 = np.percentile(sav, [5, 50, 95])
    b5, b50, b95 = np.percentile(np.where(np.isnan(be), np.inf, be), [5, 50, 95], method="lower")
    mc = MonteCarlo(n, seed, float(s5), float(s50), float(s95), _opt(b5), _opt(b50), _opt(b95),
                    float(np.mean(sav >= 0)), float(np.mean(np.isnan(be))))

    bars = []
    for k in keys:
        r = ranges[k]
        at = savings_model(s, {k: np.array([r.low, r.high])}, rates)["savings_usd_per_month"]
        lo_s, hi_s = float(at[0]), float(at[1])
        swing = max(lo_s, hi_s, base_sav) - min(lo_s, hi_s, base_sav)
        bars.append(TornadoBar(k, RANGE_KEYS[k][1], r.low, r.high, lo_s, hi_s, swing))
    bars.sort(key=lambda b: -b.swing)  # stable: ties keep RANGE_KEYS order
    return Uncertainty(dict(ranges), base_sav, base_be, band, mc, tuple(bars))


def savings_band_vs_volume(s: Scenario, ranges: Mapping[str, Range], n: int = 2000, seed: int = 0,
                           points: int = 120, max_requests_per_day: float | None = None) -> pd.DataFrame:
    """p5/p50/p95 of monthly savings over requests/day, the other inputs drawn as in ``analyse`` (same seed,
    same draws; the volume's own range is replaced by the grid): where the band crosses 0 is the break-even
    band. Grid: ``points`` log-spaced volumes over ``[max(1, hi/1e5), hi]``, ``hi = max_requests_per_day`` or
    ``max(10 x volume, 3 x scenario break-even, 10,000)``, capped at 1e10. All samples x volumes at once.

    Columns: requests_per_day, savings_p5, savings_p50, savings_p95.

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> df = savings_band_vs_volume(DEFAULT_SCENARIO, {"gpu_usd": Range(4.0, 6.0)}, n=100, points=5)
    >>> bool((df.savings_p5 <= df.savings_p50).all() and (df.savings_p50 <= df.savings_p95).all())
    True
    """
    if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= 10_000:
        raise ValueError(f"points must be a whole number in 2..10000, got {points!r}")
    ranges = {k: _check_range(s, k, r) for k, r in ranges.items()}
    rates = cost.api_rates(s)
    if max_requests_per_day is None:
        be = savings_model(s, {}, rates)["breakeven_requests_per_day"]
        hi = max(10 * s.traffic.requests_per_day, 3 * float(np.nan_to_num(be)), 1e4)
    else:
        hi = cost._lim("traffic.requests_per_day", max_requests_per_day)
    hi = min(hi, LIMITS["traffic.requests_per_day"][1] or 1e10)
    x = np.geomspace(max(1.0, hi * 1e-5), hi, points)
    draws = {k: v[:, None] for k, v in _draws(s, ranges, n, seed).items() if k != "rpd"}
    sav = np.broadcast_to(savings_model(s, {**draws, "rpd": x[None, :]}, rates)["savings_usd_per_month"],
                          (n if draws else 1, points))
    p5, p50, p95 = np.percentile(sav, [5, 50, 95], axis=0)
    return pd.DataFrame({"requests_per_day": x, "savings_p5": p5, "savings_p50": p50, "savings_p95": p95})


def uncertainty_to_dict(u: Uncertainty) -> dict[str, Any]:
    """JSON-ready form (the CLI's ``uncertainty`` key; None is null)."""
    return {
        "ranges": {k: asdict(r) for k, r in u.ranges.items()},
        "distribution": u.distribution,
        "base": {"savings_usd_per_month": u.base_savings_usd_per_month,
                 "breakeven_requests_per_day": u.base_breakeven_requests_per_day},
        "band": asdict(u.band),
        "monte_carlo": asdict(u.mc),
        "tornado": [asdict(b) for b in u.tornado],
    }
