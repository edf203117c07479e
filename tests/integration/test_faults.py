"""Faults on a real vLLM (CPU build): each ends with a clear message, results kept and marked, nothing left.

Start failures (bad flag, impossible --max-model-len) fail after vLLM's imports (~10-15 s); a taken port is
refused before vLLM starts. Mid-run faults use the shared server: SIGSTOP of its group (a hang, detected by
the /health watchdog), then SIGKILL of its main PID (death); the pool restarts it for later tests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from probes.load.workload import WorkloadSpec
from probes.plan.sweep import SweepConfig, SweepProgress, new_run, run_sweep
from probes.target.server import free_port, group_pids

if TYPE_CHECKING:
    from tests.integration.conftest import ServerPool

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


def _cli(vllm_python: str, tmp_path: Path, env: dict[str, str], *extra: str) -> tuple[subprocess.CompletedProcess[str],
                                                                                    dict[str, Any]]:
    out = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "probes", "run", "--synthetic", "tiny", "--concurrency", "1", "--input-tokens", "32",
         "--output-tokens", "8", "--requests", "2", "--vllm-python", vllm_python, "--out", str(out),
         "--db", str(tmp_path / "r.sqlite"), "--startup-timeout", "120", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=170, check=False)
    return proc, json.loads(out.read_text()) if out.exists() else {}


@pytest.mark.timeout(200)
@pytest.mark.parametrize(("extra", "hint"), [
    (("--vllm-arg=--no-such-flag",), "vLLM rejected a command-line flag"),
    (("--max-model-len", "100000"), "--max-model-len is larger than the model allows"),
], ids=["bad-flag", "impossible-max-model-len"])
def test_start_failure_is_clear_and_clean(extra: tuple[str, ...], hint: str, vllm_python: str, vllm_pool: ServerPool,
                                          tmp_path: Path, tag_env: dict[str, str], fresh_tag: str,
                                          leftovers: Callable[[str], list[int]]) -> None:
    vllm_pool.release()
    proc, run = _cli(vllm_python, tmp_path, tag_env, *extra)
    assert proc.returncode == 1
    assert hint in proc.stderr and "last lines of the vLLM log" in proc.stderr
    assert "Traceback (most recent call last)" not in proc.stderr.split("--- last lines")[0]
    assert run["status"] == "failed" and hint in run["error"] and run["points"] == []
    assert not leftovers(fresh_tag)


@pytest.mark.timeout(60)
def test_port_taken_is_refused_before_start(vllm_python: str, tmp_path: Path, tag_env: dict[str, str],
                                            fresh_tag: str, leftovers: Callable[[str], list[int]]) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        t0 = time.monotonic()
        proc, run = _cli(vllm_python, tmp_path, tag_env, "--port", str(port))
        assert time.monotonic() - t0 < 30
    assert proc.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr
    assert run["status"] == "failed"
    assert not leftovers(fresh_tag)


@pytest.mark.timeout(120)
def test_http_errors_are_data(vllm_server: Any) -> None:
    """Prompts longer than --max-model-len: every request gets HTTP 400; the run says so, nothing raises."""
    spec = WorkloadSpec(input_tokens=600, output_tokens=8, num_requests=3)
    config = SweepConfig(workload=spec, concurrencies=(1, 2))
    run = new_run(model="tiny", weights="synthetic", server={"mode": "managed"}, config=config)
    run_sweep(run, config, base_url=vllm_server.base_url, model="tiny", vocab_size=4096, alive=vllm_server.is_running)
    assert run["status"] == "failed"
    assert "3 of 3 requests failed at concurrency 1" in run["error"] and "HTTP 400" in run["error"]
    assert [p["concurrency"] for p in run["points"]] == [1]  # stopped at the first point with errors
    assert all(not s["success"] and "HTTP 400" in s["error"] for s in run["points"][0]["samples"])
    assert run["best_point"] is None


def _sweep_in_thread(server: Any, **overrides: Any) -> tuple[threading.Thread, dict[str, Any], threading.Event]:
    spec = WorkloadSpec(input_tokens=64, output_tokens=64, num_requests=400)
    config = SweepConfig(workload=spec, concurrencies=(2,), hang_timeout_s=4.0, watch_interval_s=0.5,
                         request_timeout_s=120.0, **overrides)
    run = new_run(model="tiny", weights="synthetic", server={"mode": "managed"}, config=config)
    started = threading.Event()

    def progress(p: SweepProgress) -> None:
        if p.done >= 2:
            started.set()

    def describe() -> str:
        return f"the vLLM server exited (code {server.proc.poll()}) during the run"

    thread = threading.Thread(target=run_sweep, args=(run, config), kwargs={
        "base_url": server.base_url, "model": "tiny", "vocab_size": 4096, "alive": server.is_running,
        "describe_exit": describe, "on_progress": progress}, daemon=True)
    thread.start()
    return thread, run, started


@pytest.mark.timeout(240)
def test_hang_then_death_mid_run(vllm_pool: ServerPool, test_tag: str, leftovers: Callable[[str], list[int]]) -> None:
    server = vllm_pool.get()
    pgid = server.pid
    # 1. hang: stop the whole group; the watchdog sees /health unanswered for hang_timeout_s
    thread, run, started = _sweep_in_thread(server)
    assert started.wait(60), "no request completed before the fault"
    os.killpg(pgid, signal.SIGSTOP)
    t0 = time.monotonic()
    thread.join(60)
    hang_s = time.monotonic() - t0
    os.killpg(pgid, signal.SIGCONT)
    assert not thread.is_alive() and hang_s < 30, f"the hang was not detected in time ({hang_s:.0f} s)"
    assert run["status"] == "partial" and "stopped answering" in run["error"]
    point = run["points"][0]
    assert point["interrupted"] and point["completed"] >= 2 and point["failed"] >= 1
    # resumed, the server serves again
    assert requests.get(f"{server.base_url}/health", timeout=30).status_code == 200
    # 2. death: SIGKILL of the main PID only (the engine may outlive it: stop() must kill the group)
    thread, run, started = _sweep_in_thread(server)
    assert started.wait(60)
    os.kill(server.pid, signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive()
    assert run["status"] == "partial" and "exited" in run["error"]
    assert run["points"][0]["failed"] >= 1 and run["points"][0]["completed"] >= 2
    vllm_pool.release()
    assert group_pids(pgid) == []
    assert not leftovers(test_tag)


def _successes(port: int) -> float:
    """``vllm:request_success_total`` summed over finish reasons (0 while /metrics does not answer)."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:request_success_total{"))


@pytest.mark.timeout(360)
def test_cli_sigint_keeps_results_and_stops_server(vllm_python: str, vllm_pool: ServerPool, tmp_path: Path,
                                                   tag_env: dict[str, str], fresh_tag: str,
                                                   leftovers: Callable[[str], list[int]]) -> None:
    vllm_pool.release()
    out, err_path, db = tmp_path / "run.json", tmp_path / "stderr.txt", tmp_path / "r.sqlite"
    port = free_port()
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "probes", "run", "--synthetic", "tiny", "--concurrency", "1,2",
             "--input-tokens", "64", "--output-tokens", "64", "--requests", "2000", "--warmup", "0",
             "--vllm-python", vllm_python, "--out", str(out), "--db", str(db), "--startup-timeout", "120",
             "--port", str(port)],
            cwd=REPO, env=tag_env, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            deadline = time.monotonic() + 150
            while "vLLM ready" not in err_path.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, err_path.read_text()[-2000:]
                time.sleep(0.5)
            # some requests complete: the server's own counter says so (a fixed sleep is too short on a busy box)
            deadline = time.monotonic() + 120
            while _successes(port) < 1 and time.monotonic() < deadline:
                assert proc.poll() is None, err_path.read_text()[-2000:]
                time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            stdout, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    stderr = err_path.read_text()
    assert proc.returncode == 130, stderr[-2000:]
    assert "probe interrupted" in stderr
    run = json.loads(out.read_text())
    assert run["status"] == "interrupted"
    point = run["points"][0]
    assert point["interrupted"] and point["completed"] >= 1 and point["completed"] < 2000
    assert "status interrupted" in stdout
    from probes.results.store import ResultStore

    assert ResultStore(db).get_run(run["run_id"])["status"] == "interrupted"
    assert not leftovers(fresh_tag)


@pytest.mark.timeout(240)
def test_cli_sigkill_leaves_no_vllm(vllm_python: str, vllm_pool: ServerPool, tmp_path: Path,
                                    tag_env: dict[str, str], fresh_tag: str,
                                    leftovers: Callable[[str], list[int]]) -> None:
    """SIGKILL of a probing CLI (no handler, no atexit, no finally runs): its vLLM must not outlive it.

    The supervisor between the CLI and vLLM sees its parent gone and stops the group; the GPU lock's status
    file, left behind by the killed CLI, names the server (pgid, start time, token) for a later probe.
    """
    from tests.integration.conftest import tagged_processes

    vllm_pool.release()
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "probes", "run", "--synthetic", "tiny", "--concurrency", "1",
             "--input-tokens", "64", "--output-tokens", "64", "--requests", "2000", "--warmup", "0",
             "--vllm-python", vllm_python, "--no-store", "--startup-timeout", "120",
             "--log", str(tmp_path / "vllm.log")],
            cwd=REPO, env=tag_env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        try:
            deadline = time.monotonic() + 150
            while "vLLM ready" not in err_path.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, err_path.read_text()[-2000:]
                time.sleep(0.5)
            assert "vLLM ready" in err_path.read_text()
            status = json.loads((Path(tag_env["APP__PROBE__DATA_DIR"]) / "probe-gpu0.json").read_text())
            server = status["server"]
            assert server["pgid"] in group_pids(server["pgid"]) and server["start_ticks"] > 0
            assert len(tagged_processes(fresh_tag)) >= 3  # CLI, supervisor, vLLM (engine in-process on CPU)
            proc.kill()
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert not leftovers(fresh_tag, 60.0), "vLLM outlived the SIGKILLed CLI"
    assert group_pids(server["pgid"]) == []
    assert "the probe that started vLLM is gone" in (tmp_path / "vllm.log").read_text()


@pytest.mark.timeout(300)
def test_endpoint_mode_sends_nothing_the_server_refuses(vllm_server: Any, tmp_path: Path) -> None:
    """Issue 8: attaching to a healthy vLLM must never depend on its input validation. The vocabulary comes
    from /tokenize (no id is guessed), and vLLM's access log shows no 4xx/5xx for anything the probe sent."""
    import re

    from probes.job import ProbeRequest, execute
    from probes.settings import ProbeSettings

    log = Path(vllm_server.log_path)
    offset = log.stat().st_size
    config = SweepConfig(workload=WorkloadSpec(input_tokens=32, output_tokens=4, num_requests=2),
                         concurrencies=(1,), warmup_requests=1)
    run = execute(ProbeRequest(config=config, endpoint=vllm_server.base_url),
                  settings=ProbeSettings(data_dir=str(tmp_path / "data")))
    assert run["status"] == "complete", run.get("error")
    assert run["vocabulary"]["source"] == "tokenize" and run["vocabulary"]["pool_size"] >= 16
    assert run["points"][0]["completed"] == 3 and run["points"][0]["failed"] == 0  # 3 x c floor
    with open(log, "rb") as f:
        f.seek(offset)
        access = [line for line in f.read().decode("utf-8", "replace").splitlines()
                  if re.search(r'"(GET|POST) \S+ HTTP/1\.1" \d{3}', line)]
    assert any('"POST /tokenize HTTP/1.1" 200' in line for line in access)
    assert any('"POST /v1/completions HTTP/1.1" 200' in line for line in access)
    refused = [line for line in access if re.search(r'HTTP/1\.1" [45]\d\d', line)]
    assert refused == []
    assert requests.get(f"{vllm_server.base_url}/health", timeout=10).status_code == 200
