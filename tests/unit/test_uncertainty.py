"""``calculators.uncertainty``: hand-worked tornado, bootstrap intervals on known data and on the stored runs,
the vectorised model against ``calculators.cost``, band ordering, range parsing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from calculators import cost, uncertainty
from calculators.scenario import DEFAULT_SCENARIO, load_toml, loads_toml
from calculators.uncertainty import Range, analyse, bootstrap_ci, parse_pct, parse_ranges, ranges_from_pct
from tests.strategies import scenarios

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "scenarios").glob("*.toml"))
RUNS = sorted((ROOT / "benchmarks" / "results").glob("*/probe-*.json"))

# 86,400 requests/day of 100 output tokens (no input) at $10/M: API = 86,400 * 730/24 * $0.001 = $2,628/month.
# One L40S replica at $2/h = $1,460/month; peak 1, so replicas = ceil(86,400 * 100/otps / 86,400).
HAND = loads_toml("""
[traffic]
requests_per_day = 86400
input_tokens = 0
output_tokens = 100
cached_input_fraction = 0
peak_to_mean = 1
[api]
input_usd_per_mtok = 1.0
cached_input_usd_per_mtok = 0.1
output_usd_per_mtok = 10.0
[self_host]
gpu = "l40s"
gpu_usd_per_hour = 2.0
output_tokens_per_s = 1000
ops_usd_per_month = 0
""")


def test_tornado_on_two_inputs_matches_hand_math():
    u = analyse(HAND, {"gpu_usd": Range(1.5, 3.0), "otps": Range(50.0, 2000.0)}, n=200)
    assert u.base_savings_usd_per_month == 2628 - 1460  # 1,168
    otps, gpu = u.tornado  # otps swings 1,460, gpu 1,095: otps first
    # otps 50: busy 2 s, 2 replicas = $2,920 -> -292; otps 2000: still 1 replica -> 1,168
    assert (otps.key, otps.savings_at_low, otps.savings_at_high, otps.swing) == ("otps", -292.0, 1168.0, 1460.0)
    # $1.5/h: 2628 - 1095 = 1533; $3/h: 2628 - 2190 = 438
    assert gpu.key == "gpu_usd"
    assert gpu.savings_at_low == pytest.approx(1533.0) and gpu.savings_at_high == pytest.approx(438.0)
    assert gpu.swing == pytest.approx(1095.0)
    # corners: worst = otps 50 at $3/h -> 2628 - 4380 = -1752; best = otps high at $1.5/h -> 1533
    assert u.band.corners == 4
    assert u.band.savings_low == pytest.approx(-1752.0) and u.band.savings_high == pytest.approx(1533.0)
    # break-even = (n0 * G + ops) / b with b = $0.001 * 730/24 = $0.0304 per req/day: one replica at $1.5/h
    # breaks even at 1095 / b = 36,000/day. At otps 50 and $3/h a replica costs 2190 / 43,200 = $0.0507 per
    # req/day of capacity, more than the API's $0.0304: never (the band's high end is "never")
    assert u.band.breakeven_low == pytest.approx(36_000.0)
    assert u.band.breakeven_high is None


def test_bootstrap_ci_contains_the_true_mean_of_a_known_distribution():
    values = np.random.default_rng(123).exponential(scale=10.0, size=400)  # true mean 10, sd 10
    ci = bootstrap_ci(values, seed=0)
    assert ci.low < 10.0 < ci.high
    # a 95% interval of a mean of 400 draws with sd 10 is about 2 * 1.96 * 10 / 20 = 1.96 wide
    assert 1.4 < ci.high - ci.low < 2.6
    assert ci.method == "percentile bootstrap" and ci.n_obs == 400 and ci.n_boot == 2000
    assert bootstrap_ci(values, seed=0) == ci  # seeded: reproducible
    assert bootstrap_ci(values, "median", seed=0).estimate == pytest.approx(np.median(values))


def test_bootstrap_rejects_bad_input():
    for bad, msg in (([], "non-empty"), ([1.0, math.nan], "finite"), ([[[1.0]]], "1-D or 2-D")):
        with pytest.raises(ValueError, match=msg):
            bootstrap_ci(bad)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.0)
    with pytest.raises(ValueError, match="stat"):
        bootstrap_ci([1.0, 2.0], stat="mode")


@pytest.mark.parametrize("path", RUNS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_throughput_ci_of_each_stored_point_is_centred_on_its_recorded_throughput(path):
    run = json.loads(path.read_text())
    for p in run["points"]:
        ci = uncertainty.throughput_ci_from_samples(p["samples"], p["duration_s"])
        assert ci.estimate == pytest.approx(p["output_tokens_per_s"], rel=1e-9)
        assert ci.low <= ci.estimate <= ci.high


def test_throughput_ci_needs_a_successful_request_and_names_a_bad_sample():
    with pytest.raises(ValueError, match="no successful request"):
        uncertainty.throughput_ci_from_samples([{"success": False, "output_tokens": 0, "latency_ms": 0}], 1.0)
    ok = {"success": True, "output_tokens": 10, "latency_ms": 100.0}
    with pytest.raises(ValueError, match=r"samples\[1\]: output_tokens must be a number"):
        uncertainty.throughput_ci_from_samples([ok, {**ok, "output_tokens": "x"}], 1.0)
    with pytest.raises(ValueError, match=r"samples\[0\]: latency_ms must be a finite number"):
        uncertainty.throughput_ci_from_samples([{**ok, "latency_ms": math.inf}], 1.0)
    with pytest.raises(ValueError, match="duration_s must be > 0"):
        uncertainty.throughput_ci_from_samples([ok], 0.0)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_array_model_at_base_is_evaluate_and_the_band_is_ordered(path):
    s = load_toml(path)
    r = cost.evaluate(s)
    m = uncertainty.savings_model(s, {})
    assert float(m["savings_usd_per_month"]) == r.savings_usd_per_month
    be = float(m["breakeven_requests_per_day"])
    assert (math.isnan(be) and r.breakeven.requests_per_day is None) or be == r.breakeven.requests_per_day
    u = analyse(s, ranges_from_pct(s, uncertainty.DEFAULT_PCT))
    assert u.mc.savings_p5 <= u.mc.savings_p50 <= u.mc.savings_p95
    assert u.band.savings_low <= u.band.savings_high
    assert 0 <= u.mc.share_self_host_cheaper <= 1
    swings = [b.swing for b in u.tornado]
    assert swings == sorted(swings, reverse=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=scenarios(), seed=hst.integers(0, 2**32 - 1))
def test_fuzz_vectorised_samples_match_cost_one_by_one(s, seed):
    """Each Monte Carlo sample equals what cost.py's scalar functions give for that sample's inputs."""
    rng = np.random.default_rng(seed)
    t, h = s.traffic, s.self_host
    n = 25
    draws = {"otps": h.output_tokens_per_s * rng.uniform(0.5, 1.5, n),
             "gpu_usd": h.gpu_usd_per_hour * rng.uniform(0.5, 1.5, n),
             "rpd": t.requests_per_day * rng.uniform(0.5, 1.5, n),
             "api_price": rng.uniform(0.5, 1.5, n)}
    draws = {k: np.clip(v, *(uncertainty.LIMITS[uncertainty.RANGE_KEYS[k][0]] if uncertainty.RANGE_KEYS[k][0]
                                 else (0, None))) for k, v in draws.items()}
    rates = cost.api_rates(s)
    m = uncertainty.savings_model(s, draws, rates)
    for i in range(n):
        per_req = cost.api_usd_per_request(t.input_tokens, t.output_tokens, t.cached_input_fraction,
                                           rates.input_usd_per_mtok, rates.cached_input_usd_per_mtok,
                                           rates.output_usd_per_mtok) * draws["api_price"][i]
        busy = cost.replica_busy_s_per_request(t.output_tokens, draws["otps"][i], t.input_tokens,
                                               t.cached_input_fraction, h.prefill_tokens_per_s)
        be = cost.breakeven_requests_per_day(
            api_usd_per_request=float(per_req), busy_s_per_request=float(busy), peak_to_mean=t.peak_to_mean,
            min_replicas=h.min_replicas, gpus_per_replica=h.gpus_per_replica,
            gpu_usd_per_hour=float(draws["gpu_usd"][i]), ops_usd_per_month=h.ops_usd_per_month,
            fallback_fraction=h.fallback_fraction)
        got = m["breakeven_requests_per_day"][i]
        assert (be is None and math.isnan(got)) or (be is not None and got == pytest.approx(be[0], rel=1e-12))
        api = draws["rpd"][i] * cost.HOURS_PER_MONTH / 24 * per_req
        reps = cost.replicas_needed(float(draws["rpd"][i]), float(busy), t.peak_to_mean, h.min_replicas,
                                    h.fallback_fraction)
        host = cost.self_host_usd_per_month(reps, h.gpus_per_replica, float(draws["gpu_usd"][i]),
                                            h.ops_usd_per_month, h.fallback_fraction * api)
        assert m["savings_usd_per_month"][i] == pytest.approx(api - host, rel=1e-12, abs=1e-9)


def test_monte_carlo_is_seeded():
    r = ranges_from_pct(DEFAULT_SCENARIO, uncertainty.DEFAULT_PCT)
    a, b, c = analyse(DEFAULT_SCENARIO, r, seed=7), analyse(DEFAULT_SCENARIO, r, seed=7), analyse(
        DEFAULT_SCENARIO, r, seed=8)
    assert a == b and a.mc != c.mc


def test_ranges_from_pct_clip_to_limits_and_skip_what_cannot_vary():
    r = ranges_from_pct(DEFAULT_SCENARIO, {"peak": 60, "otps": 0, "ptps": 20})
    assert r == {"peak": Range(1.0, 3.2)}  # peak_to_mean >= 1; 0% and no prefill rate left out
    with pytest.raises(ValueError, match="otps: \\+/- % must be in \\[0, 95\\]"):
        ranges_from_pct(DEFAULT_SCENARIO, {"otps": 100})


@pytest.mark.parametrize(("spec", "msg"), [
    ("foo=1", "KEY one of otps"),
    ("otps", "expected KEY=PCT"),
    ("otps=x", "'x' is not a number"),
    ("gpu_usd=1..2", "does not contain the scenario's value 5.2225"),
    ("otps=2..1", "range low 2 is above high 1"),
    ("otps=0.0001..5000", "leaves the field's limits"),
    ("ptps=1..2", "no prefill rate"),
])
def test_parse_ranges_names_the_bad_item(spec, msg):
    with pytest.raises(ValueError, match=f"range '{spec.split(',')[0]}'.*{msg}"):
        parse_ranges(DEFAULT_SCENARIO, spec)


def test_a_pct_of_a_field_the_scenario_lacks_varies_nothing():
    assert parse_ranges(DEFAULT_SCENARIO, "ptps=20,otps=0") == {}


def test_parse_pct_and_format_round_trip():
    pct = {"otps": 20.0, "gpu_usd": 15.0, "api_price": 2.5}
    assert parse_pct(uncertainty.format_ranges(pct)) == pct
    with pytest.raises(ValueError, match="KEY=PCT"):
        parse_pct("otps=1..2")
    with pytest.raises(ValueError, match=r"\[0, 95\]"):
        parse_pct("otps=-5")


def test_no_ranges_give_a_zero_width_band_at_the_scenario():
    u = analyse(DEFAULT_SCENARIO, {}, n=10)
    base = cost.evaluate(DEFAULT_SCENARIO).savings_usd_per_month
    assert u.tornado == () and u.band.corners == 1
    assert u.band.savings_low == u.band.savings_high == u.mc.savings_p5 == u.mc.savings_p95 == base


def test_the_volume_band_at_the_scenario_volume_is_the_monte_carlo_of_the_same_draws():
    s = load_toml(ROOT / "scenarios" / "rag-assistant-70b.toml")
    ranges = ranges_from_pct(s, {**uncertainty.DEFAULT_PCT, "rpd": 0})
    u = analyse(s, ranges, n=500, seed=3)
    df = uncertainty.savings_band_vs_volume(s, ranges, n=500, seed=3, points=7,
                                            max_requests_per_day=s.traffic.requests_per_day)
    last = df.iloc[-1]
    assert last.requests_per_day == s.traffic.requests_per_day
    assert (last.savings_p5, last.savings_p50, last.savings_p95) == pytest.approx(
        (u.mc.savings_p5, u.mc.savings_p50, u.mc.savings_p95), rel=1e-12)
    assert (df.savings_p5 <= df.savings_p50).all() and (df.savings_p50 <= df.savings_p95).all()
    with pytest.raises(ValueError, match="points"):
        uncertainty.savings_band_vs_volume(s, ranges, points=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=scenarios(), seed=hst.integers(0, 2**32 - 1))
def test_fuzz_default_ranges_always_give_an_ordered_band_and_a_sorted_tornado(s, seed):
    u = analyse(s, ranges_from_pct(s, uncertainty.DEFAULT_PCT), n=200, seed=seed)
    assert u.mc.savings_p5 <= u.mc.savings_p50 <= u.mc.savings_p95
    assert u.band.savings_low <= u.band.savings_high
    b = [x for x in (u.mc.breakeven_p5, u.mc.breakeven_p50, u.mc.breakeven_p95) if x is not None]
    assert b == sorted(b)
    assert [t.swing for t in u.tornado] == sorted((t.swing for t in u.tornado), reverse=True)
    assert all(t.low <= t.high for t in u.tornado)
    json.dumps(uncertainty.uncertainty_to_dict(u), allow_nan=False)  # the CLI prints it as strict JSON
