"""The cost model: API spend versus a self-hosted vLLM fleet, per month, and where they cross.

Units: a month is ``HOURS_PER_MONTH = 730`` hours, so requests/month = requests_per_day * 730 / 24.
Prices are $ per million tokens (``_usd_per_mtok``) or $ per GPU-hour.

API side, per request (``api_usd_per_request``)::

    usd = (input * (1 - cached) * p_in + input * cached * p_cached + output * p_out) / 1e6

Self-host side: a replica (``gpus_per_replica`` GPUs) is busy for ``busy_s_per_request`` seconds per request
(time-sharing model, ``replica_busy_s_per_request``)::

    busy_s = output / output_tokens_per_s + input * (1 - cached) / prefill_tokens_per_s

The prefill term is dropped when no prefill rate is given (capacity set by output tokens alone). We assume the
prefix cache skips the same share of input tokens that the API bills at the cached rate. Capacity is sized
for the peak; replicas are whole numbers (``replicas_needed``)::

    peak_load = requests_per_day * (1 - fallback) * busy_s / 86400 * peak_to_mean     (in replicas)
    replicas = max(min_replicas, ceil(peak_load))      (1e-9 relative tolerance against float noise)
    self_host_usd = replicas * gpus_per_replica * gpu_usd_per_hour * 730 + ops + fallback * api_usd

so self-host cost is a step function of volume. The scalar formulas also work elementwise on numpy arrays;
``evaluate(scenario)`` puts them together into a ``Report``.

>>> round(usd_per_mtok_output(2.50, 6400, 1.0), 4), round(usd_per_mtok_output(2.50, 6400, 0.3), 4)
(0.1085, 0.3617)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from calculators import apirates, catalog, goodcost, gpuprices, ownership
from calculators.provenance import pct_text, usd
from calculators.scenario import LIMITS, OWNED_TIER, PRICE_FIELDS, Scenario, buy_input, scenario_to_dict
from calculators.validation import require_finite, require_int

__all__ = [
    "HOURS_PER_MONTH",
    "SECONDS_PER_DAY",
    "REPLICA_TOLERANCE",
    "LOW_VOLUME_REQUESTS_PER_DAY",
    "ARTICLE",
    "MIN_UTILIZATION",
    "MAX_BUSY_S",
    "MAX_API_USD_PER_REQUEST",
    "api_usd_per_request",
    "api_usd_per_month",
    "replica_busy_s_per_request",
    "replicas_needed",
    "self_host_usd_per_month",
    "usd_per_mtok_output",
    "breakeven_requests_per_day",
    "sustained_breakeven_requests_per_day",
    "dearer_gaps",
    "VERDICT_TOLERANCE",
    "no_dearer",
    "gpu_price_words",
    "MAX_REQUESTS_PER_DAY",
    "breakeven_utilization",
    "ApiRates",
    "ApiResult",
    "api_rates",
    "SelfHostResult",
    "Breakeven",
    "Report",
    "evaluate",
    "report_to_dict",
]

HOURS_PER_MONTH = 730.0
SECONDS_PER_DAY = 86_400.0
REPLICA_TOLERANCE = 1e-9  # relative: a peak load of 2.0000000001 replicas needs 2, not 3
# The seed article the rules of thumb and claims quote (its text: /work/shared/seed/selfhost-vllm-article.txt).
ARTICLE = 'the article "Self-host a high-throughput inference server with vLLM"'
LOW_VOLUME_REQUESTS_PER_DAY = 1000.0  # the article's "<1000 requests/day: API is cheaper, simpler"
VERDICT_TOLERANCE = 1e-9  # relative to the dearer side's monthly cost: closer than that is a tie (float noise)
MAX_REQUESTS_PER_DAY = LIMITS["traffic.requests_per_day"][1] or 1e10  # the scenario limit
MIN_UTILIZATION = 1e-6  # below it $/M tokens is meaningless (and overflows)
MAX_BUSY_S = 1e12  # replica-seconds per request; the scenario limits give at most 2e10
MAX_API_USD_PER_REQUEST = 1e6  # the scenario limits give at most 2e4
_DAYS_PER_MONTH = HOURS_PER_MONTH / 24

Num = Any  # a float or a numpy array of floats (elementwise)


def _num(field: str, value: object, *, low: float | None = None, high: float | None = None,
         low_inclusive: bool = True) -> Num:
    """A finite float (or float array) in [low, high]; ValueError naming ``field`` otherwise."""
    if not isinstance(value, np.ndarray | list | tuple):
        return require_finite(field, value, low=low, high=high, low_inclusive=low_inclusive)
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be numbers, got {value!r:.60}") from None
    if np.asarray(value).dtype == bool:
        raise ValueError(f"{field} must be numbers, got booleans")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{field} must be finite numbers, got {arr[~np.isfinite(arr)][0]}")
    if low is not None and arr.size and (np.any(arr < low) if low_inclusive else np.any(arr <= low)):
        raise ValueError(f"{field} must be {'>=' if low_inclusive else '>'} {low:g}, got {arr.min():g}")
    if high is not None and arr.size and np.any(arr > high):
        raise ValueError(f"{field} must be <= {high:g}, got {arr.max():g}")
    return arr


def _lim(field: str, value: object, *, low_inclusive: bool = True) -> Num:
    """``_num`` with the scenario's hard limits for ``field`` (a dotted scenario name)."""
    low, high = LIMITS[field]
    return _num(field.rpartition(".")[2], value, low=low, high=high, low_inclusive=low_inclusive)


def api_usd_per_request(input_tokens: Num, output_tokens: Num, cached_input_fraction: Num,
                        input_usd_per_mtok: Num, cached_input_usd_per_mtok: Num, output_usd_per_mtok: Num) -> Num:
    """API $ per request: ``(in*(1-c)*p_in + in*c*p_cached + out*p_out) / 1e6``.

    >>> api_usd_per_request(1000, 200, 0.5, 3.0, 0.3, 15.0)   # (500*3 + 500*0.3 + 200*15) / 1e6
    0.00465
    """
    inp = _lim("traffic.input_tokens", input_tokens)
    out = _lim("traffic.output_tokens", output_tokens)
    c = _num("cached_input_fraction", cached_input_fraction, low=0, high=1)
    p_in = _lim("api.input_usd_per_mtok", input_usd_per_mtok)
    p_c = _lim("api.cached_input_usd_per_mtok", cached_input_usd_per_mtok)
    p_out = _lim("api.output_usd_per_mtok", output_usd_per_mtok)
    return (inp * (1 - c) * p_in + inp * c * p_c + out * p_out) / 1e6


def api_usd_per_month(requests_per_day: Num, input_tokens: Num, output_tokens: Num, cached_input_fraction: Num,
                      input_usd_per_mtok: Num, cached_input_usd_per_mtok: Num, output_usd_per_mtok: Num) -> Num:
    """API $/month: ``requests_per_day * 730/24 * api_usd_per_request(...)``.

    >>> api_usd_per_month(20_000, 1500, 300, 0.5, 0.25, 0.025, 2.0)   # 608,333.3 req * $0.00080625
    490.46875000000006
    """
    rpd = _lim("traffic.requests_per_day", requests_per_day)
    per_request = api_usd_per_request(input_tokens, output_tokens, cached_input_fraction,
                                      input_usd_per_mtok, cached_input_usd_per_mtok, output_usd_per_mtok)
    return rpd * _DAYS_PER_MONTH * per_request


def replica_busy_s_per_request(output_tokens: Num, output_tokens_per_s: Num, input_tokens: Num = 0.0,
                               cached_input_fraction: Num = 0.0, prefill_tokens_per_s: Num | None = None) -> Num:
    """Seconds of one replica's capacity a request uses (time-sharing model).

    ``busy_s = output / output_tokens_per_s + input * (1 - cached) / prefill_tokens_per_s``; without a
    prefill rate the second term is 0 (the output rate is taken to include prompt processing, as it does
    in a serving benchmark).

    >>> replica_busy_s_per_request(400, 1700)                               # 400/1700
    0.23529411764705882
    >>> round(replica_busy_s_per_request(400, 1700, 6000, 0.25, 11200), 4)  # + 4500/11200
    0.6371
    """
    out = _lim("traffic.output_tokens", output_tokens)
    otps = _lim("self_host.output_tokens_per_s", output_tokens_per_s)
    busy = out / otps
    if prefill_tokens_per_s is None:
        return busy
    inp = _lim("traffic.input_tokens", input_tokens)
    c = _num("cached_input_fraction", cached_input_fraction, low=0, high=1)
    ptps = _lim("self_host.prefill_tokens_per_s", prefill_tokens_per_s)
    return busy + inp * (1 - c) / ptps


def replicas_needed(requests_per_day: Num, busy_s_per_request: Num, peak_to_mean: Num = 2.0,
                    min_replicas: Num = 1, fallback_fraction: Num = 0.0) -> Num:
    """``max(min_replicas, ceil(requests_per_day * (1 - fallback) * busy_s / 86400 * peak_to_mean))``.

    The ceiling allows a 1e-9 relative tolerance so float noise does not add a replica. Scalars give an int;
    arrays give whole numbers as float64 (they may exceed int64).

    >>> replicas_needed(86_400, 2.0, peak_to_mean=1.0)          # exactly 2 replicas busy
    2
    >>> replicas_needed(86_400, 2.0000000001, peak_to_mean=1.0)  # float noise, not a third replica
    2
    >>> replicas_needed(0, 0.5, min_replicas=2)
    2
    """
    rpd = _lim("traffic.requests_per_day", requests_per_day)
    busy = _num("busy_s_per_request", busy_s_per_request, low=0, high=MAX_BUSY_S)
    peak = _lim("traffic.peak_to_mean", peak_to_mean)
    low, high = LIMITS["self_host.min_replicas"]
    m = _num("min_replicas", min_replicas, low=low, high=high)
    fb = _num("fallback_fraction", fallback_fraction, low=0, high=1)
    if np.any(np.asarray(m) != np.floor(m)):
        raise ValueError(f"min_replicas must be a whole number, got {min_replicas!r:.60}")
    peak_load = rpd * (1 - fb) * busy / SECONDS_PER_DAY * peak
    n = np.maximum(m, np.ceil(peak_load * (1 - REPLICA_TOLERANCE)))
    return int(n) if np.ndim(n) == 0 else n


def self_host_usd_per_month(replicas: Num, gpus_per_replica: Num, gpu_usd_per_hour: Num,
                            ops_usd_per_month: Num = 0.0, fallback_api_usd_per_month: Num = 0.0) -> Num:
    """``replicas * gpus_per_replica * gpu_usd_per_hour * 730 + ops + fallback API spend``.

    >>> self_host_usd_per_month(2, 2, 2.69, 4000.0)   # 4 GPUs * 2.69 * 730 + 4000
    11854.8
    """
    r = _num("replicas", replicas, low=0, high=1e20)
    g = _lim("self_host.gpus_per_replica", gpus_per_replica)
    price = _lim("self_host.gpu_usd_per_hour", gpu_usd_per_hour)
    ops = _lim("self_host.ops_usd_per_month", ops_usd_per_month)
    fb = _num("fallback_api_usd_per_month", fallback_api_usd_per_month, low=0, high=1e20)
    return r * g * price * HOURS_PER_MONTH + ops + fb


def usd_per_mtok_output(gpu_usd_per_hour: Num, output_tokens_per_s: Num, utilization: Num,
                        gpus_per_replica: Num = 1) -> Num:
    """GPU $ per million output tokens at an average utilization (``MIN_UTILIZATION`` = 1e-6 <= u <= 1)::

        usd_per_mtok = gpus_per_replica * gpu_usd_per_hour / (output_tokens_per_s * 3600 * u / 1e6)

    >>> round(usd_per_mtok_output(2.50, 6400, 1.0), 4)    # 2.50 / 23.04 M tokens per hour
    0.1085
    >>> round(usd_per_mtok_output(2.50, 6400, 0.3) / usd_per_mtok_output(2.50, 6400, 1.0), 2)
    3.33
    """
    price = _lim("self_host.gpu_usd_per_hour", gpu_usd_per_hour)
    otps = _lim("self_host.output_tokens_per_s", output_tokens_per_s)
    u = _num("utilization", utilization, low=MIN_UTILIZATION, high=1)
    g = _lim("self_host.gpus_per_replica", gpus_per_replica)
    return g * price * 1e6 / (otps * 3600.0 * u)


def breakeven_requests_per_day(*, api_usd_per_request: float, busy_s_per_request: float, peak_to_mean: float,
                               min_replicas: int, gpus_per_replica: int, gpu_usd_per_hour: float,
                               ops_usd_per_month: float = 0.0, fallback_fraction: float = 0.0
                               ) -> tuple[float, int] | None:
    """The LOWEST requests/day at which self-hosting is no dearer than the API, with its replicas; or None.

    Derivation (closed form, no scan). With x = requests/day, write the monthly costs as
    ``api(x) = a*x`` (a = api_usd_per_request * 730/24), ``self(x) = R(x)*G + ops + f*a*x``
    (G = gpus_per_replica * gpu_usd_per_hour * 730, f = fallback share) and
    ``R(x) = max(m, ceil(k*x))`` with k = (1-f) * busy_s * peak_to_mean / 86400 (peak replicas per req/day).
    Self is no dearer iff ``R(x)*G + ops <= b*x`` with b = (1-f)*a. On step n (R = n) that holds for
    ``x >= x_n = (n*G + ops) / b``, and step n covers x up to n/k, so step n has a solution iff
    ``x_n <= n/k``, i.e. ``n * (b - G*k) >= ops*k``. With d = b - G*k (what one fully-busy replica's
    traffic would cost at the API, less the replica, per req/day):

    - G = 0 and ops = 0: self-host costs only its fallback share, so break-even is 0;
    - b = 0 (free API or f = 1) otherwise, or d < 0, or d = 0 with ops > 0: None (never);
    - else the first feasible step is n0 = max(m, ceil(ops*k/d)) and break-even is x_n0 = (n0*G + ops)/b.
      x_n0 lies inside step n0 because step n0-1 was infeasible (x_{n0-1} > (n0-1)/k).

    Above break-even, self-hosting can be dearer again just after a replica is added (a narrow gap
    after each step edge until the traffic catches up), unless d*n covers the extra replica.

    >>> breakeven_requests_per_day(api_usd_per_request=0.001, busy_s_per_request=0.1, peak_to_mean=2,
    ...     min_replicas=1, gpus_per_replica=1, gpu_usd_per_hour=2.0)   # 1460 / (0.001 * 730/24)
    (48000.0, 1)
    """
    a = require_finite("api_usd_per_request", api_usd_per_request, low=0, high=MAX_API_USD_PER_REQUEST)
    a *= _DAYS_PER_MONTH
    busy = require_finite("busy_s_per_request", busy_s_per_request, low=0, high=MAX_BUSY_S)
    peak = _lim("traffic.peak_to_mean", peak_to_mean)
    low, high = LIMITS["self_host.min_replicas"]
    m = require_int("min_replicas", min_replicas, low=int(low or 1), high=int(high or 1))
    g = _lim("self_host.gpus_per_replica", gpus_per_replica)
    price = _lim("self_host.gpu_usd_per_hour", gpu_usd_per_hour)
    ops = _lim("self_host.ops_usd_per_month", ops_usd_per_month)
    f = _num("fallback_fraction", fallback_fraction, low=0, high=1)
    G = g * price * HOURS_PER_MONTH
    if G == 0 and ops == 0:
        return 0.0, m
    b = (1 - f) * a
    k = (1 - f) * busy * peak / SECONDS_PER_DAY
    d = b - G * k
    if b <= 0 or d < 0 or (d == 0 and ops > 0):
        return None
    q = 0.0 if d == 0 else ops * k / d
    if not math.isfinite(q):
        return None
    n0 = max(m, math.ceil(q * (1 - REPLICA_TOLERANCE)))
    x = (n0 * G + ops) / b
    return (x, n0) if math.isfinite(x) else None


def _breakeven_terms(api_usd_per_request: float, busy_s_per_request: float, peak_to_mean: float,
                     min_replicas: int, gpus_per_replica: int, gpu_usd_per_hour: float,
                     ops_usd_per_month: float, fallback_fraction: float) -> tuple[float, float, float, float, int]:
    """(b, k, G, ops, m) of ``breakeven_requests_per_day``'s derivation, validated."""
    a = require_finite("api_usd_per_request", api_usd_per_request, low=0, high=MAX_API_USD_PER_REQUEST)
    busy = require_finite("busy_s_per_request", busy_s_per_request, low=0, high=MAX_BUSY_S)
    peak = _lim("traffic.peak_to_mean", peak_to_mean)
    low, high = LIMITS["self_host.min_replicas"]
    m = require_int("min_replicas", min_replicas, low=int(low or 1), high=int(high or 1))
    g = _lim("self_host.gpus_per_replica", gpus_per_replica)
    price = _lim("self_host.gpu_usd_per_hour", gpu_usd_per_hour)
    ops = _lim("self_host.ops_usd_per_month", ops_usd_per_month)
    f = _num("fallback_fraction", fallback_fraction, low=0, high=1)
    return ((1 - f) * a * _DAYS_PER_MONTH, (1 - f) * busy * peak / SECONDS_PER_DAY, g * price * HOURS_PER_MONTH,
            ops, m)


def sustained_breakeven_requests_per_day(*, api_usd_per_request: float, busy_s_per_request: float,
                                         peak_to_mean: float, min_replicas: int, gpus_per_replica: int,
                                         gpu_usd_per_hour: float, ops_usd_per_month: float = 0.0,
                                         fallback_fraction: float = 0.0,
                                         max_requests_per_day: float = MAX_REQUESTS_PER_DAY
                                         ) -> tuple[float, int] | None:
    """The LOWEST requests/day from which self-hosting is no dearer at EVERY higher volume up to
    ``max_requests_per_day`` (the scenario limit, 1e10), with its replicas; or None (never, within the limit).

    Same terms as ``breakeven_requests_per_day`` (b, k, G, ops, m, d = b - G*k). Step n > m covers
    x in ((n-1)/k, n/k]; self is no dearer on it from x_n = (n*G + ops)/b, so the step holds a dearer
    gap ((n-1)/k, x_n) iff x_n > (n-1)/k, i.e. ``n*d < b + ops*k``. With d > 0 the gaps stop after
    n* = max(m, ceil((b + ops*k)/d) - 1) and the sustained point is x_n* (step n* is feasible: n*·d >=
    b + ops*k - d >= ops*k). With d <= 0 a gap (or a dearer step) recurs at every volume: None, unless
    G = ops = 0 (0). None too when x_n* > max_requests_per_day. It is >= the first crossing; they are
    equal when no gap follows it.

    The issue's example: L40S at $0.79/h, 950 output tok/s, $0.05 in / $0.40 out per M, 500/500 tokens,
    peak 1.5 (first crossing 84,267/day; dearer again on 109k-169k, 219k-253k, 328k-337k; sustained 337,067):

    >>> kw = dict(api_usd_per_request=(500 * 0.05 + 500 * 0.40) / 1e6, busy_s_per_request=500 / 950,
    ...           peak_to_mean=1.5, min_replicas=1, gpus_per_replica=1, gpu_usd_per_hour=0.79)
    >>> x, n = breakeven_requests_per_day(**kw); round(x), n
    (84267, 1)
    >>> x, n = sustained_breakeven_requests_per_day(**kw); round(x), n
    (337067, 4)
    >>> [(round(lo), round(hi)) for lo, hi in dearer_gaps(**kw)]
    [(109440, 168533), (218880, 252800), (328320, 337067)]
    """
    b, k, G, ops, m = _breakeven_terms(api_usd_per_request, busy_s_per_request, peak_to_mean, min_replicas,
                                       gpus_per_replica, gpu_usd_per_hour, ops_usd_per_month, fallback_fraction)
    n = _last_gap_step(b, k, G, ops, m)
    if n is None:
        return (0.0, m) if G == 0 and ops == 0 else None
    x = (n * G + ops) / b
    return (x, n) if math.isfinite(x) and x <= max_requests_per_day else None


def _last_gap_step(b: float, k: float, G: float, ops: float, m: int) -> int | None:
    """n* of the sustained derivation (the last step whose start is dearer), or None when d <= 0 or b = 0."""
    if G == 0 and ops == 0:
        return None
    d = b - G * k
    if b <= 0 or d <= 0:
        return None
    q = (b + ops * k) / d
    if not math.isfinite(q) or q > 1e18:
        return None
    return max(m, math.ceil(q * (1 - REPLICA_TOLERANCE)) - 1)


def dearer_gaps(*, api_usd_per_request: float, busy_s_per_request: float, peak_to_mean: float,
                min_replicas: int, gpus_per_replica: int, gpu_usd_per_hour: float, ops_usd_per_month: float = 0.0,
                fallback_fraction: float = 0.0, limit: int = 20) -> list[tuple[float, float]]:
    """The volume ranges (lo, hi) between the first crossing and the sustained point where self-hosting is
    dearer again (the start of each replica step n with ``n*d < b + ops*k``, up to x_n), at most ``limit``."""
    b, k, G, ops, m = _breakeven_terms(api_usd_per_request, busy_s_per_request, peak_to_mean, min_replicas,
                                       gpus_per_replica, gpu_usd_per_hour, ops_usd_per_month, fallback_fraction)
    first = breakeven_requests_per_day(
        api_usd_per_request=api_usd_per_request, busy_s_per_request=busy_s_per_request, peak_to_mean=peak_to_mean,
        min_replicas=min_replicas, gpus_per_replica=gpus_per_replica, gpu_usd_per_hour=gpu_usd_per_hour,
        ops_usd_per_month=ops_usd_per_month, fallback_fraction=fallback_fraction)
    last = _last_gap_step(b, k, G, ops, m)
    if first is None or last is None or k == 0:
        return []
    return [((n - 1) / k, (n * G + ops) / b) for n in range(first[1] + 1, min(last, first[1] + limit) + 1)]


def breakeven_utilization(*, gpu_usd_per_hour: float, gpus_per_replica: int, busy_s_per_request: float,
                          api_usd_per_request: float) -> float | None:
    """Average utilization at which a replica's GPU cost per output token equals the API's, or None.

    Definition: the u where the "$/M output tokens vs utilization" curve,
    ``gpus_per_replica * gpu_usd_per_hour * 1e6 / (eff_otps * 3600 * u)`` with the effective replica rate
    ``eff_otps = output_tokens / busy_s_per_request``, crosses the API line
    ``api_usd_per_request / output_tokens * 1e6`` (the API's cost per request expressed per output token).
    Solving gives the GPU cost of one request's busy time over the API cost of that request::

        u* = gpus_per_replica * gpu_usd_per_hour / 3600 * busy_s_per_request / api_usd_per_request

    It leaves out ops, fallback, the peak and whole replicas. u* > 1 means a replica is dearer per token
    than the API even when fully busy. None when the API is free (no u matches) or the ratio overflows.

    >>> round(breakeven_utilization(gpu_usd_per_hour=2.69, gpus_per_replica=1,
    ...     busy_s_per_request=300 / 3400, api_usd_per_request=0.00080625), 4)
    0.0818
    """
    price = _lim("self_host.gpu_usd_per_hour", gpu_usd_per_hour)
    g = _lim("self_host.gpus_per_replica", gpus_per_replica)
    busy = require_finite("busy_s_per_request", busy_s_per_request, low=0, high=MAX_BUSY_S)
    api = require_finite("api_usd_per_request", api_usd_per_request, low=0, high=MAX_API_USD_PER_REQUEST)
    u = g * price / 3600.0 * busy / api if api > 0 else math.inf
    return u if math.isfinite(u) else None


@dataclass(frozen=True)
class ApiRates:
    """The API rates the cost used and why. ``*_usd_per_mtok``: the effective rates (long-context tier and
    cache writes folded in, ``calculators.apirates``); ``source``: "typed", or the price data's label with
    "(typed: ...)" for the prices typed over it; ``retires``/``successor``: from our overlay."""

    model: str | None
    provider: str  # the genai-prices provider id the rates came from ("" when typed)
    mode: str  # "batch" | "interactive"
    input_usd_per_mtok: float
    cached_input_usd_per_mtok: float
    output_usd_per_mtok: float
    source: str
    long_context_tokens: int | None
    long_request_share: float
    long_input_token_share: float
    explanation: tuple[str, ...]
    retires: str
    successor: str
    retired: bool  # the shutdown date is on or before the evaluation day


def api_rates(s: Scenario, today: str | None = None) -> ApiRates:
    """The rates for the scenario's request shape (see ``ApiRates``). The price data is consulted (lazy
    import of genai-prices) only for a model whose prices are not all typed.

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> r = api_rates(DEFAULT_SCENARIO)
    >>> r.mode, r.source.startswith("genai-prices 0.2.3"), r.long_request_share
    ('interactive', True, 0.0)
    """
    import datetime as _dt  # noqa: PLC0415

    t, a = s.traffic, s.api
    today = today or _dt.datetime.now(tz=_dt.UTC).date().isoformat()
    base = (a.input_usd_per_mtok, a.cached_input_usd_per_mtok, a.cache_write_usd_per_mtok, a.output_usd_per_mtok)
    long, threshold, provider, notes = None, None, "", []
    untyped = [f for f in ("input_usd_per_mtok", "cached_input_usd_per_mtok", "cache_write_usd_per_mtok",
                           "output_usd_per_mtok") if f not in a.typed]
    mode = "batch" if a.batch else "interactive"
    if a.model is not None and untyped:
        from calculators import apiprices  # noqa: PLC0415

        q = apiprices.lookup(a.model, a.provider, a.batch)
        provider = q.provider_id
        typed_note = f" (typed: {', '.join(f.removesuffix('_usd_per_mtok') for f in a.typed)})" if a.typed else ""
        source = f"{q.data.label}{typed_note}"
        notes.append(f"{q.provider_name} {q.model_name} ({q.model_id}) {mode} rates from {q.data.label}.")
        if q.deprecated:
            notes.append(f"Warning: the price data marks {q.model_id} at {q.provider_name} deprecated by its vendor.")
        if a.batch and not q.batch_available:
            mode = "interactive"
            notes.append("batch asked, but the price data has no batch rates for this model: interactive rates.")
        if q.long is not None and q.long_context_tokens is not None:
            threshold = q.long_context_tokens
            lr = q.long
            tier = (lr.input_usd_per_mtok, lr.cached_input_usd_per_mtok, lr.cache_write_usd_per_mtok,
                    lr.output_usd_per_mtok)
            long = tuple(tier[i] if f in untyped else base[i] for i, f in enumerate(
                ("input_usd_per_mtok", "cached_input_usd_per_mtok", "cache_write_usd_per_mtok",
                 "output_usd_per_mtok")))
    else:
        source = "typed"
    req = tok = 0.0
    if threshold is not None:
        req, tok, basis = apirates.long_context_share(
            threshold, mean=t.input_tokens, p50=t.input_tokens_p50, p90=t.input_tokens_p90, p99=t.input_tokens_p99)
        notes.append(f"Long-context tier over {threshold:,} input tokens: {req:.1%} of requests "
                     f"({tok:.1%} of input tokens) at the tier rates, from the {basis}.")
    if a.cache_write_fraction > 0:
        write = "the input rate" if a.cache_write_usd_per_mtok is None else f"${a.cache_write_usd_per_mtok:g}/M"
        notes.append(f"{a.cache_write_fraction:.0%} of input tokens are cache writes at {write}.")
    p_in, p_c, p_out = apirates.effective_rates(base, long, req, tok, cached_fraction=t.cached_input_fraction,
                                                cache_write_fraction=a.cache_write_fraction)
    ov = None
    if a.model is not None:
        ov = catalog.api_overlay().get(a.model)
        if ov is None and provider:
            ov = catalog.overlay_for(provider, a.model)
    retires = ov.retires if ov is not None else ""
    successor = ov.successor if ov is not None else ""
    retired = bool(retires) and retires <= today
    if retires:
        state = "was shut down" if retired else "shuts down"
        notes.append(f"Warning: {a.model} {state} on {retires}" + (f"; successor: {successor}." if successor
                     else "; compare against a current model."))
    return ApiRates(a.model, provider, mode, p_in, p_c, p_out, source, threshold, req, tok, tuple(notes),
                    retires, successor, retired)


@dataclass(frozen=True)
class ApiResult:
    usd_per_month: float
    usd_per_request: float
    usd_per_mtok_output_equiv: float  # API $/request over output tokens/request, per M
    requests_per_month: float
    output_tokens_per_month: float


@dataclass(frozen=True)
class SelfHostResult:
    usd_per_month: float  # gpu + ops + fallback
    gpu_usd_per_month: float
    ops_usd_per_month: float
    fallback_usd_per_month: float
    replicas: int
    gpus: int
    utilization: float  # mean demand / provisioned capacity; 0 at zero traffic
    usd_per_mtok_output: float | None  # usd_per_month over ALL output tokens, per M; None at zero traffic
    busy_s_per_request: float
    effective_output_tokens_per_s: float  # per replica, prefill time included
    mean_load_replicas: float
    peak_load_replicas: float


@dataclass(frozen=True)
class Breakeven:
    requests_per_day: float | None  # lowest volume where self-host is no dearer (first crossing); None if never
    replicas: int | None  # replicas at that volume
    utilization: float | None  # see breakeven_utilization; None when the API is free
    # the lowest volume from which self-host is no dearer at EVERY higher volume up to 1e10/day; None if never
    sustained_requests_per_day: float | None = None
    sustained_replicas: int | None = None
    # (lo, hi) requests/day between the two where the API is cheaper again (just after a replica step)
    dearer_ranges: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Report:
    scenario: Scenario
    api: ApiResult
    self_host: SelfHostResult
    breakeven: Breakeven
    savings_usd_per_month: float  # api - self_host
    verdict: str  # "api" | "self_host"
    reasons: tuple[str, ...]
    rates: ApiRates | None = None  # the API rates applied and why (always set by ``evaluate``)
    good_tokens: goodcost.GoodTokenCost | None = None  # only when the scenario has self_host.slo_good_fraction
    # only when self_host.gpu_price_tier is "owned": the bought server's monthly breakdown behind the derived
    # $/GPU-hour (calculators.ownership)
    ownership: ownership.OwnedCost | None = None


def evaluate(s: Scenario) -> Report:
    """Both sides' monthly cost, break-evens (first crossing and sustained), savings and a verdict:
    self_host iff its cost <= the API's, a difference within ``VERDICT_TOLERANCE`` counting as a tie (``no_dearer``).

    At zero traffic the API costs 0, self-host costs its minimum replicas plus ops, utilization is 0 and
    ``usd_per_mtok_output`` is None (no tokens to divide by).

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> r = evaluate(DEFAULT_SCENARIO)
    >>> r.verdict, r.self_host.replicas, round(r.api.usd_per_month, 2), round(r.self_host.usd_per_month, 2)  # 608,333 req x $0.0002325; 5.2225 x 730 + 1500
    ('api', 1, 141.44, 5312.43)
    """
    if not isinstance(s, Scenario):
        raise ValueError(f"evaluate expects a Scenario, got {type(s).__name__}")
    t, h = s.traffic, s.self_host
    rates = api_rates(s)
    per_req = api_usd_per_request(t.input_tokens, t.output_tokens, t.cached_input_fraction,
                                  rates.input_usd_per_mtok, rates.cached_input_usd_per_mtok, rates.output_usd_per_mtok)
    req_month = t.requests_per_day * _DAYS_PER_MONTH
    api_month = req_month * per_req
    out_month = req_month * t.output_tokens
    busy = replica_busy_s_per_request(t.output_tokens, h.output_tokens_per_s, t.input_tokens,
                                      t.cached_input_fraction, h.prefill_tokens_per_s)
    mean_load = t.requests_per_day * (1 - h.fallback_fraction) * busy / SECONDS_PER_DAY
    replicas = replicas_needed(t.requests_per_day, busy, t.peak_to_mean, h.min_replicas, h.fallback_fraction)
    gpu_month = replicas * h.gpus_per_replica * h.gpu_usd_per_hour * HOURS_PER_MONTH
    fallback_month = h.fallback_fraction * api_month
    self_month = gpu_month + h.ops_usd_per_month + fallback_month
    be_kw = dict(api_usd_per_request=per_req, busy_s_per_request=busy, peak_to_mean=t.peak_to_mean,
                 min_replicas=h.min_replicas, gpus_per_replica=h.gpus_per_replica,
                 gpu_usd_per_hour=h.gpu_usd_per_hour, ops_usd_per_month=h.ops_usd_per_month,
                 fallback_fraction=h.fallback_fraction)
    be = breakeven_requests_per_day(**be_kw)
    sus = sustained_breakeven_requests_per_day(**be_kw)
    api = ApiResult(api_month, per_req, per_req / t.output_tokens * 1e6, req_month, out_month)
    host = SelfHostResult(
        usd_per_month=self_month, gpu_usd_per_month=gpu_month, ops_usd_per_month=h.ops_usd_per_month,
        fallback_usd_per_month=fallback_month, replicas=replicas, gpus=replicas * h.gpus_per_replica,
        utilization=mean_load / replicas, usd_per_mtok_output=_per_mtok(self_month, out_month),
        busy_s_per_request=busy, effective_output_tokens_per_s=t.output_tokens / busy,
        mean_load_replicas=mean_load, peak_load_replicas=mean_load * t.peak_to_mean)
    breakeven = Breakeven(
        requests_per_day=None if be is None else be[0], replicas=None if be is None else be[1],
        utilization=breakeven_utilization(gpu_usd_per_hour=h.gpu_usd_per_hour,
                                          gpus_per_replica=h.gpus_per_replica, busy_s_per_request=busy,
                                          api_usd_per_request=per_req),
        sustained_requests_per_day=None if sus is None else sus[0],
        sustained_replicas=None if sus is None else sus[1],
        dearer_ranges=tuple(dearer_gaps(**be_kw)))
    savings = api_month - self_month
    verdict = "self_host" if no_dearer(self_month, api_month) else "api"
    owned = ownership.owned_cost(buy_input(h)) if h.gpu_price_tier == OWNED_TIER else None
    reasons = _reasons(s, api, host, breakeven, verdict) + _owned_reasons(owned, host.gpus) + rates.explanation
    return Report(s, api, host, breakeven, savings, verdict, reasons, rates, _good_tokens(s, rates, host, req_month),
                  owned)


def _owned_reasons(c: ownership.OwnedCost | None, gpus: float) -> tuple[str, ...]:
    """The owned server's breakdown in words (nothing when the GPUs are rented)."""
    if c is None:
        return ()
    b = c.buy
    power = {"tdp": "TDP x a load factor, not measured", "typed": "typed",
             "measured": "measured in a probe run"}[b.power_kind]
    return (f"Owned servers: ${b.server_usd:,.0f} per {b.gpus_per_server}-GPU server over {b.amortization_months:g} "
            f"months, {b.residual_fraction:.0%} residual = {_usd(c.capex_usd_per_month)}/month; energy "
            f"({b.power_w_per_gpu:,.0f} W per GPU, {power}; {b.server_overhead_w:,.0f} W rest of server; PUE "
            f"{b.pue:g}; ${b.usd_per_kwh:g}/kWh) {c.energy_kwh_per_month:,.0f} kWh = "
            f"{_usd(c.energy_usd_per_month)}/month; hosting {_usd(c.hosting_usd_per_month)}; people "
            f"{_usd(c.people_usd_per_month)}: {_usd(c.total_usd_per_month)} per server-month = "
            f"${c.usd_per_gpu_hour:.4g}/GPU-hour. The fleet's {gpus:,.0f} GPU(s) are "
            f"{gpus / b.gpus_per_server:,.3g} server(s), costed pro rata (a purchase is whole servers).",)


def _good_tokens(s: Scenario, rates: ApiRates, host: SelfHostResult, req_month: float) -> goodcost.GoodTokenCost | None:
    """The cost of good tokens (``calculators.goodcost``) when the scenario says what share of requests meets the
    SLO; the bill is split by the replica time prefill takes (0 without a prefill rate)."""
    t, h = s.traffic, s.self_host
    if h.slo_good_fraction is None:
        return None
    prefill_s = 0.0 if h.prefill_tokens_per_s is None else \
        t.input_tokens * (1 - t.cached_input_fraction) / h.prefill_tokens_per_s
    return goodcost.good_token_costs(
        self_host_usd_per_month=host.usd_per_month, requests_per_month=req_month, input_tokens=t.input_tokens,
        output_tokens=t.output_tokens, good_fraction=h.slo_good_fraction,
        prefill_share=min(prefill_s / host.busy_s_per_request, 1.0), api_input_usd_per_mtok=rates.input_usd_per_mtok,
        api_output_usd_per_mtok=rates.output_usd_per_mtok, api_cached_input_usd_per_mtok=rates.cached_input_usd_per_mtok,
        fallback_fraction=h.fallback_fraction, cached_input_fraction=t.cached_input_fraction)


def no_dearer(self_host_usd: float, api_usd: float) -> bool:
    """Whether self-hosting is no dearer than the API, ties within ``VERDICT_TOLERANCE`` (1e-9 of the
    dearer side) counted as no dearer, so that float noise at the break-even does not decide the verdict.

    >>> no_dearer(576.7000000000001, 576.7), no_dearer(577.0, 576.7)
    (True, False)
    """
    return self_host_usd - api_usd <= VERDICT_TOLERANCE * max(abs(self_host_usd), abs(api_usd))


def _per_mtok(usd: float, tokens: float) -> float | None:
    """usd / tokens * 1e6; None at zero tokens (or when so few that the ratio overflows)."""
    v = usd / tokens * 1e6 if tokens > 0 else math.inf
    return v if math.isfinite(v) else None


def _usd(x: float) -> str:
    """``provenance.usd``, with a plain "$0" in the reasons (nothing to pay is not "$0.00")."""
    return "$0" if x == 0 else usd(x)


def gpu_price_words(s: Scenario) -> str:
    """Where the $/GPU-hour came from: "typed", or its tier and statistic ("on-demand, median of 4 rows").

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> gpu_price_words(DEFAULT_SCENARIO)
    'on-demand: median of 8 on-demand rows'

    A price that no longer matches its tier (a newer catalog, or a price set without the tier) says so.
    """
    h = s.self_host
    if h.gpu_price_tier == OWNED_TIER:
        return "owned: derived from the server's purchase, energy, hosting and people"
    if h.gpu_price_tier not in gpuprices.TIERS:
        return "typed"
    try:
        now = gpuprices.tier_usd_per_hour(h.gpu, h.gpu_price_tier)
    except ValueError:
        return f"labelled {h.gpu_price_tier}; the catalog has no such price for this GPU"
    if now != h.gpu_usd_per_hour:
        return f"labelled {h.gpu_price_tier}, but the catalog's {h.gpu_price_tier} median is now ${now:g}"
    return f"{h.gpu_price_tier}: {gpuprices.tier_statistic(h.gpu, h.gpu_price_tier)}"


def _rpd(x: float) -> str:
    return f"{x:,.0f}"


def _breakeven_words(be: Breakeven) -> str:
    """The first crossing, the ranges where the API is cheaper again, and the sustained point, in words.

    >>> print(_breakeven_words(Breakeven(84_267.2, 1, 0.5, 337_067.4, 4, ((109_440, 168_533.1), (218_880, 252_800),
    ...                                                                (328_320, 337_067.4)))))
    Break-even: self-hosting is no dearer from 84,267 requests/day (1 replica(s)); dearer again on 109,440-168,533, 218,880-252,800, 328,320-337,067 requests/day (just after a replica is added); no dearer at every volume from 337,067 requests/day (4 replica(s)).
    >>> print(_breakeven_words(Breakeven(9e8, 3, 0.9, None, None, ((1e9, 1.2e9),))))
    Break-even: self-hosting is no dearer from 900,000,000 requests/day (3 replica(s)); dearer again on 1,000,000,000-1,200,000,000 requests/day (just after a replica is added); it is dearer again just after each added replica up to the 1e10 requests/day limit, so no volume keeps it no dearer at every higher volume.
    """
    first = be.requests_per_day
    assert first is not None
    text = f"Break-even: self-hosting is no dearer from {_rpd(first)} requests/day ({be.replicas:,} replica(s))"
    if be.sustained_requests_per_day is not None and not be.dearer_ranges:
        return text + ", and at every higher volume."
    if be.dearer_ranges:
        shown = be.dearer_ranges[:5]
        ranges = ", ".join(f"{_rpd(lo)}-{_rpd(hi)}" for lo, hi in shown)
        if be.sustained_requests_per_day is None:
            more = " and more" if len(be.dearer_ranges) > len(shown) else ""
        else:
            count = (be.sustained_replicas or 0) - (be.replicas or 0)  # every step in between has a gap
            more = f" and {count - len(shown)} more" if count > len(shown) else ""
        text += f"; dearer again on {ranges}{more} requests/day (just after a replica is added)"
    if be.sustained_requests_per_day is None:
        return (text + "; it is dearer again just after each added replica up to the 1e10 requests/day limit, so "
                "no volume keeps it no dearer at every higher volume.")
    return (text + f"; no dearer at every volume from {_rpd(be.sustained_requests_per_day)} requests/day "
            f"({be.sustained_replicas:,} replica(s)).")


def _reasons(s: Scenario, api: ApiResult, host: SelfHostResult, be: Breakeven, verdict: str) -> tuple[str, ...]:
    t, h, ctx = s.traffic, s.self_host, s.context
    cheaper = "self-hosting" if verdict == "self_host" else "the API"
    gpu_name = catalog.gpus()[h.gpu].name
    out = [
        f"At {t.requests_per_day:,.0f} requests/day the API costs {_usd(api.usd_per_month)}/month and "
        f"self-hosting {_usd(host.usd_per_month)}/month ({host.replicas:,} replica(s) of {h.gpus_per_replica}x "
        f"{gpu_name} at ${h.gpu_usd_per_hour:g}/GPU-hour ({gpu_price_words(s)}) = {_usd(host.gpu_usd_per_month)}/month, "
        f"ops {_usd(host.ops_usd_per_month)}/month, API fallback {_usd(host.fallback_usd_per_month)}/month): {cheaper} is "
        f"cheaper by {_usd(abs(api.usd_per_month - host.usd_per_month))}/month.",
    ]
    if be.requests_per_day is None:
        out.append("Self-hosting never breaks even at these prices: even a fully used replica costs more per "
                   "request than the API (or the API is free).")
    else:
        out.append(_breakeven_words(be))
        if verdict == "api" and t.requests_per_day > be.requests_per_day:
            out.append("This volume sits just past a replica step: the newly added replica is not yet paid "
                       "for by traffic; a little more volume tips it back to self-hosting.")
    if be.utilization is not None:
        extra = " (above 100%: a replica is dearer per token than the API even when fully busy)" \
            if be.utilization > 1 else ""
        out.append(f"Per output token, a replica matches the API ({_usd(api.usd_per_mtok_output_equiv)}/M "
                   f"output-equivalent) at {be.utilization:.0%} average utilization{extra}.")
    out.append(f"Capacity assumes {h.output_tokens_per_s:,.0f} output tokens/s per replica "
               f"({'plus a prefill rate' if h.prefill_tokens_per_s else 'output tokens only'}); "
               f"source: {h.throughput_source}.")
    if t.requests_per_day > 0 and host.utilization < 0.5:
        out.append(f"Average GPU utilization is {pct_text(host.utilization)} (sized for a {t.peak_to_mean:g}x peak, "
                   f"{h.min_replicas} minimum replica(s)): most of the GPU time you pay for is idle.")
    if t.requests_per_day < LOW_VOLUME_REQUESTS_PER_DAY:
        out.append(f"Consideration: under 1,000 requests/day the rule of thumb of {ARTICLE} is that the API "
                   "is cheaper, simpler and more reliable.")
    model = catalog.api_overlay().get(s.api.model or "")
    if ctx.needs_frontier_quality or (model is not None and model.tier == "frontier"):
        out.append("Consideration: frontier quality is not self-hostable; no open-weight model matches "
                   "frontier APIs on hard reasoning, so this compares against a model you could not replace "
                   "one-for-one.")
    if not ctx.has_gpu_expertise:
        out.append("Consideration: the team has no GPU expertise; vLLM's failure modes (CUDA mismatches, NCCL "
                   "errors, kernel crashes) need someone comfortable with Linux and CUDA, so budget ops time.")
    if ctx.fine_tuned_model:
        out.append("Consideration: a fine-tuned model is only self-hostable (no API serves your adapter), so "
                   "the API side here is a reference price, not an alternative.")
    if h.min_replicas == 1:
        out.append(f"Consideration: a single replica is one outage from downtime; {ARTICLE} advises "
                   "\"Always have a fallback to API\" (or set min_replicas to 2).")
    return tuple(out)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def report_to_dict(r: Report) -> dict[str, Any]:
    """The JSON form of a Report (``python -m calculators evaluate`` prints it); None becomes null.
    ``good_tokens`` (the cost of good tokens) is there only when the scenario has ``self_host.slo_good_fraction``;
    ``ownership`` (the owned server's monthly breakdown, per server and for the fleet) only when
    ``self_host.gpu_price_tier`` is "owned"."""
    a, h, b = r.api, r.self_host, r.breakeven
    return {
        "scenario": scenario_to_dict(r.scenario),
        "api": {k: _clean(v) for k, v in vars(a).items()},
        "self_host": {k: _clean(v) for k, v in vars(h).items()} | {
            "breakdown": {"gpu_usd_per_month": h.gpu_usd_per_month, "ops_usd_per_month": h.ops_usd_per_month,
                          "fallback_usd_per_month": h.fallback_usd_per_month}},
        "breakeven": {k: _clean(v) for k, v in vars(b).items()},
        "savings_usd_per_month": r.savings_usd_per_month,
        "verdict": r.verdict,
        "reasons": list(r.reasons),
        **({} if r.good_tokens is None else {"good_tokens": goodcost.good_tokens_to_dict(r.good_tokens)}),
        **({} if r.ownership is None else {"ownership": ownership.owned_cost_to_dict(
            r.ownership, h.gpus, gpus_per_replica=r.scenario.self_host.gpus_per_replica,
            output_tokens_per_s=r.scenario.self_host.output_tokens_per_s)}),
        "api_rates": None if r.rates is None else {k: _clean(v) for k, v in vars(r.rates).items()}
        | {"explanation": list(r.rates.explanation),
           "listed_usd_per_mtok": {k.removesuffix("_usd_per_mtok"): getattr(r.scenario.api, k)
                                   for k in PRICE_FIELDS}},
    }
