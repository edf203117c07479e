"""The served app in a real browser: the Fleet page shows the RAG example's plan and its chart.

Skipped with a reason when chromium or Playwright is missing, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import urllib.parse

import pytest

from calculators.scenario import load_toml, to_query_params

from .harness import ROOT

pytestmark = pytest.mark.browser
RAG = ROOT / "scenarios" / "rag-assistant-70b.toml"


def test_the_fleet_page_shows_replicas_headroom_fallback_and_the_day(browser, base_url):
    from playwright.sync_api import expect

    query = urllib.parse.urlencode(to_query_params(load_toml(RAG)))
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    try:
        page.goto(f"{base_url}/Fleet?{query}", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Fleet plan")).to_be_visible(timeout=30_000)
        metrics = page.get_by_test_id("stMetric")
        expect(metrics.filter(has_text="Replicas at mean / peak")).to_contain_text("2 / 2", timeout=30_000)
        expect(metrics.filter(has_text="Headroom for a cold start")).to_contain_text("1 replica(s)")
        expect(metrics.filter(has_text="Fallback while scaling")).to_contain_text("0%")
        expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Demand vs autoscaled capacity: synthetic day")).to_be_visible()
        assert not page.get_by_test_id("stException").count()
    finally:
        page.close()
