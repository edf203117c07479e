"""Steady-window throughput and the queue/client fields of PointMetrics: hand-worked goldens, invariants, fuzz."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.load.client import RequestResult
from probes.load.limits import CpuUsage
from probes.load.metrics import metrics_to_dict, summarize
from probes.load.steady import steady_window


def req(i: int, start: float, ttft: float, itl: list[float], *, out: int | None = None, ok: bool = True,
        scheduled: float | None = None) -> RequestResult:
    lat = ttft + sum(itl)
    return RequestResult(index=i, success=ok, output_tokens=out if out is not None else 1 + len(itl),
                         start_s=start, ttft_s=ttft, itl_s=list(itl), latency_s=lat, end_s=start + lat,
                         scheduled_s=start if scheduled is None else scheduled,
                         queue_s=start - (start if scheduled is None else scheduled))


def closed_loop_waves(c: int, waves: int, *, ttft: float = 1.0, gap: float = 0.5, tokens: int = 5,
                      stagger: float = 0.0) -> list[RequestResult]:
    """c slots, each running ``waves`` identical requests back to back (slot k starts ``k * stagger`` late)."""
    lat = ttft + gap * (tokens - 1)
    return [req(w * c + k, k * stagger + w * lat, ttft, [gap] * (tokens - 1))
            for w in range(waves) for k in range(c)]


def test_closed_loop_golden_ramp_and_drain():
    # 2 slots, the second starts 1 s late; 3 requests per slot of 3 s each (ttft 1, then 4 gaps of 0.5).
    rs = closed_loop_waves(2, 3, stagger=1.0)
    w = steady_window(rs, 10.0, concurrency=2)
    # Both in flight from t=1; last send at t=1+6=7; the first end after it that is not replaced is t=9.
    assert (w.start_s, w.end_s, w.ramp_up_s, w.drain_s, w.window_s) == (1.0, 9.0, 1.0, 1.0, 8.0)
    # Chunks in (1, 9]: slot 0 (starts 0, 3, 6): 1.5-3 (4; t=1 is outside), 4-6 (5), 7-9 (5) = 14;
    # slot 1 (starts 1, 4, 7): 2-4 (5), 5-7 (5), 8, 8.5, 9 (3) = 13.
    assert w.output_tokens == 27.0 and w.output_tokens_per_s == 27 / 8 and w.note == ""


def test_open_loop_window_is_first_completion_to_last_arrival():
    rs = [req(0, 0.0, 1.0, [1.0]), req(1, 1.0, 1.0, [1.0]), req(2, 2.5, 1.0, [1.0]), req(3, 3.0, 1.0, [1.0])]
    w = steady_window(rs, 5.0, request_rate=1.0)
    assert (w.start_s, w.end_s, w.drain_s) == (2.0, 3.0, 2.0)
    # Chunks in (2, 3]: request 1's at 3.0 only (0's are at 1, 2; 2's at 3.5, 4.5) -> 1 token / 1 s.
    assert w.output_tokens_per_s == 1.0 and w.note == ""


def test_tokens_per_chunk_weight_comes_from_usage():
    single = [req(0, 0.0, 1.0, [1.0, 1.0], out=3)]
    double = [req(0, 0.0, 1.0, [1.0, 1.0], out=6)]  # 2 tokens per chunk (e.g. a hosted API batching text)
    a, b = steady_window(single, 3.0, concurrency=1), steady_window(double, 3.0, concurrency=1)
    assert b.output_tokens == 2 * a.output_tokens == 6.0


def test_failed_requests_hold_slots_but_bring_no_tokens():
    rs = [req(0, 0.0, 1.0, [1.0, 1.0]), RequestResult(index=1, error="HTTP 500", start_s=0.0, end_s=3.0)]
    w = steady_window(rs, 3.0, concurrency=2)
    assert (w.start_s, w.end_s, w.output_tokens) == (0.0, 3.0, 3.0)


@pytest.mark.parametrize(
    ("results", "kwargs", "why"),
    [
        ([], {}, "no request"),
        ([req(i, 3.0 * i, 1.0, [1.0, 1.0]) for i in range(4)], {"concurrency": 4}, "never 4 requests in flight"),
        ([req(0, 0.0, 5.0, [1.0]), req(1, 1.0, 5.0, [1.0])], {"request_rate": 2.0}, "empty steady window"),
        ([req(0, 0.0, 0.1, [0.1]), req(1, 0.5, 10.0, [0.1])], {"request_rate": 2.0}, "under 10%"),
    ],
    ids=["no-request", "target-never-reached", "first-end-after-last-arrival", "too-short"],
)
def test_fallback_uses_the_whole_run_and_says_why(results, kwargs, why):
    w = steady_window(results, 20.0, **kwargs)
    assert w.note.startswith("whole run: ") and why in w.note
    total = sum(r.output_tokens for r in results if r.success)
    assert (w.ramp_up_s, w.drain_s, w.window_s, w.output_tokens_per_s) == (0.0, 0.0, 20.0, total / 20.0)


def test_summarize_keeps_vllm_whole_run_throughput_and_adds_steady_fields():
    rs = closed_loop_waves(2, 3, stagger=1.0)
    m = summarize(rs, 10.0, concurrency=2)
    assert m.output_tokens_per_s == 30 / 10.0  # vLLM's definition, unchanged
    assert (m.steady_output_tokens_per_s, m.ramp_up_s, m.drain_s, m.steady_window_s) == (27 / 8, 1.0, 1.0, 8.0)
    assert m.steady_note == ""
    assert summarize(rs, 10.0).steady_note.startswith("whole run: never 6 requests")  # no concurrency given


def test_queue_stats_and_queue_inclusive_latency():
    rs = [req(0, 0.0, 1.0, []), req(1, 1.0, 1.0, [], scheduled=0.0), req(2, 2.0, 1.0, [], scheduled=0.0),
          RequestResult(index=3, error="x", start_s=9.0, queue_s=9.0)]
    m = summarize(rs, 3.0, concurrency=1)
    assert m.queue_ms.mean == pytest.approx(1000.0) and m.queue_ms.p99 == pytest.approx(1980.0)
    assert m.e2el_incl_queue_ms.median == pytest.approx(2000.0)  # 1 s latency + 1 s in the queue
    d = metrics_to_dict(m)
    assert d["queue_ms"]["median"] == pytest.approx(1000.0) and d["steady_note"] == ""


def test_client_cpu_fields():
    m = summarize([req(0, 0.0, 1.0, [])], 1.0)
    assert (m.client_cpu_s, m.client_cpu_fraction, m.client_bound, m.client_workers) == (None, None, None, None)
    m = summarize([req(0, 0.0, 1.0, [])], 1.0, cpu=[CpuUsage(0.3, 1.0), CpuUsage(0.8, 1.0)])
    assert m.client_cpu_s == pytest.approx(1.1) and m.client_cpu_fraction == 0.8
    assert m.client_bound is True and m.client_workers == 2
    assert summarize([req(0, 0.0, 1.0, [])], 1.0, cpu=[CpuUsage(0.7, 1.0)]).client_bound is False


_request = st.builds(
    lambda i, start, ttft, itl, ok: req(i, start, ttft, itl, ok=ok),
    st.integers(0, 10_000), st.floats(0.0, 50.0), st.floats(0.0, 5.0),
    st.lists(st.floats(0.0, 1.0), max_size=20), st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_request, min_size=1, max_size=30), st.one_of(st.none(), st.integers(1, 40)),
       st.sampled_from([math.inf, 0.5, 10.0]))
def test_fuzz_window_is_inside_the_run_and_counts_no_more_tokens_than_exist(results, concurrency, rate):
    duration = max(max(r.end_s for r in results), 1e-3)
    w = steady_window(results, duration, concurrency=concurrency, request_rate=rate)
    total = sum(r.output_tokens for r in results if r.success)
    assert 0.0 <= w.start_s <= w.end_s <= duration + 1e-9
    assert w.ramp_up_s + w.window_s + w.drain_s == pytest.approx(duration)
    assert 0.0 <= w.output_tokens <= total + 1e-9
    assert w.output_tokens_per_s == pytest.approx(w.output_tokens / w.window_s)
    if w.note == "":
        assert w.window_s >= 0.1 * duration and w.output_tokens > 0
    else:
        assert w.note.startswith("whole run: ") and w.window_s == duration
