"""A server left behind by a killed probe is reaped by the next probe that takes the GPU lock, or refused.

The leftover is made for real with the stand-in server of test_server: its ``stubborn`` mode leaves a grandchild
that ignores SIGTERM; SIGKILL of the supervisor (and the probe "dying" without releasing its status file)
leaves that grandchild running in the group, as an engine core outliving vLLM's main process would.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probes import job
from probes.errors import LeftoverServerError, ProbeBusyError
from probes.job import GpuLock, running_probe
from probes.load.workload import WorkloadSpec
from probes.plan.sweep import SweepConfig
from probes.target import reaper
from probes.target.reaper import leftover_pids, reap, token_pids
from probes.target.server import VllmServer, group_pids, process_start_ticks
from tests.unit.test_server import INSTALL, STAND_IN


@pytest.fixture
def leftover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A probe that held GPU 0 died by SIGKILL with its supervisor; its SIGTERM-proof grandchild remains."""
    script = tmp_path / "fake-python"
    script.write_text(STAND_IN.format(python=sys.executable))
    script.chmod(0o755)
    server = VllmServer(model="m", vllm_python=str(script), env={"FAKE_MODE": "stubborn"},
                        log_path=str(tmp_path / "server.log"))
    server.install = INSTALL
    server.start()
    deadline = time.monotonic() + 10
    while len(group_pids(server.pid)) < 3 and time.monotonic() < deadline:  # type: ignore[arg-type]
        time.sleep(0.05)
    dead = GpuLock(tmp_path, 0)
    dead.acquire({"pid": 123, "model": "m", "server": server.identity()})
    os.kill(server.pid, signal.SIGKILL)  # type: ignore[arg-type]
    server.proc.wait(10)  # type: ignore[union-attr]
    assert dead._fh is not None
    fcntl.flock(dead._fh, fcntl.LOCK_UN)  # what the OS does for a dead process; the status file stays
    dead._fh.close()
    deadline = time.monotonic() + 10
    while len(token_pids(server.token)) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(token_pids(server.token)) == 1  # the grandchild, re-parented, still running
    monkeypatch.setattr(GpuLock, "reap_grace_s", 1.0)
    monkeypatch.setattr(GpuLock, "reap_kill_wait_s", 1.0)
    yield server
    server.stop()


def test_the_next_probe_reaps_the_leftover(leftover: VllmServer, tmp_path: Path) -> None:
    assert running_probe(tmp_path, 0) is None  # the lock is free: the GPU looks idle, but is not
    left = token_pids(leftover.token)
    lock = GpuLock(tmp_path, 0)
    lock.acquire({"pid": os.getpid(), "model": "next"})
    try:
        assert lock.reaped == left and token_pids(leftover.token) == []
        assert running_probe(tmp_path, 0)["model"] == "next"  # type: ignore[index]
    finally:
        lock.release()


def test_a_leftover_that_cannot_be_stopped_is_refused_and_the_lock_released(
        leftover: VllmServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reaper.os, "kill", lambda pid, sig: None)  # as if another user's: signals do nothing
    with pytest.raises(LeftoverServerError, match=r"could not be stopped: stop it by hand \(kill -9 \d+"):
        GpuLock(tmp_path, 0).acquire({"pid": os.getpid()})
    assert issubclass(LeftoverServerError, ProbeBusyError)
    assert running_probe(tmp_path, 0) is None  # not left held
    monkeypatch.undo()
    monkeypatch.setattr(GpuLock, "reap_grace_s", 1.0)
    monkeypatch.setattr(GpuLock, "reap_kill_wait_s", 5.0)
    lock = GpuLock(tmp_path, 0)
    lock.acquire({"pid": os.getpid()})
    assert lock.reaped and token_pids(leftover.token) == []
    lock.release()


def test_a_reused_pid_is_never_taken_for_a_leftover() -> None:
    """Without a token, the group counts only while its leader has the recorded start time."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        ticks = process_start_ticks(other.pid)
        assert ticks is not None
        assert leftover_pids({"pgid": other.pid, "start_ticks": ticks + 1}) == []
        assert reap({"pgid": other.pid, "start_ticks": ticks + 1}) == [] and other.poll() is None
        assert leftover_pids({"pgid": other.pid, "start_ticks": ticks, "host": "another-host"}) == []
        assert leftover_pids({"pgid": other.pid, "start_ticks": ticks}) == [other.pid]
        assert leftover_pids({"token": "f" * 32}) == []  # a token nobody carries
    finally:
        other.kill()
        other.wait(10)


def test_job_status_has_a_server_field() -> None:
    req = job.ProbeRequest(config=SweepConfig(workload=WorkloadSpec(input_tokens=8, output_tokens=2, num_requests=2)),
                           endpoint="http://127.0.0.1:1")
    assert job.ProbeJob(req).status()["server"] is None  # filled with VllmServer.identity() once spawned
