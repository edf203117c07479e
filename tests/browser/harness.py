"""Serve the app with ``streamlit run`` and drive it with Debian's chromium (used by the browser test and
``scripts/screenshot.py``).

The server runs in its own process group and is always killed (whole group, then reaped) on exit.
Playwright's own browser download cannot reach its servers from these machines, so Playwright is pointed
at ``/usr/bin/chromium`` (Debian's package; ``make browser`` installs it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

__all__ = ["ROOT", "CHROMIUM", "CHROMIUM_ARGS", "free_port", "serve_app", "launch_chromium"]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the server's process group unconditionally, then reap it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_healthy(proc: subprocess.Popen[bytes], log: IO[bytes], base: str, timeout_s: float) -> None:
    """Poll ``/_stcore/health`` until it answers 200; raise if the server exits or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            log.seek(0)
            err = log.read().decode(errors="replace")
            raise RuntimeError(f"streamlit exited with code {proc.returncode} before serving:\n{err[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"streamlit did not answer {base}/_stcore/health within {timeout_s:.0f} s")
        time.sleep(0.25)


@contextlib.contextmanager
def serve_app(port: int | None = None, *, timeout_s: float = 60.0) -> Iterator[str]:
    """Run ``streamlit run app.py`` on 127.0.0.1; yield its base URL once ``/_stcore/health`` answers."""
    port = port or free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    # The log is a file, not a pipe: a chatty server never blocks on a full pipe.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_healthy(proc, log, base, timeout_s)
            yield base
        finally:
            _stop(proc)


@contextlib.contextmanager
def launch_chromium(playwright: Playwright) -> Iterator[Browser]:
    """Debian's chromium through Playwright, headless, closed on exit."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True)
    try:
        yield browser
    finally:
        browser.close()
