"""AppTest tests of the home page (app.py) and the Break-even page, and of ``ui.state``.

Each test builds the scenario it expects with the calculators and compares what the page shows.
"""

from __future__ import annotations

import io
import re
import socket
from pathlib import Path

import pandas as pd
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from calculators import apiprices, cost, curves
from calculators.gpuprices import default_usd_per_hour, tier_usd_per_hour
from calculators.scenario import DEFAULT_SCENARIO, Scenario, loads_toml, replace_field, to_query_params
from tests.pinned import SUPPORT_BOT
from ui.widgets import usd, verdict_headline

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "app.py")
BREAK_EVEN = "app_pages/1_Break_even.py"
TIMEOUT_S = 30


def _home(query_params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT_S)
    at.query_params.update(query_params or {})
    return at.run()


def _break_even(query_params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT_S)
    at.query_params.update(query_params or {})
    at.switch_page(BREAK_EVEN).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Break-even"
    return at


def _verdict_text(at: AppTest) -> str:
    texts = [a.value for a in (*at.success, *at.info) if "a month" in a.value]
    assert len(texts) == 1, texts
    return texts[0].strip("*")


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _assert_shows(at: AppTest, s: Scenario) -> None:
    """The verdict panel shows the numbers ``cost.evaluate(s)`` computes."""
    r = cost.evaluate(s)
    assert verdict_headline(r.verdict, r.savings_usd_per_month) in _verdict_text(at)
    m = _metrics(at)
    assert m["API, $/month"] == usd(r.api.usd_per_month)
    assert m["Self-host, $/month"] == usd(r.self_host.usd_per_month)
    assert m["Savings, $/month"] == usd(r.savings_usd_per_month)
    assert m["Replicas"] == f"{r.self_host.replicas:,}"


# A scenario unlike the default in every section, so a page that ignored the URL would show other numbers.
URL_SCENARIO = DEFAULT_SCENARIO
for _field, _value in (
    ("traffic.requests_per_day", 750_000.0),
    ("traffic.output_tokens", 450.0),
    ("api.output_usd_per_mtok", 6.0),
    ("self_host.gpu", "a100-80gb"),
    ("self_host.gpu_usd_per_hour", 1.39),
    ("self_host.output_tokens_per_s", 2100.0),
    ("self_host.min_replicas", 2),
    ("self_host.throughput_source", "user input"),  # typed, as the Break-even page labels it (else: stale)
):
    URL_SCENARIO = replace_field(URL_SCENARIO, _field, _value)


def test_home_renders_the_default_scenario():
    at = _home()
    assert not at.exception, at.exception
    _assert_shows(at, DEFAULT_SCENARIO)
    assert at.session_state["scenario"] == DEFAULT_SCENARIO
    # The shareable link is written back.
    assert at.query_params["rpd"] == to_query_params(DEFAULT_SCENARIO)["rpd"]


@pytest.mark.parametrize("page", ["home", "break_even"])
def test_a_url_reproduces_its_scenario(page):
    qp = to_query_params(URL_SCENARIO)
    at = _home(qp) if page == "home" else _break_even(qp)
    assert not at.exception, at.exception
    assert at.session_state["scenario"] == URL_SCENARIO
    _assert_shows(at, URL_SCENARIO)
    assert not at.warning


@pytest.mark.parametrize("bad", ["abc", "-5", "nan", "inf"])
def test_a_bad_url_value_warns_naming_the_field_and_falls_back(bad):
    at = _home({"rpd": bad, "otps": "2500"})
    assert not at.exception, at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "Requests per day must be" in warnings and "traffic.requests_per_day" not in warnings  # the label
    expected = replace_field(DEFAULT_SCENARIO, "self_host.output_tokens_per_s", 2500.0)
    assert at.session_state["scenario"] == expected  # the good parameter still applies
    _assert_shows(at, expected)
    assert at.query_params["rpd"] == "20000"  # the link is repaired


def test_break_even_widgets_start_from_the_url_scenario_after_a_page_switch():
    at = _home(to_query_params(URL_SCENARIO))
    at.switch_page(BREAK_EVEN).run()
    assert not at.exception, at.exception
    assert at.number_input(key="be_requests_per_day").value == 750_000
    assert at.number_input(key="be_output_tokens_per_s").value == 2100.0
    assert at.selectbox(key="be_gpu").value == "a100-80gb"
    _assert_shows(at, URL_SCENARIO)


def test_changing_requests_per_day_flips_the_verdict_and_the_url():
    # from the support bot at the prices of before issue 15 (gpt-6-luna, today's default, never breaks even)
    at = _break_even(to_query_params(SUPPORT_BOT))
    at.number_input(key="be_requests_per_day").set_value(10).run()
    assert not at.exception, at.exception
    tiny = replace_field(SUPPORT_BOT, "traffic.requests_per_day", 10)
    assert cost.evaluate(tiny).verdict == "api"
    assert _verdict_text(at).startswith("Use the API")
    _assert_shows(at, tiny)

    at.number_input(key="be_requests_per_day").set_value(50_000_000).run()
    huge = replace_field(SUPPORT_BOT, "traffic.requests_per_day", 50_000_000)
    assert cost.evaluate(huge).verdict == "self_host"
    assert _verdict_text(at).startswith("Self-host")
    _assert_shows(at, huge)
    assert at.query_params["rpd"] == "50000000"


def test_a_rejected_value_shows_an_error_naming_the_field_and_keeps_the_last_good_scenario():
    at = _break_even()
    at.number_input(key="be_output_tokens_per_s").set_value(0.0).run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    # the widget's label and the value kept, not the code path
    assert "Output tokens/s per replica must be at least 0.001, got 0 (kept at 3,400)" in errors, errors
    assert "self_host." not in errors
    assert at.session_state["scenario"] == DEFAULT_SCENARIO
    _assert_shows(at, DEFAULT_SCENARIO)
    assert at.number_input(key="be_output_tokens_per_s").value == 0.0  # what was typed is not thrown away


def test_one_bad_field_does_not_block_the_other_edits():
    at = _break_even()
    at.number_input(key="be_output_tokens").set_value(0)  # rejected: a request has output tokens
    at.number_input(key="be_requests_per_day").set_value(10)
    at.number_input(key="be_gpu_usd_per_hour").set_value(1.5)
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "Output tokens per request must be at least 0.01, got 0" in errors[0], errors
    expected = replace_field(replace_field(DEFAULT_SCENARIO, "traffic.requests_per_day", 10),
                             "self_host.gpu_usd_per_hour", 1.5)
    assert at.session_state["scenario"] == expected  # the two valid edits applied
    _assert_shows(at, expected)
    # fixing the bad field later applies it too
    at.number_input(key="be_output_tokens").set_value(400).run()
    assert not at.error
    assert at.session_state["scenario"] == replace_field(expected, "traffic.output_tokens", 400)


def test_choosing_presets_fills_prices_and_a_typed_throughput_is_labelled():
    at = _break_even()
    at.selectbox(key="be_api_model").set_value("anthropic:claude-haiku-4-5").run()  # any model of the data
    at.selectbox(key="be_gpu").set_value("l40s").run()
    at.number_input(key="be_output_tokens_per_s").set_value(1800.0).run()
    assert not at.exception, at.exception
    s = at.session_state["scenario"]
    assert (s.api.model, s.api.provider, s.api.input_usd_per_mtok, s.api.output_usd_per_mtok, s.api.typed) == (
        "claude-haiku-4-5",
        "anthropic",
        1.0,
        5.0,
        (),
    )
    # the on-demand median of L40S (1.09, 1.55, 2.25), named on the page
    assert (s.self_host.gpu, s.self_host.gpu_usd_per_hour) == ("l40s", 1.55)
    assert any("median of the on-demand rows" in c.value for c in at.caption)
    assert (s.self_host.output_tokens_per_s, s.self_host.throughput_source) == (1800.0, "user input")
    assert any("API prices from genai-prices 0.2.3, bundled data of 2026-11-10 (none typed)" in c.value
               for c in at.caption)
    # The user may override a preset price: it wins and is labelled typed.
    at.number_input(key="be_output_usd_per_mtok").set_value(4.5).run()
    assert at.session_state["scenario"].api.output_usd_per_mtok == 4.5
    assert at.session_state["scenario"].api.typed == ("output_usd_per_mtok",)
    assert any("(typed by you: output)" in c.value for c in at.caption)
    _assert_shows(at, at.session_state["scenario"])


def test_batch_box_takes_batch_rates_and_a_retiring_model_is_flagged():
    at = _break_even()
    at.selectbox(key="be_api_model").set_value("gpt-6-sol").run()
    at.checkbox(key="be_api_batch").check().run()
    assert not at.exception, at.exception
    a = at.session_state["scenario"].api
    assert (a.model, a.batch, a.input_usd_per_mtok, a.output_usd_per_mtok, a.typed) == ("gpt-6-sol", True, 1.0, 5.0, ())
    assert at.number_input(key="be_output_usd_per_mtok").value == 5.0
    assert any("batch rates from genai-prices" in c.value for c in at.caption)
    _assert_shows(at, at.session_state["scenario"])
    at.selectbox(key="be_api_model").set_value("gpt-5-mini").run()
    assert any(re.search(r"gpt-5-mini (shuts down|was shut down) on 2026-12-11", w.value) for w in at.warning)


class _RecordingStorage(MemoryMediaFileStorage):
    """The media store AppTest uses, keeping every instance so a test can read what a button serves."""

    instances: list[_RecordingStorage] = []

    def __init__(self, media_endpoint: str) -> None:
        super().__init__(media_endpoint)
        _RecordingStorage.instances.append(self)


def test_the_toml_download_parses_back_to_the_same_scenario(monkeypatch):
    monkeypatch.setattr("streamlit.testing.v1.app_test.MemoryMediaFileStorage", _RecordingStorage)
    _RecordingStorage.instances.clear()
    at = _home(to_query_params(URL_SCENARIO))
    assert not at.exception, at.exception
    button = at.get("download_button")
    urls = [b.proto.url for b in button if b.proto.label.startswith("Download scenario")]
    assert len(urls) == 1
    file_name = urls[0].rsplit("/", 1)[-1]
    content = _RecordingStorage.instances[-1].get_file(file_name).content
    assert loads_toml(content.decode("utf-8")) == URL_SCENARIO


def test_uploading_a_scenario_loads_it_and_a_malformed_file_shows_the_parser_message():
    at = _home()
    at.file_uploader(key="scn_upload").set_value(
        ("bad.toml", b"[traffic\nrequests_per_day = 1", "text/plain")
    )
    at.run()
    assert not at.exception, at.exception
    assert any("malformed TOML" in e.value and "line 1" in e.value for e in at.error)
    assert at.session_state["scenario"] == DEFAULT_SCENARIO

    from calculators.scenario import dumps_toml

    at.file_uploader(key="scn_upload").set_value(
        ("good.toml", dumps_toml(URL_SCENARIO).encode(), "text/plain")
    )
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["scenario"] == URL_SCENARIO
    _assert_shows(at, URL_SCENARIO)


def test_loading_an_example_scenario():
    from calculators.scenario import load_toml

    examples = sorted((ROOT / "scenarios").glob("*.toml"))
    if not examples:
        pytest.fail("no example scenarios in scenarios/")
    at = _home()
    at.selectbox(key="scn_example").set_value(examples[-1].stem).run()
    assert not at.exception, at.exception
    expected = load_toml(examples[-1])
    assert at.session_state["scenario"] == expected
    _assert_shows(at, expected)
    assert any(examples[-1].stem in s.value for s in at.success)


def test_apply_operating_point_updates_the_shared_scenario():
    def script():
        import streamlit as st

        from ui import state

        if st.button("use in break-even"):
            state.apply_operating_point(
                output_tokens_per_s=1234.5, source="probe: test run", gpu="h200", gpus_per_replica=2
            )
        if st.button("bad"):
            try:
                state.apply_operating_point(output_tokens_per_s=-1.0, source="probe: bad")
            except ValueError as e:
                st.error(str(e))

    at = AppTest.from_function(script, default_timeout=TIMEOUT_S).run()
    at.button[0].click().run()
    assert not at.exception, at.exception
    sh = at.session_state["scenario"].self_host
    assert (sh.output_tokens_per_s, sh.throughput_source, sh.gpu, sh.gpus_per_replica) == (
        1234.5,
        "probe: test run",
        "h200",
        2,
    )
    # a different GPU brings its own catalog price, never the old GPU's $/hour
    assert sh.gpu_usd_per_hour == default_usd_per_hour("h200") != DEFAULT_SCENARIO.self_host.gpu_usd_per_hour
    assert at.query_params["otps"] == "1234.5"
    at.button[1].click().run()
    assert "self_host.output_tokens_per_s" in at.error[0].value
    assert at.session_state["scenario"].self_host.output_tokens_per_s == 1234.5


def test_break_even_shows_an_operating_point_applied_from_another_page():
    at = _break_even()
    applied = replace_field(
        replace_field(DEFAULT_SCENARIO, "self_host.output_tokens_per_s", 5100.0),
        "self_host.throughput_source",
        "probe: vLLM on h100-sxm, 64 concurrent",
    )
    at.session_state["scenario"] = applied  # what apply_operating_point stores, as the Probe page would
    at.run()
    assert not at.exception, at.exception
    assert at.number_input(key="be_output_tokens_per_s").value == 5100.0
    assert any("probe: vLLM on h100-sxm, 64 concurrent" in c.value for c in at.caption)
    _assert_shows(at, applied)


def test_ui_doctests():
    import doctest

    from ui import widgets

    for module in (widgets,):  # calculators.figures' doctests run with the calculators' (--doctest-modules)
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, (module.__name__, result)


def test_break_even_warns_on_a_bad_url_value_and_on_a_value_its_inputs_must_round():
    at = _break_even({"rpd": "-5", "in": "312.7"})
    warnings = " ".join(w.value for w in at.warning)
    assert "Requests per day must be at least 0" in warnings
    assert "Input tokens per request" in warnings and "313" in warnings
    s = at.session_state["scenario"]
    # issue 11: the page never changes a loaded value; the whole-number box shows 313, the scenario keeps 312.7
    assert (s.traffic.requests_per_day, s.traffic.input_tokens) == (20_000, 312.7)
    assert "the calculation keeps 312.7 unless you edit this input" in warnings
    _assert_shows(at, s)


class _RecordingManager(MediaFileManager):
    """AppTest's media file manager, kept so a test can click a deferred download (run its callable)."""

    instances: list[_RecordingManager] = []

    def __init__(self, storage) -> None:  # noqa: ANN001 - streamlit's MediaFileStorage
        super().__init__(storage)
        _RecordingManager.instances.append(self)


def test_each_chart_csv_download_serves_the_data_of_its_own_chart(monkeypatch):
    monkeypatch.setattr("streamlit.testing.v1.app_test.MemoryMediaFileStorage", _RecordingStorage)
    monkeypatch.setattr("streamlit.testing.v1.app_test.MediaFileManager", _RecordingManager)
    _RecordingStorage.instances.clear()
    _RecordingManager.instances.clear()
    at = _break_even(to_query_params(URL_SCENARIO))
    served = {}
    for b in at.get("download_button"):
        if b.proto.label.endswith("(CSV)"):
            # deferred: no file is written on a rerun, only when the button is clicked (the callable runs)
            assert b.proto.url == "" and b.proto.deferred_file_id, b.proto.label
            url = _RecordingManager.instances[-1].execute_deferred(b.proto.deferred_file_id)
            content = _RecordingStorage.instances[-1].get_file(url.rsplit("/", 1)[-1].split(".")[0]).content
            served[b.proto.label] = pd.read_csv(io.BytesIO(content))
    expected = {"Cost vs volume (CSV)": curves.cost_vs_volume(URL_SCENARIO),
                "$/M tokens vs utilization (CSV)": curves.usd_per_mtok_vs_utilization(URL_SCENARIO),
                "Savings heatmap (CSV)": curves.savings_heatmap(URL_SCENARIO)}
    assert sorted(served) == sorted(expected)
    for label, df in expected.items():
        pd.testing.assert_frame_equal(served[label], df, check_exact=False, rtol=1e-12, obj=label)
    # the heatmap's numbers by its formula: savings = api - (mean_load / u * gpus * $/h * 730 + ops + fb * api)
    heat, r, h = served["Savings heatmap (CSV)"], cost.evaluate(URL_SCENARIO), URL_SCENARIO.self_host
    want = r.api.usd_per_month - (r.self_host.mean_load_replicas / heat["utilization"] * h.gpus_per_replica
                                  * heat["gpu_usd_per_hour"] * 730 + h.ops_usd_per_month)
    assert h.fallback_fraction == 0 and len(heat) == 40 * 40
    assert heat["savings_usd_per_month"].to_numpy() == pytest.approx(want.to_numpy(), rel=1e-9)


@pytest.mark.parametrize(("data", "message"), [
    (b'name = "caf\xe9"\n', "s.toml was not loaded: the file is not UTF-8 text (byte 0xe9 at offset 11); "
                            "save it as UTF-8"),
    (b"\xff\xfen\x00a\x00", "s.toml was not loaded: the file is UTF-16 text; save it as UTF-8"),
    (b"#" * (300 * 1024), "s.toml was not loaded: the file is 300 KiB, over the 256 KiB limit"),
    (b"[traffic]\nrequests_per_day = 5\n", "s.toml was not loaded: traffic.input_tokens is required"),
])
def test_scenario_upload_errors_say_what_is_wrong_with_the_file(data, message):
    at = _break_even()
    at.file_uploader(key="scn_upload").set_value(("s.toml", data, "text/plain"))
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert errors == [message], errors  # one line, about the file; no codec or parser internals
    assert at.session_state["scenario"] == DEFAULT_SCENARIO


def test_update_prices_button_fetches_shows_changes_and_reprices(data_server, monkeypatch):
    monkeypatch.setenv(apiprices.URL_ENV, data_server)  # a real HTTP server on 127.0.0.1
    at = _break_even()
    at.selectbox(key="be_api_model").set_value("claude-sonnet-5-5").run()
    assert at.session_state["scenario"].api.input_usd_per_mtok == 2.0
    at.button(key="be_prices_update").click().run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("Prices updated (genai-prices 0.2.3, data fetched ") and "1 changed" in s.value
               for s in at.success)
    assert at.session_state["scenario"].api.input_usd_per_mtok == 2.2
    assert at.number_input(key="be_input_usd_per_mtok").value == 2.2
    _assert_shows(at, at.session_state["scenario"])


def test_update_prices_button_offline_keeps_the_pinned_data(tmp_path, monkeypatch):
    monkeypatch.setenv(apiprices.DIR_ENV, str(tmp_path))
    apiprices.reload()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv(apiprices.URL_ENV, f"http://127.0.0.1:{s.getsockname()[1]}/data.json")
    at = _break_even()
    at.button(key="be_prices_update").click().run()
    assert not at.exception, at.exception
    assert any("cannot fetch price data" in w.value and "still using genai-prices 0.2.3" in w.value
               for w in at.warning)
    assert at.session_state["scenario"] == DEFAULT_SCENARIO


def test_a_loaded_scenario_with_non_integer_means_keeps_them_exactly_until_edited():
    """Loaded means (312.7 input, 187.3 output tokens, 12,345.6 requests/day) survive other edits and reruns;
    only the widget the user edits writes its value, and an edit back to the shown rounding is an edit."""
    loaded = replace_field(replace_field(replace_field(SUPPORT_BOT, "traffic.input_tokens", 312.7),
                                         "traffic.output_tokens", 187.3), "traffic.requests_per_day", 12_345.6)
    at = _break_even(to_query_params(loaded))
    assert at.number_input(key="be_input_tokens").value == 313  # shown rounded ...
    assert at.session_state["scenario"] == loaded  # ... but not written back
    at.number_input(key="be_output_tokens_per_s").set_value(2000.0).run()  # another widget
    at.run()
    s = at.session_state["scenario"]
    assert (s.traffic.input_tokens, s.traffic.output_tokens, s.traffic.requests_per_day) == (312.7, 187.3, 12_345.6)
    edited = replace_field(replace_field(loaded, "self_host.output_tokens_per_s", 2000.0),
                           "self_host.throughput_source", "user input")
    assert s == edited
    _assert_shows(at, s)
    assert at.query_params["in"] == "312.7"
    at.number_input(key="be_input_tokens").set_value(400).run()  # the user edits it: now it is 400
    assert at.session_state["scenario"].traffic.input_tokens == 400
    at.number_input(key="be_input_tokens").set_value(313).run()  # and back to the shown value: an edit too
    assert at.session_state["scenario"].traffic.input_tokens == 313
    assert at.session_state["scenario"].traffic.output_tokens == 187.3


def test_gpu_price_tier_is_shown_switchable_and_a_typed_price_is_labelled_typed():
    at = _break_even()
    assert at.selectbox(key="be_gpu_tier").value == "on-demand"
    assert any("GPU price tier: **on-demand**, $5.2225/GPU-hour" in c.value for c in at.caption)
    at.selectbox(key="be_gpu_tier").set_value("community").run()
    assert not at.exception, at.exception
    s = at.session_state["scenario"]
    assert s.self_host.gpu_price_tier == "community"
    assert s.self_host.gpu_usd_per_hour == tier_usd_per_hour("h100-sxm", "community")
    assert at.query_params["gpu_tier"] == "community"
    assert any("(community: median of 2 community rows)" in r for r in cost.evaluate(s).reasons)
    _assert_shows(at, s)
    # another GPU keeps the tier where it has one, at that GPU's price
    at.selectbox(key="be_gpu").set_value("h200").run()
    s = at.session_state["scenario"]
    assert (s.self_host.gpu, s.self_host.gpu_price_tier) == ("h200", "community")
    assert s.self_host.gpu_usd_per_hour == tier_usd_per_hour("h200", "community")
    # typing a price labels it typed, on the page and in the scenario
    at.number_input(key="be_gpu_usd_per_hour").set_value(3.1).run()
    s = at.session_state["scenario"]
    assert (s.self_host.gpu_usd_per_hour, s.self_host.gpu_price_tier) == (3.1, "typed")
    assert at.selectbox(key="be_gpu_tier").value == "typed"
    assert any("**typed** by you" in c.value for c in at.caption)
    _assert_shows(at, s)
    # back to a tier: its price again
    at.selectbox(key="be_gpu_tier").set_value("on-demand").run()
    s = at.session_state["scenario"]
    assert (s.self_host.gpu_usd_per_hour, s.self_host.gpu_price_tier) == (default_usd_per_hour("h200"), "on-demand")


ISSUE_11_TOML = """
name = "L40S vs a nano API (issue 11)"
[traffic]
requests_per_day = 230000.5
input_tokens = 512.7
output_tokens = 500
peak_to_mean = 1.5
[api]
input_usd_per_mtok = 0.05
cached_input_usd_per_mtok = 0.005
output_usd_per_mtok = 0.40
[self_host]
gpu = "l40s"
gpu_usd_per_hour = 0.79
output_tokens_per_s = 950
"""


@pytest.mark.parametrize("tier", [None, "community"])
def test_the_cli_and_the_page_print_the_same_numbers(tmp_path, tier):
    """``python -m calculators evaluate FILE`` (a real subprocess) and the Break-even page opened on the same
    scenario show the same verdict, costs, replicas, both break-evens and reasons, word for word."""
    import json
    import subprocess
    import sys

    text = ISSUE_11_TOML if tier is None else ISSUE_11_TOML.replace(
        "gpu_usd_per_hour = 0.79", f'gpu_price_tier = "{tier}"')
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "calculators", "evaluate", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    cli = json.loads(out)
    at = _break_even(to_query_params(loads_toml(text)))
    assert at.session_state["scenario"] == loads_toml(text)  # 230,000.5 and 512.7 kept exactly
    m = _metrics(at)
    assert verdict_headline(cli["verdict"], cli["savings_usd_per_month"]) in _verdict_text(at)
    assert m["API, $/month"] == usd(cli["api"]["usd_per_month"])
    assert m["Self-host, $/month"] == usd(cli["self_host"]["usd_per_month"])
    assert m["Savings, $/month"] == usd(cli["savings_usd_per_month"])
    assert m["Replicas"] == f"{cli['self_host']['replicas']:,}"
    assert m["Break-even, requests/day"] == f"{cli['breakeven']['requests_per_day']:,.0f}"
    assert m["Sustained break-even, requests/day"] == f"{cli['breakeven']['sustained_requests_per_day']:,.0f}"
    reasons = [md.value for md in at.markdown if md.value.startswith("- At ")]
    assert reasons == ["\n".join(f"- {x}" for x in cli["reasons"])]
    if tier is None:  # the issue's example: first crossing 84,267, sustained 337,067 (512.7 input tokens
        # cost the API a little more per request, so both move down a little)
        assert cli["verdict"] == "api" and cli["scenario"]["self_host"]["gpu_price_tier"] == "typed"
        assert 80_000 < cli["breakeven"]["requests_per_day"] < 84_267
        assert 300_000 < cli["breakeven"]["sustained_requests_per_day"] < 337_067
    else:
        assert cli["scenario"]["self_host"]["gpu_price_tier"] == tier
        assert cli["self_host"]["gpu_usd_per_month"] == pytest.approx(
            cli["self_host"]["gpus"] * tier_usd_per_hour("l40s", tier) * 730)
