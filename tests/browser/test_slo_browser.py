"""The served app in a real browser: a stored run's SLO operating point goes into the break-even, which then
says "measured run <id> at SLO ...", uses the decode rate, and shows the cost of good tokens.

Skipped with a reason when chromium or Playwright is missing, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from calculators import operating
from probes.results import reference
from probes.results.store import ResultStore

from .conftest import require
from .harness import ROOT, serve_app

pytestmark = pytest.mark.browser
RUN = ROOT / "benchmarks" / "results" / "h100-vllm0.26-2026-11-28" / "probe-llama-3.1-8b-bf16.json"


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict]]:
    """A real SQLite store holding the bundled 8B H100 run (per-request records kept), named by env."""
    require(RUN.exists(), f"{RUN.name} is not in this checkout")
    db = tmp_path_factory.mktemp("slo") / "results.sqlite"
    run = reference.load_run(RUN, keep_samples=True)
    rid = ResultStore(db).save_run(run)
    old = {k: os.environ.get(k) for k in ("APP__PROBE__DB", "APP__PROBE__DATA_DIR")}
    os.environ["APP__PROBE__DB"], os.environ["APP__PROBE__DATA_DIR"] = str(db), str(db.parent / "data")
    try:
        yield rid, run
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def base_url(stored) -> Iterator[str]:
    with serve_app() as url:
        yield url


def test_slo_operating_point_goes_to_the_break_even(browser, base_url, stored):
    from playwright.sync_api import expect

    rid, run = stored
    op = operating.find_operating_point(run, operating.SloTarget(ttft_ms=500, tpot_ms=50), run_id=rid)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base_url}/Break_even", wait_until="domcontentloaded")
        expect(page.get_by_text("Self-host throughput: 3,400 output tokens/s per replica")).to_be_visible(
            timeout=30_000)
        page.get_by_role("link", name="Results").click()
        expect(page.get_by_role("heading", name="Operating point under a latency SLO")).to_be_visible(
            timeout=30_000)
        expect(page.get_by_text("Interpolated at c≈33.8").first).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Use the SLO operating point in the break-even").click()
        expect(page.get_by_text(f"Applied: the Break-even page now uses measured run {rid} at SLO")).to_be_visible(
            timeout=30_000)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Break-even").click()  # named in words
        expect(page.get_by_text(f"Self-host throughput: {op.decode_tokens_per_s:,.0f} output tokens/s per "
                                f"replica")).to_be_visible(timeout=30_000)
        expect(page.get_by_text(f"measured run {rid} at SLO TTFT p90 ≤ 500 ms, TPOT p90 ≤ 50 ms").first
               ).to_be_visible(timeout=30_000)
        expect(page.get_by_text("input 1,500 vs 512 tokens (×2.93)")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Cost of good tokens")).to_be_visible(timeout=30_000)
    finally:
        page.close()
