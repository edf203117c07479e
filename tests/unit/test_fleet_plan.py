"""The fleet capacity plan (calculators.fleet) and its CLI: hand-computed autoscaler days, the synthetic day,
invariants (Hypothesis), the RAG example's plan, and ``python -m calculators fleet`` equal to the function."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators import fleet
from calculators.__main__ import main as calculators_main
from calculators.cost import evaluate
from calculators.fleet import (
    FleetInput,
    plan,
    plan_from_scenario,
    plan_to_dict,
    simulate,
    steepest_rise,
    synthetic_day,
)
from calculators.scenario import load_toml, replace_field
from calculators.traces import read_arrays
from tests.strategies import FUZZ

ROOT = Path(__file__).resolve().parents[2]
RAG = ROOT / "scenarios" / "rag-assistant-70b.toml"
RUN_70B = ROOT / "benchmarks" / "results" / "h100-vllm0.26-2026-11-28" / "probe-llama-3.3-70b-fp8.json"
ENDPOINT_RUN = ROOT / "benchmarks" / "results" / "cpu-dp2-vllm0.32-2026-12-01" / "endpoint-dp2.run.json"
AZURE = ROOT / "tests" / "fixtures" / "traces" / "small-azure.csv"


def _inp(rate, **kw) -> FleetInput:
    r = np.asarray(rate, dtype=float)
    base = dict(replica_req_per_s=2.0, mean_req_per_s=float(r.mean()), peak_to_mean=float(r.max() / r.mean()) if r.mean() > 0 else 1.0,
                cold_start_s=300.0, api_usd_per_request=0.01, scale_up_utilization=1.0,
                rate_req_per_s=tuple(r.tolist()), step_s=60.0)
    return FleetInput(**(base | kw))


STEP = [2.0] * 12 + [7.0] * 12  # 2 req/s for 12 min, then 7 req/s for 12 min; 6,480 requests


# -- hand-computed days -----------------------------------------------------------------------------------


def test_constant_traffic_needs_no_headroom_and_sends_nothing_to_the_api():
    p = plan(_inp([3.0] * 30))
    assert (p.replicas_mean, p.replicas_peak) == (2, 2)  # ceil(3 / 2)
    assert p.rise_req_per_s == 0 and p.headroom_replicas == 0 and p.headroom_utilization == 1.0
    assert p.scaling_fallback_share == 0 and p.scaling_fallback_usd_per_month == 0
    assert p.headroom_fallback_share == 0
    assert p.timeline.ready.tolist() == [2] * 30 and not p.timeline.scaling.any()
    # one of the two down: 1 replica serves 2 of the 3 req/s all day
    assert p.outage_fallback_share == pytest.approx(1 / 3) and p.outage_fallback_share_at_peak == pytest.approx(1 / 3)
    assert p.outage_usd_per_day == pytest.approx(1 / 3 * 3 * 86_400 * 0.01)


def test_a_step_with_a_300_s_cold_start_sends_the_gap_to_the_api_for_five_minutes():
    p = plan(_inp(STEP))
    # bin 12: wants ceil(7/2) = 4, has 1 (serving 2 req/s); 3 launched, ready from bin 17.
    assert p.timeline.ready.tolist() == [1] * 17 + [4] * 7
    assert p.timeline.scaling.tolist() == [False] * 12 + [True] * 5 + [False] * 7
    assert p.scaling_fallback_share == pytest.approx(5 * 60 * 5 / 6480)  # 5 req/s over 300 s = 1,500 requests
    month_requests = 4.5 * 86_400 * 730 / 24
    assert p.scaling_fallback_usd_per_month == pytest.approx(1500 / 6480 * month_requests * 0.01)
    # the rise within 5 bins is 5 req/s: 3 spare replicas (ceil(5/2)); kept on top, nothing spills
    assert (p.rise_req_per_s, p.headroom_replicas, p.replicas_peak_with_headroom) == (5.0, 3, 6)
    assert p.headroom_utilization == pytest.approx(7 / 12)
    assert p.headroom_fallback_share == 0
    # outage: 4 at peak, 3 up = 6 req/s: 1 req/s over for the 12 busy minutes
    assert p.replicas_peak == 4 and p.outage_fallback_share == pytest.approx(720 / 6480)
    assert p.outage_fallback_share_at_peak == pytest.approx(1 / 7)


def test_the_utilization_trigger_keeps_spare_capacity_that_absorbs_part_of_the_step():
    p = plan(_inp(STEP, scale_up_utilization=0.8))
    # wants ceil(2/1.6) = 2 before (4 req/s ready), ceil(7/1.6) = 5 after: 3 req/s over for 300 s
    assert p.timeline.ready.tolist()[:12] == [2] * 12 and p.timeline.ready.tolist()[-1] == 5
    assert p.scaling_fallback_share == pytest.approx(3 * 300 / 6480)


def test_a_cold_start_between_bins_is_rounded_up_to_whole_bins():
    p = plan(_inp(STEP, cold_start_s=61.0))  # ready two bins after the launch
    assert p.scaling_fallback_share == pytest.approx(5 * 120 / 6480)
    assert plan(_inp(STEP, cold_start_s=0.0)).scaling_fallback_share == 0  # ready in the same bin


def test_scale_down_is_immediate_and_a_later_rise_waits_a_full_cold_start_again():
    tl = simulate(np.array([4.0, 4, 0, 0, 4, 4, 4]), 60, 1.0, 120, min_replicas=1)
    assert tl.ready.tolist() == [4, 4, 1, 1, 1, 1, 4]
    assert tl.fallback.tolist() == [0, 0, 0, 0, 3, 3, 0]


def test_zero_traffic_plans_the_minimum_and_divides_nothing_by_zero():
    p = plan(_inp([0.0] * 10, mean_req_per_s=0.0, peak_to_mean=1.0, min_replicas=2, replicas_down=1))
    assert (p.replicas_mean, p.replicas_peak, p.headroom_replicas) == (2, 2, 0)
    assert p.scaling_fallback_share == p.outage_fallback_share == p.outage_fallback_share_at_peak == 0


def test_more_replicas_down_than_there_are_sends_everything_to_the_api():
    p = plan(_inp([3.0] * 5, replicas_down=5))
    assert p.outage_fallback_share == 1.0 and p.outage_fallback_share_at_peak == 1.0


@pytest.mark.parametrize("kw, field", [
    ({"replica_req_per_s": 0.0}, "replica_req_per_s"), ({"cold_start_s": -1.0}, "cold_start_s"),
    ({"scale_up_utilization": 1.5}, "scale_up_utilization"), ({"replicas_down": 1.5}, "replicas_down"),
    ({"rate_req_per_s": (1.0, float("nan"))}, "rate_req_per_s"), ({"peak_to_mean": 0.5}, "peak_to_mean"),
])
def test_bad_input_names_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        _inp([1.0, 2.0], **kw)


# -- the synthetic day and the steepest rise -----------------------------------------------------------------


@pytest.mark.parametrize("p2m", [1.0, 1.5, 2.5, 4.0, 20.0, 100.0])
def test_the_synthetic_day_keeps_the_mean_and_reaches_the_peak(p2m):
    d = synthetic_day(0.5, p2m)
    assert d.size == 1440 and np.all(d >= 0)
    assert d.mean() == pytest.approx(0.5)
    assert d.max() == pytest.approx(0.5 * p2m, rel=0.02)  # sampled at bin centres, rescaled to the mean


def test_the_synthetic_ramp_sets_the_rise_over_a_cold_start():
    d = synthetic_day(1.0, 2.0, ramp_s=3600)  # night 0.4 -> peak 2.0 over 60 one-minute bins
    assert steepest_rise(d, 60, 600) == pytest.approx(1.6 / 60 * 10, rel=1e-6)


def test_steepest_rise_looks_no_further_than_the_window():
    r = np.array([0.0, 1, 2, 3, 4, 5])
    assert steepest_rise(r, 60, 60) == 1 and steepest_rise(r, 60, 180) == 3 and steepest_rise(r, 60, 1e5) == 5


# -- invariants ---------------------------------------------------------------------------------------------

rates = st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=80)


@FUZZ
@given(rate=rates, c=st.floats(0.01, 50), cold=st.floats(0, 3600), u=st.floats(0.05, 1.0),
       minimum=st.integers(1, 5))
def test_fuzz_shares_are_fractions_and_the_headroom_always_absorbs_a_cold_start(rate, c, cold, u, minimum):
    r = np.asarray(rate)
    mean = float(r.mean())
    p = plan(FleetInput(replica_req_per_s=c, mean_req_per_s=mean, peak_to_mean=1.0, cold_start_s=cold,
                        api_usd_per_request=0.001, min_replicas=minimum, scale_up_utilization=u,
                        rate_req_per_s=tuple(rate)))
    for share in (p.scaling_fallback_share, p.outage_fallback_share, p.outage_fallback_share_at_peak):
        assert 0 <= share <= 1
    assert p.headroom_fallback_share == 0  # ready at i >= min(want over the last cold start) >= demand at i
    assert np.all(p.timeline.ready >= minimum)
    assert p.headroom_replicas == math.ceil(p.rise_req_per_s / c * (1 - 1e-9))


@FUZZ
@given(rate=rates, c=st.floats(0.01, 50), u=st.floats(0.05, 1.0))
def test_fuzz_without_a_cold_start_nothing_spills(rate, c, u):
    # (a longer cold start is NOT always worse: a replica launched for a spike may arrive just in time for
    # the next one, e.g. [0, 2, 0, 0, 0, 0, 0, 2] with 1 vs 301 s; so no monotonicity is claimed)
    assert simulate(np.asarray(rate), 60, c, 0.0, utilization=u).fallback.sum() == 0


# -- the RAG example ---------------------------------------------------------------------------------------


def test_the_rag_example_plan_shows_replicas_headroom_and_fallback_share():
    s = load_toml(RAG)
    p = plan_from_scenario(s, cold_start_s=212.2)
    busy = 400 / 1700 + 6000 * 0.75 / 11200  # 0.637 s of a 2xH100 replica per request
    assert p.replica_req_per_s == pytest.approx(1 / busy)
    assert p.mean_req_per_s == pytest.approx(50_000 / 86_400)
    assert p.peak_req_per_s == pytest.approx(50_000 / 86_400 * 2.5)  # 1.45 req/s: under one replica's 1.57
    assert (p.replicas_mean, p.replicas_peak) == (2, 2)  # min_replicas 2 (redundancy) sets both
    assert p.replicas_peak == evaluate(s).self_host.replicas
    # synthetic day: night 0.058 -> peak 1.447 req/s over an hour; 212 s = 4 bins of the ramp
    assert p.rise_req_per_s == pytest.approx(4 * (1.4467593 - 0.0578704) / 60, rel=0.02)
    assert p.headroom_replicas == 1
    assert p.scaling_fallback_share == 0 and p.outage_fallback_share == 0  # one replica alone carries the peak
    two_down = plan_from_scenario(s, cold_start_s=212.2, replicas_down=2)
    assert two_down.outage_fallback_share == 1.0
    assert two_down.outage_usd_per_day == pytest.approx(evaluate(s).api.usd_per_month / (730 / 24))


def test_the_rag_example_at_ten_times_the_volume_pays_the_api_while_scaling():
    s = replace_field(load_toml(RAG), "traffic.requests_per_day", 500_000)
    p = plan_from_scenario(s, cold_start_s=212.2, scale_up_utilization=0.95)
    assert p.replicas_peak == math.ceil(500_000 / 86_400 * 2.5 * (400 / 1700 + 4500 / 11200))  # 10
    assert 0 < p.scaling_fallback_share < 0.01
    assert p.scaling_fallback_usd_per_month == pytest.approx(p.scaling_fallback_share * evaluate(s).api.usd_per_month)
    assert p.headroom_fallback_share == 0


def test_a_trace_gives_the_shape_and_the_scenario_the_volume():
    s = load_toml(RAG)
    a = read_arrays(AZURE)
    p = plan_from_scenario(s, cold_start_s=60, trace_t_s=a.t_s, trace_name="small-azure.csv")
    assert p.timeline.demand.mean() == pytest.approx(50_000 / 86_400)
    assert any("trace small-azure.csv" in line for line in p.assumptions)


# -- the CLI -----------------------------------------------------------------------------------------------


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        rc = calculators_main(["fleet", *args])
    except SystemExit as e:  # argparse's own errors (our parser makes them one line, exit 2)
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_json_equals_the_function(capsys):
    rc, out, _ = _cli(capsys, str(RAG), "--cold-start-s", "212.2", "--json")
    assert rc == 0
    expected = plan_to_dict(plan_from_scenario(load_toml(RAG), cold_start_s=212.2))
    assert json.loads(out) == json.loads(json.dumps(expected)) | {"cold_start_from": "typed"}


def test_cli_takes_the_measured_cold_start_of_a_run_and_a_trace(capsys):
    rc, out, _ = _cli(capsys, str(RAG), "--run", str(RUN_70B), "--trace", str(AZURE), "--replicas-down", "2",
                      "--utilization", "0.7", "--json", "--timeline")
    assert rc == 0
    got = json.loads(out)
    cold = json.loads(RUN_70B.read_text())["cold_start_s"]
    expected = plan_from_scenario(load_toml(RAG), cold_start_s=cold, trace_t_s=read_arrays(AZURE).t_s,
                                  trace_name=str(AZURE), scale_up_utilization=0.7, replicas_down=2)
    assert got["cold_start_s"] == pytest.approx(212.21445) and got["cold_start_from"] == f"measured: {RUN_70B}"
    assert {k: v for k, v in got.items() if k != "cold_start_from"} == \
        json.loads(json.dumps(plan_to_dict(expected, timeline=True)))


def test_cli_text_names_replicas_headroom_and_fallback(capsys):
    rc, out, _ = _cli(capsys, str(RAG))
    assert rc == 0
    assert "replicas              2 at mean, 2 at peak" in out
    assert "headroom              1 replica(s)" in out and "fallback, scaling     0.000% of requests" in out
    assert "cold start            120 s (the article's 60-120 s" in out  # the stated default


@pytest.mark.parametrize("args, message", [
    (["--run", str(ENDPOINT_RUN)], "endpoint-dp2.run.json: no cold_start_s recorded"),
    (["--trace", str(RAG)], "rag-assistant-70b.toml: line 1: not a trace"),
    (["--cold-start-s", "-3"], "--cold-start-s: must be seconds"),
    (["--utilization", "2"], "--utilization: must be a fraction"),
    (["--timeline"], "--timeline needs --json"),
    (["--cold-start-s", "1", "--run", str(RUN_70B)], "not allowed with argument"),
])
def test_cli_bad_input_is_one_line_and_exit_2(capsys, args, message):
    rc, out, err = _cli(capsys, str(RAG), *args)
    assert rc == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_cli_bad_scenario_names_the_file(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(RAG.read_text().replace("requests_per_day = 50000", "requests_per_day = -1"))
    rc, _, err = _cli(capsys, str(bad))
    assert rc == 2 and "requests_per_day" in err and err.count("\n") == 1


def test_default_cold_start_is_the_articles_upper_end():
    assert fleet.ARTICLE_COLD_START_S == 120.0


def test_a_trace_whose_peak_differs_from_the_scenario_says_which_peak_sizes_the_fleet():
    p = plan(_inp(STEP, peak_to_mean=1.0))  # the series peaks at 7/4.5 = 1.56x the mean
    assert any("busiest 60 s bin is 1.56x the mean, the scenario's peak_to_mean 1" in a for a in p.assumptions)
    assert not any("busiest" in a for a in plan(_inp(STEP)).assumptions)
