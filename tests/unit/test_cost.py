"""calculators.cost: golden values worked by hand, invariants, and Hypothesis fuzzing of every input."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from calculators import cost
from calculators.scenario import LIMITS, Scenario, replace_field
from tests.pinned import RAG_PINNED, SUPPORT_BOT
from tests.strategies import FUZZ, bad_numbers, field_values, finite, scenarios

RAG = Path(__file__).resolve().parents[2] / "scenarios/rag-assistant-70b.toml"


# --- golden values -----------------------------------------------------------------------------------


def test_article_check_usd_per_mtok_full_and_30pct():
    # $2.50 / (6,400 tok/s * 3,600 s / 1e6) = 2.50 / 23.04 = $0.108507 per M output tokens
    assert cost.usd_per_mtok_output(2.50, 6400, 1.0) == pytest.approx(0.1085, abs=5e-5)
    # at 30% utilization: 0.108507 / 0.3 = 0.361690, "about 3.3 times"
    assert cost.usd_per_mtok_output(2.50, 6400, 0.3) == pytest.approx(0.3617, abs=5e-5)
    ratio = cost.usd_per_mtok_output(2.50, 6400, 0.3) / cost.usd_per_mtok_output(2.50, 6400, 1.0)
    assert ratio == pytest.approx(10 / 3)


def test_gpus_per_replica_multiplies_usd_per_mtok():
    # a 2-GPU replica at the same output rate costs twice as much per token: 2 * 0.108507
    assert cost.usd_per_mtok_output(2.50, 6400, 1.0, gpus_per_replica=2) == pytest.approx(0.217014, rel=1e-5)


def test_support_bot_golden():
    r = cost.evaluate(SUPPORT_BOT)
    # API $/request: 1500*0.5*0.25 + 750*0.025 + 300*2.00 = 187.5 + 18.75 + 600 = 806.25 / 1e6 = $0.00080625
    assert r.api.usd_per_request == pytest.approx(0.00080625)
    # requests/month = 20,000 * 730/24 = 608,333.33; * 0.00080625 = $490.47
    assert r.api.requests_per_month == pytest.approx(608_333.333, rel=1e-9)
    assert r.api.usd_per_month == pytest.approx(490.46875)
    # peak load = 20,000/86,400 * 300/3,400 * 2 = 0.0408 replicas -> 1; $2.69 * 730 = $1,963.70; + ops 1,500
    assert r.self_host.replicas == 1
    assert r.self_host.gpu_usd_per_month == pytest.approx(1963.70)
    assert r.self_host.usd_per_month == pytest.approx(3463.70)
    # utilization = mean load / replicas = 0.0204248
    assert r.self_host.utilization == pytest.approx(20_000 / 86_400 * 300 / 3400)
    # $/M output: 3,463.70 / (608,333.33 * 300 / 1e6 = 182.5 M tokens) = $18.979
    assert r.self_host.usd_per_mtok_output == pytest.approx(18.9792, abs=1e-4)
    # break-even: (1 * 1,963.70 + 1,500) / (0.00080625 * 730/24 = 0.0245234 $/month per req/day) = 141,240
    assert r.breakeven.requests_per_day == pytest.approx(141_240.395, rel=1e-6)
    assert r.breakeven.replicas == 1
    # break-even utilization: 2.69/3600 $/s * (300/3400) s / 0.00080625 $ = 0.081775
    assert r.breakeven.utilization == pytest.approx(0.0817753, rel=1e-5)
    assert r.savings_usd_per_month == pytest.approx(490.46875 - 3463.70)
    assert r.verdict == "api"


def test_rag_assistant_golden():
    r = cost.evaluate(RAG_PINNED)
    # busy = 400/1700 + 6000*(1-0.25)/11200 = 0.235294 + 0.401786 = 0.637080 s per request
    assert r.self_host.busy_s_per_request == pytest.approx(0.637080, abs=1e-6)
    # peak load = 50,000/86,400 * 0.637080 * 2.5 = 0.9217 -> ceil 1, but min_replicas = 2
    assert r.self_host.peak_load_replicas == pytest.approx(0.92170, abs=1e-5)
    assert r.self_host.replicas == 2 and r.self_host.gpus == 4
    # GPUs: 4 * 2.69 * 730 = 7,854.80; + ops 4,000 = 11,854.80
    assert r.self_host.usd_per_month == pytest.approx(11_854.80)
    # API: 4500*3 + 1500*0.30 + 400*15 = 13,500 + 450 + 6,000 = $0.01995/request; * 1,520,833.33 = 30,340.63
    assert r.api.usd_per_month == pytest.approx(30_340.625)
    assert r.self_host.utilization == pytest.approx(0.368680 / 2, abs=1e-6)
    # break-even on the min-replica step: (2 * 3,927.4 + 4,000) / (0.01995 * 730/24 = 0.606813) = 19,536.2
    assert r.breakeven.requests_per_day == pytest.approx(19_536.18, abs=0.01)
    assert r.verdict == "self_host"
    assert any("frontier" in reason for reason in r.reasons)  # claude-sonnet-4.6 is tier "frontier"


def test_breakeven_beyond_min_replicas_golden():
    # a = 0.001 * 730/24 = 0.0304167 $/month per req/day; k = 1 s * 1 / 86,400; G = $730/month per replica
    # d = 0.0304167 - 730/86,400 = 0.0219676; ops*k/d = 10,000/86,400/0.0219676 = 5.27 -> n0 = 6
    # x = (6 * 730 + 10,000) / 0.0304167 = 14,380 * 24 / 0.73 = 472,767.12
    x, n = cost.breakeven_requests_per_day(api_usd_per_request=0.001, busy_s_per_request=1.0, peak_to_mean=1.0,
                                           min_replicas=1, gpus_per_replica=1, gpu_usd_per_hour=1.0,
                                           ops_usd_per_month=10_000)
    assert n == 6 and x == pytest.approx(14_380 * 24 / 0.73)
    # at the end of step 5 (x = 5 * 86,400 = 432,000) self-hosting is still dearer: 13,650 > 13,140
    assert cost.replicas_needed(432_000, 1.0, peak_to_mean=1.0) == 5
    assert cost.self_host_usd_per_month(5, 1, 1.0, 10_000) == pytest.approx(13_650)
    assert cost.api_usd_per_month(432_000, 0, 1000, 0, 0, 0, 1.0) == pytest.approx(13_140)  # $0.001/request


def test_breakeven_none_when_a_busy_replica_costs_more_than_its_traffic_at_the_api():
    # one replica at full peak load serves 86,400 req/day -> $2,628/month at the API, but costs $7,300
    assert cost.breakeven_requests_per_day(api_usd_per_request=0.001, busy_s_per_request=1.0, peak_to_mean=1.0,
                                           min_replicas=1, gpus_per_replica=1, gpu_usd_per_hour=10.0) is None


def test_zero_traffic():
    s = replace_field(SUPPORT_BOT, "traffic.requests_per_day", 0)
    r = cost.evaluate(s)
    assert r.api.usd_per_month == 0
    assert r.self_host.usd_per_month == pytest.approx(1963.70 + 1500)  # min replicas + ops
    assert r.self_host.utilization == 0
    assert r.self_host.usd_per_mtok_output is None
    assert cost.report_to_dict(r)["self_host"]["usd_per_mtok_output"] is None
    assert any("1,000 requests/day" in reason for reason in r.reasons)


def test_fallback_is_billed_at_api_prices_and_removed_from_gpu_load():
    s = replace_field(RAG_PINNED, "self_host.fallback_fraction", 0.1)
    r = cost.evaluate(s)
    assert r.self_host.fallback_usd_per_month == pytest.approx(0.1 * 30_340.625)
    assert r.self_host.mean_load_replicas == pytest.approx(0.9 * 0.368680, abs=1e-6)
    assert r.self_host.usd_per_month == pytest.approx(11_854.80 + 3_034.0625)


def test_replica_tolerance_and_steps():
    assert cost.replicas_needed(86_400, 2.0, peak_to_mean=1.0) == 2
    assert cost.replicas_needed(86_400, 2.0000000001, peak_to_mean=1.0) == 2
    assert cost.replicas_needed(86_400, 2.001, peak_to_mean=1.0) == 3
    # arrays work elementwise: 0, 1 and 2.5 busy replicas at peak 1 -> 1, 1, 3
    got = cost.replicas_needed(np.array([0.0, 86_400, 216_000]), 1.0, peak_to_mean=1.0)
    assert got.tolist() == [1.0, 1.0, 3.0]


def test_reasons_follow_context_flags():
    s = dataclasses.replace(
        SUPPORT_BOT,
        context=dataclasses.replace(SUPPORT_BOT.context, needs_frontier_quality=True,
                                    fine_tuned_model=True, has_gpu_expertise=False),
    )
    text = " ".join(cost.evaluate(s).reasons)
    for phrase in ("frontier", "no API serves your adapter", "GPU expertise", "Always have a fallback to API"):
        assert phrase in text
    s2 = replace_field(replace_field(SUPPORT_BOT, "self_host.min_replicas", 2), "api.model", None)
    text2 = " ".join(cost.evaluate(s2).reasons)
    assert "one outage" not in text2 and "frontier" not in text2 and "adapter" not in text2


def test_verdict_follows_the_math_only():
    # the fine-tuned flag changes reasons, never the verdict
    s = SUPPORT_BOT
    flagged = dataclasses.replace(s, context=dataclasses.replace(s.context, fine_tuned_model=True))
    assert cost.evaluate(flagged).verdict == cost.evaluate(s).verdict == "api"


def test_report_to_dict_keys():
    d = cost.report_to_dict(cost.evaluate(SUPPORT_BOT))
    for dotted in ("api.usd_per_month", "self_host.usd_per_month", "self_host.replicas", "self_host.utilization",
                   "self_host.usd_per_mtok_output", "breakeven.requests_per_day", "breakeven.utilization",
                   "self_host.breakdown.gpu_usd_per_month", "self_host.breakdown.ops_usd_per_month",
                   "self_host.breakdown.fallback_usd_per_month", "scenario.traffic.requests_per_day"):
        node = d
        for part in dotted.split("."):
            node = node[part]
    assert d["verdict"] in ("api", "self_host") and isinstance(d["reasons"], list)


# --- invariants --------------------------------------------------------------------------------------

PRICE_FIELDS = ("api.input_usd_per_mtok", "api.cached_input_usd_per_mtok", "api.output_usd_per_mtok",
                "self_host.gpu_usd_per_hour", "self_host.ops_usd_per_month")


def _bumped(s: Scenario, field: str, factor: float) -> Scenario:
    sec, key = field.split(".")
    old = getattr(getattr(s, sec), key)
    return replace_field(s, field, min(LIMITS[field][1], old * factor + 0.01))


@FUZZ
@given(scenarios(), st.lists(field_values("traffic.requests_per_day"), min_size=2, max_size=20))
def test_cost_is_monotone_in_volume(s, volumes):
    x = np.sort(np.array(volumes))
    t, a, h = s.traffic, s.api, s.self_host
    api = cost.api_usd_per_month(x, t.input_tokens, t.output_tokens, t.cached_input_fraction,
                                 a.input_usd_per_mtok, a.cached_input_usd_per_mtok, a.output_usd_per_mtok)
    busy = cost.replica_busy_s_per_request(t.output_tokens, h.output_tokens_per_s, t.input_tokens,
                                           t.cached_input_fraction, h.prefill_tokens_per_s)
    reps = cost.replicas_needed(x, busy, t.peak_to_mean, h.min_replicas, h.fallback_fraction)
    host = cost.self_host_usd_per_month(reps, h.gpus_per_replica, h.gpu_usd_per_hour, h.ops_usd_per_month,
                                        h.fallback_fraction * api)
    assert np.all(np.diff(api) >= 0) and np.all(np.diff(reps) >= 0) and np.all(np.diff(host) >= 0)


@FUZZ
@given(scenarios(), st.sampled_from(PRICE_FIELDS), st.floats(1.0, 10.0))
def test_cost_is_monotone_in_every_price(s, field, factor):
    before, after = cost.evaluate(s), cost.evaluate(_bumped(s, field, factor))
    assert after.api.usd_per_month >= before.api.usd_per_month
    assert after.self_host.usd_per_month >= before.self_host.usd_per_month


@FUZZ
@given(scenarios(), st.sampled_from(PRICE_FIELDS[:3]), st.floats(1.0, 10.0))
def test_breakeven_moves_down_when_an_api_price_goes_up(s, field, factor):
    before = cost.evaluate(s).breakeven.requests_per_day
    after = cost.evaluate(_bumped(s, field, factor)).breakeven.requests_per_day
    if before is not None:
        assert after is not None and after <= before * (1 + 1e-9)


@FUZZ
@given(scenarios(), st.sampled_from(PRICE_FIELDS[3:]), st.floats(1.0, 10.0))
def test_breakeven_moves_up_or_vanishes_when_self_host_prices_go_up(s, field, factor):
    before = cost.evaluate(s).breakeven.requests_per_day
    after = cost.evaluate(_bumped(s, field, factor)).breakeven.requests_per_day
    if before is None:
        assert after is None
    elif after is not None:
        assert after >= before * (1 - 1e-9)


@FUZZ
@given(scenarios())
def test_breakeven_is_the_lowest_volume_where_self_hosting_is_no_dearer(s):
    r = cost.evaluate(s)
    be = r.breakeven.requests_per_day
    t, a, h = s.traffic, s.api, s.self_host

    def gap(x):  # self - api at volumes x
        api = cost.api_usd_per_month(x, t.input_tokens, t.output_tokens, t.cached_input_fraction,
                                     a.input_usd_per_mtok, a.cached_input_usd_per_mtok, a.output_usd_per_mtok)
        reps = cost.replicas_needed(x, r.self_host.busy_s_per_request, t.peak_to_mean, h.min_replicas,
                                    h.fallback_fraction)
        host = cost.self_host_usd_per_month(reps, h.gpus_per_replica, h.gpu_usd_per_hour, h.ops_usd_per_month,
                                            h.fallback_fraction * api)
        return host - api, np.maximum(host, api)

    cap = LIMITS["traffic.requests_per_day"][1]
    hi = min(be, cap) if be is not None else cap
    k = (1 - h.fallback_fraction) * r.self_host.busy_s_per_request * t.peak_to_mean / cost.SECONDS_PER_DAY
    # every step's right edge below hi (where each step is cheapest relative to the API), plus a grid
    edges = np.arange(h.min_replicas, min(h.min_replicas + 2000, hi * k + 1)) / k if k > 0 else np.array([])
    below = np.concatenate([np.geomspace(1e-3, max(hi, 2e-3), 500), [0.0], edges])
    below = below[below < hi * (1 - 1e-6)] if be is not None else below[below <= cap]
    diff, scale = gap(below)
    assert np.all(diff > -1e-9 * scale), below[diff <= -1e-9 * scale][:3]
    if be is not None and be <= cap:
        diff_at, scale_at = gap(np.array([be]))
        assert diff_at[0] <= 1e-9 * scale_at[0]


@FUZZ
@given(scenarios(), st.integers(0, 50), st.floats(0.0, 1.0, exclude_min=True))
def test_self_host_cost_is_constant_between_replica_edges(s, step, where):
    t, h = s.traffic, s.self_host
    busy = cost.replica_busy_s_per_request(t.output_tokens, h.output_tokens_per_s, t.input_tokens,
                                           t.cached_input_fraction, h.prefill_tokens_per_s)
    k = (1 - h.fallback_fraction) * busy * t.peak_to_mean / cost.SECONDS_PER_DAY
    assume(k > 0)
    n = h.min_replicas + step
    lo, hi = (0.0 if step == 0 else (n - 1) / k), n / k
    x = lo + (hi - lo) * where
    assume(x <= LIMITS["traffic.requests_per_day"][1] and x > lo * (1 + 1e-6))
    assert cost.replicas_needed(x, busy, t.peak_to_mean, h.min_replicas, h.fallback_fraction) == n


# --- fuzzing: valid inputs never raise and give finite non-negative results ---------------------------


@FUZZ
@given(scenarios(tiny=True))  # subnormal corners too: valid input never raises, whatever its size
def test_fuzz_evaluate_valid(s):
    r = cost.evaluate(s)
    d = cost.report_to_dict(r)
    numbers = [r.api.usd_per_month, r.api.usd_per_request, r.api.usd_per_mtok_output_equiv,
               r.self_host.usd_per_month, r.self_host.utilization, r.self_host.busy_s_per_request,
               r.self_host.effective_output_tokens_per_s, r.self_host.replicas]
    numbers += [v for v in (r.self_host.usd_per_mtok_output, r.breakeven.requests_per_day,
                            r.breakeven.utilization) if v is not None]
    assert all(math.isfinite(v) and v >= 0 for v in numbers)
    assert r.self_host.utilization <= 1 + 1e-9
    assert r.self_host.replicas >= s.self_host.min_replicas
    # a tie within VERDICT_TOLERANCE of the dearer side is "no dearer" (a $1 difference on a $1e17 bill, found by
    # hypothesis, is float noise): beyond it the sign of the savings decides
    tie = cost.VERDICT_TOLERANCE * max(r.self_host.usd_per_month, r.api.usd_per_month)
    if r.savings_usd_per_month >= 0 or r.savings_usd_per_month < -tie:
        assert r.verdict == ("self_host" if r.savings_usd_per_month >= 0 else "api")
    else:
        assert r.verdict == "self_host"
    assert d["verdict"] == r.verdict and r.reasons


# function -> {argument: (valid strategy, field name the error must mention)}; subnormal corners included


def _F(dotted):
    return field_values(dotted, tiny=True)


FUNCTIONS = {
    cost.api_usd_per_request: {
        "input_tokens": _F("traffic.input_tokens"), "output_tokens": _F("traffic.output_tokens"),
        "cached_input_fraction": finite(0, 1, tiny=True), "input_usd_per_mtok": _F("api.input_usd_per_mtok"),
        "cached_input_usd_per_mtok": _F("api.cached_input_usd_per_mtok"),
        "output_usd_per_mtok": _F("api.output_usd_per_mtok"),
    },
    cost.api_usd_per_month: {
        "requests_per_day": _F("traffic.requests_per_day"), "input_tokens": _F("traffic.input_tokens"),
        "output_tokens": _F("traffic.output_tokens"), "cached_input_fraction": finite(0, 1, tiny=True),
        "input_usd_per_mtok": _F("api.input_usd_per_mtok"),
        "cached_input_usd_per_mtok": _F("api.cached_input_usd_per_mtok"),
        "output_usd_per_mtok": _F("api.output_usd_per_mtok"),
    },
    cost.replica_busy_s_per_request: {
        "output_tokens": _F("traffic.output_tokens"), "output_tokens_per_s": _F("self_host.output_tokens_per_s"),
        "input_tokens": _F("traffic.input_tokens"), "cached_input_fraction": finite(0, 1, tiny=True),
        "prefill_tokens_per_s": _F("self_host.prefill_tokens_per_s"),
    },
    cost.replicas_needed: {
        "requests_per_day": _F("traffic.requests_per_day"), "busy_s_per_request": finite(0, cost.MAX_BUSY_S, tiny=True),
        "peak_to_mean": _F("traffic.peak_to_mean"), "min_replicas": _F("self_host.min_replicas"),
        "fallback_fraction": finite(0, 1, tiny=True),
    },
    cost.self_host_usd_per_month: {
        "replicas": finite(0, 1e20, tiny=True), "gpus_per_replica": _F("self_host.gpus_per_replica"),
        "gpu_usd_per_hour": _F("self_host.gpu_usd_per_hour"), "ops_usd_per_month": _F("self_host.ops_usd_per_month"),
        "fallback_api_usd_per_month": finite(0, 1e20, tiny=True),
    },
    cost.usd_per_mtok_output: {
        "gpu_usd_per_hour": _F("self_host.gpu_usd_per_hour"),
        "output_tokens_per_s": _F("self_host.output_tokens_per_s"),
        "utilization": finite(cost.MIN_UTILIZATION, 1, tiny=True), "gpus_per_replica": _F("self_host.gpus_per_replica"),
    },
    cost.breakeven_requests_per_day: {
        "api_usd_per_request": finite(0, cost.MAX_API_USD_PER_REQUEST, tiny=True),
        "busy_s_per_request": finite(0, cost.MAX_BUSY_S, tiny=True), "peak_to_mean": _F("traffic.peak_to_mean"),
        "min_replicas": _F("self_host.min_replicas"), "gpus_per_replica": _F("self_host.gpus_per_replica"),
        "gpu_usd_per_hour": _F("self_host.gpu_usd_per_hour"), "ops_usd_per_month": _F("self_host.ops_usd_per_month"),
        "fallback_fraction": finite(0, 1, tiny=True),
    },
    cost.breakeven_utilization: {
        "gpu_usd_per_hour": _F("self_host.gpu_usd_per_hour"), "gpus_per_replica": _F("self_host.gpus_per_replica"),
        "busy_s_per_request": finite(0, cost.MAX_BUSY_S, tiny=True),
        "api_usd_per_request": finite(0, cost.MAX_API_USD_PER_REQUEST, tiny=True),
    },
}
# the documented [low, high] of each argument, for the bad-value strategy
BOUNDS = {
    "requests_per_day": LIMITS["traffic.requests_per_day"], "input_tokens": LIMITS["traffic.input_tokens"],
    "output_tokens": LIMITS["traffic.output_tokens"], "cached_input_fraction": (0, 1),
    "input_usd_per_mtok": LIMITS["api.input_usd_per_mtok"],
    "cached_input_usd_per_mtok": LIMITS["api.cached_input_usd_per_mtok"],
    "output_usd_per_mtok": LIMITS["api.output_usd_per_mtok"],
    "output_tokens_per_s": LIMITS["self_host.output_tokens_per_s"],
    "prefill_tokens_per_s": LIMITS["self_host.prefill_tokens_per_s"],
    "busy_s_per_request": (0, cost.MAX_BUSY_S), "peak_to_mean": LIMITS["traffic.peak_to_mean"],
    "min_replicas": LIMITS["self_host.min_replicas"], "fallback_fraction": (0, 1), "replicas": (0, 1e20),
    "gpus_per_replica": LIMITS["self_host.gpus_per_replica"],
    "gpu_usd_per_hour": LIMITS["self_host.gpu_usd_per_hour"],
    "ops_usd_per_month": LIMITS["self_host.ops_usd_per_month"], "fallback_api_usd_per_month": (0, 1e20),
    "utilization": (cost.MIN_UTILIZATION, 1), "api_usd_per_request": (0, cost.MAX_API_USD_PER_REQUEST),
}


@pytest.mark.parametrize("fn", list(FUNCTIONS), ids=lambda f: f.__name__)
@FUZZ
@given(data=st.data())
def test_fuzz_valid_inputs_give_finite_non_negative_results(fn, data):
    kwargs = {k: data.draw(strategy, label=k) for k, strategy in FUNCTIONS[fn].items()}
    out = fn(**kwargs)
    values = [] if out is None else list(out) if isinstance(out, tuple) else [out]
    assert all(math.isfinite(v) and v >= 0 for v in values)


@pytest.mark.parametrize("fn", list(FUNCTIONS), ids=lambda f: f.__name__)
@FUZZ
@given(data=st.data())
def test_fuzz_invalid_inputs_raise_value_error_naming_the_field(fn, data):
    kwargs = {k: data.draw(strategy, label=k) for k, strategy in FUNCTIONS[fn].items()}
    field = data.draw(st.sampled_from(sorted(kwargs)), label="field")
    bad = bad_numbers(*BOUNDS[field])
    if field == "prefill_tokens_per_s":  # None is valid there: no prefill term
        bad = bad.filter(lambda v: v is not None)
    kwargs[field] = data.draw(bad, label="bad")
    with pytest.raises(ValueError, match=field):
        fn(**kwargs)


def test_arrays_are_checked_too():
    with pytest.raises(ValueError, match="requests_per_day"):
        cost.api_usd_per_month(np.array([1.0, np.nan]), 100, 10, 0, 1, 1, 1)
    with pytest.raises(ValueError, match="utilization"):
        cost.usd_per_mtok_output(2.5, 6400, np.array([0.5, 0.0]))


def test_evaluate_rejects_non_scenarios():
    with pytest.raises(ValueError, match="Scenario"):
        cost.evaluate({"traffic": {}})  # type: ignore[arg-type]


def test_just_past_a_replica_step_self_hosting_can_be_dearer_again():
    # $10/GPU-hour: G = $7,300/replica-month; break-even (7,300 + 1,500) / 0.0245234 = 358,841 req/day on step 1.
    # Step 1 ends at 1/k = 86,400 * 3,400 / (300 * 2) = 489,600 req/day; just past it 2 replicas cost
    # 14,600 + 1,500 = $16,100 while the API costs 0.0245234 * 489,700 = $12,009.
    s = replace_field(replace_field(SUPPORT_BOT, "self_host.gpu_usd_per_hour", 10.0),
                      "traffic.requests_per_day", 489_700)
    r = cost.evaluate(s)
    assert r.breakeven.requests_per_day == pytest.approx(8_800 / (0.00080625 * 730 / 24))
    assert r.self_host.replicas == 2 and r.verdict == "api"
    assert any("just past a replica step" in reason for reason in r.reasons)


def test_rag_breakeven_utilization_counts_both_gpus_of_a_replica():
    # the RAG example runs 2 GPUs per replica: u* = 2 GPUs * $2.69/h / 3600 * busy / API $ per request, with
    # busy = 400/1700 + 6000*0.75/11200 = 4/17 + 45/112 = 1213/1904 s and $0.01995 per request:
    # u* = 5.38 * 1213 / (3600 * 1904 * 0.01995) = 6,525.94 / 136,745.28 = 0.0477233 -> "5%" (1 GPU: "2%")
    r = cost.evaluate(RAG_PINNED)
    assert r.self_host.busy_s_per_request == pytest.approx(1213 / 1904, rel=1e-12)
    assert r.breakeven.utilization == pytest.approx(6_525.94 / 136_745.28, rel=1e-12)
    assert any("at 5% average utilization" in reason for reason in r.reasons), r.reasons


def test_breakeven_utilization_scales_with_gpus_per_replica():
    # u* = g * 2.0 / 3600 * 1.8 / 0.01 = g * 0.1: one GPU 10%, four GPUs 40%
    kw = {"gpu_usd_per_hour": 2.0, "busy_s_per_request": 1.8, "api_usd_per_request": 0.01}
    assert cost.breakeven_utilization(gpus_per_replica=1, **kw) == pytest.approx(0.1, rel=1e-12)
    assert cost.breakeven_utilization(gpus_per_replica=4, **kw) == pytest.approx(0.4, rel=1e-12)
    assert cost.breakeven_utilization(gpus_per_replica=4, **(kw | {"api_usd_per_request": 0.0})) is None
