"""The Break-even page's "Uncertainty" expander (AppTest) and ``python -m calculators evaluate --band/--ranges``
(subprocess): the page and the CLI give the same numbers for the same scenario and ranges."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from calculators import uncertainty
from calculators.scenario import DEFAULT_SCENARIO, dumps_toml, load_toml, to_query_params
from ui.uncertainty_view import share_text
from ui.widgets import usd

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "app.py")
BREAK_EVEN = "app_pages/1_Break_even.py"
EXAMPLE = ROOT / "scenarios" / "rag-assistant-70b.toml"
TIMEOUT_S = 30


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calculators", "evaluate", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60)


def page(query_params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT_S)
    at.query_params.update(query_params or {})
    at.session_state["be_unc_open"] = True  # the expander computes only while open
    at.switch_page(BREAK_EVEN).run()
    assert not at.exception, at.exception
    return at


def tornado_table(at: AppTest) -> pd.DataFrame:
    frames = [d.value for d in at.dataframe if "swing" in d.value.columns]
    assert len(frames) == 1
    return frames[0]


def chart(at: AppTest, key: str) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(specs) == 1, key
    return specs[0]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def assert_page_equals_cli(at: AppTest, d: dict) -> None:
    u = d["uncertainty"]
    df = tornado_table(at)
    assert list(df["key"]) == [b["key"] for b in u["tornado"]]
    for col in ("low", "high", "savings_at_low", "savings_at_high", "swing"):
        assert list(df[col]) == [b[col] for b in u["tornado"]], col
    m, mc = metrics(at), u["monte_carlo"]
    assert m["Savings p5, $/month"] == usd(mc["savings_p5"])
    assert m["Savings p50, $/month"] == usd(mc["savings_p50"])
    assert m["Savings p95, $/month"] == usd(mc["savings_p95"])
    assert m["Self-hosting no dearer in"] == share_text(mc["share_self_host_cheaper"])


def test_cli_band_prints_the_library_analysis_and_the_default_ranges():
    proc = cli(str(EXAMPLE.relative_to(ROOT)), "--band")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    s = load_toml(EXAMPLE)
    want = uncertainty.uncertainty_to_dict(uncertainty.analyse(s, uncertainty.ranges_from_pct(
        s, uncertainty.DEFAULT_PCT)))
    assert d["uncertainty"] == json.loads(json.dumps(want))
    assert d["uncertainty"]["base"]["savings_usd_per_month"] == d["savings_usd_per_month"]
    assert "uncertainty" not in json.loads(cli(str(EXAMPLE.relative_to(ROOT))).stdout)  # only when asked


@pytest.mark.parametrize(("args", "message"), [
    (["--ranges", "otps=120"], r"error: --ranges: range 'otps=120': \+/- % must be in \[0, 95\]"),
    (["--ranges", "speed=10"], "error: --ranges: range 'speed=10': expected KEY=PCT or KEY=LOW..HIGH"),
    (["--band", "--samples", "0"], "error: --samples: samples must be a whole number in 1..1000000, got 0"),
])
def test_cli_bad_ranges_exit_2_naming_the_option(args, message):
    proc = cli(str(EXAMPLE.relative_to(ROOT)), *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert re.search(message, proc.stderr), proc.stderr


RUN = ROOT / "benchmarks" / "results" / "h100-vllm0.26-2026-11-28" / "probe-llama-3.3-70b-fp8.json"


def test_cli_throughput_run_takes_the_throughput_range_from_the_bootstrap_interval():
    proc = cli(str(EXAMPLE.relative_to(ROOT)), "--throughput-run", str(RUN), "--point", "32")
    assert proc.returncode == 0, proc.stderr
    u = json.loads(proc.stdout)["uncertainty"]
    run = json.loads(RUN.read_text())
    point = next(p for p in run["points"] if p["concurrency"] == 32)
    ci = uncertainty.throughput_ci_from_samples(point["samples"], point["duration_s"])
    assert u["throughput_ci"]["estimate"] == point["output_tokens_per_s"] == ci.estimate
    assert (u["throughput_ci"]["low"], u["throughput_ci"]["high"]) == (ci.low, ci.high)
    base = load_toml(EXAMPLE).self_host.output_tokens_per_s
    assert u["ranges"]["otps"] == {"low": base * ci.low / ci.estimate, "high": base * ci.high / ci.estimate}
    bad = cli(str(EXAMPLE.relative_to(ROOT)), "--throughput-run", str(RUN), "--point", "5")
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: --throughput-run: no point at concurrency 5 with per-request samples "
                                  "(points with samples: [1, 8, 32])")


def test_the_expander_shows_the_band_and_tornado_the_cli_prints():
    at = page()
    assert "Uncertainty" in [e.label for e in at.expander]
    assert "unc" not in at.query_params  # defaults: nothing extra in the link
    proc = cli("-", "--band", stdin=dumps_toml(DEFAULT_SCENARIO))
    assert proc.returncode == 0, proc.stderr
    assert_page_equals_cli(at, json.loads(proc.stdout))
    d = json.loads(proc.stdout)["uncertainty"]
    tornado, band = chart(at, "be_chart_tornado"), chart(at, "be_chart_savings_band")
    assert tornado["data"][0]["y"] == [b["label"] for b in d["tornado"]]  # largest swing first (drawn on top)
    assert tornado["data"][0]["base"] == d["base"]["savings_usd_per_month"]
    shapes = [sh for sh in band["layout"]["shapes"] if sh["type"] == "rect"]
    assert [sh["x0"] for sh in shapes] == [d["monte_carlo"]["breakeven_p5"]] or d["monte_carlo"]["breakeven_p5"] \
        is None and shapes == []


def test_applying_ranges_updates_the_tornado_and_the_link_which_reproduces_them():
    at = page()
    at.number_input(key="be_unc_gpu_usd").set_value(40.0)
    at.number_input(key="be_unc_ops").set_value(0.0)
    at.button(key="FormSubmitter:be_unc_form-Apply ranges").click().run()
    assert not at.exception, at.exception
    df = tornado_table(at)
    assert "ops" not in set(df["key"])
    gpu = df[df["key"] == "gpu_usd"].iloc[0]
    base = DEFAULT_SCENARIO.self_host.gpu_usd_per_hour
    assert (gpu["low"], gpu["high"]) == pytest.approx((base * 0.6, base * 1.4))
    spec = at.query_params["unc"][0] if isinstance(at.query_params["unc"], list) else at.query_params["unc"]
    assert "gpu_usd=40" in spec and "ops=" not in spec
    # the link opens the same ranges in a new session, and the CLI's --ranges gives the same numbers
    again = page({**to_query_params(DEFAULT_SCENARIO), "unc": spec})
    pd.testing.assert_frame_equal(tornado_table(again), df)
    proc = cli("-", "--ranges", spec, stdin=dumps_toml(DEFAULT_SCENARIO))
    assert proc.returncode == 0, proc.stderr
    assert_page_equals_cli(again, json.loads(proc.stdout))


def test_a_bad_link_range_warns_and_the_rest_apply():
    at = page({"unc": "otps=10,speed=5,gpu_usd=97"})  # 97: above the input's maximum, never a crash
    warnings = [w.value for w in at.warning]
    assert any("speed=5" in w for w in warnings) and any("gpu_usd=97" in w for w in warnings), warnings
    assert list(tornado_table(at)["key"]) == ["otps"]


def test_nothing_varied_says_so():
    at = page({"unc": "none"})
    assert any("No input varies" in i.value for i in at.info)


def test_capacity_inputs_without_swing_are_explained():
    s = load_toml(EXAMPLE)  # 2 minimum replicas at 18% utilization: +/-20% throughput changes no replica count
    at = page(to_query_params(s))
    df = tornado_table(at)
    assert set(df[df["swing"] == 0]["key"]) == {"otps", "ptps", "peak"}
    assert any(c.value.startswith("Throughput, Prefill rate, Peak-to-mean: no swing") for c in at.caption)
