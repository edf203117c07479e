"""The served app in a real browser: uploading a trace on the Break-even page fills in the traffic.

Skipped with a reason when chromium or Playwright is missing, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import re

import pytest

from calculators.scenario import DEFAULT_SCENARIO
from calculators.traffic import apply_to_scenario, summarize_file

from .harness import ROOT

pytestmark = pytest.mark.browser
TRACE = ROOT / "tests" / "fixtures" / "traces" / "small-mooncake.jsonl"


def test_uploading_a_trace_fills_in_the_traffic(browser, base_url, tmp_path):
    from playwright.sync_api import expect

    expected = apply_to_scenario(DEFAULT_SCENARIO, summarize_file(TRACE, name=TRACE.name)).traffic
    bad = tmp_path / "broken.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,1,x\n", encoding="utf-8")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base_url}/Break_even", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Break-even")).to_be_visible(timeout=30_000)
        rpd = page.get_by_role("spinbutton", name="Requests per day")
        expect(rpd).to_have_value(f"{DEFAULT_SCENARIO.traffic.requests_per_day:.0f}", timeout=30_000)
        upload = page.locator(".st-key-be_trace_upload input[type=file]")

        upload.set_input_files(str(bad))  # a bad file: its line is named, the traffic stays
        expect(page.get_by_text("broken.csv: line 2: GeneratedTokens must be a whole number")).to_be_visible(
            timeout=30_000)
        expect(rpd).to_have_value("20000")

        upload.set_input_files(str(TRACE))
        expect(rpd).to_have_value(f"{expected.requests_per_day:.0f}", timeout=30_000)  # 3600
        expect(page.get_by_role("spinbutton", name="Input tokens per request")).to_have_value(f"{expected.input_tokens:.0f}")
        expect(page.get_by_role("spinbutton", name="Cached share of input")).to_have_value(f"{expected.cached_input_fraction:.2f}")
        expect(page.get_by_role("heading", name="Traffic from trace small-mooncake.jsonl")).to_be_visible(
            timeout=30_000)
        expect(page.get_by_text("Arrival rate over time")).to_be_visible(timeout=30_000)  # the Plotly chart
        expect(page).to_have_url(re.compile(r"[?&]rpd=3600(&|$)"), timeout=10_000)
        expect(page).to_have_url(re.compile(r"[?&]trace=small-mooncake.jsonl(&|$)"), timeout=10_000)
    finally:
        page.close()
