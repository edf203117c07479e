"""AppTest: the home page says what the verdict rests on; a throughput from another GPU goes stale loudly on the
home and Break-even pages, and one click replaces it by an estimate labelled as such."""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from calculators import cost
from calculators.provenance import stale_reasons
from calculators.scenario import DEFAULT_SCENARIO, apply_api_model, apply_gpu, load_toml, to_query_params

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "app.py")
BREAK_EVEN = "app_pages/1_Break_even.py"
TIMEOUT_S = 30


def _home(qp: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT_S)
    at.query_params.update(qp or {})
    at.run()
    assert not at.exception, at.exception
    return at


def _rests_on(at: AppTest):
    (table,) = [d for d in at.dataframe if "kind" in d.value.columns]
    return table.value.set_index("input")


def _stale_warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "Stale throughput" in w.value]


def test_home_rests_on_table_lists_the_default_inputs_and_nothing_is_stale():
    at = _home()
    t = _rests_on(at)
    assert "gpt-6-luna" in t.loc["API model and prices", "value"]
    assert t.loc["Self-host throughput", "kind"] == "measured"
    assert t.loc["GPU price", "kind"] == "catalog"
    assert not _stale_warnings(at) and not [b for b in at.button if b.key == "home_reestimate"]
    text = " ".join(m.value for m in at.markdown)
    assert "per M output tokens**, all in" in text and "ops $1,500/month" in text and "paid while idle" in text


def test_home_names_the_api_model_actually_priced():
    s = apply_api_model(DEFAULT_SCENARIO, "claude-sonnet-5-5")
    at = _home(to_query_params(s))
    assert at.session_state["scenario"].api.model == "claude-sonnet-5-5"
    row = _rests_on(at).loc["API model and prices"]
    assert "claude-sonnet-5-5" in row["value"] and "gpt-6-luna" not in row["value"]
    shown = " ".join([*(m.value for m in at.markdown), *(c.value for c in at.caption)])
    assert "compared with the API model **claude-sonnet-5-5**" in shown
    assert "versus gpt-6-luna" not in shown  # the description written for the default model is corrected
    assert "versus claude-sonnet-5-5" in shown


def test_home_warns_when_the_url_moves_the_gpu_away_from_the_measured_throughput():
    at = _home({"gpu": "l40s"})
    (warning,) = _stale_warnings(at)
    assert "H100 SXM" in warning and "L40S" in warning
    assert "H100 SXM" in _rests_on(at).loc["Self-host throughput", "stale"]


def test_break_even_gpu_switch_goes_stale_and_reestimate_applies_a_labelled_estimate():
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT_S)
    at.switch_page(BREAK_EVEN).run()
    assert not at.exception and not _stale_warnings(at)
    before = cost.evaluate(at.session_state["scenario"]).savings_usd_per_month

    at.selectbox(key="be_gpu").set_value("l40s").run()
    assert not at.exception, at.exception
    (warning,) = _stale_warnings(at)
    assert "measured on NVIDIA H100 SXM 80GB" in warning and "NVIDIA L40S 48GB" in warning
    s = at.session_state["scenario"]
    assert s.self_host.gpu == "l40s" and s.self_host.output_tokens_per_s == 3400.0  # flagged, not silently kept

    at.button(key="be_reestimate").click().run()
    assert not at.exception, at.exception
    s = at.session_state["scenario"]
    h = s.self_host
    assert h.throughput_source.startswith("estimate: closed-loop roofline") and "l40s" in h.throughput_source
    assert h.output_tokens_per_s != 3400.0 and h.throughput_gpu == "l40s" and stale_reasons(s) == []
    assert not _stale_warnings(at)
    assert any("Re-estimated" in x.value and "estimate:" in x.value for x in at.success)
    # the widgets show the estimate, and the verdict moved with it
    assert at.number_input(key="be_output_tokens_per_s").value == h.output_tokens_per_s
    assert any("estimate: closed-loop roofline" in c.value for c in at.caption)
    assert cost.evaluate(s).savings_usd_per_month != before


def test_apply_operating_point_records_the_context_and_never_keeps_the_old_one():
    def script():
        import streamlit as st  # noqa: PLC0415

        from calculators.provenance import ThroughputContext as Ctx  # noqa: PLC0415
        from ui import state  # noqa: PLC0415

        state.get_scenario()
        if st.button("with"):
            state.apply_operating_point(output_tokens_per_s=1000.0, source="measured: probe run 7, c=8",
                                        gpu="h200", context=Ctx("h200", "Qwen/Qwen3-8B", "bf16", 2048.0, 128.0))
        if st.button("without"):
            state.apply_operating_point(output_tokens_per_s=900.0, source="measured: a run")

    at = AppTest.from_function(script, default_timeout=TIMEOUT_S).run()
    at.button[0].click().run()
    h = at.session_state["scenario"].self_host
    assert (h.throughput_gpu, h.throughput_model, h.throughput_dtype, h.throughput_input_tokens) == (
        "h200", "Qwen/Qwen3-8B", "bf16", 2048.0)
    at.button[1].click().run()
    h = at.session_state["scenario"].self_host
    assert (h.throughput_gpu, h.throughput_model, h.throughput_input_tokens) == ("", "", None)


def test_default_has_no_stale_throughput_after_switching_back():
    s = apply_gpu(apply_gpu(DEFAULT_SCENARIO, "l40s"), "h100-sxm")
    at = _home(to_query_params(s))
    assert not _stale_warnings(at)


def test_a_512_token_reference_point_applied_to_the_6000_token_rag_scenario_is_stale(tmp_path, monkeypatch):
    """The issue's case: the 70B fp8 H100 reference point (512 in / 256 out) sent from the Results page into the
    RAG scenario (6,000 in / 400 out) is flagged on the home page, with its measured context in the table."""
    monkeypatch.setenv("APP__PROBE__DB", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    rag = load_toml(ROOT / "scenarios/rag-assistant-70b.toml")
    at = AppTest.from_file(HOME, default_timeout=60)
    at.query_params.update(to_query_params(rag))
    at.switch_page("app_pages/4_Results.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="res_run").set_value("ref:h100-vllm0.26-2026-11-28/llama-3.3-70b-fp8").run()
    at.button(key="res_run_view_use").click().run()
    assert not at.exception, at.exception
    h = at.session_state["scenario"].self_host
    assert (h.throughput_gpu, h.throughput_model, h.throughput_dtype) == (
        "h100-sxm", "meta-llama/Llama-3.3-70B-Instruct", "fp8")
    assert (h.throughput_input_tokens, h.throughput_output_tokens) == (512.0, 256.0)
    at.switch_page("app_pages/0_Home.py").run()
    assert not at.exception, at.exception
    (warning,) = _stale_warnings(at)
    assert "measured at 512 in / 256 out tokens" in warning and "6,000 in" in warning
    row = _rests_on(at).loc["Self-host throughput"]
    assert row["kind"] == "measured" and "fp8" in row["source"] and "request shape" in row["stale"]


def test_low_volume_shares_read_under_one_percent_never_zero():
    at = _home({"rpd": "50"})
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["GPU utilization"] == "<1%"
    text = " ".join(m.value for m in at.markdown)
    assert "Average GPU utilization is <1%" in text and "busy <1% of the time" in text
    assert not re.search(r"(?<![\d.])0%", text), text


def test_capacity_page_flags_another_model_and_dtype_and_its_estimate_records_the_deployment():
    at = AppTest.from_file(HOME, default_timeout=60)
    at.switch_page("app_pages/2_Capacity.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="cap_dtype").set_value("fp8").run()  # the page's default 70B now fits one H100
    assert not at.exception, at.exception
    (note,) = [c.value for c in at.caption if c.value.startswith("The break-even now uses")]
    assert "model: the throughput was measured on meta-llama/Llama-3.1-8B-Instruct" in note
    assert "this deployment runs meta-llama/Llama-3.3-70B-Instruct" in note
    at.button(key="cap_use").click().run()
    assert not at.exception, at.exception
    h = at.session_state["scenario"].self_host
    assert (h.throughput_gpu, h.throughput_model, h.throughput_dtype) == (
        "h100-sxm", "meta-llama/Llama-3.3-70B-Instruct", "fp8")
    assert (h.throughput_input_tokens, h.throughput_output_tokens) == (1500.0, 300.0)
    assert h.throughput_source.startswith("roofline estimate")
    assert not [c for c in at.caption if c.value.startswith("The break-even now uses")]
