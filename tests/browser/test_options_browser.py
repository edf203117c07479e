"""The Options page in a real browser (Debian's chromium through Playwright), issue 12 item 1: build two options in
the UI (a self-host copy of the scenario and an API-only one) and see both in the one table and the chart, with the
options in the URL so the address bar is the share link.

Skipped with a reason when chromium or Playwright is missing, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from calculators import options as opts
from calculators.scenario import DEFAULT_SCENARIO

pytestmark = pytest.mark.browser


def test_build_two_options_and_see_both_in_the_table(browser, base_url):
    from playwright.sync_api import expect

    expected = opts.compare_options(opts.OptionsSet(DEFAULT_SCENARIO.traffic, (
        opts.make_option("Own H100", DEFAULT_SCENARIO), opts.make_option("Vendor API", DEFAULT_SCENARIO, "api"))))
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    try:
        page.goto(f"{base_url}/Options", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Options side by side")).to_be_visible(timeout=60_000)
        main = page.locator('[data-testid="stMain"]')
        expect(main).to_contain_text("No options yet", timeout=30_000)

        name = page.locator(".st-key-opt_add_name input")
        add = main.get_by_role("button", name="Add option")
        name.fill("Own H100")
        add.click()
        expect(main).to_contain_text("Added 'Own H100'", timeout=30_000)

        name.fill("Vendor API")
        page.locator(".st-key-opt_add_kind").get_by_text("API only").click()
        add.click()
        expect(main).to_contain_text("Added 'Vendor API'", timeout=30_000)

        table = page.locator('[data-testid="stDataFrame"]').first
        expect(table).to_contain_text("Own H100", timeout=30_000)
        expect(table).to_contain_text("Vendor API")
        for usd in expected["monthly_usd"]:
            expect(table).to_contain_text(f"${usd:,.0f}")
        chart = page.locator(".st-key-opt_chart")
        expect(chart.locator(".xtick text")).to_have_text(["Own H100", "Vendor API"], timeout=30_000)
        expect(page).to_have_url(re.compile(r"[?&]o2_kind=api(&|$)"), timeout=10_000)
        assert re.search(r"[?&]o1_name=Own(\+|%20)H100(&|$)", page.url), page.url
    finally:
        page.close()


def test_upload_the_three_ways_file_and_download_it_back(browser, base_url, tmp_path):
    from playwright.sync_api import expect

    example = Path(__file__).resolve().parents[2] / "scenarios" / "options" / "three-ways.toml"
    oset = opts.load_options(example)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    try:
        page.goto(f"{base_url}/Options", wait_until="domcontentloaded")
        main = page.locator('[data-testid="stMain"]')
        expect(main).to_contain_text("No options yet", timeout=60_000)
        page.locator(".st-key-opt_upload input[type=file]").set_input_files(str(example))
        expect(main).to_contain_text("Loaded 3 option(s)", timeout=30_000)
        table = page.locator('[data-testid="stDataFrame"]').first
        for name, usd in zip(oset.names(), opts.compare_options(oset)["monthly_usd"], strict=True):
            expect(table).to_contain_text(name, timeout=30_000)
            expect(table).to_contain_text(f"${usd:,.0f}")
        expect(main).to_contain_text("50,000 requests/day")  # the file's traffic is the scenario's now
        with page.expect_download() as dl:
            page.locator(".st-key-opt_download").get_by_role("button").click()
        saved = tmp_path / "options.toml"
        dl.value.save_as(saved)
        assert opts.load_options(saved) == oset
    finally:
        page.close()
