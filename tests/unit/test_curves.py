"""calculators.curves: the chart data agrees with cost.evaluate, shows the steps, and is finite for any input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from calculators import cost, curves
from calculators.scenario import replace_field
from tests.pinned import SUPPORT_BOT
from tests.strategies import FUZZ, scenarios

# 2.50 $/GPU-hour at 6,400 output tok/s, no prefill term: the article's check
ARTICLE = replace_field(replace_field(SUPPORT_BOT, "self_host.gpu_usd_per_hour", 2.5),
                        "self_host.output_tokens_per_s", 6400.0)


def test_cost_vs_volume_matches_evaluate_at_current_and_breakeven():
    df = curves.cost_vs_volume(SUPPORT_BOT)
    r = cost.evaluate(SUPPORT_BOT)
    cur = df[df.is_current]
    assert len(cur) == 1
    assert cur.self_host_usd_per_month.iloc[0] == pytest.approx(r.self_host.usd_per_month)
    assert cur.api_usd_per_month.iloc[0] == pytest.approx(r.api.usd_per_month)
    be = df[df.is_breakeven]
    assert len(be) == 1 and be.requests_per_day.iloc[0] == pytest.approx(r.breakeven.requests_per_day)
    # at break-even the two sides cost the same: (1,963.70 + 1,500) = 0.0245234 * 141,240
    assert be.self_host_usd_per_month.iloc[0] == pytest.approx(be.api_usd_per_month.iloc[0])
    assert df.requests_per_day.is_monotonic_increasing
    assert df.api_usd_per_month.is_monotonic_increasing and df.self_host_usd_per_month.is_monotonic_increasing


def test_cost_vs_volume_draws_steps_as_steps():
    # peak replicas per req/day: k = 300/3400 * 2 / 86,400 -> an edge every 1/k = 489,600 req/day
    s = replace_field(SUPPORT_BOT, "traffic.requests_per_day", 2_000_000)
    df = curves.cost_vs_volume(s, n=100)
    k = 300 / 3400 * 2 / 86_400
    for n in (2, 3, 4):
        edge = n / k
        at = df[np.isclose(df.requests_per_day, edge, rtol=1e-9, atol=0)]
        after = df[np.isclose(df.requests_per_day, edge * (1 + 1e-7), rtol=1e-10, atol=0)]
        assert at.replicas.tolist() == [n] and after.replicas.tolist() == [n + 1]
        # the jump is one replica: $2.69 * 730 = $1,963.70
        jump = after.self_host_usd_per_month.iloc[0] - at.self_host_usd_per_month.iloc[0]
        assert jump == pytest.approx(1963.70, rel=1e-4)
    # between edges self-host cost is flat
    inside = df[(df.requests_per_day > 2 / k * 1.001) & (df.requests_per_day < 3 / k * 0.999)]
    assert len(inside) > 1 and inside.self_host_usd_per_month.nunique() == 1


def test_usd_per_mtok_curve_article_check_and_crossing():
    df = curves.usd_per_mtok_vs_utilization(ARTICLE)  # 96 points: 0.05, 0.06, ..., 1.00
    at = dict(zip(df.utilization.round(6), df.self_host_usd_per_mtok_output, strict=True))
    assert at[1.0] == pytest.approx(0.1085, abs=5e-5)  # 2.50 / 23.04
    assert at[0.3] == pytest.approx(0.3617, abs=5e-5)  # 0.108507 / 0.3
    # API line: $0.00080625 per request / 300 output tokens = $2.6875 per M output-equivalent
    assert (df.api_usd_per_mtok_output_equiv == 2.6875).all()
    u = cost.evaluate(ARTICLE).breakeven.utilization
    assert cost.usd_per_mtok_output(2.5, 6400, u) == pytest.approx(2.6875)


def test_savings_heatmap_golden_and_direction():
    df = curves.savings_heatmap(SUPPORT_BOT, n_price=5, n_util=4)
    assert len(df) == 20 and list(df.columns) == ["gpu_usd_per_hour", "utilization", "savings_usd_per_month"]
    grid = df.pivot(index="gpu_usd_per_hour", columns="utilization", values="savings_usd_per_month")
    assert (np.diff(grid.to_numpy(), axis=0) <= 0).all()  # dearer GPUs, smaller savings
    assert (np.diff(grid.to_numpy(), axis=1) >= 0).all()  # better utilization, bigger savings
    # by hand at p and u = 1: mean load 20,000/86,400 * 300/3,400 = 0.0204248 replicas
    # savings = 490.47 - 0.0204248 * p * 730 - 1,500
    p = grid.index[2]
    assert grid.loc[p, 1.0] == pytest.approx(490.46875 - 0.0204248 * p * 730 - 1500, rel=1e-5)


def test_bad_grid_sizes_name_the_argument():
    with pytest.raises(ValueError, match="n must be >= 2"):
        curves.cost_vs_volume(SUPPORT_BOT, n=1)
    with pytest.raises(ValueError, match="n_util must be a whole number"):
        curves.savings_heatmap(SUPPORT_BOT, n_util=2.5)
    with pytest.raises(ValueError, match="Scenario"):
        curves.usd_per_mtok_vs_utilization({})  # type: ignore[arg-type]


@FUZZ
@given(scenarios())
def test_fuzz_curves_are_finite_for_any_valid_scenario(s):
    vol = curves.cost_vs_volume(s, n=40)
    mtok = curves.usd_per_mtok_vs_utilization(s, n=20)
    heat = curves.savings_heatmap(s, n_price=6, n_util=6)
    for df in (vol, mtok, heat):
        numeric = df.select_dtypes("number").to_numpy(dtype=float)
        assert numeric.size and np.isfinite(numeric).all()
    assert (vol.drop(columns=["is_breakeven", "is_current"]).to_numpy(dtype=float) >= 0).all()
    assert (np.diff(vol.self_host_usd_per_month) >= 0).all() and (np.diff(vol.api_usd_per_month) >= 0).all()
    assert (mtok.drop(columns="utilization").to_numpy() >= 0).all()


def test_cost_vs_volume_flags_the_sustained_break_even_and_the_gaps_before_it():
    from tests.unit.test_cost_breakeven import L40S_NANO

    df = curves.cost_vs_volume(L40S_NANO)
    b = cost.evaluate(L40S_NANO).breakeven
    sus = df[df.is_sustained_breakeven]
    assert len(sus) == 1 and sus.requests_per_day.iloc[0] == b.sustained_requests_per_day
    assert df.requests_per_day.max() >= 1.5 * b.sustained_requests_per_day
    # on the curve itself: dearer somewhere between the two break-evens, never from the sustained one on
    between = df[(df.requests_per_day > b.requests_per_day) & (df.requests_per_day < b.sustained_requests_per_day)]
    above = df[df.requests_per_day >= b.sustained_requests_per_day]
    assert (between.self_host_usd_per_month > between.api_usd_per_month).any()
    assert (above.self_host_usd_per_month <= above.api_usd_per_month * (1 + 1e-9)).all()
