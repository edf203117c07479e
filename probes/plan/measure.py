"""Measure one load point: build its requests, warm up, drive the load, scrape ``/metrics``, sample power,
summarise exactly as ``vllm bench serve`` does. Deciding WHICH point comes next is not done here
(:mod:`probes.plan.sweep` and :mod:`probes.plan.search`).

One :func:`measure_point` call is one ``run_load`` call, so warm-up and measured requests share one aiohttp
session (measured requests find warm connections); the ``/metrics`` "before" scrape, the metrics sampler
and the power sampler start in ``on_warmup_done``, between the two, so server-side counter deltas cover
exactly the measured requests. A watchdog thread cancels the point when the user stops, the managed
server exits, or ``/health`` stays unanswered for ``hang_timeout_s``; its reason comes back on the result.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import requests

from probes.load.backends import BACKENDS, Backend
from probes.load.client import LoadResult, RequestResult, client_facts, run_load_sync
from probes.load.fleet import Balancer, FleetSpec, check_health, fleet_point
from probes.load.metrics import PointMetrics, metrics_to_dict, request_samples, summarize
from probes.load.workload import TOKEN_ID_KINDS, RequestInput, WorkloadSpec, requests_for
from probes.observe import promscrape
from probes.observe.gpu import PowerSampler
from probes.plan.config import SweepConfig, SweepProgress, point_request_count, warmup_request_count

__all__ = ["Target", "Load", "MeasuredPoint", "PointPlan", "build_point_requests", "measure_point"]


@dataclass(frozen=True)
class Target:
    """Where the load goes: the server's URL and model, the vocabulary prompt ids are drawn from, and how
    to tell that a managed server died (``alive``/``describe_exit``; None for an attached endpoint)."""

    base_url: str
    model: str
    vocab_size: int | None = None
    api_key: str | None = field(default=None, repr=False)
    alive: Callable[[], bool] | None = None
    describe_exit: Callable[[], str] | None = None
    gpu_indices: Sequence[int] | None = None
    token_pool: tuple[int, ...] | None = None
    backend: Backend = field(default_factory=lambda: BACKENDS["vllm-token-ids"])
    fleet: FleetSpec | None = None  # several replicas (probes.load.fleet); base_url is then the first

    def __post_init__(self) -> None:
        if self.backend.name in TOKEN_ID_KINDS:
            if (self.vocab_size is None) == (self.token_pool is None):
                raise ValueError("token-id prompts need exactly one of vocab_size or token_pool")
            if self.vocab_size is not None and self.vocab_size < 64:
                raise ValueError(f"vocab_size must be >= 64, got {self.vocab_size}")


@dataclass(frozen=True)
class Load:
    """One load point: ``concurrency`` caps in-flight requests (None = uncapped), ``request_rate`` in req/s
    (inf = closed loop)."""

    concurrency: int | None
    request_rate: float = math.inf

    @property
    def label(self) -> str:
        """``"concurrency 4"``, ``"rate 2.5 req/s"`` or ``"rate 2.5 req/s (cap 8)"``."""
        if math.isinf(self.request_rate):
            return f"concurrency {self.concurrency}"
        cap = f" (cap {self.concurrency})" if self.concurrency is not None else ""
        return f"rate {self.request_rate:.4g} req/s{cap}"

    @property
    def salt(self) -> str:
        return f"c{self.concurrency}" if math.isinf(self.request_rate) else f"r{self.request_rate:.6g}-c{self.concurrency}"


@dataclass(frozen=True)
class MeasuredPoint:
    """The point dict (None when no request was measured), its metrics, the requests asked for, why
    the watchdog stopped it (None, "interrupted", "died" or "hung"), and the measured requests' results."""

    point: dict[str, Any] | None
    metrics: PointMetrics | None
    measured_requests: int
    warmup_requests: int
    stop_reason: str | None = None
    results: Sequence[RequestResult] = ()


@dataclass(frozen=True)
class PointPlan:
    """A point whose requests the caller built (a trace replay, :mod:`probes.plan.replay`): the measured
    ``requests`` sent at ``offsets_s``, the ``warmup`` sent first, and the worker processes (1: a lazily built
    request sequence cannot cross processes)."""

    requests: Sequence[RequestInput]
    offsets_s: Sequence[float]
    warmup: Sequence[RequestInput] = ()
    workers: int = 1


def build_point_requests(target: Target, spec: WorkloadSpec, count: int, *, salt: str) -> list[RequestInput]:
    """The ``count`` requests of one point (or its warm-up): the ONE place where prompts are built."""
    if count == 0:
        return []
    return requests_for(replace(spec, num_requests=count), backend=target.backend.name,
                        vocab_size=target.vocab_size, token_pool=target.token_pool, salt=salt)


class _Watchdog:
    """Sets ``point_stop`` when the user stops, the managed process exits, or /health hangs too long."""

    def __init__(self, *, base_url: str, user_stop: threading.Event | None, point_stop: threading.Event,
                 alive: Callable[[], bool] | None, hang_timeout_s: float, interval_s: float,
                 also: Sequence[str] = ()) -> None:
        self.base_url, self.user_stop, self.point_stop = base_url, user_stop, point_stop
        self.urls = (base_url, *also)  # a fleet hangs only when no replica answers /health
        self.alive, self.hang_timeout_s, self.interval_s = alive, hang_timeout_s, interval_s
        self.reason: str | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _healthy(self, http: requests.Session) -> bool:
        for url in self.urls:
            try:
                if http.get(f"{url}/health", timeout=min(5.0, self.hang_timeout_s)).status_code == 200:
                    return True
            except requests.RequestException:
                continue
        return False

    def _loop(self) -> None:
        last_ok = time.monotonic()
        with requests.Session() as http:
            while not self._done.wait(min(self.interval_s, 0.2) if self.user_stop else self.interval_s):
                if self.user_stop is not None and self.user_stop.is_set():
                    self.reason = "interrupted"
                elif self.alive is not None and not self.alive():
                    self.reason = "died"
                elif time.monotonic() - last_ok >= self.interval_s:
                    if self._healthy(http):
                        last_ok = time.monotonic()
                    elif time.monotonic() - last_ok > self.hang_timeout_s:
                        self.reason = "hung"
                if self.reason:
                    self.point_stop.set()
                    return

    def __enter__(self) -> _Watchdog:
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="probe-watchdog", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)


def _scrape(base_url: str) -> Any:
    return promscrape.scrape(base_url)


def _server_metrics(base_url: str, before: Any, sampler: Any) -> dict[str, Any] | None:
    after = promscrape.scrape(base_url)
    if before is None and after is None:
        return None
    return promscrape.summarize_samples(sampler.samples if sampler else [], before, after)


def _metrics_sampler(base_url: str, interval_s: float) -> Any:
    return promscrape.MetricsSampler(base_url, interval_s=interval_s)


def _power_block(summary: dict[str, Any] | None, output_tokens: int) -> dict[str, Any] | None:
    if summary is None:
        return None
    energy = summary.get("energy_j")
    return {"mean_w": summary.get("mean_w"), "energy_j": energy, "peak_w": summary.get("peak_w"),
            "gpus": summary.get("gpus"), "mean_utilization_pct": summary.get("mean_utilization_pct"),
            "energy_source": summary.get("energy_source"),
            "j_per_output_token": energy / output_tokens if energy is not None and output_tokens else None}


def measure_point(target: Target, load: Load, config: SweepConfig, *, index: int, points_total: int = 1,
                  stop: threading.Event | None = None,
                  on_progress: Callable[[SweepProgress], None] | None = None,
                  plan: PointPlan | None = None) -> MeasuredPoint:
    """Measure one load point (see the module docstring). Never raises for server death, hang or stop.

    ``plan``: the point's requests, offsets and warm-up come from the caller instead of the workload and
    ``load.request_rate`` (which then only labels the point)."""
    spec = config.workload
    offsets: Sequence[float] | None = None
    workers: int | None = None
    if plan is None:
        n = point_request_count(config, concurrency=load.concurrency, request_rate=load.request_rate)
        n_warm = warmup_request_count(config, concurrency=load.concurrency, request_rate=load.request_rate)
        reqs: Sequence[RequestInput] = build_point_requests(target, spec, n, salt=f"point{index}-{load.salt}")
        warm: Sequence[RequestInput] = build_point_requests(target, spec, n_warm,
                                                            salt=f"warmup{index}-{load.salt}")
    else:
        reqs, warm, offsets, workers, n = plan.requests, plan.warmup, plan.offsets_s, plan.workers, len(
            plan.requests)
    rate = None if math.isinf(load.request_rate) else load.request_rate
    conc = load.concurrency or 0
    counts = {"done": 0, "failed": 0}

    def progress(phase: str, tps: float | None = None) -> None:
        if on_progress:
            on_progress(SweepProgress(index, points_total, conc, counts["done"], n, counts["failed"], phase=phase,
                                      output_tokens_per_s=tps, request_rate=rate))

    def on_result(r: RequestResult) -> None:
        counts["done"] += 1
        counts["failed"] += 0 if r.success else 1
        progress("load")

    point_stop = threading.Event()
    fleet = target.fleet
    watchdog = _Watchdog(base_url=target.base_url, user_stop=stop, point_stop=point_stop, alive=target.alive,
                         hang_timeout_s=config.hang_timeout_s, interval_s=config.watch_interval_s,
                         also=fleet.urls[1:] if fleet else ())
    observed: dict[str, Any] = {"before": None, "msampler": None, "power": None, "replicas": []}
    balancer = Balancer(fleet.urls, fleet.balance) if fleet else None

    def on_warmup_done() -> None:  # in the event loop, with nothing in flight: the measured window opens
        if fleet:  # each replica's own /metrics (the point-level server_metrics would be replica 0's only)
            observed["replicas"] = [(url, _scrape(url), _metrics_sampler(url, config.metrics_interval_s))
                                    for url in fleet.urls]
            for _, _, sampler in observed["replicas"]:
                if sampler is not None:
                    sampler.start()
        observed["before"] = _scrape(target.base_url)
        msampler = _metrics_sampler(target.base_url, config.metrics_interval_s)
        power = PowerSampler(config.power_interval_s, indices=target.gpu_indices)
        if msampler is not None:
            msampler.start()
        power.start()
        observed["msampler"], observed["power"] = msampler, power
        progress("load")

    if warm:
        progress("warmup")
    try:
        with watchdog:
            load_result = LoadResult(results=[], duration_s=0.0, warmup_results=[], interrupted=True) if (
                point_stop.is_set()) else run_load_sync(
                    base_url=target.base_url, model=target.model, requests=reqs, concurrency=load.concurrency,
                    request_rate=load.request_rate, burstiness=config.burstiness, seed=spec.seed + index,
                    warmup=warm, on_warmup_done=on_warmup_done, request_timeout_s=config.request_timeout_s,
                    on_result=on_result, stop=point_stop, api_key=target.api_key,
                    backend=target.backend, workers=workers, offsets_s=offsets, chooser=balancer)
    finally:
        if observed["power"] is not None:
            observed["power"].stop()
        if observed["msampler"] is not None:
            observed["msampler"].stop()
        for _, _, sampler in observed["replicas"]:
            if sampler is not None:
                sampler.stop()
    if not (load_result.results and load_result.duration_s > 0):
        return MeasuredPoint(None, None, n, len(warm), watchdog.reason)
    m = summarize(load_result.results, load_result.duration_s, goodput_ttft_ms=config.goodput_ttft_ms,
                  goodput_tpot_ms=config.goodput_tpot_ms, concurrency=load.concurrency,
                  request_rate=load.request_rate, cpu=load_result.cpu)
    power = observed["power"]
    point = {"concurrency": load.concurrency, "request_rate": rate, **metrics_to_dict(m),
             "measured_requests": n, "warmup_requests": len(warm), **client_facts(load_result),
             "server_metrics": _server_metrics(target.base_url, observed["before"], observed["msampler"])
             if watchdog.reason is None else None,
             "power": _power_block(power.summary(), m.total_output_tokens) if power is not None else None,
             "interrupted": load_result.interrupted,
             "samples": request_samples(load_result.results) if config.keep_samples else []}
    if fleet and balancer is not None:
        point["fleet"] = fleet_point(
            load_result.results, load_result.duration_s, fleet.urls, balance=fleet.balance,
            ejected=balancer.ejected, health_after=[check_health(url) for url in fleet.urls],
            server_metrics=[_server_metrics(url, before, sampler) for url, before, sampler in observed["replicas"]])
        point["server_metrics"] = None  # per replica in point["fleet"]; replica 0's alone would mislead
        for sample, r in zip(point["samples"], load_result.results, strict=False):
            sample["replica"] = r.replica
    progress("point_done", m.output_tokens_per_s)
    return MeasuredPoint(point, m, n, len(warm), watchdog.reason, load_result.results)
