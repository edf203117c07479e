"""calculators.options: TOML and URL round trips (Hypothesis over tests/strategies.py), the comparison equal to
``cost.evaluate`` per option, hand-worked goldens, and errors that name the option and field."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators import cost
from calculators import options as opts
from calculators.filelimits import MAX_SCENARIO_BYTES
from calculators.scenario import DEFAULT_SCENARIO, Traffic, apply_api_model, apply_gpu, replace_field
from tests.strategies import FUZZ, scenarios, traffics

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "scenarios" / "options" / "three-ways.toml"


@st.composite
def option_sets(draw) -> opts.OptionsSet:
    traffic = draw(traffics())
    names = draw(st.lists(st.text(min_size=1, max_size=opts.MAX_NAME_CHARS).filter(str.strip), unique=True,
                          max_size=opts.MAX_OPTIONS))
    options = []
    for name in names:
        s = draw(scenarios())
        s = dataclasses.replace(s, api=dataclasses.replace(s.api, cache_write_fraction=0.0))
        options.append(opts.Option(name, s, draw(st.sampled_from(opts.KINDS))))
    return opts.OptionsSet(traffic, tuple(options), name=draw(st.text(max_size=30)),
                           description=draw(st.text(max_size=40)))


@FUZZ
@given(option_sets())
def test_toml_round_trip(oset):
    assert opts.options_from_toml(opts.options_to_toml(oset)) == oset
    assert opts.options_from_dict(opts.options_to_dict(oset)) == oset


@FUZZ
@given(option_sets())
def test_url_round_trip(oset):
    params = opts.options_to_query_params(oset)
    assert all(isinstance(v, str) for v in params.values())
    got, problems = opts.options_from_query_params(params)
    assert problems == []
    if oset.options:
        assert got == oset
    else:
        assert got is None


def test_url_is_compact_for_a_default_option():
    oset = opts.OptionsSet(DEFAULT_SCENARIO.traffic, (opts.make_option("A", DEFAULT_SCENARIO),
                                                      opts.make_option("API", DEFAULT_SCENARIO, "api")))
    keys = sorted(k for k in opts.options_to_query_params(oset) if re.match(r"o\d+_", k))
    assert keys == ["o1_gpu", "o1_gpu_tier", "o1_gpu_usd", "o1_name", "o2_kind", "o2_name"]


def _three() -> opts.OptionsSet:
    h100 = replace_field(apply_gpu(DEFAULT_SCENARIO, "h100-sxm"), "self_host.gpus_per_replica", 2)
    l40s = replace_field(apply_gpu(DEFAULT_SCENARIO, "l40s"), "self_host.prefill_tokens_per_s", 9000.0)
    api = apply_api_model(DEFAULT_SCENARIO, "claude-sonnet-5-5")
    return opts.OptionsSet(DEFAULT_SCENARIO.traffic, (opts.make_option("H100", h100), opts.make_option("L40S", l40s),
                                                      opts.make_option("API", api, "api")))


def test_comparison_equals_evaluate_per_option():
    oset = _three()
    df = opts.compare_options(oset)
    assert list(df.columns) == list(opts.COMPARE_COLUMNS) and list(df["option"]) == ["H100", "L40S", "API"]
    for o, row in zip(oset.options, df.to_dict("records"), strict=True):
        r = cost.evaluate(o.scenario)
        if o.kind == "api":
            assert row["monthly_usd"] == r.api.usd_per_month == row["api_usd_per_month"]
            assert row["usd_per_m_output"] == r.rates.output_usd_per_mtok
            assert pd.isna(row["replicas"]) and pd.isna(row["utilization"])
        else:
            assert row["monthly_usd"] == r.self_host.usd_per_month
            assert row["gpu_usd_per_month"] == r.self_host.gpu_usd_per_month
            assert row["replicas"] == r.self_host.replicas and row["utilization"] == r.self_host.utilization
    # the bill, split by replica time, adds back up to the month (L40S has a prefill rate)
    t, row = DEFAULT_SCENARIO.traffic, df.iloc[1]
    req = t.requests_per_day * 730 / 24
    back = (row["usd_per_m_input"] * req * t.input_tokens + row["usd_per_m_output"] * req * t.output_tokens) / 1e6
    assert back == pytest.approx(row["monthly_usd"], rel=1e-12)
    assert pd.isna(df.iloc[0]["usd_per_m_input"])  # no prefill rate: the whole bill is in $/M output


def test_golden_self_host_row():
    # 20,000 req/day x 300 out at 1000 tok/s, peak 2: 0.139 replicas -> 1; $2/h x 730 = $1,460 + $540 ops
    s = dataclasses.replace(DEFAULT_SCENARIO, self_host=dataclasses.replace(
        DEFAULT_SCENARIO.self_host, gpu_usd_per_hour=2.0, gpu_price_tier="typed", output_tokens_per_s=1000.0,
        ops_usd_per_month=540.0, throughput_source="measured run 12 at SLO TTFT p90 ≤ 500 ms, c=16 (1,500 in / "
        "300 out tokens)"))
    row = opts.compare_options([opts.make_option("x", s)]).iloc[0]
    assert row["monthly_usd"] == 2000.0 and row["replicas"] == 1
    assert row["utilization"] == pytest.approx(20_000 * 0.3 / 86_400)
    assert row["usd_per_m_output"] == pytest.approx(2000.0 / (20_000 * 730 / 24 * 300) * 1e6)
    # a scenario saved before the measured latency was kept: the SLO alone, said so
    assert (row["throughput_kind"], row["run_id"], row["latency_at_slo"]) == (
        "measured", "12", "SLO TTFT p90 ≤ 500 ms met (latency not recorded)")
    s = replace_field(s, "self_host.throughput_latency", "TTFT p90 312 ms, TPOT p90 41 ms")
    row = opts.compare_options([opts.make_option("x", s)]).iloc[0]
    assert row["latency_at_slo"] == "TTFT p90 312 ms, TPOT p90 41 ms (SLO TTFT p90 ≤ 500 ms)"
    # a typed throughput is nobody's measurement: no latency shown, whatever an old field says
    s = replace_field(s, "self_host.throughput_source", "user input")
    assert opts.compare_options([opts.make_option("x", s)]).iloc[0]["latency_at_slo"] is None
    assert row["gpu_price_source"] == "typed"


def test_example_file_three_ways():
    oset = opts.load_options(EXAMPLE)
    df = opts.compare_options(oset)
    assert list(df["kind"]) == ["self_host", "self_host", "api"]
    assert list(df["throughput_kind"][:2]) == ["estimate", "estimate"]
    assert opts.options_from_toml(opts.options_to_toml(oset)) == oset


@pytest.mark.parametrize(("text", "message"), [
    ('[[option]]\nname="a"', r"section \[traffic\] is required"),
    ("[traffic]\nrequests_per_day=1\ninput_tokens=1\noutput_tokens=1\n[[option]]\nkind='api'\n[option.api]\n"
     "input_usd_per_mtok=1\noutput_usd_per_mtok=1", "option 1: name is required"),
    ("[traffic]\nrequests_per_day=1\ninput_tokens=1\noutput_tokens=1\n[[option]]\nname='b'\n[option.api]\n"
     "input_usd_per_mtok=1\noutput_usd_per_mtok=1\n[option.self_host]\ngpu='l40s'\noutput_tokens_per_s=1\n"
     "gpus_per_replica=100", r"option 1 \('b'\): self_host.gpus_per_replica must be <= 64, got 100"),
    ("[traffic]\nrequests_per_day=1\ninput_tokens=1\noutput_tokens=1\n[[option]]\nname='c'\n[option.self_host]\n"
     "gpu='l40s'\noutput_tokens_per_s=1", r"option 1 \('c'\): \[option.api\] is required"),
    ("[traffic]\nrequests_per_day=1\ninput_tokens=1\noutput_tokens=1\n[[option]]\nname='d'\nkind='api'\n"
     "[option.api]\ninput_usd_per_mtok=1\noutput_usd_per_mtok=1\n[option.self_host]\ngpu='l40s'",
     r"option 1 \('d'\): an API option has no \[option.self_host\] table"),
    ("[traffic]\nrequests_per_day=1\ninput_tokens=1\noutput_tokens=1\n[api]\ninput_usd_per_mtok=1\n"
     "output_usd_per_mtok=1\n" + "[[option]]\nname='e'\nkind='api'\n" * 2, "'e' is used twice"),
    ("[traffic]\nrequests_per_day=1\ninput_tokens=1\noutput_tokens=1\n[api]\ninput_usd_per_mtok=1\n"
     "output_usd_per_mtok=1\n" + "".join(f"[[option]]\nname='{i}'\nkind='api'\n" for i in range(9)),
     "at most 8 options, got 9"),
    ("[traffic]\nrequests_per_day=1\ninput_tokens=1\noutput_tokens=1\n[[option]]\nname='f'\nkind='rent'",
     r"option 1 \('f'\): kind must be one of self_host, api"),
    ("[traffic\n", "malformed TOML"),
    ("x = '" + "a" * MAX_SCENARIO_BYTES + "'", "over the 256 KiB limit"),
])
def test_errors_name_option_and_field(text, message):
    with pytest.raises(opts.OptionsError, match=message):
        opts.options_from_toml(text)


def test_url_bad_values_are_reported_not_raised():
    got, problems = opts.options_from_query_params({"o1_name": "A", "o1_gpr": "x", "o2_name": "",
                                                    "o9_name": "Z", "rpd": "-3"})
    assert [o.name for o in got.options] == ["A"]
    assert any("option 1 ('A')" in p and "gpus_per_replica" in p for p in problems)
    assert any("URL option 2" in p for p in problems) and any("o9_name" in p for p in problems)
    assert any("requests_per_day" in p for p in problems)


def test_set_edits():
    oset = opts.OptionsSet(Traffic(1000, 100, 10))
    oset = opts.add_option(oset, opts.make_option("a", DEFAULT_SCENARIO))
    assert oset.options[0].scenario.traffic == Traffic(1000, 100, 10)
    with pytest.raises(opts.OptionsError, match="used twice"):
        opts.add_option(oset, opts.make_option("a", DEFAULT_SCENARIO))
    oset = opts.replace_option(oset, "a", opts.make_option("b", DEFAULT_SCENARIO, "api"))
    assert oset.names() == ["b"] and opts.remove_option(oset, "b").options == ()


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calculators", "options", *args], cwd=ROOT, capture_output=True,
                          text=True, input=stdin, timeout=120, check=False)


def test_cli_json_equals_compare_options():
    p = _cli(str(EXAMPLE), "--json")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)["options"]
    df = opts.compare_options(opts.load_options(EXAMPLE))
    assert [r["monthly_usd"] for r in got] == list(df["monthly_usd"])
    assert [r["option"] for r in got] == ["H100 fp8 70B", "L40S 8B", "API: Claude Sonnet 5.5"]
    table = _cli(str(EXAMPLE))
    assert table.returncode == 0 and "L40S 8B" in table.stdout and "$/M out" in table.stdout


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[traffic]\nrequests_per_day=-1\ninput_tokens=1\noutput_tokens=1\n")
    p = _cli(str(bad))
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "requests_per_day" in p.stderr
    assert _cli(str(tmp_path / "missing.toml")).returncode == 2


def test_a_throughput_measured_on_another_gpu_is_marked_stale():
    moved = apply_gpu(DEFAULT_SCENARIO, "l40s")  # the default's throughput was measured on an H100 SXM
    df = opts.compare_options([opts.make_option("same", DEFAULT_SCENARIO), opts.make_option("moved", moved)])
    assert pd.isna(df["throughput_stale"][0])
    assert "GPU: the throughput was measured on NVIDIA H100 SXM 80GB" in df["throughput_stale"][1]
