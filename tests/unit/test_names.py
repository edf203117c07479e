"""Names a finance partner understands (issue 12 item 4): pages named in words at their old URLs, the terms
explained, the seed article named, the heatmap's colours fitted to its data, downloads that keep whole numbers
and the example's source comments."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from calculators import cost, curves, figures, tomlcomments
from calculators.claims import ARTICLE_CLAIMS
from calculators.scenario import DEFAULT_SCENARIO, dumps_toml, load_toml, loads_toml, replace_field
from tests.pinned import SUPPORT_BOT
from ui import glossary
from ui.widgets import download_comments

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "app.py")
ARTICLE_TITLE = "Self-host a high-throughput inference server with vLLM"
TIMEOUT_S = 60


def test_the_menu_names_pages_in_words_at_their_old_urls():
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT_S).run()
    assert not at.exception, at.exception
    # AppTest has no public reader for the navigation; the registry it keeps is what the menu shows.
    pages = {Path(p["script_path"]).name: (p["page_name"], p["url_pathname"]) for p in at._registered_pages.values()}
    assert pages == {
        "0_Home.py": ("Home", ""),
        "1_Break_even.py": ("Break-even", "Break_even"),
        "2_Capacity.py": ("Capacity", "Capacity"),
        "3_Probe.py": ("Probe", "Probe"),
        "4_Results.py": ("Results", "Results"),
        "5_Options.py": ("Options", "Options"),
        "6_Fleet.py": ("Fleet", "Fleet"),
    }
    assert at.title[0].value == "Self-host or API?"  # the home page is the default
    at.switch_page("app_pages/1_Break_even.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Break-even"


def test_every_technical_term_is_in_the_sidebar_glossary_and_the_metrics_explain_theirs():
    terms = ("TTFT", "TPOT", "KV cache", "Utilization", "Replica", "MBU", "Prefill")
    assert set(terms) <= set(glossary.GLOSSARY)
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT_S).run()
    assert not at.exception, at.exception
    (panel,) = [e for e in at.sidebar.expander if e.label.startswith("Glossary")]
    text = " ".join(m.value for m in panel.markdown)
    for term in terms:
        assert f"**{term}**: {glossary.GLOSSARY[term]}" in text
    helps = {m.label: m.help for m in at.metric}
    assert glossary.GLOSSARY["Replica"] in helps["Replicas"]
    assert glossary.GLOSSARY["Utilization"] in helps["GPU utilization"]


def test_reasons_and_claims_name_the_seed_article():
    s = replace_field(SUPPORT_BOT, "traffic.requests_per_day", 500.0)  # low volume and a single replica
    quoting = [r for r in cost.evaluate(s).reasons if "article" in r]
    assert len(quoting) == 2
    assert all(f'the article "{ARTICLE_TITLE}"' in r for r in quoting)
    assert ARTICLE_CLAIMS and ARTICLE_TITLE in cost.ARTICLE


def test_every_money_figure_in_the_reasons_carries_its_period():
    for r in cost.evaluate(SUPPORT_BOT).reasons:
        for m in re.finditer(r"\$[\d,.]+(\S*)", r):
            assert m.group(1).startswith(("/month", "/M", "/GPU-hour")), (m.group(0), r)


@pytest.mark.parametrize("rpd", [20_000.0, 400_000.0, 5_000_000.0])
def test_the_heatmap_colour_range_is_centred_on_zero_and_set_by_the_data(rpd):
    s = replace_field(SUPPORT_BOT, "traffic.requests_per_day", rpd)
    heat = curves.savings_heatmap(s)
    fig = figures.savings_heatmap_figure(heat, s, cost.evaluate(s))
    trace = json.loads(fig.to_json())["data"][0]
    biggest = float(np.nanmax(np.abs(heat["savings_usd_per_month"].to_numpy())))
    assert trace["zmin"] == pytest.approx(-biggest) and trace["zmax"] == pytest.approx(biggest)


def test_a_small_saving_reads_strong_on_its_own_scale():
    """The issue's case: +$18k on a grid spanning ±$20k is 90% of the way to full blue, not 18% of ±$100k."""
    lo, hi = figures.savings_color_range(np.array([[-20_000.0, 18_000.0], [5_000.0, np.nan]]))
    assert (lo, hi) == (-20_000.0, 20_000.0)
    assert (18_000.0 - lo) / (hi - lo) == pytest.approx(0.95)


def test_a_download_keeps_integers_and_reads_back_equal():
    text = dumps_toml(DEFAULT_SCENARIO)
    assert "requests_per_day = 20000\n" in text and "input_tokens = 1500\n" in text
    assert "cached_input_fraction = 0.5\n" in text  # fractions stay fractions
    assert loads_toml(text) == DEFAULT_SCENARIO


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.toml")), ids=lambda p: p.stem)
def test_every_example_keeps_its_source_comments_through_load_and_download(path):
    src = path.read_text(encoding="utf-8")
    s = load_toml(path)
    out = dumps_toml(s, download_comments(s, (path.name, s, tomlcomments.source_comments(src))))
    assert loads_toml(out) == s
    comment_lines = [ln.strip() for ln in src.splitlines() if ln.strip().startswith("#")]
    inline = [ln.split("  #", 1)[1].strip() for ln in src.splitlines()
              if not ln.lstrip().startswith("#") and "  #" in ln]
    assert comment_lines and all(c in out for c in comment_lines)
    assert all(c in out for c in inline)


def test_an_edited_field_loses_its_stale_comment_and_the_header_says_what_changed():
    path = ROOT / "scenarios/support-bot-8b.toml"
    src = path.read_text(encoding="utf-8")
    s = load_toml(path)
    edited = replace_field(s, "traffic.requests_per_day", 30_000.0)
    out = dumps_toml(edited, download_comments(edited, (path.name, s, tomlcomments.source_comments(src))))
    assert "requests_per_day = 30000\n" in out and "a mid-size support desk" not in out
    assert "# Edited in the app after loading support-bot-8b.toml: traffic.requests_per_day" in out
    assert "# assumption: a short answer" in out  # the other fields keep theirs
    assert loads_toml(out) == edited


def test_the_home_page_download_of_a_loaded_example_keeps_its_comments(monkeypatch):
    from tests.unit.test_app_pages import _RecordingStorage

    monkeypatch.setattr("streamlit.testing.v1.app_test.MemoryMediaFileStorage", _RecordingStorage)
    _RecordingStorage.instances.clear()
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT_S).run()
    at.selectbox(key="scn_example").set_value("rag-assistant-70b").run()
    assert not at.exception, at.exception
    (url,) = [b.proto.url for b in at.get("download_button") if b.proto.label.startswith("Download scenario")]
    content = _RecordingStorage.instances[-1].get_file(url.rsplit("/", 1)[-1]).content.decode()
    assert content.startswith("# A 70B RAG assistant with long prompts")
    assert loads_toml(content) == load_toml(ROOT / "scenarios/rag-assistant-70b.toml")


def test_the_uncertainty_expander_computes_only_while_open():
    """Speed (issue 12): the band and tornado, half of a Break-even rerun, are built only once it is opened."""
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT_S)
    at.switch_page("app_pages/1_Break_even.py").run()
    assert not at.exception, at.exception
    ids = [c.proto.id for c in at.get("plotly_chart")]
    assert ids and not any(i.endswith(("-be_chart_tornado", "-be_chart_savings_band")) for i in ids)
    assert any(e.label == "Uncertainty" for e in at.expander)
    at.session_state["be_unc_open"] = True
    at.run()
    assert not at.exception, at.exception
    ids = [c.proto.id for c in at.get("plotly_chart")]
    assert any(i.endswith("-be_chart_tornado") for i in ids) and any(i.endswith("-be_chart_savings_band") for i in ids)
