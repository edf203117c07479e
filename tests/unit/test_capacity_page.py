"""AppTest of the Capacity page: live (no Analyse button), one-click fixes, "will not start" instead of a plan,
fields named by their labels, a bad value that keeps the other edits, human upload errors, the scenario's
request shape shared with Break-even, and the estimate sent to the break-even."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
from streamlit.testing.v1 import AppTest

from calculators import catalog, modelspec
from calculators.launch import plan_launch
from calculators.memory import FitInput, fit
from calculators.roofline import RooflineInput
from calculators.scenario import DEFAULT_SCENARIO, replace_field, to_query_params
from ui.capacity_view import shape_estimate

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tests" / "fixtures" / "configs"
PAGE = "app_pages/2_Capacity.py"
L70 = "meta-llama/Llama-3.3-70B-Instruct"
L8B = "meta-llama/Llama-3.1-8B-Instruct"
SHAPE = (round(DEFAULT_SCENARIO.traffic.input_tokens), round(DEFAULT_SCENARIO.traffic.output_tokens))


def _page(query_params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params.update(query_params or {})
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def _headline(at: AppTest) -> str:
    texts = [m.value for m in (*at.success, *at.warning, *at.error) if m.value.startswith("**")]
    assert len(texts) == 1, texts
    return texts[0]


def _fix_buttons(at: AppTest) -> dict[str, object]:
    return {b.label: b for b in at.button if (b.key or "").startswith("cap_fix_")}


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_default_70b_bf16_will_not_start_and_gets_no_command():
    at = _page()
    assert at.title[0].value == "Capacity"
    assert "cap_submit" not in [b.key for b in at.button]  # no Analyse button: the page is live
    assert "will not start: weights + activations need 133.9 GiB per GPU" in _headline(at)
    assert not [c for c in at.code if "vllm serve" in c.value]  # no launch command for what cannot start
    assert any(e.value.startswith("Will not start:") for e in at.error)
    labels = list(_fix_buttons(at))
    assert labels[0] == "fp8 weights (--quantization fp8)" and any(x.startswith("TP=2") for x in labels)
    assert at.button(key="cap_use").disabled
    assert len(at.main.expander) + len([e for e in at.sidebar.expander if not e.label.startswith("Glossary")]) \
        == 1 + 1 + len("abcdef")  # memory reasons, LoRA settings, the six claims (not the glossary)
    assert _metrics(at)["Weights per GPU"] == "131.4 GiB"


def test_changing_the_dtype_applies_at_once():
    at = _page()
    at.selectbox(key="cap_dtype").set_value("fp8")
    _run(at)  # a plain rerun, as a widget change triggers: no button pressed
    assert "fp8 weights, KV auto: fits" in _headline(at)
    assert _metrics(at)["Weights per GPU"] == "67.7 GiB"
    serve = next(c.value for c in at.code if c.value.startswith("vllm serve"))
    assert "--quantization fp8" in serve and "--tensor-parallel-size 1" in serve
    assert not at.button(key="cap_use").disabled


def test_a_fix_button_applies_its_change():
    at = _page()
    _fix_buttons(at)["fp8 weights (--quantization fp8)"].click()
    _run(at)
    assert at.selectbox(key="cap_dtype").value == "fp8"
    assert "fits" in _headline(at) and not _fix_buttons(at)

    at = _page()
    tp2 = next(b for label, b in _fix_buttons(at).items() if label.startswith("TP=2"))
    tp2.click()
    _run(at)
    assert at.selectbox(key="cap_gpus").value == 2
    assert "on 2 x NVIDIA H100" in _headline(at) and "fits" in _headline(at)


def test_the_shorter_context_fix_sets_max_model_len():
    at = _page()
    at.selectbox(key="cap_dtype").set_value("fp8")
    at.number_input(key="cap_max_len").set_value(32768)
    _run(at)
    assert "fits with a short context only" in _headline(at)
    expected = fit(FitInput(modelspec.model(L70), catalog.gpu("h100-sxm"), weight_dtype="fp8",
                            max_model_len=32768)).max_context_tokens
    button = next(b for label, b in _fix_buttons(at).items()
                  if label.startswith(f"shorter context: --max-model-len {expected} "))
    button.click()
    _run(at)
    assert at.number_input(key="cap_max_len").value == expected
    assert _headline(at).endswith("fits")


def test_a_rejected_value_is_named_by_its_label_and_the_other_edits_apply():
    at = _page()
    at.selectbox(key="cap_model").set_value("Qwen/Qwen2.5-7B-Instruct")
    at.selectbox(key="cap_gpus").set_value(8)  # 28 heads: 8 does not divide them
    at.selectbox(key="cap_dtype").set_value("fp8")  # a valid edit in the same rerun
    _run(at)
    errors = [e.value for e in at.error]
    # the last good value (TP 1, shown before) is used instead, and said
    assert any("Not applied: GPUs (tensor parallel) 8 must divide the attention heads (28). Showing GPUs "
               "(tensor parallel) = 1 instead." in e for e in errors), errors
    assert not any("tensor_parallel_size" in e or "tensor parallel size" in e for e in errors)
    assert "Qwen" in _headline(at) and "on 1 x" in _headline(at)
    assert "fp8 weights" in _headline(at)  # the other edits of the same rerun applied
    assert at.selectbox(key="cap_gpus").value == 8  # what was chosen is kept on screen
    at.selectbox(key="cap_gpus").set_value(4)
    _run(at)
    assert not at.error and "on 4 x" in _headline(at)
    at.selectbox(key="cap_gpus").set_value(8)  # rejected again: now the last good value is 4
    _run(at)
    assert "Showing GPUs (tensor parallel) = 4 instead." in at.error[0].value
    at.button(key="cap_use_tensor_parallel_size").click()  # the "Use 4" button next to the error
    _run(at)
    assert at.selectbox(key="cap_gpus").value == 4 and not at.error


def test_the_request_shape_is_the_scenarios_and_is_shared_with_break_even():
    at = _page()
    assert (at.number_input(key="cap_input_tokens").value, at.number_input(key="cap_output_tokens").value) == SHAPE
    at.selectbox(key="cap_model").set_value(L8B)
    at.number_input(key="cap_output_tokens").set_value(700)
    _run(at)
    assert at.session_state["scenario"] == replace_field(DEFAULT_SCENARIO, "traffic.output_tokens", 700)
    assert any(f"{SHAPE[0]:,} + 700-token requests" in m.value for m in at.markdown)
    at.switch_page("app_pages/1_Break_even.py")
    _run(at)
    assert at.number_input(key="be_output_tokens").value == 700
    at.number_input(key="be_input_tokens").set_value(3000)
    _run(at)
    at.switch_page(PAGE)
    _run(at)
    assert at.number_input(key="cap_input_tokens").value == 3000


def test_a_bad_shape_value_is_named_and_the_scenario_kept():
    at = _page()
    at.number_input(key="cap_output_tokens").set_value(0)
    at.selectbox(key="cap_dtype").set_value("fp8")
    _run(at)
    errors = " ".join(e.value for e in at.error)
    assert "Not applied: Output tokens per request must be at least 0.01, got 0 (kept at 300)." in errors, errors
    assert at.session_state["scenario"] == DEFAULT_SCENARIO
    assert "fp8 weights" in _headline(at)


def test_a_mean_shape_is_not_rewritten_by_rounding():
    s = replace_field(DEFAULT_SCENARIO, "traffic.input_tokens", 312.7)
    at = _page(to_query_params(s))
    assert at.number_input(key="cap_input_tokens").value == 313
    at.selectbox(key="cap_dtype").set_value("fp8")
    _run(at)
    assert at.session_state["scenario"].traffic.input_tokens == 312.7


def _sent(at: AppTest):
    with mock.patch("ui.state.apply_operating_point") as apply:
        at.button(key="cap_use").click()
        _run(at)
    return apply.call_args.kwargs


def test_the_estimate_is_scenario_shaped_and_sent_to_the_break_even():
    at = _page()
    at.selectbox(key="cap_model").set_value(L8B)
    _run(at)
    kwargs = _sent(at)
    rin = RooflineInput(modelspec.model(L8B), catalog.gpu("h100-sxm"))
    point = shape_estimate(rin, SHAPE[0], SHAPE[1], 32)  # 32 streams of 1,800 tokens fit the 8B's KV cache
    assert kwargs["output_tokens_per_s"] == round(point.output_tokens_per_s_est, 1)
    assert f"c=32, {SHAPE[0]} in / {SHAPE[1]} out" in kwargs["source"]
    assert kwargs["prefill_tokens_per_s"] is None  # prefill is inside the closed-loop estimate
    assert kwargs["gpu"] == "h100-sxm" and kwargs["gpus_per_replica"] == 1


def test_more_streams_than_vllm_runs_at_once_use_the_point_that_runs():
    # 70B fp8 on one H100: the KV cache holds 8,816 tokens = 551 blocks; a 1,800-token request takes 113 -> 4
    at = _page()
    at.selectbox(key="cap_dtype").set_value("fp8")
    at.number_input(key="cap_concurrency").set_value(512)
    _run(at)
    assert _metrics(at)[f"Requests of {SHAPE[0]:,} + {SHAPE[1]:,} tokens at once"] == "4"
    kwargs = _sent(at)
    assert "c=4," in kwargs["source"]
    rin = RooflineInput(modelspec.model(L70), catalog.gpu("h100-sxm"), weight_dtype="fp8")
    assert kwargs["output_tokens_per_s"] == round(shape_estimate(rin, *SHAPE, 4).output_tokens_per_s_est, 1)
    plan = plan_launch(FitInput(modelspec.model(L70), catalog.gpu("h100-sxm"), weight_dtype="fp8",
                                max_model_len=4096), input_tokens=SHAPE[0], output_tokens=SHAPE[1])
    assert plan.max_num_seqs == 4
    assert any("--max-num-seqs 4: set by the KV room" in m.value for m in at.markdown)  # the cap, with its reason


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="cap_source").set_value("Upload config.json")
    _run(at)
    at.file_uploader(key="cap_upload").set_value((name, data, "application/json"))
    return _run(at)


@pytest.mark.parametrize(("data", "message"), [
    (b'{"hidden_size": "caf\xe9"}', "cfg.json was not loaded: cfg.json is not UTF-8 text (byte 0xe9 at offset 20); "
                                    "save it as UTF-8"),
    (b" " * (5 * 2**20), "cfg.json was not loaded: cfg.json is 5.0 MiB, over the 4.0 MiB limit"),
    (b'{"hidden_size": ', "cfg.json was not loaded: cfg.json is not valid JSON"),
    (b"\xff\xfe{\x00}\x00", "cfg.json was not loaded: cfg.json is UTF-16 text; save it as UTF-8"),
])
def test_upload_errors_say_what_is_wrong_with_the_file(data, message):
    at = _upload(_page(), "cfg.json", data)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith(message), errors
    assert "codec" not in errors[0] and "Traceback" not in errors[0]


def test_bad_config_upload_names_the_field():
    at = _upload(_page(), "config.json", (CONFIGS / "bad-zero-heads.json").read_bytes())
    assert "num_attention_heads must be >= 1" in at.error[0].value


def test_good_config_upload_is_analysed():
    at = _upload(_page(), "config.json", (CONFIGS / "mixtral-8x7b.json").read_bytes())
    at.selectbox(key="cap_gpus").set_value(2)
    _run(at)
    assert "fits" in _headline(at)


def test_an_absurd_config_is_refused_in_words_not_digits():
    cfg = json.loads((CONFIGS / "llama-3.1-8b.json").read_text())
    cfg.update(hidden_size=1_000_000, intermediate_size=4_000_000, num_hidden_layers=1000, num_attention_heads=1000,
               num_key_value_heads=1000)
    at = _upload(_page(), "huge.json", json.dumps(cfg).encode())
    (error,) = [e.value for e in at.error]
    assert "29.8 million GiB of weights per GPU" in error and "no deployment holds this" in error
    assert not at.metric and not at.get("plotly_chart")


# --- pure helpers: formatters, the label map, fixes as changes, chart axes ----------------------------------

def test_gib_and_count_formatters():
    from ui.widgets import count_text, gib_text

    assert [gib_text(x) for x in (0.0, 0.984, 9.999, 131.42, 9_999.4, 12_345.6, 6_333_031_132.8)] == [
        "0.00 GiB", "0.98 GiB", "10.00 GiB", "131.4 GiB", "9,999.4 GiB", "12,346 GiB", "6.3 billion GiB"]
    assert [count_text(x) for x in (0, 4, 17.6, 463_232, 2_500_000, 4.2e12)] == [
        "0", "4", "17.6", "463,232", "2.5 million", "4.2 trillion"]
    assert "e+" not in gib_text(1e30) and gib_text(1e30).endswith("trillion GiB")


def test_every_scenario_field_and_capacity_input_has_a_label():
    from calculators.scenario import LIMITS
    from ui import capacity_view, inputs

    assert set(LIMITS) - {"traffic.input_tokens_p50", "traffic.input_tokens_p90", "traffic.input_tokens_p99",
                          "traffic.output_tokens_p50", "traffic.output_tokens_p90",
                          "traffic.output_tokens_p99"} <= set(inputs.LABELS)
    assert inputs.LABELS["traffic.output_tokens"] == "Output tokens per request"
    assert capacity_view.LABELS["max_model_len"] == "Max model length (--max-model-len)"
    for message, expected in [
        ("traffic.output_tokens must be >= 0.01, got 0", "Output tokens per request must be at least 0.01, got 0"),
        ("self_host.gpus_per_replica must be <= 64, got 65", "GPUs per replica must be at most 64, got 65"),
        ("gpu_memory_utilization must be > 0, got 0", "GPU memory utilization must be more than 0, got 0"),
        ("max_model_len must be <= 8192, got 9000", "Max model length (--max-model-len) must be at most 8192, got 9000"),
    ]:
        assert capacity_view.human_error(message) == expected
    # a name inside another word or path is left alone
    assert capacity_view.human_error("xmax_model_len and self_host.gpu_usd_per_hour") == (
        "xmax_model_len and $ per GPU-hour")


def test_each_fix_of_the_fit_becomes_widget_changes_that_fit():
    from ui import capacity_view

    base = FitInput(modelspec.model(L70), catalog.gpu("h100-sxm"), max_model_len=4096)
    fixes = fit(base).fixes
    assert len(fixes) >= 3
    fields = {"gpu": "gpu", "tensor_parallel_size": "tensor_parallel_size", "weight_dtype": "weight_dtype",
              "kv_cache_dtype": "kv_cache_dtype", "max_model_len": "max_model_len",
              "gpu_memory_utilization": "gpu_memory_utilization"}
    for fix in fixes:
        changes = capacity_view.fix_changes(fix)
        assert changes, fix
        kw = {fields[k]: (catalog.gpu(v) if k == "gpu" else v) for k, v in changes.items()}
        from dataclasses import replace

        assert fit(replace(base, **kw)).verdict != "does-not-fit", (fix, changes)
        assert set(capacity_view.fix_widget_values(changes)) <= {k for k, _ in capacity_view.WIDGETS.values()}
    assert capacity_view.fix_changes("buy a better datacentre") is None


def test_the_throughput_chart_stays_in_range_with_readable_ticks():
    import pandas as pd

    from calculators.figures import CONCURRENCIES, throughput_figure

    df = pd.DataFrame({"concurrency": CONCURRENCIES, "estimate": [153.0 * c ** 0.8 for c in CONCURRENCIES],
                       "ceiling": [222.0 * c ** 0.8 for c in CONCURRENCIES],
                       "per_stream": [153.0 / c ** 0.2 for c in CONCURRENCIES]})
    fig = throughput_figure(df, kv_streams=10**9)  # a KV cache far beyond the chart: said, not drawn at 1e9
    assert 0.8 < 10 ** fig.layout.xaxis.range[0] < 1 and 1024 < 10 ** fig.layout.xaxis.range[1] < 1.2 * 1024
    assert not fig.layout.shapes and "holds 1,000,000,000 streams" in fig.layout.title.text
    for axis in (fig.layout.yaxis, fig.layout.yaxis2):
        assert axis.ticktext and all("e+" not in t and len(t) <= 7 for t in axis.ticktext), axis.ticktext
        assert len(set(axis.ticktext)) == len(axis.ticktext)  # no repeated "2"
    inside = throughput_figure(df, kv_streams=64, operating_point=(32, 4000.0))
    assert [s.x0 for s in inside.layout.shapes] == [64]
