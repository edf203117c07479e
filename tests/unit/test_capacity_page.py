"""AppTest of the Capacity page: renders, verdicts, bad uploads and TP, the break-even button (patched)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
from streamlit.testing.v1 import AppTest

from calculators import catalog, modelspec
from calculators.roofline import RooflineInput, decode_point, prefill

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tests" / "fixtures" / "configs"
PAGE = "pages/2_Capacity.py"


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _submit(at: AppTest, **selects) -> AppTest:
    for key, value in selects.items():
        at.selectbox(key=key).set_value(value)
    at.button(key="cap_submit").click().run()
    assert not at.exception, at.exception
    return at


def test_default_renders_70b_bf16_does_not_fit_and_the_claims():
    at = _page()
    assert at.title[0].value == "Capacity"
    assert "does not fit" in at.error[0].value
    assert any("fp8 weights" in m.value for m in at.markdown)
    assert len(at.expander) == len("abcdef")
    assert any("not possible" in e.label for e in at.expander)
    codes = [c.value for c in at.code]
    assert codes[0].startswith("vllm serve meta-llama/Llama-3.3-70B-Instruct")
    assert any("vllm/vllm-openai:v0.26.0" in c for c in codes)
    assert at.button(key="cap_use").disabled


L8B = "meta-llama/Llama-3.1-8B-Instruct"


def _roofline_8b(context_tokens: int) -> RooflineInput:
    return RooflineInput(modelspec.model(L8B), catalog.gpu("h100-sxm"), 1, "bf16", "auto", context_tokens)


def _sent(at: AppTest):
    with mock.patch("ui.state.apply_operating_point") as apply:
        at.button(key="cap_use").click().run()
    assert not at.exception, at.exception
    return apply.call_args.kwargs


def test_8b_fits_and_the_button_sends_the_estimate():
    at = _page()
    _submit(at, cap_model=L8B)
    assert "fits" in at.success[0].value
    kwargs = _sent(at)
    assert kwargs["gpu"] == "h100-sxm" and kwargs["gpus_per_replica"] == 1
    # defaults: 32 streams of 1,024 tokens fit the KV cache, so the point is c=32; memory-bound, so the estimate
    # is the bandwidth ceiling (5,552.9 tok/s) times MBU 0.73 = 4,053.6 tok/s: the estimate, not the ceiling
    point = decode_point(_roofline_8b(1024), 32)
    assert point.decode_tokens_per_s_est == pytest.approx(0.73 * point.decode_tokens_per_s_max, rel=1e-9)
    assert kwargs["output_tokens_per_s"] == round(point.decode_tokens_per_s_est, 1) == 4053.6
    assert kwargs["source"].startswith("roofline estimate") and "c=32," in kwargs["source"]
    # decode-only roofline: the prefill estimate of the page's 1,024-token prompt travels with it
    assert kwargs["prefill_tokens_per_s"] == round(prefill(_roofline_8b(1024), 1024).prefill_tokens_per_s_est, 1)
    assert kwargs["prefill_tokens_per_s"] > kwargs["output_tokens_per_s"]


def test_concurrency_beyond_the_kv_cache_sends_the_point_that_fits():
    # 1,024 streams of 4,096 tokens do not fit: the KV cache holds 463,232 tokens (pinned against vLLM's log in
    # test_vllm_logged_capacity.py), so 463,232 // 4,096 = 113 streams are resident and the estimate is c=113's
    at = _page()
    at.selectbox(key="cap_model").set_value(L8B)
    at.number_input(key="cap_concurrency").set_value(1024)
    at.number_input(key="cap_context").set_value(4096)
    at.button(key="cap_submit").click().run()
    assert not at.exception, at.exception
    assert any("**3,652 output tokens/s**" in m.value and "113 concurrent streams" in m.value for m in at.markdown)
    kwargs = _sent(at)
    assert "c=113," in kwargs["source"]
    assert kwargs["output_tokens_per_s"] == round(decode_point(_roofline_8b(4096), 113).decode_tokens_per_s_est, 1)
    assert kwargs["output_tokens_per_s"] == pytest.approx(3651.6, abs=0.05)  # c=1,024 would claim 4,434.0


def test_bad_config_upload_shows_an_error():
    at = _page()
    at.radio(key="cap_source").set_value("Upload config.json")
    at.file_uploader(key="cap_upload").set_value(
        ("config.json", (CONFIGS / "bad-zero-heads.json").read_bytes(), "application/json"))
    at.button(key="cap_submit").click().run()
    assert not at.exception, at.exception
    assert "num_attention_heads must be >= 1" in at.error[0].value


def test_good_config_upload_is_analysed():
    at = _page()
    at.radio(key="cap_source").set_value("Upload config.json")
    at.file_uploader(key="cap_upload").set_value(
        ("config.json", (CONFIGS / "mixtral-8x7b.json").read_bytes(), "application/json"))
    at.selectbox(key="cap_gpus").set_value(2)
    at.button(key="cap_submit").click().run()
    assert not at.exception, at.exception
    assert "fits" in at.success[0].value


def test_tp_not_dividing_heads_shows_an_error():
    at = _page()
    at.selectbox(key="cap_model").set_value("Qwen/Qwen2.5-7B-Instruct")
    at.selectbox(key="cap_gpus").set_value(8)
    at.button(key="cap_submit").click().run()
    assert not at.exception, at.exception
    assert "tensor parallel size 8 must divide the attention heads (28)" in at.error[0].value
