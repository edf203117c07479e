"""GPU rental prices by provider and tier (``calculators/data/gpu_prices.csv``), and the default price.

Each row: GPU id (as in gpus.csv), provider, provider kind (hyperscaler | gpu-cloud | marketplace), tier
(spot | community | on-demand | 1y-reserved | 3y-reserved: committed capacity; rows for the H100, H200, B200,
A100 80GB and L40S, the H200/B200/A100 ones estimates), $/GPU-hour, whether it is an estimate,
notes, source and as_of. Hyperscaler rows divide an 8-GPU instance's price by 8 (host included).

The default price of a GPU is the **median of its on-demand rows** (``DEFAULT_STATISTIC``): spot and
community tiers can be preempted or lack an SLA, and reserved tiers need a commitment, so neither is the
honest like-for-like with a pay-as-you-go API. ``gpus.csv``'s low/high are the min/max on-demand rows
(a test keeps them in step).

>>> default_usd_per_hour("h200")      # on-demand rows 3.99, 4.50, 4.59, 6.305
4.545
>>> sorted({r.tier for r in prices("h100-sxm")})
['1y-reserved', '3y-reserved', 'community', 'on-demand', 'spot']
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import cache

from calculators.catalog import _rows

__all__ = ["KINDS", "TIERS", "DEFAULT_TIER", "DEFAULT_STATISTIC", "GpuPrice", "all_prices", "prices",
           "default_usd_per_hour", "on_demand_range", "tiers", "tier_usd_per_hour", "tier_statistic"]

KINDS = ("hyperscaler", "gpu-cloud", "marketplace")
TIERS = ("spot", "community", "on-demand", "1y-reserved", "3y-reserved")
DEFAULT_TIER = "on-demand"
DEFAULT_STATISTIC = "median of the on-demand rows"


@dataclass(frozen=True)
class GpuPrice:
    gpu: str
    provider: str
    provider_kind: str
    tier: str
    usd_per_gpu_hour: float
    estimate: bool
    notes: str
    source: str
    as_of: str

    @property
    def label(self) -> str:
        est = " [est]" if self.estimate else ""
        return f"{self.provider} ({self.provider_kind}) {self.tier}: ${self.usd_per_gpu_hour:g}/h{est}, {self.as_of}"


@cache
def all_prices() -> tuple[GpuPrice, ...]:
    """Every row, in file order; ValueError naming the row for an unknown kind or tier or a bad price."""
    out = []
    for i, r in enumerate(_rows("gpu_prices.csv"), start=2):
        if r["provider_kind"] not in KINDS or r["tier"] not in TIERS:
            raise ValueError(f"gpu_prices.csv line {i}: provider_kind must be one of {KINDS} and tier one of "
                             f"{TIERS}, got {r['provider_kind']!r}, {r['tier']!r}")
        price = float(r["usd_per_gpu_hour"])
        if not 0 < price < 1000:
            raise ValueError(f"gpu_prices.csv line {i}: usd_per_gpu_hour must be in (0, 1000), got {price}")
        out.append(GpuPrice(r["gpu"], r["provider"], r["provider_kind"], r["tier"], price, r["estimate"] == "yes",
                            r["notes"], r["source"], r["as_of"]))
    return tuple(out)


def prices(gpu_id: str, tier: str | None = None) -> list[GpuPrice]:
    """The rows of one GPU (of one tier, if given), cheapest first."""
    return sorted((r for r in all_prices() if r.gpu == gpu_id and (tier is None or r.tier == tier)),
                  key=lambda r: r.usd_per_gpu_hour)


def default_usd_per_hour(gpu_id: str) -> float:
    """The median of the GPU's on-demand rows (``DEFAULT_STATISTIC``); ValueError if it has none."""
    return tier_usd_per_hour(gpu_id, DEFAULT_TIER)


def tiers(gpu_id: str) -> tuple[str, ...]:
    """The tiers with at least one row for the GPU, in ``TIERS`` order.

    >>> tiers("h100-sxm")
    ('spot', 'community', 'on-demand', '1y-reserved', '3y-reserved')
    """
    have = {r.tier for r in all_prices() if r.gpu == gpu_id}
    return tuple(t for t in TIERS if t in have)


def tier_usd_per_hour(gpu_id: str, tier: str) -> float:
    """The median of the GPU's rows of one tier, rounded to 4 decimals; ValueError naming the tier if none.

    >>> tier_usd_per_hour("h200", "on-demand") == default_usd_per_hour("h200")
    True
    """
    if tier not in TIERS:
        raise ValueError(f"GPU price tier must be one of {', '.join(TIERS)}, got {tier!r:.60}")
    rows = prices(gpu_id, tier)
    if not rows:
        raise ValueError(f"GPU {gpu_id!r} has no {tier} price in gpu_prices.csv (it has: "
                         f"{', '.join(tiers(gpu_id)) or 'none'})")
    return round(statistics.median(r.usd_per_gpu_hour for r in rows), 4)


def tier_statistic(gpu_id: str, tier: str) -> str:
    """How ``tier_usd_per_hour`` got its number, in words (e.g. "median of 4 on-demand rows"), flagging
    estimated rows.

    >>> tier_statistic("h200", "3y-reserved")
    'the only 3y-reserved row [est]'
    """
    rows = prices(gpu_id, tier)
    n, est = len(rows), sum(r.estimate for r in rows)
    flag = "" if not est else " [est]" if est == n else f" ({est} estimated)"
    return (f"the only {tier} row" if n == 1 else f"median of {n} {tier} rows") + flag


def on_demand_range(gpu_id: str) -> tuple[float, float]:
    """(cheapest, dearest) on-demand $/GPU-hour."""
    rows = prices(gpu_id, DEFAULT_TIER)
    return rows[0].usd_per_gpu_hour, rows[-1].usd_per_gpu_hour
