"""The Results page's comparison in a real browser (Debian's chromium through Playwright), on a real SQLite store
seeded with two GPU runs and a toy CPU run: picking two runs draws two lines in each chart, the concurrency axis
is labelled with the measured concurrencies, the toy CPU run is not preselected for a GPU scenario, and the runs
table fits a 1,280-pixel window with no horizontal scroll.

Skipped with a reason when chromium or Playwright is missing, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from probes.results.store import RUN_SCHEMA, ResultStore

from .harness import serve_app

pytestmark = pytest.mark.browser


def _run(gpu: dict | None, model: str, concurrency: tuple[int, ...], tok_s_per_stream: float,
         serve_args: tuple[str, ...] = ()) -> dict:
    points = [{"concurrency": c, "output_tokens_per_s": tok_s_per_stream * c, "completed": 8, "failed": 0,
               "ttft_ms": {"median": 20.0 * c, "p90": 25.0 * c, "p99": 30.0 * c},
               "tpot_ms": {"median": 8.0, "p90": 9.0, "p99": 10.0}} for c in concurrency]
    return {"schema": RUN_SCHEMA, "status": "complete", "weights": "synthetic", "model": model, "gpu": gpu,
            "created_at": "2026-12-01T12:00:00Z", "server": {"serve_args": list(serve_args)},
            "workload": {"input_tokens": 1024, "output_tokens": 128, "distribution": "fixed"}, "points": points}


# 1,280 px wide; tall enough that the charts are on screen (plotly draws a chart once it is in view)
VIEWPORT = {"width": 1280, "height": 2400}
CPU_LABEL = "CPU · opt-125m · 1,024/128 · 2026-12-01 · #1"
H100_LABEL = "H100 80GB HBM3 · Llama-3.1-8B-Instruct · 1,024/128 · 2026-12-01 · #2"
TP2_LABEL = "2× H100 80GB HBM3 · Llama-3.3-70B-Instruct · 1,024/128 · 2026-12-01 · #3"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("compare")
    store = ResultStore(data / "results.sqlite", hostname="gpu-box-1")
    store.save_run(_run(None, "facebook/opt-125m", (1, 2), 5.0))
    store.save_run(_run({"name": "NVIDIA H100 80GB HBM3", "count": 1}, "meta-llama/Llama-3.1-8B-Instruct",
                        (1, 8, 32), 150.0))
    store.save_run(_run({"name": "NVIDIA H100 80GB HBM3", "count": 2}, "meta-llama/Llama-3.3-70B-Instruct",
                        (1, 4, 16), 40.0, serve_args=("-tp", "2")))
    saved = {k: os.environ.get(k) for k in ("APP__PROBE__DB", "APP__PROBE__DATA_DIR")}
    os.environ["APP__PROBE__DB"] = str(data / "results.sqlite")  # the server inherits it
    os.environ["APP__PROBE__DATA_DIR"] = str(data / "data")
    try:
        with serve_app(timeout_s=180) as url:
            yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _loaded(page) -> None:
    """Wait until the page has drawn its last part (the picked run's charts) and stopped running."""
    from playwright.sync_api import expect

    expect(page.locator(".st-key-res_run_view_chart_tps")).to_be_attached(timeout=120_000)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)


def _pick(page, label: str) -> None:
    """Add ``label`` to the "Runs to compare" multiselect."""
    from playwright.sync_api import expect

    box = page.get_by_role("combobox", name="Runs to compare")
    box.focus()  # not a click: the box may be moving while the page reruns
    box.press_sequentially(label.split(" · ")[1])  # the model filters the options
    page.get_by_role("option", name=label, exact=True).click()
    page.keyboard.press("Escape")
    expect(page.locator(".st-key-cmp_runs").get_by_text(label, exact=True)).to_be_visible()


def test_two_runs_picked_are_two_lines_with_the_measured_concurrencies(browser, base_url):
    from playwright.sync_api import expect

    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(f"{base_url}/Results?gpu=l40s", wait_until="domcontentloaded")  # no run on an L40S
        _loaded(page)
        expect(page.get_by_text("Pick runs above to draw them side by side.")).to_be_visible()
        expect(page.locator(".st-key-cmp_chart_tps")).to_have_count(0)

        _pick(page, H100_LABEL)
        expect(page.locator(".st-key-cmp_chart_tps .scatterlayer .trace")).to_have_count(1, timeout=60_000)
        _pick(page, TP2_LABEL)
        tps = page.locator(".st-key-cmp_chart_tps")
        expect(tps.locator(".scatterlayer .trace")).to_have_count(2, timeout=60_000)
        expect(page.locator(".st-key-cmp_chart_latency .scatterlayer .trace")).to_have_count(2)
        expect(tps.locator(".legendtext")).to_have_text([H100_LABEL, TP2_LABEL])
        # markers at the measured points, and those concurrencies are the axis labels (no 2, 5, 10 or 1e3)
        expect(tps.locator(".scatterlayer .trace").first.locator(".point")).to_have_count(3)
        expect(tps.locator(".xtick text")).to_have_text(["1", "4", "8", "16", "32"])
    finally:
        page.close()


def test_the_cpu_run_is_not_preselected_and_the_table_needs_no_scroll(browser, base_url):
    from playwright.sync_api import expect

    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(f"{base_url}/Results", wait_until="domcontentloaded")  # the default scenario: one H100 SXM
        _loaded(page)
        chart = page.locator(".st-key-cmp_chart_tps")
        expect(chart.locator(".scatterlayer .trace").first).to_be_attached(timeout=60_000)
        legend = chart.locator(".legendtext")  # the H100 runs (of the scenario's model, when it names one)
        expect(legend.filter(has_text=H100_LABEL)).to_have_count(1)
        expect(legend.filter(has_text="CPU")).to_have_count(0)
        expect(page.locator(".st-key-cmp_runs").get_by_text(CPU_LABEL)).to_have_count(0)

        table = page.locator('[data-testid="stDataFrame"]').first
        expect(table).to_contain_text("1,024/128")
        scroller = table.locator(".dvn-scroller").first
        width, visible = scroller.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert width <= visible, f"the runs table scrolls sideways at 1,280 px: {width} px in {visible} px"
    finally:
        page.close()
