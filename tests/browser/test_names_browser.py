"""The served app in a real browser: the menu names the pages in words (not "app" / "Break even", which is what
Streamlit's file-based discovery shows) and each page answers at the URL it had before.

Skipped with a reason when chromium or Playwright is missing, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_the_menu_reads_in_words_and_the_old_urls_still_open_their_pages(browser, base_url):
    from playwright.sync_api import expect

    want = ["Home", "Break-even", "Capacity", "Probe", "Results", "Options", "Fleet"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base_url}/Capacity", wait_until="domcontentloaded")  # the first run of a fresh server
        expect(page.get_by_role("heading", name="Capacity", exact=True)).to_be_visible(timeout=30_000)
        links = page.get_by_test_id("stSidebarNavLink")
        expect(links).to_have_count(len(want), timeout=30_000)
        assert [t.split("\n")[-1].strip() for t in links.all_inner_texts()] == want
        links.filter(has_text="Break-even").click()
        expect(page.get_by_role("heading", name="Break-even", exact=True)).to_be_visible(timeout=30_000)
        assert page.url.split("?")[0].endswith("/Break_even")
        expect(page.get_by_text("Glossary: the terms in plain words")).to_be_visible()
    finally:
        page.close()
