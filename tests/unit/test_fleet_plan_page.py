"""AppTest of the Fleet page (app_pages/6_Fleet.py, ui.fleet_view): the RAG example's plan as the calculator gives
it, the inputs changing it, a trace upload giving the demand's shape, a bad trace named and ignored."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from calculators.fleet import plan_from_scenario
from calculators.scenario import load_toml, to_query_params
from calculators.traces import read_arrays
from probes.results import reference
from ui import fleet_view
from ui.widgets import usd

ROOT = Path(__file__).resolve().parents[2]
RAG = ROOT / "scenarios" / "rag-assistant-70b.toml"
RUN_70B = ROOT / "benchmarks" / "results" / "h100-vllm0.26-2026-11-28" / "probe-llama-3.3-70b-fp8.json"
AZURE = ROOT / "tests" / "fixtures" / "traces" / "small-azure.csv"
TIMEOUT_S = 30


def _fleet_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S)
    at.query_params.update(to_query_params(load_toml(RAG)))
    at.switch_page("app_pages/6_Fleet.py").run()
    assert not at.exception, at.exception
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _chart_title(at: AppTest) -> str:
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith("fleet_chart_timeline")]
    return json.loads(chart.proto.spec)["layout"]["title"]["text"]


def _assumptions(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**Assumptions**"))


def test_the_rag_example_shows_replicas_headroom_and_fallback_share():
    at = _fleet_page()
    assert at.title[0].value == "Fleet" and any(h.value == "Fleet plan" for h in at.subheader)
    # the slowest measured cold start of the committed runs is the default (conservative): today the 70B fp8
    # shape on one H200, 234 s on a cold compile cache
    colds = {f"ref:{r.key}": json.loads(r.path.read_text()).get("cold_start_s") for r in reference.discover()}
    slowest = max((k for k, v in colds.items() if v), key=colds.get)
    assert at.selectbox(key=fleet_view.COLD_SOURCE_KEY).value == slowest
    cold = colds[slowest]
    assert cold >= json.loads(RUN_70B.read_text())["cold_start_s"]  # the 70B H100 run's 212 s
    p = plan_from_scenario(load_toml(RAG), cold_start_s=cold)
    m = _metrics(at)
    assert m["Cold start"] == f"{cold:,.0f} s"
    assert m["Replicas at mean / peak"] == f"{p.replicas_mean} / {p.replicas_peak}" == "2 / 2"
    assert m["Headroom for a cold start"] == "1 replica(s)"
    assert m["Fallback while scaling"] == "0%" and m["Fallback cost, $/month"] == usd(0.0)
    assert m["Fallback, 1 of 2 down"] == "0%"
    assert "synthetic day" in _chart_title(at) and "synthetic day, not a trace" in _assumptions(at)


def test_typed_cold_start_and_an_outage_of_both_replicas():
    at = _fleet_page()
    at.selectbox(key=fleet_view.COLD_SOURCE_KEY).set_value(fleet_view.TYPED).run()
    at.number_input(key=fleet_view.COLD_KEY).set_value(600.0).run()
    at.number_input(key=fleet_view.DOWN_KEY).set_value(2).run()
    assert not at.exception, at.exception
    s = load_toml(RAG)
    p = plan_from_scenario(s, cold_start_s=600.0, replicas_down=2)
    m = _metrics(at)
    assert m["Fallback, 2 of 2 down"] == "100.0%" and m["…of peak traffic"] == "100.0%"
    assert m["Outage cost, $ per day down"] == usd(p.outage_usd_per_day)
    assert m["Headroom for a cold start"] == f"{p.headroom_replicas} replica(s)"
    assert "Cold start 600 s" in _assumptions(at)


def test_a_trace_gives_the_demand_shape_and_a_bad_one_is_named_and_ignored():
    at = _fleet_page()
    at.file_uploader(key=fleet_view.TRACE_KEY).set_value((AZURE.name, AZURE.read_bytes(), "text/csv")).run()
    assert not at.exception, at.exception
    assert "trace, scaled" in _chart_title(at) and "synthetic" not in _chart_title(at)
    assert "trace small-azure.csv" in _assumptions(at)
    p = plan_from_scenario(load_toml(RAG), cold_start_s=json.loads(RUN_70B.read_text())["cold_start_s"],
                           trace_t_s=read_arrays(AZURE).t_s, trace_name=AZURE.name)
    assert _metrics(at)["Headroom for a cold start"] == f"{p.headroom_replicas} replica(s)"

    at.file_uploader(key=fleet_view.TRACE_KEY).set_value(("notes.csv", b"hello,world\n1,2\n", "text/csv")).run()
    assert not at.exception, at.exception
    assert any("notes.csv was not used" in e.value and "line 1" in e.value for e in at.error)
    assert "synthetic day" in _chart_title(at) and _metrics(at)["Replicas at mean / peak"] == "2 / 2"
