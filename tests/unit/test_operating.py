"""The SLO operating point (``calculators.operating``): hand-computed interpolation, the edge cases, and the
prefill/decode split that gives back the measured requests/s through the cost model."""

from __future__ import annotations

import dataclasses
import math

import pytest

from calculators import cost
from calculators.operating import (
    SloNotMet,
    SloTarget,
    find_operating_point,
    point_rates,
    shape_warning,
    source_text,
)
from calculators.scenario import DEFAULT_SCENARIO, replace_field


def _pt(load: float, otps: float, ttft: dict, tpot: dict | None = None, *, completed: int = 10, failed: int = 0,
        axis: str = "concurrency", duration_s: float = 10.0, tin: int = 1000, tout: int = 500,
        ttft_mean: float = 20.0, e2el_mean: float = 200.0, **extra) -> dict:
    return {axis: load, "output_tokens_per_s": otps, "completed": completed, "failed": failed,
            "duration_s": duration_s, "total_input_tokens": tin, "total_output_tokens": tout,
            "ttft_ms": {"mean": ttft_mean, **ttft}, "tpot_ms": tpot or {}, "e2el_ms": {"mean": e2el_mean}, **extra}


def test_interpolates_on_the_first_metric_to_reach_its_target():
    # c=2 passes (TTFT p90 100, TPOT p90 10); c=6 fails both: TTFT 300 (target 200 -> t=0.5),
    # TPOT 30 (target 15 -> t=0.25). The tighter one wins: t=0.25 -> c=3, 150 + 0.25*(250-150) = 175 tok/s.
    pts = [_pt(2, 150.0, {"p90": 100.0}, {"p90": 10.0}), _pt(6, 250.0, {"p90": 300.0}, {"p90": 30.0})]
    op = find_operating_point({"points": pts}, SloTarget(ttft_ms=200, tpot_ms=15), run_id=4)
    assert op.status == "interpolated" and op.binding and not op.extrapolated
    assert op.load == pytest.approx(3.0)
    assert op.output_tokens_per_s == pytest.approx(175.0)
    assert op.latency_ms == pytest.approx({"ttft_ms": 150.0, "tpot_ms": 15.0})
    assert (op.lower, op.upper) == (2, 6)
    # shape 100 in / 50 out per request, 1 req/s at both points -> 100 input tok/s; share 20/200 = 0.1
    assert op.mean_input_tokens == 100.0 and op.mean_output_tokens == 50.0
    assert op.input_tokens_per_s == pytest.approx(100.0)
    assert op.prefill_tokens_per_s == pytest.approx(1000.0)
    assert op.decode_tokens_per_s == pytest.approx(175.0 / 0.9)
    assert source_text(op) == ("measured run 4 at SLO TTFT p90 ≤ 200 ms, TPOT p90 ≤ 15 ms, c≈3 interpolated "
                               "(100 in / 50 out tokens)")


def test_percentile_choice_reads_its_own_key():
    pts = [_pt(1, 10.0, {"median": 50.0, "p99": 400.0}), _pt(2, 20.0, {"median": 150.0, "p99": 900.0})]
    op = find_operating_point({"points": pts}, SloTarget(ttft_ms=100, percentile="p50"))
    assert op.load == pytest.approx(1.5) and op.output_tokens_per_s == pytest.approx(15.0)
    with pytest.raises(SloNotMet, match=r"the lowest load, c=1, has TTFT p99 400 ms > 100 ms"):
        find_operating_point({"points": pts}, SloTarget(ttft_ms=100, percentile="p99"))


def test_no_point_passes_says_which_and_why():
    pts = [_pt(4, 40.0, {"p90": 700.0}), _pt(1, 10.0, {"p90": 600.0})]
    with pytest.raises(SloNotMet) as e:
        find_operating_point({"points": pts}, SloTarget(ttft_ms=500))
    assert str(e.value) == "no measured point meets TTFT p90 ≤ 500 ms: the lowest load, c=1, has TTFT p90 600 ms > 500 ms"


def test_all_pass_is_the_best_measured_and_says_not_binding():
    pts = [_pt(1, 10.0, {"p90": 50.0}), _pt(8, 90.0, {"p90": 100.0}), _pt(4, 70.0, {"p90": 80.0})]
    op = find_operating_point({"points": pts}, SloTarget(ttft_ms=500))
    assert op.status == "not_binding" and not op.binding and not op.extrapolated
    assert op.load == 8 and op.output_tokens_per_s == 90.0 and op.upper is None
    assert op.notes[0].startswith("SLO not binding in measured range")
    assert "(SLO not binding)" in source_text(op)


def test_extrapolation_only_when_asked_and_marked_and_capped():
    pts = [_pt(4, 70.0, {"p90": 80.0}), _pt(8, 90.0, {"p90": 100.0})]
    # TTFT line: 80 + 5/c per ... slope 20 per 4 -> 150 ms at c = 8 + 4*(50/20) = 18, beyond 2x8=16: capped
    op = find_operating_point({"points": pts}, SloTarget(ttft_ms=150), extrapolate=True)
    assert op.extrapolated and op.status == "extrapolated"
    assert op.load == pytest.approx(16.0)
    assert op.output_tokens_per_s == pytest.approx(70.0 + 3.0 * 20.0)  # t = (16-4)/4 = 3
    assert "capped at twice the top load" in op.notes[0] and "EXTRAPOLATED" in source_text(op)
    op = find_operating_point({"points": pts}, SloTarget(ttft_ms=110), extrapolate=True)
    assert op.load == pytest.approx(10.0) and op.latency_ms["ttft_ms"] == pytest.approx(110.0)


def test_missing_and_nan_percentiles_are_left_out_with_a_note():
    pts = [_pt(1, 10.0, {"p90": 50.0}), _pt(2, 20.0, {"p90": math.nan}), _pt(4, 40.0, {}),
           _pt(8, 80.0, {"p90": 250.0})]
    op = find_operating_point({"points": pts}, SloTarget(ttft_ms=100))
    assert op.load == pytest.approx(1 + 7 * 0.25)  # between c=1 (50) and c=8 (250): t = 50/200
    assert "c=2 left out: no TTFT p90 recorded" in op.notes and "c=4 left out: no TTFT p90 recorded" in op.notes
    with pytest.raises(SloNotMet, match="can be judged"):
        find_operating_point({"points": pts[1:3]}, SloTarget(ttft_ms=100))


def test_a_failure_for_another_reason_is_not_interpolated():
    pts = [_pt(1, 10.0, {"p90": 50.0}), _pt(2, 20.0, {"p90": 60.0}, failed=3)]
    op = find_operating_point({"points": pts}, SloTarget(ttft_ms=100))
    assert op.status == "measured" and op.load == 1 and op.output_tokens_per_s == 10.0
    assert any("3 request(s) failed" in n for n in op.notes)
    # all-failed point: vLLM reports 0.0 latencies; it must not pass
    pts = [_pt(1, 0.0, {"p90": 0.0}, completed=0)]
    with pytest.raises(SloNotMet, match="no request completed"):
        find_operating_point({"points": pts}, SloTarget(ttft_ms=100))


def test_request_rate_axis_and_non_monotone_note():
    pts = [_pt(r, 100.0 * r, {"p90": p90}, axis="request_rate", concurrency=None)
           for r, p90 in ((1.0, 100.0), (2.0, 300.0), (4.0, 150.0))]
    op = find_operating_point({"points": pts}, SloTarget(ttft_ms=200))
    assert op.load_axis == "request_rate" and op.load == pytest.approx(1.5)
    assert any("not monotone" in n for n in op.notes)
    assert "≈1.5 req/s" in source_text(op)


def test_measured_prefix_cache_hits_lower_the_uncached_prefill_rate():
    pts = [_pt(1, 10.0, {"p90": 50.0}), _pt(2, 20.0, {"p90": 500.0})]
    plain = find_operating_point({"points": pts}, SloTarget(ttft_ms=100))
    cached = find_operating_point({"points": pts, "replay": {"prefix_cache_hit_rate": 0.75}}, SloTarget(ttft_ms=100))
    assert cached.prefill_tokens_per_s == pytest.approx(plain.prefill_tokens_per_s * 0.25)


def test_the_split_gives_back_the_measured_requests_per_second():
    """At the measured shape the cost model's busy time per request is 1 / measured requests/s."""
    point = _pt(32, 2560.0, {"p90": 400.0}, duration_s=20.0, tin=512 * 200, tout=256 * 200, completed=200,
                ttft_mean=345.0, e2el_mean=2364.0)
    r = point_rates(point)
    assert r["requests_per_s"] == pytest.approx(10.0)
    busy = cost.replica_busy_s_per_request(256, r["decode_tokens_per_s"], 512, 0.0, r["prefill_tokens_per_s"])
    assert busy == pytest.approx(1 / 10.0)
    s = DEFAULT_SCENARIO
    for f, v in (("traffic.input_tokens", 512.0), ("traffic.output_tokens", 256.0),
                 ("traffic.cached_input_fraction", 0.0), ("self_host.output_tokens_per_s", r["decode_tokens_per_s"]),
                 ("self_host.prefill_tokens_per_s", r["prefill_tokens_per_s"])):
        s = replace_field(s, f, v)
    rep = cost.evaluate(s)
    assert rep.self_host.busy_s_per_request == pytest.approx(0.1)
    # 12x the input at the same output: the prefill share (345/2364) scales by 12
    long = cost.evaluate(replace_field(s, "traffic.input_tokens", 512.0 * 12))
    assert long.self_host.busy_s_per_request == pytest.approx(0.1 * (1 - 345 / 2364) + 0.1 * 345 / 2364 * 12)


def test_shape_warning_says_by_how_much():
    pts = [_pt(1, 10.0, {"p90": 50.0}, tin=5120, tout=2560), _pt(2, 20.0, {"p90": 500.0}, tin=5120, tout=2560)]
    op = find_operating_point({"points": pts}, SloTarget(ttft_ms=100))
    assert op.mean_input_tokens == 512.0 and op.mean_output_tokens == 256.0
    assert "input 6,000 vs 512 tokens (×11.7)" in shape_warning(op, 6000, 256)
    assert "output 100 vs 256 tokens (×0.391)" in shape_warning(op, 512, 100)
    assert shape_warning(op, 540, 270) is None


@pytest.mark.parametrize(("kwargs", "match"), [
    ({}, "needs a TTFT target"), ({"ttft_ms": 0}, "ttft_ms must be"), ({"tpot_ms": math.inf}, "tpot_ms must be"),
    ({"ttft_ms": 5, "percentile": "p95"}, "percentile must be one of p50, p90, p99"),
])
def test_bad_slo_is_rejected_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SloTarget(**kwargs)


def test_no_points_is_a_clear_error():
    with pytest.raises(ValueError, match="no measured point"):
        find_operating_point({"points": []}, SloTarget(ttft_ms=1))


def test_operating_point_is_frozen():
    op = find_operating_point({"points": [_pt(1, 10.0, {"p90": 50.0})]}, SloTarget(ttft_ms=100))
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.load = 3  # type: ignore[misc]
