"""Fixtures every real-browser test module shares: ``browser`` (Debian's chromium through Playwright) and
``base_url`` (the real app served by ``streamlit run``), one of each per module so that each module starts on a
fresh server. A module that needs another server (other settings, a seeded store) defines its own ``base_url``.

Missing chromium or Playwright skips with the reason, except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import CHROMIUM, launch_chromium, serve_app


def require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` unless ``ok``; in CI a missing browser is a failure, never a silent skip."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping; run `make browser`)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_app() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (Debian package `chromium`; `make browser`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (requirements-test.txt)")
    with sync_playwright() as p, launch_chromium(p) as b:
        yield b
