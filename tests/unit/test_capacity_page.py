"""AppTest of the Capacity page: renders, verdicts, bad uploads and TP, the break-even button (patched)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

from streamlit.testing.v1 import AppTest

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


def test_8b_fits_and_the_button_sends_the_estimate():
    at = _page()
    _submit(at, cap_model="meta-llama/Llama-3.1-8B-Instruct")
    assert "fits" in at.success[0].value
    with mock.patch("ui.state.apply_operating_point") as apply:
        at.button(key="cap_use").click().run()
    assert not at.exception, at.exception
    kwargs = apply.call_args.kwargs
    assert kwargs["gpu"] == "h100-sxm" and kwargs["gpus_per_replica"] == 1
    assert kwargs["output_tokens_per_s"] > 0 and kwargs["source"].startswith("roofline estimate")
    # decode-only roofline: the prefill estimate must travel with it (compute-bound, far faster than decode)
    assert kwargs["prefill_tokens_per_s"] > kwargs["output_tokens_per_s"]


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
