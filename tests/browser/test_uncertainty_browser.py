"""The served app in a real browser: the Break-even page's "Uncertainty" expander shows the band and tornado,
and applying a range goes into the link.

Skipped with a reason when chromium or Playwright is missing, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import re

import pytest

from calculators import uncertainty
from calculators.scenario import DEFAULT_SCENARIO
from ui.widgets import usd

pytestmark = pytest.mark.browser


def test_the_uncertainty_expander_shows_the_band_and_a_range_goes_into_the_link(browser, base_url):
    from playwright.sync_api import expect

    s = DEFAULT_SCENARIO
    want = uncertainty.analyse(s, uncertainty.ranges_from_pct(s, {**uncertainty.DEFAULT_PCT, "gpu_usd": 40}))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base_url}/Break_even", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Break-even")).to_be_visible(timeout=30_000)
        expander = page.locator("[data-testid=stExpander]").filter(  # lazy: its content exists once opened
            has=page.locator("summary").get_by_text("Uncertainty", exact=True))
        expander.locator("summary").dispatch_event("click")  # a plain click waits on scrolling past live charts
        expect(expander.get_by_text("Which input moves the monthly savings most")).to_be_visible(timeout=30_000)
        expect(expander.get_by_text("Savings vs volume, with the uncertainty band")).to_be_visible()

        gpu = expander.get_by_role("spinbutton", name="GPU price ($/GPU-hour), ± %")
        gpu.fill("40")
        expander.get_by_role("button", name="Apply ranges").click()
        expect(page).to_have_url(re.compile(r"[?&]unc=[^&]*gpu_usd%3D40"), timeout=30_000)
        p5 = expander.get_by_test_id("stMetric").filter(has_text="Savings p5,")
        expect(p5).to_contain_text(usd(want.mc.savings_p5), timeout=30_000)
    finally:
        page.close()
