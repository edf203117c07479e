"""AppTest of the Break-even page's trace upload: a trace fills the traffic, a bad one changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from calculators.cost import evaluate
from calculators.scenario import DEFAULT_SCENARIO, replace_field, to_query_params
from calculators.traffic import apply_to_scenario, heavy_tail_notes, summarize_file
from ui.traffic_view import UPLOAD_KEY, arrival_rate_figure, compute_view, length_histogram_figure
from ui.widgets import usd

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "traces"
TIMEOUT_S = 30


def _break_even() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S)
    at.switch_page("app_pages/1_Break_even.py").run()
    assert not at.exception, at.exception
    return at


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key=UPLOAD_KEY).set_value((name, data, "application/octet-stream"))
    at.run()
    assert not at.exception, at.exception
    return at


_UNCERTAINTY_CHARTS = ("-be_chart_savings_band", "-be_chart_tornado")  # the Uncertainty expander's, always drawn


def _charts(at: AppTest) -> list[str]:
    return [c.proto.id for c in at.get("plotly_chart") if not c.proto.id.endswith(_UNCERTAINTY_CHARTS)]


def test_uploading_a_trace_fills_the_traffic_and_draws_it():
    path = FIXTURES / "small-mooncake.jsonl"
    at = _upload(_break_even(), path.name, path.read_bytes())
    expected = apply_to_scenario(DEFAULT_SCENARIO, summarize_file(path, name=path.name))
    assert at.session_state["scenario"] == expected
    assert expected.traffic.trace_name == "small-mooncake.jsonl"
    assert at.number_input(key="be_requests_per_day").value == 3600
    assert at.number_input(key="be_input_tokens").value == 1100
    assert at.number_input(key="be_cached_input_fraction").value == expected.traffic.cached_input_fraction
    assert at.number_input(key="be_peak_to_mean").value == expected.traffic.peak_to_mean == pytest.approx(1.2)
    assert any(h.value == "Traffic from trace small-mooncake.jsonl" for h in at.subheader)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests per day"] == "3,600" and metrics["Prefix reuse"] == "33.4%"
    assert metrics["Savings, $/month"] == usd(evaluate(expected).savings_usd_per_month)  # the verdict follows
    assert len(_charts(at)) == 3 + 3  # the three cost charts and the trace's rate + two histograms
    assert not at.warning  # p99 is near the mean here: no heavy-tail warning

    at.number_input(key="be_output_tokens").set_value(80).run()  # the inputs stay editable afterwards
    assert not at.exception and at.session_state["scenario"].traffic.output_tokens == 80


def test_a_heavy_tailed_trace_is_named_as_such():
    lines = [json.dumps({"timestamp": i * 1000, "input_length": 100 if i < 97 else 30_000, "output_length": 5})
             for i in range(100)]
    at = _upload(_break_even(), "tail.jsonl", "\n".join(lines).encode())
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Heavy tail: p99 input is 30,000 tokens") for w in warnings), warnings
    notes = [i.value for i in at.info]  # a Mooncake file without hash ids keeps the typed cached share
    assert any("The Mooncake trace has no prompt-block hash ids" in n for n in notes), notes
    assert heavy_tail_notes(at.session_state["scenario"].traffic)


def test_a_bad_trace_shows_the_line_and_changes_nothing():
    at = _break_even()
    before = at.session_state["scenario"]
    bad = (FIXTURES / "small-azure.csv").read_bytes() + b"2023-11-16 18:02:00,12,abc\n"
    _upload(at, "bad.csv", bad)
    assert at.session_state["scenario"] == before
    errors = [e.value for e in at.error]
    assert errors == ["bad.csv was not used: bad.csv: line 6: GeneratedTokens must be a whole number of tokens, "
                      "got 'abc'"]
    assert len(_charts(at)) == 3 and not any("Traffic from trace" in h.value for h in at.subheader)


def test_an_azure_trace_keeps_the_typed_cached_share_and_says_so():
    path = FIXTURES / "small-azure.csv"
    at = _upload(_break_even(), path.name, path.read_bytes())
    assert at.session_state["scenario"].traffic.cached_input_fraction == DEFAULT_SCENARIO.traffic.cached_input_fraction
    assert any("no prompt-block hash ids: cached_input_fraction kept at 0.5" in i.value for i in at.info)


def test_figures_are_binned_for_a_large_trace():
    rows = "".join(f'{{"timestamp": {i * 300}, "input_length": {i % 5000}, "output_length": 7}}\n'
                   for i in range(200_000))  # 200,000 requests over 16.7 hours
    view = compute_view(rows.encode(), "big.jsonl")
    fig = arrival_rate_figure(view)
    assert len(fig.data[0].x) <= 1000
    hist = length_histogram_figure(view.input_hist, "input", view.shape.input_tokens, view.shape.input_tokens_p99)
    assert len(hist.data[0].x) == 60 and int(view.input_hist["requests"].sum()) == 200_000


def test_a_link_with_a_traces_shape_shows_its_percentiles_and_tail_without_the_file():
    s = apply_to_scenario(DEFAULT_SCENARIO, summarize_file(FIXTURES / "small-azure.csv"))
    s = replace_field(s, "traffic.input_tokens_p99", 5000.0)  # 20x the mean of 250
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S)
    at.query_params.update(to_query_params(s))
    at.switch_page("app_pages/1_Break_even.py").run()
    assert not at.exception, at.exception
    assert at.session_state["scenario"] == s
    assert any(h.value == "Traffic from trace small-azure.csv" for h in at.subheader)
    assert any(w.value.startswith("Heavy tail: p99 input is 5,000 tokens, 20.0x the mean (250)") for w in at.warning)
    captions = [c.value for c in at.caption]
    assert any("Input tokens p50 / p90 / p99: 250 / 370 / 5,000 (mean 250)" in c for c in captions), captions
    assert any("Upload the trace again" in c for c in captions)
    assert len(_charts(at)) == 3  # no trace data in a link: only the cost charts
