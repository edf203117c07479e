"""``probes.job.execute`` keeps its docstring's promise: the managed server is stopped before it returns,
after a finished sweep and when the sweep raises. The server is test_server's stand-in (a real process group
that answers /health), so "stopped" means no process of its group is left."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from probes import job
from probes.job import ProbeRequest, execute
from probes.load.workload import WorkloadSpec
from probes.plan.sweep import SweepConfig
from probes.settings import ProbeSettings
from probes.target.server import VllmInstall, group_pids
from tests.unit.test_server import STAND_IN

CONFIG = SweepConfig(workload=WorkloadSpec(input_tokens=8, output_tokens=2, num_requests=2), concurrencies=(1,))


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "fake-python"
    path.write_text(STAND_IN.format(python=sys.executable))
    path.chmod(0o755)
    monkeypatch.setattr(job, "detect_install", lambda python: VllmInstall(python, "0.0.0", cpu_build=True))
    monkeypatch.setenv("FAKE_MODE", "ready")
    return str(path)


def _execute(stand_in: str, tmp_path: Path, servers: list[Any]) -> dict[str, Any]:
    return execute(ProbeRequest(config=CONFIG, model="m", vllm_python=stand_in),
                   settings=ProbeSettings(data_dir=str(tmp_path / "data")), on_server=servers.append)


def test_the_server_is_stopped_when_execute_returns_after_a_sweep(stand_in: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def finished_sweep(run: dict[str, Any], config: SweepConfig, **kw: Any) -> dict[str, Any]:
        seen["alive_during_sweep"] = kw["alive"]()
        seen["group_during_sweep"] = group_pids(servers[0].pid)
        run["status"] = "complete"
        return run

    servers: list[Any] = []
    monkeypatch.setattr(job, "run_sweep", finished_sweep)
    run = _execute(stand_in, tmp_path, servers)
    assert run["status"] == "complete" and run["server"]["mode"] == "managed"
    assert seen["alive_during_sweep"] and seen["group_during_sweep"], "the sweep ran against a live server"
    assert not servers[0].is_running() and group_pids(servers[0].pid) == []


def test_the_server_is_stopped_when_the_sweep_raises(stand_in: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_sweep(run: dict[str, Any], config: SweepConfig, **kw: Any) -> dict[str, Any]:
        raise RuntimeError("a bug in the sweep")

    servers: list[Any] = []
    monkeypatch.setattr(job, "run_sweep", broken_sweep)
    with pytest.raises(RuntimeError, match="a bug in the sweep"):
        _execute(stand_in, tmp_path, servers)
    assert not servers[0].is_running() and group_pids(servers[0].pid) == []
