"""Replay a production trace as one measured point, and record what the prefix cache made of it.

:func:`read_trace` reads the slice (:mod:`calculators.traces`: the first ``max_requests`` requests, checked
line by line; a bad file is a :class:`~calculators.traces.TraceError`, a ``ValueError`` naming the line,
raised before any server starts). :func:`run_replay` plans it (:func:`probes.load.replay.plan_replay`:
scaled offsets, lengths fitted to the server's max model length), builds the prompts lazily
(:class:`~probes.load.replay.ReplayPrompts`), and measures it as one point through
:func:`probes.plan.measure.measure_point` with a :class:`~probes.plan.measure.PointPlan`: the same warm-up,
watchdog, ``/metrics`` deltas, power sampling and metrics as every point. One client process (the lazily
built prompts cannot cross processes; one loop sends about 500 requests/s, ``probes.load.limits``): the
point's ``client_cpu_fraction`` and the lateness below say whether it kept up.

``run["replay"]`` (checked by :mod:`probes.results.schema`):

* what was replayed: ``trace_name``, ``format``, ``time_scale``, ``max_requests``, ``block_tokens``,
  ``overlong``, ``concurrency`` (None: uncapped), ``seed``, ``salt``, ``trace_requests``, ``trace_span_s``,
  ``replay_span_s``, ``offered_rate`` (req/s over the replay span; None when all arrive at once);
* what fitting did: ``max_model_len`` (None: unknown, nothing cut), ``length_limit_tokens``,
  ``planned_requests``, ``skipped_requests``, ``clipped_requests``, ``clipped_input_tokens``,
  ``clipped_output_tokens``, ``raised_to_one``, ``sent_requests``;
* prefix caching side by side: ``prefix_reuse_fraction_trace`` (:mod:`calculators.traffic`'s
  ``prefix_reuse_fraction`` of the slice: per hash id, over the trace's own lengths, 512-token blocks), ``prefix_reuse_fraction_sent`` (the same idea over what was sent, after
  shrinking and clipping; :func:`probes.load.replay.sent_prefix_reuse_fraction`), and the measured
  ``prefix_cache_hit_rate`` = Δ ``vllm:prefix_cache_hits_total`` / Δ ``vllm:prefix_cache_queries_total``
  over the measured requests (warm-up excluded), with ``prefix_cache_hits`` / ``prefix_cache_queries`` in
  tokens (None on a server without those counters);
* lateness: ``lateness_ms`` (median, p90, p99, max), ``late_requests``, ``late_threshold_ms``.

Status: ``complete`` when every sent request succeeded; ``partial`` with failures (the error names how many
and the first kind), or when stopped by a server death or hang after some completed; ``failed`` when none
completed; ``interrupted`` on the user's stop. ``best_point`` stays None: the trace sets the load, so the
point is not a capacity measurement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from probes.load.backends import BACKENDS, Backend
from probes.load.fleet import FleetSpec
from probes.load.replay import (
    TEXT_MARGIN_TOKENS,
    PlannedRequest,
    ReplayPlan,
    ReplayPrompts,
    TraceLike,
    TraceReplay,
    lateness_summary,
    plan_replay,
    sent_prefix_reuse_fraction,
)
from probes.load.workload import TEXT_KINDS
from probes.plan.config import SweepConfig, SweepProgress
from probes.plan.measure import Load, PointPlan, Target, measure_point

__all__ = ["read_trace", "trace_reuse_fraction", "run_replay", "describe_replay"]


def read_trace(replay: TraceReplay) -> tuple[str, list[TraceLike]]:
    """``(format, requests)`` of the replay's slice; TraceError (a ValueError naming the line) when bad."""
    from calculators.traces import detect_format, iter_requests  # noqa: PLC0415 - the trace readers

    fmt = detect_format(replay.path)
    return fmt, list(iter_requests(replay.path, max_requests=replay.max_requests))


def trace_reuse_fraction(trace: Sequence[TraceLike], fmt: str = "mooncake") -> float | None:
    """The trace slice's own ``prefix_reuse_fraction``, by :func:`calculators.traffic.prefix_reuse_tokens` (the
    one definition, also behind ``python -m calculators traffic``) over the slice's columns; None without
    hash ids or tokens.

    >>> from calculators.traces import TraceRequest as T
    >>> trace_reuse_fraction([T(0.0, 1024, 1, (1, 2)), T(1.0, 1024, 1, (1, 2)), T(2.0, 1024, 1, (1, 3))])
    0.5
    """
    import numpy as np  # noqa: PLC0415

    from calculators.traces import TraceArrays  # noqa: PLC0415
    from calculators.traffic import prefix_reuse_tokens  # noqa: PLC0415

    if not any(r.hash_ids for r in trace):
        return None
    lengths = [len(r.hash_ids) for r in trace]
    arrays = TraceArrays(
        name="slice", format=fmt, t_s=np.asarray([r.t_s for r in trace], np.float64),
        input_tokens=np.asarray([r.input_tokens for r in trace], np.int64),
        output_tokens=np.asarray([r.output_tokens for r in trace], np.int64),
        hash_ids=np.asarray([h for r in trace for h in r.hash_ids], np.int64),
        hash_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    total = int(arrays.input_tokens.sum())
    return float(prefix_reuse_tokens(arrays).sum()) / total if total else None


def _static_block(replay: TraceReplay, fmt: str, trace: Sequence[TraceLike], plan: ReplayPlan,
                  max_model_len: int | None, salt: str) -> dict[str, Any]:
    rate = plan.mean_rate
    return {
        "trace_name": Path(replay.path).name, "format": fmt, "time_scale": replay.time_scale,
        "max_requests": replay.max_requests, "block_tokens": replay.block_tokens, "overlong": replay.overlong,
        "concurrency": replay.concurrency, "seed": replay.seed, "salt": salt,
        "trace_requests": plan.trace_requests, "trace_span_s": plan.trace_span_s,
        "replay_span_s": plan.replay_span_s, "offered_rate": rate if rate != float("inf") else None,
        "max_model_len": max_model_len, "length_limit_tokens": plan.length_limit_tokens,
        "planned_requests": len(plan.requests), "skipped_requests": plan.skipped,
        "clipped_requests": plan.clipped, "clipped_input_tokens": plan.clipped_input_tokens,
        "clipped_output_tokens": plan.clipped_output_tokens, "raised_to_one": plan.raised_to_one,
        "sent_requests": 0,
        "prefix_reuse_fraction_trace": trace_reuse_fraction(trace, fmt),
        "prefix_reuse_fraction_sent": sent_prefix_reuse_fraction(plan.requests, replay.block_tokens)
        if fmt == "mooncake" else None,
        "prefix_cache_hit_rate": None, "prefix_cache_hits": None, "prefix_cache_queries": None,
        "lateness_ms": None, "late_requests": None, "late_threshold_ms": None,
    }


def _plan_notes(block: dict[str, Any], text: bool) -> list[str]:
    speed = f"time scale {block['time_scale']:g} ({block['time_scale']:g}x the trace's speed)"
    notes = [f"trace replay: {block['trace_name']} ({block['format']}), {block['trace_requests']} requests over "
             f"{block['trace_span_s']:.1f} s of trace, {speed}: {block['replay_span_s']:.1f} s of arrivals"]
    if block["block_tokens"] != 512:
        notes.append(f"shrunken replay: {block['block_tokens']} tokens a hash block, every length x "
                     f"{block['block_tokens']}/512")
    if block["max_model_len"] is None:
        notes.append("the server's max model length is unknown: requests are sent at their trace lengths")
    if block["clipped_requests"]:
        notes.append(f"{block['clipped_requests']} requests longer than the limit of {block['length_limit_tokens']} "
                     f"tokens were clipped ({block['clipped_input_tokens']} input and "
                     f"{block['clipped_output_tokens']} output tokens cut; the leading blocks are kept)")
    if block["skipped_requests"]:
        notes.append(f"{block['skipped_requests']} requests longer than the limit of "
                     f"{block['length_limit_tokens']} tokens were skipped")
    if block["raised_to_one"]:
        notes.append(f"{block['raised_to_one']} requests with 0 input or output tokens were sent with 1")
    if text:
        notes.append(f"text prompts: lengths are words (about one token each), {TEXT_MARGIN_TOKENS} tokens kept "
                     "spare under the max model length; shared prefixes are exact in text, approximate in tokens")
    return notes


def describe_replay(block: dict[str, Any] | None) -> list[str]:
    """Lines for the CLI table: what was sent, the prefix cache side by side, lateness.

    >>> describe_replay({"trace_name": "t.jsonl", "sent_requests": 3, "trace_requests": 4, "time_scale": 2,
    ...     "prefix_cache_hit_rate": 0.25, "prefix_reuse_fraction_sent": 0.3, "prefix_reuse_fraction_trace": 0.31,
    ...     "lateness_ms": {"p99": 1.5, "max": 2.0}, "late_requests": 0, "late_threshold_ms": 50.0})[1]
    'prefix cache hit rate 25.0 % measured (vLLM counters) vs 30.0 % expected from what was sent, 31.0 % in the trace slice'
    """
    if not block:
        return []

    def pct(x: Any) -> str:
        return "-" if x is None else f"{100 * x:.1f} %"

    lines = [f"trace {block['trace_name']}: {block['sent_requests']} of {block['trace_requests']} requests sent "
             f"at time scale {block['time_scale']:g}"]
    lines.append(f"prefix cache hit rate {pct(block.get('prefix_cache_hit_rate'))} measured (vLLM counters) vs "
                 f"{pct(block.get('prefix_reuse_fraction_sent'))} expected from what was sent, "
                 f"{pct(block.get('prefix_reuse_fraction_trace'))} in the trace slice")
    late = block.get("lateness_ms")
    if late:
        lines.append(f"send lateness p99 {late['p99']:.1f} ms, max {late['max']:.1f} ms; "
                     f"{block['late_requests']} sent > {block['late_threshold_ms']:g} ms late")
    return lines


def _warmup(plan: ReplayPlan, count: int, prompts_kwargs: dict[str, Any]) -> list[Any]:
    """``count`` warm-up requests with the lengths of the first planned ones and prompts of their own (no hash
    ids, another salt): they warm connections and the server without caching any of the trace's blocks."""
    planned = [PlannedRequest(k, 0.0, p.input_tokens, p.output_tokens) for k, p in
               enumerate(plan.requests[:count])]
    return list(ReplayPrompts(planned, **{**prompts_kwargs, "salt": prompts_kwargs["salt"] + "-warmup"}))


def _finish_status(mp: Any, alive: Callable[[], bool] | None, describe_exit: Callable[[], str] | None,
                   stop: threading.Event | None, config: SweepConfig) -> tuple[str, str | None]:
    """``(status, error)`` of a replay from its one measured point (module docstring)."""
    point = mp.point
    if mp.stop_reason == "interrupted" or (stop is not None and stop.is_set()):
        return "interrupted", None
    if mp.stop_reason == "died" or (alive is not None and not alive()):
        error = describe_exit() if describe_exit else "the vLLM server exited during the replay"
    elif mp.stop_reason == "hung":
        error = (f"the server stopped answering (no /health for {config.hang_timeout_s:.0f} s) during the "
                 "replay; pending requests were cancelled")
    elif point is None:
        error = "no request of the trace was measured"
    elif point.get("failed"):
        errors = point.get("errors") or []
        error = (f"{point['failed']} of {point['failed'] + point['completed']} replayed requests failed: "
                 + (errors[0] if errors else "unknown error"))
    else:
        return "complete", None
    return ("partial" if point is not None and point.get("completed") else "failed"), error


def run_replay(run: dict[str, Any], config: SweepConfig, replay: TraceReplay, trace: Sequence[TraceLike], *,
               trace_format: str, base_url: str, model: str, max_model_len: int | None = None,
               vocab_size: int | None = None, token_pool: Sequence[int] | None = None,
               backend: Backend | None = None, alive: Callable[[], bool] | None = None,
               describe_exit: Callable[[], str] | None = None, api_key: str | None = None,
               stop: threading.Event | None = None, on_progress: Callable[[SweepProgress], None] | None = None,
               on_point: Callable[[dict[str, Any]], None] | None = None,
               gpu_indices: Sequence[int] | None = None, fleet: FleetSpec | None = None) -> dict[str, Any]:
    """Replay ``trace`` (from :func:`read_trace`) against the server, filling ``run`` (from
    :func:`probes.plan.sweep.new_run`) in place; returns it with its status (module docstring).

    ``config`` supplies the warm-up count (``warmup_requests``, 0 = none), timeouts, goodput targets and
    whether to keep per-request samples; its workload and concurrency list do not apply. Never raises for
    server death, hang or stop. ``fleet``: spread the replay over these replicas (:mod:`probes.load.fleet`).
    """
    kind = backend or BACKENDS["vllm-token-ids"]
    target = Target(base_url=base_url, model=model, vocab_size=vocab_size, api_key=api_key, alive=alive,
                    describe_exit=describe_exit, gpu_indices=gpu_indices,
                    token_pool=tuple(token_pool) if token_pool is not None else None, backend=kind,
                    fleet=fleet)
    run["request_kind"] = {"name": kind.name, "vllm_extras": kind.vllm_extras, "path": kind.path}
    points, notes = run.setdefault("points", []), run.setdefault("notes", [])
    text = kind.name in TEXT_KINDS
    plan = plan_replay(trace, time_scale=replay.time_scale, block_tokens=replay.block_tokens,
                       max_model_len=max_model_len, margin_tokens=TEXT_MARGIN_TOKENS if text else 0,
                       overlong=replay.overlong)
    salt = str(run.get("created_at") or "")
    block = _static_block(replay, trace_format, trace, plan, max_model_len, salt)
    run["replay"] = block
    notes.extend(_plan_notes(block, text))
    if plan.requests:
        sent_in = [p.input_tokens for p in plan.requests]
        sent_out = [p.output_tokens for p in plan.requests]
        run["workload"] = {**(run.get("workload") or {}), "input_tokens": round(sum(sent_in) / len(sent_in)),
                           "output_tokens": round(sum(sent_out) / len(sent_out)),
                           "num_requests": len(plan.requests), "distribution": "trace",
                           "trace": block["trace_name"], "seed": replay.seed}
    run["best_point"] = None
    if not plan.requests:
        run["status"], run["error"] = "failed", (
            f"every request of the trace slice is longer than the limit of {plan.length_limit_tokens} tokens "
            f"and --trace-overlong is skip: nothing to send")
        if on_point:
            on_point(run)
        return run
    prompts_kwargs: dict[str, Any] = {"block_tokens": replay.block_tokens, "text": text, "seed": replay.seed,
                                      "salt": salt}
    if not text:
        prompts_kwargs.update(vocab_size=vocab_size, token_pool=token_pool)
    prompts = ReplayPrompts(plan.requests, **prompts_kwargs)
    warm = _warmup(plan, min(config.warmup_requests, len(plan.requests)), prompts_kwargs)
    load = Load(replay.concurrency, plan.mean_rate)
    mp = measure_point(target, load, config, index=0, points_total=1, stop=stop, on_progress=on_progress,
                       plan=PointPlan(prompts, [p.offset_s for p in plan.requests], warm, workers=1))
    if mp.point is not None:
        mp.point["trace"] = block["trace_name"]
        points.append(mp.point)
        sm = mp.point.get("server_metrics") or {}
        block.update(prefix_cache_hit_rate=sm.get("prefix_cache_hit_rate"),
                     prefix_cache_hits=sm.get("prefix_cache_hits"),
                     prefix_cache_queries=sm.get("prefix_cache_queries"))
    block["sent_requests"] = len(mp.results)
    if mp.results:
        block.update(lateness_summary(mp.results))
        if block["late_requests"]:
            notes.append(f"{block['late_requests']} of {len(mp.results)} requests were sent more than "
                         f"{block['late_threshold_ms']:g} ms after their scheduled time (max "
                         f"{block['lateness_ms']['max']:.0f} ms): the client fell behind the trace"
                         + (" or waited for the concurrency cap" if replay.concurrency else ""))
    status, error = _finish_status(mp, alive, describe_exit, stop, config)
    if status == "interrupted":
        notes.append("interrupted by the user during the replay")
    run["status"], run["error"] = status, error
    if on_point is not None:
        on_point(run)
    return run
