"""The Probe page end to end: ``streamlit run``, Debian's chromium, a real CPU vLLM serving the tiny model.

The browser picks the synthetic "tiny" model, sweeps concurrency 1,2 with a few short requests and clicks
Start; the test waits for the finished run on the page, finds it in the temporary results store, and checks
that the job tore its vLLM down (every process started here carries this test's ``PROBE_TEST_TAG``).
Skipped with the reason when VLLM_PYTHON, chromium or Playwright is missing (a failure when CI is set).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from probes.results.store import ResultStore
from tests.browser.harness import CHROMIUM, launch_chromium, serve_app
from tests.integration.conftest import tagged_processes

if TYPE_CHECKING:
    from tests.integration.conftest import ServerPool

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _require(ok: bool, reason: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


def _vllm_pids(tag: str) -> list[int]:
    """Tagged processes other than the Streamlit server itself (i.e. vLLM and its engine core)."""
    out = []
    for pid in tagged_processes(tag):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"streamlit" not in cmdline:
            out.append(pid)
    return out


def _wait_no_vllm(tag: str, timeout_s: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := _vllm_pids(tag)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _fill(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)


@pytest.mark.timeout(600)
def test_probe_page_runs_a_real_sweep(vllm_python: str, vllm_pool: ServerPool, fresh_tag: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _require(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (Debian package `chromium`; `make browser`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright is not installed (requirements-test.txt)")
    vllm_pool.release()  # one vLLM at a time on this machine: the shared server goes first
    db = tmp_path / "results.sqlite"
    with sync_playwright() as p, launch_chromium(p) as browser:  # started before the tag: not tagged
        # the served app inherits these, and so does the vLLM its probe starts
        monkeypatch.setenv("VLLM_PYTHON", vllm_python)
        monkeypatch.setenv("APP__PROBE__DB", str(db))
        monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("PROBE_TEST_TAG", fresh_tag)
        monkeypatch.delenv("APP__PROBE__ENABLED", raising=False)
        with serve_app() as base:
            _drive(browser, base, vllm_python)
            runs = ResultStore(db).list_runs()
            assert len(runs) == 1, runs
            run = ResultStore(db).get_run(runs[0]["id"])
            assert run["status"] == "complete", run.get("error")
            assert [pt["concurrency"] for pt in run["points"]] == [1, 2]
            assert all(pt["completed"] == max(4, 3 * pt["concurrency"]) and pt["failed"] == 0 for pt in run["points"])
            assert all(pt["output_tokens_per_s"] > 0 and pt["total_output_tokens"] == 8 * pt["completed"]
                       for pt in run["points"])  # 8 tokens asked per request, every one delivered
            assert run["weights"] == "synthetic" and "--max-model-len" in run["server"]["serve_args"]
            # the job stopped its server by itself, while the app still runs
            assert not _wait_no_vllm(fresh_tag), "the probe left a vLLM process behind"
    assert not _wait_no_vllm(fresh_tag, 15.0)


def _drive(browser, base: str, vllm_python: str) -> None:
    """Fill the Probe page, start, and wait for the finished run on the page."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    try:
        page.goto(f"{base}/Probe", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Probe", exact=True)).to_be_visible(timeout=60_000)
        expect(page.get_by_role("heading", name="GPU", exact=True)).to_be_visible(timeout=30_000)
        expect(page.get_by_label("vLLM interpreter (python of vLLM's environment)")).to_have_value(vllm_python)
        _fill(page, "vLLM flags (editable; prefilled from the launch plan)", "--max-model-len 512 --enforce-eager")
        _fill(page, "Input tokens", "32")
        _fill(page, "Output tokens", "8")
        _fill(page, "Requests per point", "4")
        _fill(page, "Concurrency list", "1,2")
        _fill(page, "Warm-up requests per point", "0")
        page.get_by_role("button", name="Start probe").click()

        # live view while vLLM starts: the progress line and the page's Stop button (inside the main block:
        # while a rerun is in flight Streamlit's own header shows a "Stop" button too, and a bare role locator
        # then matches two elements: seen once in 8 CI runs)
        stop = page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop")
        expect(stop).to_be_visible(timeout=60_000)
        # the finished run: status line, then the operating-point picker with the measured points
        expect(page.get_by_text(re.compile(r"Probe complete: run \d+ saved"))).to_be_visible(timeout=300_000)
        picker = page.locator(".st-key-probe_result_point").get_by_role("combobox", name="Operating point")
        expect(picker).to_have_value(re.compile(r"^c=[12]: [\d,]+ output tok/s .*best$"), timeout=30_000)
    finally:
        page.close()
