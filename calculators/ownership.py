"""Owning GPU servers instead of renting: an effective $/GPU-hour from purchase, energy, hosting and people.

Per server and month (a month is ``HOURS_PER_MONTH`` = 730 hours, as in ``calculators.cost``)::

    capex_usd   = server_usd * (1 - residual_fraction) / amortization_months
    energy_kwh  = (power_w_per_gpu * gpus_per_server + server_overhead_w) * 730 * pue / 1000
    energy_usd  = energy_kwh * usd_per_kwh
    total_usd   = capex_usd + energy_usd + hosting_usd_per_month + people_usd_per_month
    usd_per_gpu_hour = total_usd / gpus_per_server / 730

The server runs all month at ``power_w_per_gpu`` (a measured mean from a probe run, typed, or TDP x a load
factor: ``power_kind`` says which) and the purchase is spread linearly over the amortization months, net of
what the server sells for at the end (``residual_fraction`` of its price); no interest (cost of capital)
is charged. A fleet of N GPUs costs N / gpus_per_server servers pro rata (a real purchase is whole servers).

Energy per output token from a probe run point (``joules_per_output_token``): the NVML energy counter over
the point divided by its output tokens, else ``mean_w / output_tokens_per_s``. Its cost::

    energy_usd_per_mtok = j_per_token * 1e6 / 3.6e6 * pue * usd_per_kwh

>>> b = BuyInput(server_usd=300_000, gpus_per_server=8, amortization_months=36, residual_fraction=0.2,
...              hosting_usd_per_month=2000, power_w_per_gpu=500, server_overhead_w=2000, usd_per_kwh=0.10,
...              pue=1.5, people_usd_per_month=1000)
>>> c = owned_cost(b)
>>> round(c.capex_usd_per_month, 2), round(c.energy_kwh_per_month, 1), round(c.energy_usd_per_month, 2)
(6666.67, 6570.0, 657.0)
>>> round(c.total_usd_per_month, 2), round(c.usd_per_gpu_hour, 4)   # (6666.67+657+2000+1000)/8/730
(10323.67, 1.7678)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from calculators.catalog import _rows
from calculators.validation import require_finite, require_int

__all__ = [
    "HOURS_PER_MONTH",
    "POWER_KINDS",
    "DEFAULTS",
    "ServerPrice",
    "server_prices",
    "server_price",
    "BuyInput",
    "OwnedCost",
    "owned_cost",
    "joules_per_output_token",
    "PowerPoint",
    "power_points",
    "power_w_per_gpu",
    "energy_usd_per_mtok",
    "owned_cost_to_dict",
]

HOURS_PER_MONTH = 730.0
_J_PER_KWH = 3.6e6
POWER_KINDS = ("tdp", "typed", "measured")
"""How ``power_w_per_gpu`` was obtained: TDP x a load factor, typed by the user, or a probe run's mean."""

DEFAULTS: dict[str, tuple[float, str]] = {
    "amortization_months": (36, "assumption: a 3-year depreciation schedule, common for servers"),
    "residual_fraction": (0.2, "assumption: resale value after the amortization period (not sourced)"),
    "hosting_usd_per_month": (2000, "assumption: ~10 kW per 8-GPU server x ~$196/kW/month colocation "
                                    "(250-500 kW deployments, H2 2025: encoradvisors.com/data-center-colocation-"
                                    "pricing), power billed separately"),
    "load_factor": (0.8, "assumption: the bundled H100/H200 runs drew 61-98% of TDP from concurrency 1 to 128 "
                         "(benchmarks/results/*/probe-*.json, NVML)"),
    "usd_per_kwh": (0.0806, "EIA: US average retail price to industrial customers, 8.06 cents/kWh in 2023 "
                            "(via statista.com)"),
    "pue": (1.58, "Uptime Institute Global Data Center Survey: industry average PUE 1.58 in 2023 (new large "
                  "sites reach 1.3 or better)"),
    "people_usd_per_month": (1000, "assumption (not sourced): hardware hands per server (repairs, spares, "
                                   "procurement), on top of the scenario's Ops $/month, which renting has too"),
}
"""Default inputs: (value, where it comes from). Server price, GPUs per server and overhead come from
``calculators/data/gpu_servers.csv`` per GPU (``server_price``)."""


@dataclass(frozen=True)
class ServerPrice:
    """One row of gpu_servers.csv: a GPU server's purchase price, its GPU count and non-GPU power draw."""

    gpu: str
    gpus_per_server: int
    server_usd: float
    overhead_w: float
    estimate: tuple[str, ...]
    notes: str
    source: str
    as_of: str


@cache
def server_prices() -> dict[str, ServerPrice]:
    """GPU id -> its server purchase row (calculators/data/gpu_servers.csv).

    >>> server_prices()["h100-sxm"].server_usd
    317000.0
    """
    out = {}
    for r in _rows("gpu_servers.csv"):
        out[r["gpu"]] = ServerPrice(r["gpu"], int(r["gpus_per_server"]), float(r["server_usd"]),
                                    float(r["overhead_w"]), tuple(r["estimate"].split()), r["notes"],
                                    r["source"], r["as_of"])
    return out


def server_price(gpu_id: str) -> ServerPrice | None:
    """The GPU's server purchase row, or None when gpu_servers.csv has no sourced price for it."""
    return server_prices().get(gpu_id)


@dataclass(frozen=True)
class BuyInput:
    """One owned GPU server. ``power_w_per_gpu`` is the mean draw of each GPU while serving (``power_kind``
    says whether it was measured, typed, or TDP x a load factor); ``server_overhead_w`` is the rest of the
    server (CPUs, fans, NICs). Hosting and people are $ per server and month."""

    server_usd: float
    gpus_per_server: int
    amortization_months: float
    residual_fraction: float
    hosting_usd_per_month: float
    power_w_per_gpu: float
    server_overhead_w: float
    usd_per_kwh: float
    pue: float
    people_usd_per_month: float = 0.0
    power_kind: str = "tdp"

    def __post_init__(self) -> None:
        for name, low, high in (("server_usd", 0, 1e9), ("amortization_months", 1, 600),
                                ("residual_fraction", 0, 1), ("hosting_usd_per_month", 0, 1e8),
                                ("power_w_per_gpu", 0, 1e5), ("server_overhead_w", 0, 1e6),
                                ("usd_per_kwh", 0, 100), ("pue", 1, 10), ("people_usd_per_month", 0, 1e8)):
            object.__setattr__(self, name, require_finite(name, getattr(self, name), low=low, high=high))
        object.__setattr__(self, "gpus_per_server",
                           require_int("gpus_per_server", self.gpus_per_server, low=1, high=64))
        if self.power_kind not in POWER_KINDS:
            raise ValueError(f"power_kind must be one of {', '.join(POWER_KINDS)}, got {self.power_kind!r:.60}")


@dataclass(frozen=True)
class OwnedCost:
    """Per server and month, and the effective $/GPU-hour that renting would have to beat."""

    buy: BuyInput
    capex_usd_per_month: float
    energy_kwh_per_month: float
    energy_usd_per_month: float
    hosting_usd_per_month: float
    people_usd_per_month: float
    total_usd_per_month: float
    usd_per_gpu_hour: float


def owned_cost(b: BuyInput) -> OwnedCost:
    """The monthly breakdown of one owned server (the formula is in the module docstring).

    A server given away (price 0) costs only its running costs; with every input 0 but the GPU count
    the effective price is $0/GPU-hour.

    >>> owned_cost(BuyInput(0, 8, 36, 0, 0, 0, 0, 0, 1.0)).usd_per_gpu_hour
    0.0
    """
    capex = b.server_usd * (1 - b.residual_fraction) / b.amortization_months
    kwh = (b.power_w_per_gpu * b.gpus_per_server + b.server_overhead_w) * HOURS_PER_MONTH * b.pue / 1000
    energy = kwh * b.usd_per_kwh
    total = capex + energy + b.hosting_usd_per_month + b.people_usd_per_month
    return OwnedCost(b, capex, kwh, energy, b.hosting_usd_per_month, b.people_usd_per_month, total,
                     total / b.gpus_per_server / HOURS_PER_MONTH)


def power_w_per_gpu(tdp_w: float, load_factor: float) -> float:
    """The TDP fallback: ``tdp_w * load_factor`` (say so wherever it is shown: it is not a measurement).

    >>> power_w_per_gpu(700, 0.8)
    560.0
    """
    return require_finite("tdp_w", tdp_w, low=0) * require_finite("load_factor", load_factor, low=0, high=1.5)


def _num(block: object, key: str) -> float | None:
    v = block.get(key) if isinstance(block, Mapping) else None
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def joules_per_output_token(point: Mapping[str, Any]) -> float | None:
    """Energy per output token of one probe run point (all its GPUs): ``power.energy_j`` / the point's output
    tokens (NVML's energy counter), else ``power.j_per_output_token``, else ``power.mean_w`` /
    ``output_tokens_per_s``; None without a power block or without output tokens.

    >>> joules_per_output_token({"total_output_tokens": 2048, "output_tokens_per_s": 201.06,
    ...                          "power": {"mean_w": 507.4, "energy_j": 5171.0}})   # 5171 / 2048
    2.52490234375
    >>> round(joules_per_output_token({"output_tokens_per_s": 200.0, "power": {"mean_w": 500.0}}), 3)
    2.5
    >>> joules_per_output_token({"output_tokens_per_s": 200.0}) is None
    True
    """
    power = point.get("power")
    energy, tokens = _num(power, "energy_j"), _num(point, "total_output_tokens")
    if energy is not None and tokens:
        return energy / tokens
    jpt = _num(power, "j_per_output_token")
    if jpt is not None:
        return jpt
    mean_w, otps = _num(power, "mean_w"), _num(point, "output_tokens_per_s")
    if mean_w is not None and otps:
        return mean_w / otps
    return None


@dataclass(frozen=True)
class PowerPoint:
    """One measured load point of a probe run with GPU power: mean W per GPU, J per output token (all GPUs)."""

    concurrency: Any
    output_tokens_per_s: float
    w_per_gpu: float
    j_per_output_token: float | None
    energy_source: str


def power_points(run: Mapping[str, Any]) -> list[PowerPoint]:
    """The points of a probe run JSON that carry GPU power (``point.power.mean_w`` and ``.gpus``, from NVML),
    in run order; [] for a run measured without NVML.

    >>> power_points({"points": [{"concurrency": 32, "output_tokens_per_s": 4304.0, "total_output_tokens": 65536,
    ...   "power": {"mean_w": 633.7, "gpus": 1, "energy_j": 9659.0, "energy_source": "NVML total energy counter"}},
    ...   {"concurrency": 1, "output_tokens_per_s": 200.0}]})[0].w_per_gpu
    633.7
    """
    out = []
    for p in run.get("points") or []:
        if not isinstance(p, Mapping):
            continue
        power = p.get("power")
        mean_w, gpus, otps = _num(power, "mean_w"), _num(power, "gpus") or 1.0, _num(p, "output_tokens_per_s")
        if mean_w is None or otps is None or gpus <= 0:
            continue
        src = power.get("energy_source") if isinstance(power, Mapping) else None
        out.append(PowerPoint(p.get("concurrency"), otps, mean_w / gpus, joules_per_output_token(p),
                              src if isinstance(src, str) else "NVML"))
    return out


def energy_usd_per_mtok(j_per_output_token: float, usd_per_kwh: float, pue: float) -> float:
    """$ of electricity per million output tokens: ``j * 1e6 / 3.6e6 * pue * usd_per_kwh``.

    >>> round(energy_usd_per_mtok(0.147, 0.0806, 1.58), 5)   # H200 8B bf16 at concurrency 32
    0.0052
    """
    j = require_finite("j_per_output_token", j_per_output_token, low=0)
    return j * 1e6 / _J_PER_KWH * require_finite("pue", pue, low=1) * require_finite("usd_per_kwh", usd_per_kwh, low=0)


def owned_cost_to_dict(c: OwnedCost, gpus: float | None = None, *, gpus_per_replica: int | None = None,
                       output_tokens_per_s: float | None = None) -> dict[str, Any]:
    """The JSON form (the report's ``ownership`` block): inputs, per-server breakdown, and, given the fleet's
    GPU count, the same breakdown for the fleet (``gpus / gpus_per_server`` servers, pro rata). Given a
    replica's GPUs and output tokens/s, the GPU energy per output token of a fully busy replica
    (``power_w_per_gpu * gpus_per_replica / output_tokens_per_s``) and its electricity $ per M output tokens
    (PUE included; the rest of the server's draw not)."""
    b = c.buy
    per_server = {"capex_usd": c.capex_usd_per_month, "energy_usd": c.energy_usd_per_month,
                  "hosting_usd": c.hosting_usd_per_month, "people_usd": c.people_usd_per_month,
                  "total_usd": c.total_usd_per_month}
    out: dict[str, Any] = {
        "formula": "usd_per_gpu_hour = (server_usd*(1-residual)/months + energy_kwh*usd_per_kwh + hosting + people)"
                   " / gpus_per_server / 730; energy_kwh = (power_w_per_gpu*gpus_per_server + overhead_w)"
                   " * 730 * pue / 1000",
        "inputs": {k: getattr(b, k) for k in ("server_usd", "gpus_per_server", "amortization_months",
                                              "residual_fraction", "hosting_usd_per_month", "power_w_per_gpu",
                                              "power_kind", "server_overhead_w", "usd_per_kwh", "pue",
                                              "people_usd_per_month")},
        "energy_kwh_per_month_per_server": c.energy_kwh_per_month,
        "per_server_usd_per_month": per_server,
        "usd_per_gpu_hour": c.usd_per_gpu_hour,
    }
    if gpus is not None:
        servers = gpus / b.gpus_per_server
        out["servers"] = servers
        out["fleet_usd_per_month"] = {k: v * servers for k, v in per_server.items()}
    if gpus_per_replica and output_tokens_per_s:
        j = b.power_w_per_gpu * gpus_per_replica / output_tokens_per_s
        out["gpu_j_per_output_token_at_full_load"] = j
        out["energy_usd_per_mtok_output_at_full_load"] = energy_usd_per_mtok(j, b.usd_per_kwh, b.pue)
    return out
