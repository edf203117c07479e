"""Concurrency sweeps: one load point per concurrency, early stop at saturation or errors, best point.

For each point ``c`` of ``concurrencies``: build the workload with its own salt (points never share cached
prefix blocks), run a warm-up (excluded), drive the load, scrape ``/metrics`` before/during/after, sample
GPU power, summarise exactly as ``vllm bench serve`` does, and append the point to the run JSON.

Stopping rules, in order:

* the user's ``stop`` event -> status ``"interrupted"`` (points so far kept);
* the managed server exits, or ``/health`` stays unanswered for ``hang_timeout_s`` (a watchdog thread
  checks every ``watch_interval_s`` and cancels the pending requests) -> ``"failed"`` if no point has a
  completed request, else ``"partial"``, with the message in ``error``;
* a point with failed requests (``stop_on_errors``) -> ``"partial"``;
* saturation: output tok/s gained less than ``saturation_gain`` over the best earlier point,
  ``tps_c < best_tps * (1 + gain)`` -> stop early, status ``"complete"`` (a note says so); ``gain = 0``
  never stops early.

Best operating point (:func:`best_point`): the highest output tok/s among points without failures whose
p99 TTFT and p99 TPOT meet the targets (no targets: highest output tok/s).

>>> saturated(100.0, 104.0, 0.05), saturated(100.0, 106.0, 0.05), saturated(None, 1.0, 0.05)
(True, False, False)
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import requests

from probes.load.client import LoadResult, RequestResult, run_load_sync
from probes.load.metrics import metrics_to_dict, request_samples, summarize
from probes.load.workload import WorkloadSpec, build_requests
from probes.observe import promscrape
from probes.observe.gpu import PowerSampler
from probes.results.store import RUN_SCHEMA

__all__ = [
    "RUN_SCHEMA",
    "SweepConfig",
    "SweepProgress",
    "new_run",
    "run_sweep",
    "best_point",
    "saturated",
    "parse_int_list",
]



def parse_int_list(text: str, *, name: str = "concurrency") -> tuple[int, ...]:
    """``"1,4,16"`` -> ``(1, 4, 16)``; ValueError naming the field otherwise.

    >>> parse_int_list("1, 4,16")
    (1, 4, 16)
    >>> parse_int_list("1,x")
    Traceback (most recent call last):
    ...
    ValueError: concurrency must be a comma-separated list of integers >= 1, got '1,x'
    """
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise ValueError(f"{name} must be a comma-separated list of integers >= 1, got {text!r}")
    return values


@dataclass(frozen=True)
class SweepConfig:
    """How to sweep. ``request_rate`` finite = open loop (Poisson) with each concurrency as the cap."""

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

    def __post_init__(self) -> None:
        if not self.concurrencies or any(int(c) < 1 for c in self.concurrencies):
            raise ValueError(f"concurrencies must be a non-empty list of integers >= 1, got {self.concurrencies!r}")
        if not self.request_rate > 0:
            raise ValueError(f"request_rate must be > 0 (inf = closed loop), got {self.request_rate!r}")
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

    def settings_dict(self) -> dict[str, Any]:
        """The run JSON's ``settings`` block."""
        return {"concurrency": list(self.concurrencies),
                "request_rate": None if math.isinf(self.request_rate) else self.request_rate,
                "burstiness": self.burstiness, "warmup": self.warmup_requests,
                "goodput_ttft_ms": self.goodput_ttft_ms, "goodput_tpot_ms": self.goodput_tpot_ms,
                "saturation_gain": self.saturation_gain, "request_timeout_s": self.request_timeout_s}


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep is: point ``point_index`` of ``points_total`` with ``done`` of ``total`` requests."""

    point_index: int
    points_total: int
    concurrency: int
    done: int
    total: int
    failed: int = 0
    phase: str = "load"  # "warmup" | "load" | "point_done"
    output_tokens_per_s: float | None = None


def saturated(best_tps: float | None, tps: float, gain: float) -> bool:
    """True when ``tps`` is less than ``gain`` above the best earlier throughput (no earlier point or
    ``gain == 0``: False, i.e. 0 switches early stopping off)."""
    return gain > 0 and best_tps is not None and best_tps > 0 and tps < best_tps * (1.0 + gain)


def best_point(points: Sequence[Mapping[str, Any]], *, ttft_ms: float | None = None,
               tpot_ms: float | None = None, percentile: str = "p99") -> dict[str, Any] | None:
    """The highest-throughput point without failures that meets the TTFT/TPOT targets; None if none does.

    >>> pts = [{"concurrency": 1, "output_tokens_per_s": 10, "failed": 0, "completed": 4,
    ...         "ttft_ms": {"p99": 50}, "tpot_ms": {"p99": 5}},
    ...        {"concurrency": 4, "output_tokens_per_s": 30, "failed": 0, "completed": 4,
    ...         "ttft_ms": {"p99": 400}, "tpot_ms": {"p99": 9}}]
    >>> best_point(pts)["concurrency"], best_point(pts, ttft_ms=100)["concurrency"], best_point(pts, tpot_ms=1)
    (4, 1, None)
    """
    ok = []
    for p in points:
        if p.get("failed", 0) or not p.get("completed"):
            continue
        if ttft_ms is not None and (p.get("ttft_ms") or {}).get(percentile, math.inf) > ttft_ms:
            continue
        if tpot_ms is not None and (p.get("tpot_ms") or {}).get(percentile, math.inf) > tpot_ms:
            continue
        ok.append(p)
    if not ok:
        return None
    best = max(ok, key=lambda p: p.get("output_tokens_per_s") or 0.0)
    return {k: v for k, v in best.items() if k != "samples"}


def new_run(*, model: str, weights: str, server: Mapping[str, Any], config: SweepConfig,
            gpu: Mapping[str, Any] | None = None, vllm_version: str | None = None,
            cold_start_s: float | None = None, notes: Sequence[str] = ()) -> dict[str, Any]:
    """The run JSON header (schema ``selfhost-vs-api/probe-run/1``) with no points yet."""
    if weights not in ("synthetic", "real", "unknown"):
        raise ValueError(f"weights must be 'synthetic', 'real' or 'unknown', got {weights!r}")
    return {
        "schema": RUN_SCHEMA, "run_id": None,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "status": "partial", "error": None, "gpu": dict(gpu) if gpu else None, "model": model,
        "weights": weights, "vllm_version": vllm_version, "cold_start_s": cold_start_s,
        "server": dict(server), "workload": asdict(config.workload), "settings": config.settings_dict(),
        "points": [], "best_point": None, "notes": list(notes),
    }


class _Watchdog:
    """Sets ``point_stop`` when the user stops, the managed process exits, or /health hangs too long."""

    def __init__(self, *, base_url: str, user_stop: threading.Event | None, point_stop: threading.Event,
                 alive: Callable[[], bool] | None, hang_timeout_s: float, interval_s: float) -> None:
        self.base_url, self.user_stop, self.point_stop = base_url, user_stop, point_stop
        self.alive, self.hang_timeout_s, self.interval_s = alive, hang_timeout_s, interval_s
        self.reason: str | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _healthy(self, http: requests.Session) -> bool:
        try:
            return http.get(f"{self.base_url}/health", timeout=min(5.0, self.hang_timeout_s)).status_code == 200
        except requests.RequestException:
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
        """Start watching (again): a watchdog may guard several calls in turn (warm-up, then load)."""
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


def run_sweep(run: dict[str, Any], config: SweepConfig, *, base_url: str, model: str, vocab_size: int,
              alive: Callable[[], bool] | None = None, describe_exit: Callable[[], str] | None = None,
              api_key: str | None = None, stop: threading.Event | None = None,
              on_progress: Callable[[SweepProgress], None] | None = None,
              on_point: Callable[[dict[str, Any]], None] | None = None,
              gpu_indices: Sequence[int] | None = None) -> dict[str, Any]:
    """Run the sweep, filling ``run`` (from :func:`new_run`) in place; returns it with its final status.

    ``alive`` says whether the managed server process still runs (None for an attached endpoint);
    ``describe_exit`` gives the message for a dead server (e.g. with the log tail). ``on_point`` gets the
    run after each point (to save partial results). Never raises for server death, hang or stop: they are
    recorded in ``status``/``error``/``notes``.
    """
    if vocab_size < 64:
        raise ValueError(f"vocab_size must be >= 64, got {vocab_size}")
    points = run.setdefault("points", [])
    notes = run.setdefault("notes", [])
    best_tps: float | None = None
    status, error = "complete", None
    total_points = len(config.concurrencies)
    for i, conc in enumerate(config.concurrencies):
        if stop is not None and stop.is_set():
            status = "interrupted"
            break
        spec = config.workload
        reqs = build_requests(spec, vocab_size=vocab_size, salt=f"point{i}-c{conc}")
        warm = (build_requests(replace(spec, num_requests=config.warmup_requests), vocab_size=vocab_size,
                               salt=f"warmup{i}-c{conc}") if config.warmup_requests else [])
        if spec.num_requests < conc:
            notes.append(f"concurrency {conc}: only {spec.num_requests} requests, so at most "
                         f"{spec.num_requests} run at once")
        counts = {"done": 0, "failed": 0}

        def on_result(r: RequestResult, _i: int = i, _c: int = conc, _counts: dict[str, int] = counts,
                      _n: int = len(reqs)) -> None:
            _counts["done"] += 1
            _counts["failed"] += 0 if r.success else 1
            if on_progress:
                on_progress(SweepProgress(_i, total_points, _c, _counts["done"], _n, _counts["failed"]))

        point_stop = threading.Event()
        watchdog = _Watchdog(base_url=base_url, user_stop=stop, point_stop=point_stop, alive=alive,
                             hang_timeout_s=config.hang_timeout_s, interval_s=config.watch_interval_s)
        if warm:  # a separate call, so that the /metrics counter deltas cover exactly the measured requests
            if on_progress:
                on_progress(SweepProgress(i, total_points, conc, 0, len(reqs), phase="warmup"))
            with watchdog:
                run_load_sync(base_url=base_url, model=model, requests=warm, concurrency=conc,
                              request_timeout_s=config.request_timeout_s, stop=point_stop, api_key=api_key)
        if on_progress:
            on_progress(SweepProgress(i, total_points, conc, 0, len(reqs)))
        before = _scrape(base_url) if not point_stop.is_set() else None
        msampler = _metrics_sampler(base_url, config.metrics_interval_s)
        power = PowerSampler(config.power_interval_s, indices=gpu_indices)
        if msampler is not None:
            msampler.start()
        power.start()
        try:
            with watchdog:
                load = LoadResult(results=[], duration_s=0.0, warmup_results=[], interrupted=True) if (
                    point_stop.is_set()) else run_load_sync(base_url=base_url, model=model, requests=reqs, concurrency=conc,
                                     request_rate=config.request_rate, burstiness=config.burstiness,
                                     seed=spec.seed + i, request_timeout_s=config.request_timeout_s,
                                     on_result=on_result, stop=point_stop, api_key=api_key)
        finally:
            power.stop()
            if msampler is not None:
                msampler.stop()
        if load.results and load.duration_s > 0:
            m = summarize(load.results, load.duration_s, goodput_ttft_ms=config.goodput_ttft_ms,
                          goodput_tpot_ms=config.goodput_tpot_ms)
            point = {"concurrency": conc,
                     "request_rate": None if math.isinf(config.request_rate) else config.request_rate,
                     **metrics_to_dict(m),
                     "server_metrics": _server_metrics(base_url, before, msampler) if watchdog.reason is None
                     else None,
                     "power": _power_block(power.summary(), m.total_output_tokens),
                     "interrupted": load.interrupted,
                     "samples": request_samples(load.results) if config.keep_samples else []}
            points.append(point)
            if on_progress:
                on_progress(SweepProgress(i, total_points, conc, counts["done"], len(reqs), counts["failed"],
                                          phase="point_done", output_tokens_per_s=m.output_tokens_per_s))
        else:
            m = None
        if watchdog.reason == "interrupted" or (stop is not None and stop.is_set()):
            status = "interrupted"
            notes.append(f"interrupted by the user during concurrency {conc}")
            _emit(on_point, run, status)
            break
        if watchdog.reason == "died" or (alive is not None and not alive()):
            error = describe_exit() if describe_exit else "the vLLM server exited during the run"
            status = "failed"
            _emit(on_point, run, status)
            break
        if watchdog.reason == "hung":
            error = (f"the server stopped answering (no /health for {config.hang_timeout_s:.0f} s) during "
                     f"concurrency {conc}; pending requests were cancelled")
            status = "failed"
            _emit(on_point, run, status)
            break
        _emit(on_point, run, "partial")
        if m is None:
            continue
        if m.failed and config.stop_on_errors:
            status = "partial"
            error = f"{m.failed} of {m.failed + m.completed} requests failed at concurrency {conc}: " + (
                m.errors[0] if m.errors else "unknown error")
            break
        if saturated(best_tps, m.output_tokens_per_s, config.saturation_gain):
            remaining = list(config.concurrencies[i + 1:])
            if remaining:
                notes.append(f"stopped early at concurrency {conc}: output tok/s {m.output_tokens_per_s:.1f} "
                             f"gained < {config.saturation_gain:.0%} over the best earlier point "
                             f"({best_tps:.1f}); skipped {remaining}")
                break
        best_tps = max(best_tps or 0.0, m.output_tokens_per_s)
    any_completed = any(p.get("completed") for p in points)
    if status in ("failed", "partial"):
        status = "partial" if any_completed else "failed"
    elif status == "complete" and not any_completed:
        status = "failed"
        error = error or "no request completed"
    run["status"], run["error"] = status, error
    run["best_point"] = best_point(points, ttft_ms=config.goodput_ttft_ms, tpot_ms=config.goodput_tpot_ms)
    if run["best_point"] is None and points and (config.goodput_ttft_ms or config.goodput_tpot_ms):
        notes.append("no point met the TTFT/TPOT targets (p99) without failures")
    _emit(on_point, run, status)
    return run


def _power_block(summary: dict[str, Any] | None, output_tokens: int) -> dict[str, Any] | None:
    if summary is None:
        return None
    energy = summary.get("energy_j")
    return {"mean_w": summary.get("mean_w"), "energy_j": energy, "peak_w": summary.get("peak_w"),
            "gpus": summary.get("gpus"), "mean_utilization_pct": summary.get("mean_utilization_pct"),
            "energy_source": summary.get("energy_source"),
            "j_per_output_token": energy / output_tokens if energy is not None and output_tokens else None}


def _emit(on_point: Callable[[dict[str, Any]], None] | None, run: dict[str, Any], status: str) -> None:
    if on_point is not None:
        run["status"] = status
        on_point(run)
