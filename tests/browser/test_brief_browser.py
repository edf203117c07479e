"""The decision brief opened from disk (file://) in headless chromium with networking off: its Plotly charts
render from the inlined bundle, nothing is fetched, and printing it to PDF gives a few A4 pages.

The brief is written by the real CLI (``python -m calculators report``), as a user would. Skipped with a reason
when chromium or Playwright is missing, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from calculators.brief import extract_data, headline

from .harness import ROOT

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("path", "charts_want"), [
    ("scenarios/rag-assistant-70b.toml", ["breakeven", "band", "tornado"]),
    ("scenarios/options/three-ways.toml", ["options", "breakeven", "band", "tornado"]),
], ids=["scenario", "options"])
def test_the_brief_renders_its_charts_offline_and_prints_to_a_few_pages(browser, tmp_path, path, charts_want):
    out = tmp_path / "brief.html"
    subprocess.run([sys.executable, "-m", "calculators", "report", path, "--out", str(out)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    text = out.read_text(encoding="utf-8")
    data = extract_data(text)
    context = browser.new_context(viewport={"width": 1000, "height": 1200})
    context.set_offline(True)
    asked: list[str] = []

    def route(r):
        asked.append(r.request.url)
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(out.as_uri(), wait_until="load")
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3",
                               timeout=30_000)
        charts = page.evaluate("""() => [...document.querySelectorAll('[data-chart]')].map(d => ({
            name: d.dataset.chart,
            svgs: d.querySelectorAll('.js-plotly-plot .main-svg').length,
            traces: d.querySelectorAll('.js-plotly-plot .scatterlayer .trace, .js-plotly-plot .barlayer .trace').length,
            width: d.querySelector('.js-plotly-plot').getBoundingClientRect().width}))""")
        assert [c["name"] for c in charts] == charts_want
        for c in charts:
            assert c["svgs"] >= 1 and c["traces"] >= 1, c
            assert 600 <= c["width"] <= 700, c  # drawn at the fixed printable width
        # the break-even chart labels the volumes the data block holds
        labels = page.locator("[data-chart=breakeven] .annotation-text").all_text_contents()
        rpd = data["report"]["scenario"]["traffic"]["requests_per_day"]
        assert f"you: {rpd:,.0f}/day" in labels, labels
        be = data["report"]["breakeven"]["requests_per_day"]
        assert be is None or f"break-even: {be:,.0f}/day" in labels, labels
        assert page.locator("#verdict-line").inner_text().startswith(("Use the API", "Self-host"))
        assert errors == []
        assert [u for u in asked if not u.startswith("file://")] == []  # nothing left the disk
        page.emulate_media(media="print")
        assert page.locator("nav").is_hidden()
        pdf = page.pdf(format="A4", print_background=True)
    finally:
        context.close()
    pypdf = pytest.importorskip("pypdf")
    pages = [p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages]
    assert 2 <= len(pages) <= 5, len(pages)
    # page 1 is the summary a finance partner reads: verdict, options, break-even and the risks that apply
    first = " ".join(pages[0].split())
    for heading in ("Options", "Break-even", "Risks that apply:"):
        assert heading in first, heading
    verdict = " ".join(headline(data["report"]["verdict"], data["report"]["savings_usd_per_month"]).split())
    assert verdict in first, (verdict, first[:300])
    assert "Operating point (SLO)" not in first and "Assumptions, with source" not in first
    assert "Assumptions, with source" in " ".join(" ".join(p.split()) for p in pages[1:])
