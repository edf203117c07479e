"""``python -m probes run`` turns SIGINT, SIGTERM and SIGHUP into a graceful stop (the server it started is
stopped, the partial run is kept, exit 130) and puts the previous handlers back afterwards.

The probe itself is scripted at the CLI's import boundary (``cli.execute``); the signal is real, sent to this
process with ``os.kill``. A fallback handler stands in for the default action (SIGTERM/SIGHUP would kill the
test run), so a CLI that forgot a signal fails here instead of ending pytest.
"""

from __future__ import annotations

import io
import os
import signal
import threading
from typing import Any

import pytest

from probes import cli
from probes.plan.sweep import RUN_SCHEMA

RUN = ("run", "--synthetic", "tiny", "--concurrency", "1", "--input-tokens", "16", "--output-tokens", "4",
       "--no-store")


def _interrupted_run() -> dict[str, Any]:
    return {"schema": RUN_SCHEMA, "run_id": None, "created_at": "2026-12-01T00:00:00Z", "status": "interrupted",
            "error": None, "gpu": None, "model": "tiny", "weights": "synthetic", "vllm_version": "0.32.0",
            "cold_start_s": 1.0, "server": {"mode": "managed"}, "workload": {}, "settings": {}, "points": [],
            "best_point": None, "notes": ["interrupted by the user during concurrency 1"]}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLLM_PYTHON", "/fake/python")
    monkeypatch.delenv("APP__PROBE__ENABLED", raising=False)


@pytest.fixture
def fallback():
    """Handlers that record a signal the CLI did not take over (and release the scripted probe)."""
    leaked: list[int] = []
    release = threading.Event()

    def record(signum: int, _frame: Any) -> None:
        leaked.append(signum)
        release.set()

    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, record) for s in sigs}
    try:
        yield leaked, release, record
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_stops_the_run_gracefully_and_handlers_are_restored(signum, env, fallback, monkeypatch, capsys):
    leaked, release, record = fallback
    seen: dict[str, Any] = {}

    def scripted_execute(req: Any, *, stop: threading.Event, **kw: Any) -> dict[str, Any]:
        release.clear()
        threading.Thread(target=lambda: (stop.wait(), release.set()), daemon=True).start()
        os.kill(os.getpid(), signum)
        seen["released"] = release.wait(timeout=30)  # the handler runs in this (main) thread
        seen["stop_set"] = stop.is_set()
        return _interrupted_run()

    monkeypatch.setattr(cli, "execute", scripted_execute)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(RUN), out=out, err=err)
    assert leaked == [], f"{signal.Signals(leaked[0]).name} reached the previous handler, not the CLI's"
    assert seen == {"released": True, "stop_set": True}
    assert code == 130 and "probe interrupted" in err.getvalue()
    assert "stopping: finishing up, stopping the server" in capsys.readouterr().err  # the handler's own notice
    assert signal.getsignal(signum) is record  # the CLI put the previous handler back


def test_a_second_sigint_forces_exit_130_but_a_second_sigterm_stays_graceful(env, fallback, monkeypatch):
    leaked, release, _record = fallback
    seen: dict[str, Any] = {}

    def scripted_execute(req: Any, *, stop: threading.Event, **kw: Any) -> dict[str, Any]:
        threading.Thread(target=lambda: (stop.wait(), release.set()), daemon=True).start()
        os.kill(os.getpid(), signal.SIGTERM)
        seen["first"] = release.wait(timeout=30) and stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)  # graceful again: no exception
        seen["survived_second_term"] = True
        os.kill(os.getpid(), signal.SIGINT)  # raises KeyboardInterrupt from the handler
        stop.wait(timeout=30)  # interrupted by the KeyboardInterrupt long before the timeout
        seen["not_reached"] = True
        return _interrupted_run()

    monkeypatch.setattr(cli, "execute", scripted_execute)
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(list(RUN), out=out, err=err) == 130
    assert seen == {"first": True, "survived_second_term": True} and leaked == []
    assert err.getvalue().rstrip().endswith("interrupted")
