"""The Capacity page in a real browser (Debian's chromium through Playwright): a widget change applies at once
(no Analyse button), a "what would fit" button applies its fix and the model fits, and the scenario's request
shape edited here is the Break-even page's.

Skipped with a reason when chromium or Playwright is missing, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def _choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the sidebar selectbox labelled ``label``."""
    page.locator('[data-testid="stSidebar"]').get_by_label(label).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_a_change_applies_at_once_and_a_fix_button_makes_it_fit(browser, base_url):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base_url}/Capacity", wait_until="domcontentloaded")
        main = page.locator('[data-testid="stMain"]')
        alert = page.locator(".st-key-cap_verdict")
        expect(alert).to_contain_text("Llama 3.3 70B", timeout=60_000)
        expect(alert).to_contain_text("bf16 weights, KV auto: will not start")
        expect(page.get_by_role("button", name="Analyse")).to_have_count(0)  # live: nothing to press

        # a widget change applies by itself: fp8 KV cache does not rescue bf16 weights, but the headline follows
        _choose(page, "KV cache dtype", "fp8")
        expect(alert).to_contain_text("bf16 weights, KV fp8: will not start", timeout=30_000)

        # the first "what would fit" line is a button: fp8 weights
        main.get_by_role("button", name="fp8 weights (--quantization fp8)").click()
        expect(alert).to_contain_text("fp8 weights, KV fp8: fits", timeout=30_000)
        expect(page.locator('[data-testid="stSidebar"]').get_by_label("Weights")).to_have_value("fp8")
        plan = page.locator(".st-key-cap_launch_plan")  # the one-GPU plan (the multi-node section prints its own)
        expect(plan.get_by_text(re.compile(r"^vllm serve meta-llama/Llama-3\.3-70B-Instruct .*--quantization fp8")
                                )).to_be_visible(timeout=30_000)
        expect(main.get_by_role("button", name="fp8 weights (--quantization fp8)")).to_have_count(0)

        # the scenario's output tokens, edited here, are the Break-even page's
        box = page.get_by_role("spinbutton", name="Output tokens per request")
        box.fill("700")
        box.press("Enter")
        expect(main.get_by_text(re.compile(r"\+ 700-token requests"))).to_be_visible(timeout=30_000)
        page.get_by_role("link", name=re.compile("Break")).first.click()
        expect(page.get_by_role("heading", name="Break-even")).to_be_visible(timeout=30_000)
        expect(page.get_by_role("spinbutton", name="Output tokens per request")).to_have_value("700", timeout=30_000)
    finally:
        page.close()
