"""App speed as a user feels it (issue 12, quality): the real app (``streamlit run app.py``) driven by Debian's
chromium through Playwright.

``.venv/bin/python benchmarks/bench_app_speed.py [--cold 3] [--repeats 12] [--pages ...] [--out FILE.json]``.
Measures:

1. **cold start**: from spawning ``streamlit run`` to the home page rendered and settled in the browser (the
   verdict shown, no "Running" status widget, no stale element), with the server's health time apart;
2. **Break-even input change**: type a new "Requests per day" (a new value each time, so every calculator cache
   misses as a user's edit does) and press Enter; the time until the page has settled: the reasons name the new
   volume, Streamlit's status widget is gone and no element is marked stale (the charts below were redrawn);
3. **Options edit**: on the Options page, one option added from the scenario, then its typed "Output tok/s per
   replica" changed and "Apply" clicked (a form: the submit rerun and the ``st.rerun`` after it), timed until
   the page has settled and the message names the new throughput.

Prints medians, the 90th percentile and the worst, with the machine's load average (a busy 2-core box makes
every number slower: record the load with the numbers). Never a test: numbers only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.harness import launch_chromium, serve_app  # noqa: E402

__all__ = ["main"]

# Settled: no status widget ("Running…"), no element Streamlit marks stale while a rerun is pending.
_SETTLED_JS = """(needle) => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main || (needle && !main.innerText.includes(needle))) return false;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  return !document.querySelector('[data-stale="true"]');
}"""


def _wait_settled(page, needle: str | None, timeout_s: float = 60.0) -> None:
    page.wait_for_function(_SETTLED_JS, arg=needle, polling="raf", timeout=timeout_s * 1e3)


def _stats(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    return {"n": len(s), "median_ms": statistics.median(s), "p90_ms": s[min(len(s) - 1, int(0.9 * len(s)))],
            "worst_ms": s[-1], "best_ms": s[0]}


def cold_start(browser, runs: int) -> dict[str, object]:
    """Spawn the server ``runs`` times; each time open the home page in a fresh page until it has settled."""
    health, first = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        with serve_app() as base:
            t_health = time.perf_counter()
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                page.goto(base, wait_until="domcontentloaded")
                _wait_settled(page, "requests/day")
                t_done = time.perf_counter()
            finally:
                page.close()
        health.append((t_health - t0) * 1e3)
        first.append((t_done - t0) * 1e3)
    return {"server_healthy": _stats(health), "first_rendered_page": _stats(first)}


def input_changes(browser, base: str, path: str, label: str, values: list[float],
                  needle_fmt: str | None) -> dict[str, object]:
    """On ``path``, type each of ``values`` into the number input ``label`` and time until the page settles."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    times = []
    try:
        page.goto(f"{base}/{path}", wait_until="domcontentloaded")
        _wait_settled(page, None)
        box = page.locator('[data-testid="stSidebar"], [data-testid="stMain"]').get_by_label(label).first
        box.wait_for(timeout=60_000)
        for i, v in enumerate(values):
            box.fill(f"{v:g}")
            t0 = time.perf_counter()
            box.press("Enter")
            page.wait_for_timeout(0)
            _wait_settled(page, needle_fmt.format(v) if needle_fmt else None)
            if i:  # the first change warms the session (imports, first figures); it is reported apart
                times.append((time.perf_counter() - t0) * 1e3)
            else:
                first = (time.perf_counter() - t0) * 1e3
    finally:
        page.close()
    return {"page": path, "input": label, "first_change_ms": first, "changes": _stats(times)}


def options_edits(browser, base: str, values: list[float]) -> dict[str, object]:
    """Options page: add one option, then per value type it as the option's throughput and click Apply."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    times = []
    try:
        page.goto(f"{base}/Options", wait_until="domcontentloaded")
        _wait_settled(page, "Add an option")
        main = page.locator('[data-testid="stMain"]')
        main.get_by_role("button", name="Add option").click()
        _wait_settled(page, "Added 'Option 1'.")
        main.get_by_text("Edit: Option 1").click()
        box = main.get_by_label("Output tok/s per replica (typed)").first
        box.wait_for(timeout=60_000)
        for i, v in enumerate(values):
            box.fill(f"{v:g}")
            t0 = time.perf_counter()
            main.get_by_role("button", name="Apply").first.click()
            _wait_settled(page, f"{v:,.0f} output tok/s per replica (typed)")
            if i:
                times.append((time.perf_counter() - t0) * 1e3)
            else:
                first = (time.perf_counter() - t0) * 1e3
    finally:
        page.close()
    return {"page": "Options", "input": "Output tok/s per replica (typed) + Apply", "first_change_ms": first,
            "changes": _stats(times)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cold", type=int, default=3, help="cold starts (default 3)")
    p.add_argument("--repeats", type=int, default=12, help="input changes per page after a warm-up (default 12)")
    p.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    p.add_argument("--pages", nargs="+", choices=("break_even", "options"), default=["break_even", "options"],
                   help="which input changes to time (default both; an older commit without the Options "
                        "page's 'Applied to' message: break_even only)")
    ns = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    out: dict[str, object] = {"machine": f"{platform.node()} {os.cpu_count()} cores", "load_before": load_before}
    with sync_playwright() as pw, launch_chromium(pw) as browser:
        out["cold_start"] = cold_start(browser, ns.cold)
        with serve_app() as base:
            values = [21_000.0 + 1_000 * i for i in range(ns.repeats + 1)]
            if "break_even" in ns.pages:
                out["break_even"] = input_changes(browser, base, "Break_even", "Requests per day", values,
                                                  "At {:,.0f} requests/day")
            if "options" in ns.pages:
                out["options"] = options_edits(browser, base, [2_000.0 + 100 * i for i in range(ns.repeats + 1)])
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    if ns.out:
        ns.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
