"""Probe plans: the loop that measures load points one after another, and the fixed-list policy.

The loop (:func:`run_sweep`) asks a pure policy for the next load from the points measured so far,
measures it (:func:`probes.plan.measure.measure_point`), appends the point to the run JSON, and repeats:

* :func:`next_concurrency`: each concurrency of ``config.concurrencies`` in turn, closed loop (or open loop
  at ``request_rate`` with each concurrency as the cap);
* ``config.search`` set: the SLO capacity search (:func:`probes.plan.search.next_step`), whose answer
  becomes ``run["operating_point"]``.

Stopping rules, in order:

* the user's ``stop`` event -> status ``"interrupted"`` (points so far kept);
* the managed server exits, or ``/health`` stays unanswered for ``hang_timeout_s`` -> ``"failed"`` if no
  point has a completed request, else ``"partial"``, with the message in ``error``;
* list: a point with failed requests (``stop_on_errors``) -> ``"partial"`` (a search counts failures as
  an SLO miss instead and goes on);
* list: saturation, output tok/s gained less than ``saturation_gain`` over the BEST earlier point,
  ``tps < best_tps * (1 + gain)`` -> stop early, status ``"complete"`` (a note says so); ``gain = 0``
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from probes.load.backends import BACKENDS, Backend
from probes.load.fleet import FleetSpec
from probes.plan.config import SweepConfig, SweepProgress, parse_int_list
from probes.plan.measure import Load, Target, measure_point
from probes.plan.search import Probe, SearchStep, SloSearch, next_step, operating_point, point_verdict
from probes.results.store import RUN_SCHEMA

__all__ = [
    "RUN_SCHEMA",
    "SweepConfig",
    "SweepProgress",
    "Decision",
    "new_run",
    "run_sweep",
    "best_point",
    "saturated",
    "saturation_throughput",
    "next_concurrency",
    "next_search_load",
    "parse_int_list",
]


@dataclass(frozen=True)
class Decision:
    """A policy's answer: the next ``load`` (None = stop), a ``note`` for the run, and for a stop on errors
    the run ``status`` and ``error``."""

    load: Load | None
    note: str | None = None
    status: str | None = None
    error: str | None = None


def saturated(best_tps: float | None, tps: float, gain: float) -> bool:
    """True when ``tps`` is less than ``gain`` above the best earlier throughput (no earlier point or
    ``gain == 0``: False, i.e. 0 switches early stopping off)."""
    return gain > 0 and best_tps is not None and best_tps > 0 and tps < best_tps * (1.0 + gain)


def saturation_throughput(point: Mapping[str, Any]) -> float:
    """The throughput the saturation rule compares, in output tok/s: the ONE place that reads it.

    The steady window's ``steady_output_tokens_per_s`` (ramp-up and drain excluded,
    :mod:`probes.load.steady`); the whole point's ``output_tokens_per_s`` for points recorded without it.

    >>> saturation_throughput({"output_tokens_per_s": 12.5, "steady_output_tokens_per_s": 14.0})
    14.0
    >>> saturation_throughput({"output_tokens_per_s": 12.5}), saturation_throughput({})
    (12.5, 0.0)
    """
    steady = point.get("steady_output_tokens_per_s")
    return float(steady if steady else point.get("output_tokens_per_s") or 0.0)


def next_concurrency(config: SweepConfig, history: Sequence[Mapping[str, Any] | None]) -> Decision:
    """The fixed-list policy: the next concurrency of ``config.concurrencies`` after ``history`` (the points
    measured so far, None for a point without results), or why to stop.

    >>> from probes.load.workload import WorkloadSpec
    >>> c = SweepConfig(workload=WorkloadSpec(8, 4, 4), concurrencies=(1, 4, 16))
    >>> next_concurrency(c, []).load, next_concurrency(c, [{"output_tokens_per_s": 10, "failed": 0}]).load
    (Load(concurrency=1, request_rate=inf), Load(concurrency=4, request_rate=inf))
    """
    i = len(history)
    last = history[-1] if history else None
    if last is not None:
        conc = last.get("concurrency")
        failed = int(last.get("failed") or 0)
        if failed and config.stop_on_errors:
            errors = last.get("errors") or []
            return Decision(None, status="partial", error=(
                f"{failed} of {failed + int(last.get('completed') or 0)} requests failed at concurrency {conc}: "
                + (errors[0] if errors else "unknown error")))
        earlier = [saturation_throughput(p) for p in history[:-1] if p is not None]
        best = max(earlier) if earlier else None
        tps = saturation_throughput(last)
        remaining = list(config.concurrencies[i:])
        if remaining and saturated(best, tps, config.saturation_gain):
            return Decision(None, note=(
                f"stopped early at concurrency {conc}: output tok/s {tps:.1f} gained < "
                f"{config.saturation_gain:.0%} over the best earlier point ({best:.1f}); skipped {remaining}"))
    if i >= len(config.concurrencies):
        return Decision(None)
    return Decision(Load(config.concurrencies[i] or None, config.request_rate))  # 0 = uncapped open loop


def _search_load(search: SloSearch, config: SweepConfig, value: float) -> Load:
    if search.by == "concurrency":
        return Load(int(value), config.request_rate)
    return Load(search.max_concurrency, value)


def _fmt_value(search: SloSearch, value: float) -> str:
    return f"{value:.4g} req/s" if search.by == "request_rate" else f"concurrency {value:.0f}"


def _probes(search: SloSearch, measured: Sequence[tuple[float, Mapping[str, Any] | None]]) -> list[Probe]:
    return [point_verdict(search, p, v) if p is not None else Probe(v, False, "no request measured")
            for v, p in measured]


def next_search_load(config: SweepConfig, measured: Sequence[tuple[float, Mapping[str, Any] | None]]
                     ) -> tuple[Decision, SearchStep]:
    """The SLO-search policy: the next load from the (value, point) pairs measured so far.

    When every request has failed since the start (a wrong model name, a prompt over the context...), the
    load is not the cause: the search stops (status ``"partial"``, then ``"failed"``) instead of walking
    down to the lowest rate. A later point whose requests all fail (e.g. rate limits) is an SLO miss.
    """
    assert config.search is not None
    step = next_step(config.search, _probes(config.search, measured))
    last = measured[-1][1] if measured else None
    never_worked = not any(p.get("completed") for _, p in measured if p is not None)
    if last is not None and last.get("failed") and never_worked:  # not the load: a request that cannot work
        errors = last.get("errors") or []
        return Decision(None, status="partial", error=(
            f"every request failed at {_fmt_value(config.search, measured[-1][0])}, so the search stopped: "
            + (errors[0] if errors else "unknown error"))), SearchStep(None, False, "every request failed",
                                                                      step.lower, step.upper)
    if step.next_value is None:
        return Decision(None, note=f"SLO search: {step.reason}"), step
    return Decision(_search_load(config.search, config, step.next_value)), step


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


def _count_note(config: SweepConfig, load: Load, measured: int, warmup: int) -> str | None:
    floor = config.workload.num_requests
    if measured == floor and not warmup:
        return None
    why = ""
    if measured > floor:
        by_waves = load.concurrency is not None and measured == math.ceil(config.min_waves * load.concurrency)
        why = (f" (at least {config.min_waves:g} x concurrency" if by_waves else
               f" (at least {config.min_point_duration_s:g} s of arrivals") + f"; {floor} requested is a floor)"
    return f"{load.label}: {measured} measured requests{why}, {warmup} warm-up requests in the same session"


def run_sweep(run: dict[str, Any], config: SweepConfig, *, base_url: str, model: str,
              vocab_size: int | None = None, alive: Callable[[], bool] | None = None,
              describe_exit: Callable[[], str] | None = None,
              api_key: str | None = None, stop: threading.Event | None = None,
              on_progress: Callable[[SweepProgress], None] | None = None,
              on_point: Callable[[dict[str, Any]], None] | None = None,
              gpu_indices: Sequence[int] | None = None, token_pool: Sequence[int] | None = None,
              backend: Backend | None = None, fleet: FleetSpec | None = None) -> dict[str, Any]:
    """Run the plan (list or search), filling ``run`` (from :func:`new_run`) in place; returns it with its
    final status (and ``operating_point`` for a search).

    ``alive`` says whether the managed server process still runs (None for an attached endpoint);
    ``describe_exit`` gives the message for a dead server (e.g. with the log tail). ``on_point`` gets the
    run after each point (to save partial results). Never raises for server death, hang or stop: they are
    recorded in ``status``/``error``/``notes``. Prompts: token ids (``backend`` vllm-token-ids, the default)
    drawn below ``vocab_size`` or only from ``token_pool`` (ids the server's tokenizer returned), or text
    for the ``completions``/``chat`` kinds (no vocabulary needed). ``fleet``: spread each point over these
    replicas (:mod:`probes.load.fleet`; ``base_url`` is the first), each point then has a ``fleet`` block.
    """
    kind = backend or BACKENDS["vllm-token-ids"]
    target = Target(base_url=base_url, model=model, vocab_size=vocab_size, api_key=api_key, alive=alive,
                    describe_exit=describe_exit, gpu_indices=gpu_indices,
                    token_pool=tuple(token_pool) if token_pool is not None else None, backend=kind,
                    fleet=fleet)
    run["request_kind"] = {"name": kind.name, "vllm_extras": kind.vllm_extras, "path": kind.path}
    points = run.setdefault("points", [])
    notes = run.setdefault("notes", [])
    search = config.search
    status, error, stopped = "complete", None, None
    total_points = search.max_points if search else len(config.concurrencies)
    history: list[dict[str, Any] | None] = []
    measured: list[tuple[float, dict[str, Any] | None]] = []
    step: SearchStep | None = None

    def decide() -> Decision:
        nonlocal step
        if search is None:
            return next_concurrency(config, history)
        decision, step = next_search_load(config, measured)
        return decision

    decision = decide()
    while decision.load is not None:
        if stop is not None and stop.is_set():
            status, stopped = "interrupted", "interrupted by the user"
            break
        load = decision.load
        mp = measure_point(target, load, config, index=len(history), points_total=total_points, stop=stop,
                           on_progress=on_progress)
        if (note := _count_note(config, load, mp.measured_requests, mp.warmup_requests)) is not None:
            notes.append(note)
        if load.concurrency is not None and mp.measured_requests < load.concurrency:
            notes.append(f"{load.label}: only {mp.measured_requests} requests, so at most "
                         f"{mp.measured_requests} run at once")
        if mp.point is not None:
            points.append(mp.point)
        history.append(mp.point)
        value = float(load.request_rate if search is not None and search.by == "request_rate"
                      else load.concurrency or 0)
        measured.append((value, mp.point))
        if mp.point is not None and search is not None:
            verdict = point_verdict(search, mp.point, value)
            mp.point["slo"] = {"met": verdict.ok, "why": verdict.why}
        if mp.stop_reason == "interrupted" or (stop is not None and stop.is_set()):
            status, stopped = "interrupted", f"interrupted by the user during {load.label}"
            notes.append(stopped)
            _emit(on_point, run, status)
            break
        if mp.stop_reason == "died" or (alive is not None and not alive()):
            error = describe_exit() if describe_exit else "the vLLM server exited during the run"
            status, stopped = "failed", f"the server exited during {load.label}"
            _emit(on_point, run, status)
            break
        if mp.stop_reason == "hung":
            error = (f"the server stopped answering (no /health for {config.hang_timeout_s:.0f} s) during "
                     f"{load.label}; pending requests were cancelled")
            status, stopped = "failed", f"the server stopped answering during {load.label}"
            _emit(on_point, run, status)
            break
        _emit(on_point, run, "partial")
        decision = decide()
        if decision.note:
            notes.append(decision.note)
        if decision.status is not None:
            status, error = decision.status, decision.error
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
    if search is not None:
        last = step or SearchStep(None, False, "no point was measured", None, None)
        run["operating_point"] = operating_point(search, [(v, p) for v, p in measured if p is not None], last,
                                                 stopped=stopped)
    _emit(on_point, run, status)
    return run


def _emit(on_point: Callable[[dict[str, Any]], None] | None, run: dict[str, Any], status: str) -> None:
    if on_point is not None:
        run["status"] = status
        on_point(run)
