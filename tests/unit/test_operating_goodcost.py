"""Cost of good tokens (``calculators.goodcost``) by hand, its place in ``cost.evaluate`` and the report JSON
(only when the scenario carries ``self_host.slo_good_fraction``), exact round trips, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from calculators import cost, goodcost
from calculators.scenario import (
    DEFAULT_SCENARIO,
    ScenarioError,
    dumps_toml,
    from_query_params,
    loads_toml,
    replace_field,
    scenario_from_dict,
    scenario_to_dict,
    to_query_params,
)

ROOT = Path(__file__).resolve().parents[2]


def _typed(s=DEFAULT_SCENARIO, **fields):
    for dotted, value in fields.items():
        s = replace_field(s, dotted.replace("__", "."), value)
    return s


BASE = dict(traffic__requests_per_day=100_000.0, traffic__input_tokens=2000.0, traffic__output_tokens=500.0,
            traffic__cached_input_fraction=0.0, traffic__peak_to_mean=1.0, api__input_usd_per_mtok=3.0,
            api__cached_input_usd_per_mtok=0.3, api__output_usd_per_mtok=15.0, self_host__output_tokens_per_s=1000.0,
            self_host__prefill_tokens_per_s=10_000.0, self_host__gpu_usd_per_hour=2.0,
            self_host__ops_usd_per_month=0.0, self_host__fallback_fraction=0.0, self_host__min_replicas=1)


def test_evaluate_counts_only_good_tokens_and_idle_time_by_hand():
    s = _typed(**BASE, self_host__slo_good_fraction=0.9)
    r = cost.evaluate(s)
    # busy = 500/1000 + 2000/10000 = 0.7 s; load = 1e5 * 0.7 / 86400 = 0.810 -> 1 replica (19% idle, still paid)
    assert r.self_host.replicas == 1
    bill = 1 * s.self_host.gpus_per_replica * 2.0 * 730
    assert r.self_host.usd_per_month == pytest.approx(bill)
    g = r.good_tokens
    req_month = 100_000 * 730 / 24
    assert g.good_requests_per_month == pytest.approx(0.9 * req_month)
    assert g.usd_per_m_good_output_all_in == pytest.approx(bill / (0.9 * req_month * 500) * 1e6)
    assert g.prefill_share == pytest.approx(0.2 / 0.7)
    assert g.usd_per_m_output == pytest.approx(bill * 0.5 / 0.7 / (0.9 * req_month * 500) * 1e6)
    assert g.usd_per_m_input == pytest.approx(bill * 0.2 / 0.7 / (0.9 * req_month * 2000) * 1e6)
    assert (g.api_usd_per_m_input, g.api_usd_per_m_cached_input, g.api_usd_per_m_output) == (3.0, 0.3, 15.0)
    # fewer good requests, dearer good tokens: exactly 1/good_fraction
    worse = cost.evaluate(replace_field(s, "self_host.slo_good_fraction", 0.45)).good_tokens
    assert worse.usd_per_m_good_output_all_in == pytest.approx(2 * g.usd_per_m_good_output_all_in)


def test_without_a_prefill_rate_the_whole_bill_is_on_output():
    s = _typed(**{**BASE, "self_host__prefill_tokens_per_s": None}, self_host__slo_good_fraction=1.0)
    g = cost.evaluate(s).good_tokens
    assert g.prefill_share == 0.0 and g.usd_per_m_input == pytest.approx(0.0)
    assert g.usd_per_m_output == pytest.approx(g.usd_per_m_good_output_all_in)


def test_fallback_requests_count_as_good():
    s = _typed(**{**BASE, "self_host__fallback_fraction": 0.1}, self_host__slo_good_fraction=0.5)
    g = cost.evaluate(s).good_tokens
    assert g.good_requests_per_month == pytest.approx(100_000 * 730 / 24 * (0.9 * 0.5 + 0.1))


def test_report_json_has_good_tokens_only_when_the_scenario_says_the_good_fraction():
    plain = cost.report_to_dict(cost.evaluate(_typed(**BASE)))
    assert "good_tokens" not in plain and cost.evaluate(_typed(**BASE)).good_tokens is None
    d = cost.report_to_dict(cost.evaluate(_typed(**BASE, self_host__slo_good_fraction=0.9)))
    assert d["good_tokens"]["good_fraction"] == 0.9 and d["scenario"]["self_host"]["slo_good_fraction"] == 0.9
    json.dumps(d, allow_nan=False)


def test_round_trips_are_exact_with_and_without_the_field():
    for s in (_typed(**BASE), _typed(**BASE, self_host__slo_good_fraction=0.873)):
        assert scenario_from_dict(scenario_to_dict(s)) == s
        assert loads_toml(dumps_toml(s)) == s
        assert from_query_params(to_query_params(s))[0] == s
    assert "slo_good_fraction" not in scenario_to_dict(_typed(**BASE))["self_host"]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "x", True])
def test_bad_good_fraction_names_the_field(bad):
    with pytest.raises(ScenarioError, match=r"self_host\.slo_good_fraction"):
        replace_field(DEFAULT_SCENARIO, "self_host.slo_good_fraction", bad)


def test_cli_report_has_good_tokens_from_a_scenario_file(tmp_path: Path):
    s = _typed(**BASE, self_host__slo_good_fraction=0.9)
    path = tmp_path / "slo.toml"
    path.write_text(dumps_toml(s), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "calculators", "evaluate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)["good_tokens"]
    want = goodcost.good_tokens_to_dict(cost.evaluate(s).good_tokens)
    assert got == pytest.approx(want)  # page (cost.evaluate) and CLI give the same numbers


def test_good_fraction_from_stored_samples_by_hand():
    # TPOT = (latency - TTFT) / (out - 1): 10 ms, 30 ms; out=1 counts TPOT 0; a failure is never good
    recs = [{"success": True, "ttft_ms": 200.0, "latency_ms": 1190.0, "output_tokens": 100},
            {"success": True, "ttft_ms": 200.0, "latency_ms": 3170.0, "output_tokens": 100},
            {"success": True, "ttft_ms": 400.0, "latency_ms": 400.0, "output_tokens": 1},
            {"success": False, "error": "timeout"}]
    assert goodcost.good_fraction_from_samples(recs, 500, 20) == 0.5
    assert goodcost.good_fraction_from_samples(recs, 300, None) == 0.5
    assert goodcost.good_fraction_of_point({"samples": recs}, 500, 50) == (0.75, "per-request records")
    # goodput only counts when the run measured it with the same targets
    pt = {"goodput_requests_per_s": 2.0, "requests_per_s": 4.0, "completed": 9, "failed": 1}
    assert goodcost.good_fraction_of_point(pt, 500, 50, (500.0, 50.0))[0] == pytest.approx(0.5 * 0.9)
    assert goodcost.good_fraction_of_point(pt, 500, 50, (400.0, 50.0))[0] is None
