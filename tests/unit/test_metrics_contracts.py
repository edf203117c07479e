"""The run JSON's per-point record and per-request samples, field by field (the Results page, the store and the
comparison with ``vllm bench serve`` read these keys), plus the error-kind summary and goodput edges."""

from __future__ import annotations

import pytest

from probes.load.client import RequestResult
from probes.load.metrics import metrics_to_dict, request_samples, stats_ms, summarize


def _ok(i: int, out: int = 3, ttft: float = 0.1, itl: tuple[float, ...] = (0.02, 0.04), latency: float = 0.16,
        prompt: int = 10, start: float = 0.0) -> RequestResult:
    return RequestResult(index=i, success=True, prompt_tokens=prompt, output_tokens=out, ttft_s=ttft,
                         itl_s=list(itl), latency_s=latency, start_s=start)


def test_request_samples_are_these_records_in_ms():
    results = [_ok(4, start=1.25), RequestResult(index=5, error="HTTP 503", start_s=2.5)]
    assert request_samples(results) == [
        {"index": 4, "success": True, "error": "", "prompt_tokens": 10, "output_tokens": 3,
         "requested_output_tokens": 0, "ttft_ms": 100.0, "latency_ms": 160.0, "itl_ms": [20.0, 40.0],
         "start_s": 1.25, "queue_ms": 0.0},
        {"index": 5, "success": False, "error": "HTTP 503", "prompt_tokens": 0, "output_tokens": 0,
         "requested_output_tokens": 0, "ttft_ms": 0.0, "latency_ms": 0.0, "itl_ms": [], "start_s": 2.5,
         "queue_ms": 0.0},
    ]


def test_metrics_to_dict_is_every_field_with_stats_as_objects():
    m = summarize([_ok(0), RequestResult(index=1, error="HTTP 500")], 0.5, goodput_ttft_ms=200)
    d = metrics_to_dict(m)
    flat = {"completed": 1, "failed": 1, "duration_s": 0.5, "total_input_tokens": 10, "total_output_tokens": 3,
            "requests_per_s": 2.0, "output_tokens_per_s": 6.0, "total_tokens_per_s": 26.0,
            "goodput_requests_per_s": 2.0, "errors": ["1× HTTP 500"],
            # output-length check, steady window and client facts (no CPU meter given: None)
            "output_length_mismatches": 0, "output_length_min_ratio": None, "steady_output_tokens_per_s": 6.0,
            "ramp_up_s": 0.0, "drain_s": 0.0, "steady_window_s": 0.5,
            "steady_note": "whole run: never 2 requests in flight", "client_cpu_s": None,
            "client_cpu_fraction": None, "client_bound": None, "client_workers": None}
    stats = {"ttft_ms": {"mean": 100.0, "median": 100.0, "p90": 100.0, "p99": 100.0, "std": 0.0},
             "tpot_ms": {"mean": 30.0, "median": 30.0, "p90": 30.0, "p99": 30.0, "std": 0.0},
             "itl_ms": {"mean": 30.0, "median": 30.0, "p90": 38.0, "p99": 39.8, "std": 10.0},
             "e2el_ms": {"mean": 160.0, "median": 160.0, "p90": 160.0, "p99": 160.0, "std": 0.0},
             "queue_ms": {"mean": 0.0, "median": 0.0, "p90": 0.0, "p99": 0.0, "std": 0.0},
             "e2el_incl_queue_ms": {"mean": 160.0, "median": 160.0, "p90": 160.0, "p99": 160.0, "std": 0.0}}
    assert sorted(d) == sorted(flat | stats)
    assert {k: d[k] for k in flat} == flat and isinstance(d["errors"], list)
    for key, want in stats.items():
        assert d[key] == pytest.approx(want, abs=1e-9), key


def test_error_kinds_most_frequent_first_at_most_ten_and_unnamed_failures():
    failed = [RequestResult(index=i, error=f"kind {i % 12}") for i in range(30)]  # kinds 0-5: 3 each, 6-11: 2
    failed += [RequestResult(index=99), RequestResult(index=98, error="")]
    m = summarize(failed, 1.0)
    assert m.completed == 0 and m.failed == 32
    assert m.errors[:6] == tuple(f"3× kind {k}" for k in range(6)) and len(m.errors) == 10
    assert "2× failed (no message)" in summarize(failed[-2:], 1.0).errors


def test_zero_output_tokens_count_as_one_and_single_token_requests_have_no_tpot():
    m = summarize([_ok(0, out=0, itl=(), latency=0.1), _ok(1, out=1, itl=(), latency=0.3)], 2.0,
                  goodput_tpot_ms=1)
    assert m.total_output_tokens == 2 and m.output_tokens_per_s == 1.0
    assert m.tpot_ms == stats_ms([]) and m.goodput_requests_per_s == 1.0  # TPOT counts as 0 for goodput


@pytest.mark.parametrize(("targets", "good"), [
    ({"goodput_ttft_ms": 100}, 1), ({"goodput_ttft_ms": 99.9}, 0),  # TTFT exactly at the target is good
    ({"goodput_e2el_ms": 160}, 1), ({"goodput_e2el_ms": 159}, 0),
    ({"goodput_tpot_ms": 30}, 1), ({"goodput_tpot_ms": 29}, 0),
    ({"goodput_ttft_ms": 100, "goodput_e2el_ms": 159}, 0),  # every target must hold
])
def test_goodput_targets_are_inclusive_and_all_must_hold(targets, good):
    assert summarize([_ok(0)], 1.0, **targets).goodput_requests_per_s == pytest.approx(good)


@pytest.mark.parametrize("field", ["goodput_ttft_ms", "goodput_tpot_ms", "goodput_e2el_ms"])
def test_targets_must_be_positive(field):
    with pytest.raises(ValueError, match=f"{field} must be > 0 ms or None, got 0"):
        summarize([_ok(0)], 1.0, **{field: 0})
    with pytest.raises(ValueError, match=r"duration_s must be > 0, got 0"):
        summarize([_ok(0)], 0)


def test_a_failure_before_successes_skips_only_itself():
    m = summarize([RequestResult(index=0, error="x"), _ok(1), _ok(2)], 1.0)
    assert (m.completed, m.failed, m.total_output_tokens) == (2, 1, 6)


def test_two_token_requests_have_a_tpot():
    m = summarize([_ok(0, out=2, itl=(0.05,), latency=0.15)], 1.0)
    assert m.tpot_ms.mean == pytest.approx(50.0)  # (0.15 - 0.1) / (2 - 1)
