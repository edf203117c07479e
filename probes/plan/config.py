"""How to plan and measure load points: :class:`SweepConfig`, :class:`SweepProgress`, and the request counts.

Steady-state points: a point measures ``point_request_count`` requests, at least ``min_waves`` times its
concurrency (default 3: the first wave's ramp-up and the last one's drain are then a minority of the point)
and at least ``workload.num_requests`` (a floor, not the count of every point); an open-loop point also
covers at least ``min_point_duration_s`` of arrivals (``rate * min_point_duration_s`` requests). Warm-up
(``warmup_request_count``) runs in the same session just before, with at least as many requests as the
point's concurrency, so that the measured requests find warm connections and a warm server; 0 switches
warm-up off.

>>> spec = WorkloadSpec(input_tokens=8, output_tokens=4, num_requests=16)
>>> c = SweepConfig(workload=spec, warmup_requests=2)
>>> [point_request_count(c, concurrency=k) for k in (1, 4, 16, 64)]
[16, 16, 48, 192]
>>> [warmup_request_count(c, concurrency=k) for k in (1, 64)]
[2, 64]
>>> point_request_count(c, concurrency=None, request_rate=50.0), point_request_count(
...     SweepConfig(workload=spec, min_point_duration_s=10), concurrency=None, request_rate=50.0)
(16, 500)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from probes.load.workload import WorkloadSpec
from probes.plan.search import SloSearch

__all__ = ["SweepConfig", "SweepProgress", "parse_int_list", "point_request_count", "warmup_request_count"]


def parse_int_list(text: str, *, name: str = "concurrency") -> tuple[int, ...]:
    """``"1,4,16"`` -> ``(1, 4, 16)``; ValueError naming the field otherwise. ``"uncapped"`` -> ``(0,)`` (one
    open-loop point with no cap on in-flight requests; only meaningful with a request rate).

    >>> parse_int_list("1, 4,16"), parse_int_list("uncapped")
    ((1, 4, 16), (0,))
    >>> parse_int_list("1,x")
    Traceback (most recent call last):
    ...
    ValueError: concurrency must be a comma-separated list of integers >= 1, got '1,x'
    """
    if text.strip().lower() == "uncapped":
        return (0,)
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise ValueError(f"{name} must be a comma-separated list of integers >= 1, got {text!r}")
    return values


@dataclass(frozen=True)
class SweepConfig:
    """How to probe. ``request_rate`` finite = open loop (Poisson) with each concurrency as the cap; a
    concurrency of 0 means uncapped (open loop only: every request is sent at its arrival time, as real
    traffic arrives, and waits for nothing in the client).

    ``search`` set: an SLO capacity search (:mod:`probes.plan.search`) instead of the ``concurrencies``
    list. ``warmup_requests``: floor of the warm-up count (raised to the concurrency; 0 = no warm-up).
    """

    workload: WorkloadSpec
    concurrencies: tuple[int, ...] = (1,)
    request_rate: float = math.inf
    burstiness: float = 1.0
    warmup_requests: int = 0
    goodput_ttft_ms: float | None = None
    goodput_tpot_ms: float | None = None
    saturation_gain: float = 0.05
    stop_on_errors: bool = True
    request_timeout_s: float = 600.0
    hang_timeout_s: float = 60.0
    watch_interval_s: float = 2.0
    metrics_interval_s: float = 1.0
    power_interval_s: float = 0.5
    keep_samples: bool = True
    min_waves: float = 3.0
    min_point_duration_s: float = 0.0
    search: SloSearch | None = None

    def __post_init__(self) -> None:
        if not self.request_rate > 0:
            raise ValueError(f"request_rate must be > 0 (inf = closed loop), got {self.request_rate!r}")
        if not self.concurrencies or any(int(c) < 0 for c in self.concurrencies):
            raise ValueError(f"concurrencies must be a non-empty list of integers >= 1, got {self.concurrencies!r}")
        if 0 in self.concurrencies and not math.isfinite(self.request_rate):
            raise ValueError("concurrency 0 (uncapped) needs a finite request_rate: a closed loop without a cap "
                             "would send every request at once")
        if self.warmup_requests < 0:
            raise ValueError(f"warmup_requests must be >= 0, got {self.warmup_requests!r}")
        if self.saturation_gain < 0:
            raise ValueError(f"saturation_gain must be >= 0 (0 = never stop early), got {self.saturation_gain!r}")
        for name in ("request_timeout_s", "hang_timeout_s", "watch_interval_s", "metrics_interval_s",
                     "power_interval_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("goodput_ttft_ms", "goodput_tpot_ms"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value!r}")
        for name in ("min_waves", "min_point_duration_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def settings_dict(self) -> dict[str, Any]:
        """The run JSON's ``settings`` block."""
        return {"concurrency": list(self.concurrencies),
                "request_rate": None if math.isinf(self.request_rate) else self.request_rate,
                "burstiness": self.burstiness, "warmup": self.warmup_requests,
                "goodput_ttft_ms": self.goodput_ttft_ms, "goodput_tpot_ms": self.goodput_tpot_ms,
                "saturation_gain": self.saturation_gain, "request_timeout_s": self.request_timeout_s,
                "min_waves": self.min_waves, "min_point_duration_s": self.min_point_duration_s,
                "search": self.search.settings_dict() if self.search else None}


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep is: point ``point_index`` of ``points_total`` with ``done`` of ``total`` requests.

    ``concurrency`` is the point's in-flight cap (0 = uncapped open loop, then ``request_rate`` is set).
    """

    point_index: int
    points_total: int
    concurrency: int
    done: int
    total: int
    failed: int = 0
    phase: str = "load"  # "warmup" | "load" | "point_done"
    output_tokens_per_s: float | None = None
    request_rate: float | None = None


def point_request_count(config: SweepConfig, *, concurrency: int | None,
                        request_rate: float = math.inf) -> int:
    """Measured requests of one point: ``max(num_requests, ceil(min_waves * concurrency),
    ceil(request_rate * min_point_duration_s))`` (terms without a finite value left out)."""
    count = config.workload.num_requests
    if concurrency is not None:
        count = max(count, math.ceil(config.min_waves * concurrency))
    if math.isfinite(request_rate):
        count = max(count, math.ceil(request_rate * config.min_point_duration_s))
    return count


def warmup_request_count(config: SweepConfig, *, concurrency: int | None, request_rate: float = math.inf) -> int:
    """Warm-up requests of one point: 0 when ``warmup_requests`` is 0, else ``max(warmup_requests, c)`` where
    ``c`` is the concurrency, or for an uncapped open-loop point one second of arrivals (``ceil(rate)``)."""
    if config.warmup_requests == 0:
        return 0
    width = concurrency if concurrency is not None else (math.ceil(request_rate) if math.isfinite(request_rate)
                                                         else 1)
    return max(config.warmup_requests, width)
