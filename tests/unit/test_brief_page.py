"""The decision brief from the app (AppTest): built only on demand, and the brief the Break-even page serves
holds the numbers the page shows and the numbers ``python -m calculators evaluate --band`` prints for the same
file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from calculators.brief import _esc, extract_data
from calculators.scenario import load_toml, to_query_params

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "app.py")
BREAK_EVEN = "app_pages/1_Break_even.py"
EXAMPLE = "scenarios/rag-assistant-70b.toml"
LABEL = "Download the decision brief (HTML)"


class _RecordingStorage(MemoryMediaFileStorage):
    """The media store AppTest uses, keeping every instance so a test can read what a button serves."""

    instances: list[_RecordingStorage] = []

    def __init__(self, media_endpoint: str) -> None:
        super().__init__(media_endpoint)
        _RecordingStorage.instances.append(self)


def _served(at: AppTest) -> str:
    urls = [b.proto.url for b in at.get("download_button") if b.proto.label == LABEL]
    assert len(urls) == 1
    content = _RecordingStorage.instances[-1].get_file(urls[0].rsplit("/", 1)[-1]).content
    return content.decode("utf-8")


def test_the_break_even_page_serves_a_brief_with_the_pages_and_the_clis_numbers(monkeypatch):
    monkeypatch.setattr("streamlit.testing.v1.app_test.MemoryMediaFileStorage", _RecordingStorage)
    _RecordingStorage.instances.clear()
    at = AppTest.from_file(HOME, default_timeout=60)
    at.query_params.update(to_query_params(load_toml(ROOT / EXAMPLE)))
    at.switch_page(BREAK_EVEN).run()
    assert not at.exception, at.exception
    assert at.session_state["scenario"] == load_toml(ROOT / EXAMPLE)
    # a plain rerun builds nothing: only the prepare button is there
    assert not [b for b in at.get("download_button") if b.proto.label == LABEL]
    at.button(key="be_brief_prepare").click().run()
    assert not at.exception, at.exception
    page = _served(at)
    data = extract_data(page)
    ev = subprocess.run([sys.executable, "-m", "calculators", "evaluate", EXAMPLE, "--band"], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
    assert ev.returncode == 0, ev.stderr
    want = json.loads(ev.stdout)
    assert data["uncertainty"] == want.pop("uncertainty")
    assert data["report"] == want
    shown = {m.label: m.value for m in at.metric}
    for label in ("API, $/month", "Self-host, $/month", "Savings, $/month", "Replicas", "GPU utilization",
                  "Break-even, requests/day", "Sustained break-even, requests/day"):
        assert f"<div class='v'>{_esc(shown[label])}</div><div class='l'>{_esc(label)}</div>" in page, label
    # the download stays while the scenario does; a change takes it away until asked again
    at.run()
    assert [b for b in at.get("download_button") if b.proto.label == LABEL]
    at.number_input(key="be_requests_per_day").set_value(60_000.0).run()
    assert not at.exception, at.exception
    assert not [b for b in at.get("download_button") if b.proto.label == LABEL]


def test_the_options_page_serves_the_brief_of_its_options(monkeypatch):
    from calculators import options as opts

    monkeypatch.setattr("streamlit.testing.v1.app_test.MemoryMediaFileStorage", _RecordingStorage)
    _RecordingStorage.instances.clear()
    oset = opts.load_options(ROOT / "scenarios" / "options" / "three-ways.toml")
    at = AppTest.from_file(HOME, default_timeout=60)
    at.query_params.update(opts.options_to_query_params(oset))
    at.switch_page("app_pages/5_Options.py").run()
    assert not at.exception, at.exception
    assert not [b for b in at.get("download_button") if b.proto.label == LABEL]
    at.button(key="opt_brief_prepare").click().run()
    assert not at.exception, at.exception
    data = extract_data(_served(at))
    assert at.session_state["opt_set"] == oset  # the link reopened the file's options
    shown = opts.compare_options(oset)
    assert [r["option"] for r in data["options"]] == list(shown["option"])
    assert [r["monthly_usd"] for r in data["options"]] == list(shown["monthly_usd"])
    assert data["kind"] == "options" and data["focus_option"] in list(shown["option"])
