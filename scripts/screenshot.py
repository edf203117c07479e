"""Screenshot of the Break-even page for the README: ``.venv/bin/python scripts/screenshot.py [OUT.png]``.

Serves the app (``streamlit run``, killed on exit), opens the Break-even page in Debian's chromium through
Playwright with a scenario in the URL (``--scenario``, default the RAG example), waits for the three
charts, and saves a full-page PNG (default ``docs/screenshot-breakeven.png``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the app's packages live at the repo root

from calculators.scenario import DEFAULT_SCENARIO, load_toml, to_query_params  # noqa: E402
from tests.browser.harness import launch_chromium, serve_app  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(ROOT / "docs" / "screenshot-breakeven.png"))
    ap.add_argument("--scenario", default="rag-assistant-70b", help="an example in scenarios/ (file stem)")
    ap.add_argument("--width", type=int, default=1500)
    args = ap.parse_args(argv)
    s = load_toml(ROOT / "scenarios" / f"{args.scenario}.toml") if args.scenario else DEFAULT_SCENARIO

    from playwright.sync_api import expect, sync_playwright

    with serve_app() as base, sync_playwright() as p, launch_chromium(p) as browser:
        page = browser.new_page(viewport={"width": args.width, "height": 1000}, device_scale_factor=1)
        page.goto(f"{base}/Break_even?{urlencode(to_query_params(s))}", wait_until="domcontentloaded")
        expect(page.locator(".st-key-verdict")).to_contain_text("a month", timeout=60_000)
        expect(page.locator(".js-plotly-plot")).to_have_count(3, timeout=60_000)
        # Streamlit scrolls inside its own containers, so a "full page" shot is one viewport: grow the
        # viewport to the content's height instead.
        height = page.evaluate(
            """() => Math.max(...['[data-testid="stMain"]', '[data-testid="stSidebarContent"]']
                .map(q => document.querySelector(q)).filter(Boolean).map(e => e.scrollHeight))"""
        )
        page.set_viewport_size({"width": args.width, "height": int(height) + 40})
        page.wait_for_timeout(2000)  # let plotly redraw at the new size
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out, full_page=True)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
