"""Chart data for the Break-even page, computed with numpy broadcasting over grids (no per-point loops).

- ``cost_vs_volume``: monthly cost of both sides over requests/day, with the replica steps and break-even;
- ``usd_per_mtok_vs_utilization``: a replica's GPU $/M output tokens against the API's $/M-equivalent line;
- ``savings_heatmap``: $/month saved over a GPU $/hour x utilization grid.

Each returns a pandas DataFrame (tidy: one row per point) and reuses ``calculators.cost``'s formulas.

>>> from calculators.scenario import DEFAULT_SCENARIO, apply_api_model
>>> df = cost_vs_volume(apply_api_model(DEFAULT_SCENARIO, "gpt-6-sol"))   # gpt-6-luna never breaks even
>>> bool(df["is_breakeven"].any()), list(df.columns)[:4]
(True, ['requests_per_day', 'replicas', 'api_usd_per_month', 'self_host_usd_per_month'])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calculators import catalog
from calculators.cost import (
    HOURS_PER_MONTH,
    SECONDS_PER_DAY,
    api_usd_per_month,
    evaluate,
    replicas_needed,
    self_host_usd_per_month,
)
from calculators.scenario import LIMITS, Scenario
from calculators.validation import require_int

__all__ = ["cost_vs_volume", "usd_per_mtok_vs_utilization", "savings_heatmap", "UTILIZATION_RANGE"]

UTILIZATION_RANGE = (0.05, 1.0)
_EDGE_STEP = 1e-7  # a point this far (relative) past each replica edge draws the step as a vertical jump
_MAX_RPD = LIMITS["traffic.requests_per_day"][1] or 1e10


def _check(s: object) -> Scenario:
    if not isinstance(s, Scenario):
        raise ValueError(f"expected a Scenario, got {type(s).__name__}")
    return s


def cost_vs_volume(s: Scenario, n: int = 200) -> pd.DataFrame:
    """Monthly cost of both sides over requests/day: ``n`` log-spaced points plus the exact replica edges.

    The grid spans ``[max(1, hi/1e5), hi]`` with ``hi = max(10 x current volume, 3 x break-even,
    1.5 x sustained break-even, 10,000)`` (capped at 1e10). For each replica edge ``x_n = n / k`` inside it (k = peak replicas per request/day)
    there is a point at the edge and one just past it, so a line chart shows the steps as steps; with more
    than ``n`` edges in range, ``n`` of them are picked evenly (steps that fine are not visible anyway).
    The current volume, the break-even volume (first crossing) and the sustained break-even (no dearer at
    every higher volume) are added as points and flagged.

    Columns: requests_per_day, replicas, api_usd_per_month, self_host_usd_per_month, gpu_usd_per_month,
    is_breakeven, is_current, is_sustained_breakeven (sorted by volume).

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> df = cost_vs_volume(DEFAULT_SCENARIO, n=50)
    >>> row = df[df.is_current].iloc[0]
    >>> int(row.replicas), float(row.self_host_usd_per_month)
    (1, 5312.425)
    """
    s = _check(s)
    n = require_int("n", n, low=2, high=100_000)
    r = evaluate(s)
    t, h, rt = s.traffic, s.self_host, r.rates  # the API rates evaluate applied (tier, batch, cache writes)
    be, sus = r.breakeven.requests_per_day, r.breakeven.sustained_requests_per_day
    hi = min(_MAX_RPD, max(10 * t.requests_per_day, 3 * (be or 0.0), 1.5 * (sus or 0.0), 1e4))
    lo = max(1.0, hi * 1e-5)
    k = (1 - h.fallback_fraction) * r.self_host.busy_s_per_request * t.peak_to_mean / SECONDS_PER_DAY
    parts = [np.geomspace(lo, hi, n)]
    if k > 0:
        first = max(h.min_replicas, int(np.ceil(lo * k)))
        last = int(np.floor(hi * k))
        if last >= first:
            steps = np.unique(np.linspace(first, last, min(n, last - first + 1)).round())
            edges = steps / k
            parts += [edges, edges * (1 + _EDGE_STEP)]
    extra = [x for x in (t.requests_per_day, be, sus) if x is not None and x > 0]
    x = np.unique(np.clip(np.concatenate(parts + [np.array(extra)]), 0.0, _MAX_RPD))
    api = api_usd_per_month(x, t.input_tokens, t.output_tokens, t.cached_input_fraction,
                            rt.input_usd_per_mtok, rt.cached_input_usd_per_mtok, rt.output_usd_per_mtok)
    reps = replicas_needed(x, r.self_host.busy_s_per_request, t.peak_to_mean, h.min_replicas,
                           h.fallback_fraction)
    gpu = self_host_usd_per_month(reps, h.gpus_per_replica, h.gpu_usd_per_hour)
    host = gpu + h.ops_usd_per_month + h.fallback_fraction * api
    return pd.DataFrame({
        "requests_per_day": x,
        "replicas": reps.astype(np.int64) if reps.max() < 2.0**53 else reps,
        "api_usd_per_month": api,
        "self_host_usd_per_month": host,
        "gpu_usd_per_month": gpu,
        "is_breakeven": x == (be if be is not None else -1.0),
        "is_current": x == t.requests_per_day,
        "is_sustained_breakeven": x == (sus if sus is not None else -1.0),
    })


def usd_per_mtok_vs_utilization(s: Scenario, n: int = 96) -> pd.DataFrame:
    """A replica's GPU cost per M output tokens over average utilization 0.05..1, and the API's line.

    ``self_host_usd_per_mtok_output = usd_per_mtok_output(gpu $/h, eff_otps, u, gpus_per_replica)`` with the
    effective replica rate ``eff_otps = output_tokens / busy_s_per_request`` (prefill time included); GPU
    cost only (no ops, no fallback). ``api_usd_per_mtok_output_equiv`` is the API $/request over output
    tokens/request, per M (flat). They cross at the report's ``breakeven.utilization``.

    Columns: utilization, self_host_usd_per_mtok_output, api_usd_per_mtok_output_equiv.

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> df = usd_per_mtok_vs_utilization(DEFAULT_SCENARIO, n=20)
    >>> round(float(df.self_host_usd_per_mtok_output.iloc[-1]), 4), round(float(df.api_usd_per_mtok_output_equiv[0]), 4)
    (0.4267, 0.775)
    """
    s = _check(s)
    n = require_int("n", n, low=2, high=100_000)
    r = evaluate(s)
    h = s.self_host
    u = np.linspace(*UTILIZATION_RANGE, n)
    eff = r.self_host.effective_output_tokens_per_s
    return pd.DataFrame({
        "utilization": u,
        # usd_per_mtok_output's formula, inlined: eff_otps may sit below that function's input limit
        "self_host_usd_per_mtok_output": h.gpus_per_replica * h.gpu_usd_per_hour * 1e6 / (eff * 3600.0 * u),
        "api_usd_per_mtok_output_equiv": np.full_like(u, r.api.usd_per_mtok_output_equiv),
    })


def savings_heatmap(s: Scenario, n_price: int = 40, n_util: int = 40) -> pd.DataFrame:
    """Savings ($/month, API minus self-host) over GPU $/hour x average utilization, at the current volume.

    The fleet is treated as continuous here: to run at average utilization u you provision
    ``mean_load / u`` replicas (mean_load = requests/day * (1 - fallback) * busy_s / 86400), so::

        savings(p, u) = api - (mean_load / u * gpus_per_replica * p * 730 + ops + fallback * api)

    It ignores whole replicas and the minimum, to show what price and utilization it would take. Price axis:
    ``n_price`` points from a quarter of min(current, catalog low) to max(2 x current, catalog high);
    utilization: ``n_util`` points over 0.05..1.

    Columns: gpu_usd_per_hour, utilization, savings_usd_per_month (``n_price * n_util`` rows).

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> df = savings_heatmap(DEFAULT_SCENARIO, n_price=3, n_util=2)
    >>> len(df), list(df.columns)
    (6, ['gpu_usd_per_hour', 'utilization', 'savings_usd_per_month'])
    """
    s = _check(s)
    n_price = require_int("n_price", n_price, low=2, high=10_000)
    n_util = require_int("n_util", n_util, low=2, high=10_000)
    r = evaluate(s)
    h = s.self_host
    g = catalog.gpu(h.gpu)
    p_lo = max(0.01, 0.25 * min(h.gpu_usd_per_hour, g.usd_per_gpu_hour_low))
    p_hi = max(2 * h.gpu_usd_per_hour, g.usd_per_gpu_hour_high, 2 * p_lo)
    price = np.linspace(p_lo, p_hi, n_price)[:, None]
    util = np.linspace(*UTILIZATION_RANGE, n_util)[None, :]
    api = r.api.usd_per_month
    gpu = r.self_host.mean_load_replicas / util * h.gpus_per_replica * price * HOURS_PER_MONTH
    savings = api - (gpu + h.ops_usd_per_month + h.fallback_fraction * api)
    p, u = np.broadcast_arrays(price, util)
    return pd.DataFrame({
        "gpu_usd_per_hour": p.ravel(),
        "utilization": u.ravel(),
        "savings_usd_per_month": savings.ravel(),
    })
