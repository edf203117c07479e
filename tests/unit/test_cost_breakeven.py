"""The break-even that does not mislead (issue 11 item 5): first crossing vs sustained, ties at the break-even."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from calculators import cost
from calculators.scenario import Scenario, scenario_from_dict
from tests.strategies import scenarios

# The issue's example, prices typed (the old catalog's gpt-5-nano: $0.05 in / $0.005 cached / $0.40 out per M).
L40S_NANO = scenario_from_dict({
    "traffic": {"requests_per_day": 100_000, "input_tokens": 500, "output_tokens": 500, "peak_to_mean": 1.5},
    "api": {"input_usd_per_mtok": 0.05, "cached_input_usd_per_mtok": 0.005, "output_usd_per_mtok": 0.40},
    "self_host": {"gpu": "l40s", "gpu_usd_per_hour": 0.79, "output_tokens_per_s": 950},
})


def _at(s: Scenario, rpd: float) -> cost.Report:
    return cost.evaluate(dataclasses.replace(s, traffic=dataclasses.replace(s.traffic, requests_per_day=rpd)))


def test_issue_example_first_crossing_gaps_and_sustained_in_numbers_and_words():
    r = cost.evaluate(L40S_NANO)
    b = r.breakeven
    assert round(b.requests_per_day) == 84_267 and b.replicas == 1
    assert round(b.sustained_requests_per_day) == 337_067 and b.sustained_replicas == 4
    assert [(round(lo), round(hi)) for lo, hi in b.dearer_ranges] == [
        (109_440, 168_533), (218_880, 252_800), (328_320, 337_067)]
    words = next(x for x in r.reasons if x.startswith("Break-even"))
    assert words == ("Break-even: self-hosting is no dearer from 84,267 requests/day (1 replica(s)); dearer again "
                     "on 109,440-168,533, 218,880-252,800, 328,320-337,067 requests/day (just after a replica is "
                     "added); no dearer at every volume from 337,067 requests/day (4 replica(s)).")
    d = json.loads(json.dumps(cost.report_to_dict(r)))
    assert d["breakeven"]["sustained_requests_per_day"] == b.sustained_requests_per_day
    # the verdict really flips on those ranges (brute force through evaluate, not the formula)
    for rpd, verdict in [(84_267.5, "self_host"), (120_000, "api"), (200_000, "self_host"), (240_000, "api"),
                         (330_000, "api"), (337_068, "self_host"), (1e7, "self_host"), (1e10, "self_host")]:
        assert _at(L40S_NANO, rpd).verdict == verdict, rpd


def test_sustained_is_null_when_gaps_recur_to_the_limit():
    # d = b - G*k > 0 but tiny: the last gap lies beyond 1e10 requests/day
    kw = dict(api_usd_per_request=1e-6, busy_s_per_request=0.1, peak_to_mean=1.0, min_replicas=1,
              gpus_per_replica=1, gpu_usd_per_hour=1.0)
    # G*k = 730 * 0.1/86400 = 8.449e-4 per req/day; b = 1e-6 * 730/24 = 3.0417e-5 < G*k: never even first
    assert cost.breakeven_requests_per_day(**kw) is None
    assert cost.sustained_breakeven_requests_per_day(**kw) is None
    kw["busy_s_per_request"] = 0.0035  # G*k = 2.957e-5 < b, d = 8.4e-7: n* ~ 36 -> x ~ 8.6e8
    x, n = cost.sustained_breakeven_requests_per_day(**kw)
    assert x == pytest.approx(n * 730 / 3.0416666e-5, rel=1e-6)
    assert cost.sustained_breakeven_requests_per_day(**kw, max_requests_per_day=x * 0.999) is None


def test_free_self_hosting_is_sustained_from_zero():
    kw = dict(api_usd_per_request=1e-3, busy_s_per_request=1.0, peak_to_mean=1.0, min_replicas=1,
              gpus_per_replica=1, gpu_usd_per_hour=0.0)
    assert cost.sustained_breakeven_requests_per_day(**kw) == (0.0, 1)
    assert cost.sustained_breakeven_requests_per_day(**kw | {"ops_usd_per_month": 100.0}) == pytest.approx(
        (100 / (1e-3 * 730 / 24), 1))


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.floats(0.0, 1.0))
def test_sustained_break_even_holds_at_every_higher_volume_and_not_just_below(s, u):
    b = cost.evaluate(s).breakeven
    assume(b.requests_per_day is not None)
    if b.sustained_requests_per_day is None:
        return
    first, sus = b.requests_per_day, b.sustained_requests_per_day
    assert sus >= first * (1 - 1e-12)
    assert _at(s, sus).verdict == "self_host"
    # any volume above it, up to the limit (log-uniform)
    hi = cost.MAX_REQUESTS_PER_DAY
    x = sus * (hi / sus) ** u if sus > 0 else hi * u
    assert _at(s, min(x, hi)).verdict == "self_host"
    # each reported gap is dearer at its middle; just below the sustained point is dearer when a gap exists
    for lo, up in b.dearer_ranges[:3]:
        if up - lo > 1e-6 * up:
            assert _at(s, (lo + up) / 2).verdict == "api", (lo, up)
    if b.dearer_ranges and len(b.dearer_ranges) == b.sustained_replicas - b.replicas:  # all listed
        lo, up = b.dearer_ranges[-1]
        assert up == sus  # the last gap ends at the sustained point: nothing lower qualifies
        if up - lo > 1e-5 * up and s.self_host.fallback_fraction < 0.99:
            assert _at(s, sus * (1 - 1e-6)).verdict == "api"


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_verdict_at_the_reported_break_even_is_not_float_noise(s):
    """At exactly the reported break-even (first and sustained) the verdict is self_host; 1e-6 below the
    first crossing it is the API (the gap is a real dollar amount, not noise)."""
    b = cost.evaluate(s).breakeven
    assume(b.requests_per_day is not None and b.requests_per_day <= cost.MAX_REQUESTS_PER_DAY)
    r = _at(s, b.requests_per_day)
    assert r.verdict == "self_host", r.savings_usd_per_month
    assert abs(r.savings_usd_per_month) <= 1e-6 * max(r.api.usd_per_month, 1.0)
    # 1e-6 below, self-host's saving shrinks by (1 - fallback) * 1e-6 of the API bill: over the 1e-9 tie
    # tolerance unless nearly all traffic falls back to the API anyway
    if b.requests_per_day > 0 and s.self_host.fallback_fraction < 0.99:
        below = _at(s, b.requests_per_day * (1 - 1e-6))
        assume(below.self_host.replicas == r.self_host.replicas)  # same replica step
        assert below.verdict == "api"


@pytest.mark.parametrize("usd_per_hour", [0.73, 0.91, 0.95, 0.99])
def test_the_tolerance_is_what_decides_at_the_break_even(usd_per_hour):
    """At these L40S prices the raw savings at the exact break-even are -1.1e-13 dollars (float noise): the
    verdict is self_host all the same, while a real millionth of a dollar still counts."""
    s = dataclasses.replace(L40S_NANO, self_host=dataclasses.replace(L40S_NANO.self_host,
                                                                     gpu_usd_per_hour=usd_per_hour))
    r = _at(s, cost.evaluate(s).breakeven.requests_per_day)
    assert -1e-9 < r.savings_usd_per_month < 0  # the noise is there ...
    assert r.verdict == "self_host"  # ... and does not decide
    assert not cost.no_dearer(100.0 + 1e-6, 100.0) and cost.no_dearer(100.0 + 1e-8, 100.0)


# Realistic scenarios, where the saw-tooth shows (the extreme corners of ``scenarios()`` rarely have gaps).
realistic = st.builds(
    lambda usd, otps, inp, out, peak, ops, m, fb, p_out: scenario_from_dict({
        "traffic": {"requests_per_day": 1000, "input_tokens": inp, "output_tokens": out, "peak_to_mean": peak},
        "api": {"input_usd_per_mtok": p_out / 8, "output_usd_per_mtok": p_out},
        "self_host": {"gpu": "l40s", "gpu_usd_per_hour": usd, "output_tokens_per_s": otps, "min_replicas": m,
                      "ops_usd_per_month": ops, "fallback_fraction": fb}}),
    st.floats(0.3, 8.0), st.floats(200, 8000), st.floats(50, 8000), st.floats(20, 2000), st.floats(1.0, 4.0),
    st.sampled_from([0.0, 500.0, 5000.0]), st.integers(1, 3), st.sampled_from([0.0, 0.1]), st.floats(0.2, 20.0))


@settings(max_examples=200, deadline=None)
@given(realistic, st.data())
def test_sustained_break_even_is_exact_on_realistic_scenarios(s, data):
    """Brute force through ``evaluate``: dearer inside every reported gap and just below the sustained point,
    no dearer at it and at any volume above it up to the limit."""
    b = cost.evaluate(s).breakeven
    assume(b.requests_per_day is not None and b.sustained_requests_per_day is not None)
    sus = b.sustained_requests_per_day
    assert _at(s, sus).verdict == "self_host" and _at(s, b.requests_per_day).verdict == "self_host"
    x = data.draw(st.floats(sus, cost.MAX_REQUESTS_PER_DAY))
    assert _at(s, x).verdict == "self_host", x
    assert len(b.dearer_ranges) == min(20, b.sustained_replicas - b.replicas)
    for lo, up in b.dearer_ranges:
        assert b.requests_per_day < lo < up <= sus
        # inside, clear of the 1e-9 replica and tie tolerances at both ends
        lo_in, up_in = lo * (1 + 1e-7), up * (1 - 1e-7)
        if lo_in < up_in:
            assert _at(s, data.draw(st.floats(lo_in, up_in))).verdict == "api", (lo, up)
        assert _at(s, lo).verdict == "self_host"  # the step edge itself is still the cheaper step
    if b.dearer_ranges and b.sustained_replicas - b.replicas <= 20:
        assert b.dearer_ranges[-1][1] == sus
        assert _at(s, sus - (sus - b.dearer_ranges[-1][0]) / 2).verdict == "api"
