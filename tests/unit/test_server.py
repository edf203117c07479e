"""probes.target.server against a tiny ``http.server`` stand-in for vLLM's readiness behaviour (no vLLM here).

The stand-in is an executable script used as ``vllm_python``: it ignores ``-m vllm...``, reads ``--port``
and acts out a scenario from env ``FAKE_MODE``: ``ready`` (healthy after ``FAKE_DELAY`` s), ``crash``
(prints an argparse error, exits 2), ``never`` (``/health`` 503 forever), ``stubborn`` (ignores SIGTERM and
leaves a grandchild that ignores it too).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import requests

from probes.errors import (
    EndpointError,
    ProbeInterrupted,
    ServerDiedError,
    ServerStartError,
    ServerTimeoutError,
)
from probes.target.endpoint import attach
from probes.target.server import (
    CPU_ENV_DEFAULTS,
    VllmInstall,
    VllmServer,
    detect_install,
    diagnose_log,
    group_pids,
    process_start_ticks,
)

STAND_IN = textwrap.dedent("""\
    #!{python}
    import json, os, signal, subprocess, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1])
    mode = os.environ.get("FAKE_MODE", "ready")
    print("stand-in starting", args, flush=True)
    if mode == "crash":
        print("api_server.py: error: unrecognized arguments: --bogus", flush=True)
        sys.exit(2)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen([sys.executable, "-c",
                          "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    ready_at = time.monotonic() + float(os.environ.get("FAKE_DELAY", "0"))
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass
        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        def do_GET(self):
            if os.environ.get("FAKE_KEY") and self.headers.get("Authorization") != "Bearer " + os.environ["FAKE_KEY"]:
                return self._send(401, {{"error": "unauthorized"}})
            ok = mode != "never" and time.monotonic() >= ready_at
            if self.path == "/health":
                return self._send(200 if ok else 503, {{}})
            if self.path == "/version":
                return self._send(200, {{"version": "0.0.0-standin"}})
            if self.path == "/v1/models":
                return self._send(200, {{"data": [{{"id": "standin-model", "max_model_len": 512}}]}})
            self._send(404, {{}})
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if os.environ.get("FAKE_REQUEST_LOG"):
                with open(os.environ["FAKE_REQUEST_LOG"], "a") as log:
                    log.write(json.dumps({{"path": self.path, "body": body}}) + "\\n")
            tokenize = os.environ.get("FAKE_TOKENIZE")  # ids /tokenize answers, comma-separated; unset: 404
            if self.path == "/tokenize" and tokenize is not None:
                ids = json.loads("[" + tokenize + "]")
                return self._send(200, {{"count": len(ids), "max_model_len": 512, "tokens": ids}})
            vocab = int(os.environ.get("FAKE_VOCAB", "0"))
            if self.path != "/v1/completions" or not vocab:
                return self._send(404, {{}})
            if max(body["prompt"]) >= vocab:
                return self._send(400, {{"error": {{"message": "Token id is out of vocabulary"}}}})
            self._send(200, {{"choices": [{{"text": "x"}}]}})
    ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
""")

INSTALL = VllmInstall(python="stand-in", version="0.0.0", cpu_build=False)


@pytest.fixture
def stand_in(tmp_path: Path) -> str:
    path = tmp_path / "fake-python"
    path.write_text(STAND_IN.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def _server(stand_in: str, tmp_path: Path, mode: str, **kw: object) -> VllmServer:
    s = VllmServer(model="m", vllm_python=stand_in, env={"FAKE_MODE": mode, "FAKE_DELAY": "0.6"},
                   log_path=str(tmp_path / "server.log"), **kw)  # type: ignore[arg-type]
    s.install = INSTALL
    return s


def test_argv_is_a_list_with_flags_after_the_model() -> None:
    s = VllmServer(model="/models/x", vllm_python="/v/bin/python", port=9000, served_model_name="x",
                   serve_args=("--max-model-len", "4096"))
    assert s.argv == ["/v/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", "/models/x",
                      "--served-model-name", "x", "--max-model-len", "4096", "--host", "127.0.0.1", "--port", "9000"]
    # a user flag cannot rebind the server: our --host/--port come last and argparse keeps the last value
    sneaky = VllmServer(model="m", port=9001, serve_args=("--ho", "0.0.0.0", "--port", "80"))
    assert sneaky.argv[-4:] == ["--host", "127.0.0.1", "--port", "9001"]
    assert s.model_name == "x"
    assert VllmServer(model="m", port=1, host="::1").base_url == "http://[::1]:1"


def test_cpu_env_defaults_only_for_cpu_builds_and_never_override_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "7")
    s = VllmServer(model="m", port=1, env={"EXTRA": "1"})
    s.install = VllmInstall("p", "0.32.0", cpu_build=True)
    env = s.environment()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "7"  # the caller's value wins
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == CPU_ENV_DEFAULTS["VLLM_ENABLE_V1_MULTIPROCESSING"]
    assert env["EXTRA"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"
    s.install = VllmInstall("p", "0.26.0", cpu_build=False)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in s.environment()


def test_constructor_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="port must be in 1..65535"):
        VllmServer(model="m", port=70000)
    with pytest.raises(ValueError, match="startup_timeout_s must be > 0"):
        VllmServer(model="m", startup_timeout_s=0)


def test_ready_server_reports_cold_start_and_stops_its_group(stand_in: str, tmp_path: Path) -> None:
    s = _server(stand_in, tmp_path, "ready")
    with s:
        assert s.cold_start_s is not None and s.cold_start_s >= 0.5
        assert requests.get(f"{s.base_url}/health", timeout=5).status_code == 200
        assert s.version() == "0.0.0-standin"
        pgid = s.pid
        assert pgid in group_pids(pgid)
    assert not s.is_running() and group_pids(pgid) == []
    assert "stand-in starting" in s.log_tail()


def test_crash_before_ready_raises_start_error_with_hint_and_log(stand_in: str, tmp_path: Path) -> None:
    s = _server(stand_in, tmp_path, "crash")
    with pytest.raises(ServerStartError) as info:
        s.__enter__()
    assert info.value.returncode == 2
    assert "vLLM rejected a command-line flag" in str(info.value)
    assert "unrecognized arguments: --bogus" in info.value.log_tail
    assert not s.is_running()


def test_deadline_raises_timeout_and_the_group_is_stopped(stand_in: str, tmp_path: Path) -> None:
    s = _server(stand_in, tmp_path, "never", startup_timeout_s=1.5)
    t0 = time.monotonic()
    with pytest.raises(ServerTimeoutError, match="not ready"):
        s.__enter__()
    assert time.monotonic() - t0 < 10
    assert not s.is_running() and group_pids(s.pid) == []


def test_stop_event_interrupts_the_wait(stand_in: str, tmp_path: Path) -> None:
    s = _server(stand_in, tmp_path, "never")
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    s.start()
    try:
        with pytest.raises(ProbeInterrupted):
            s.wait_until_ready(stop=stop, poll_s=0.1)
    finally:
        s.stop()
    assert group_pids(s.pid) == []


def test_stop_escalates_to_sigkill_for_a_stubborn_group(stand_in: str, tmp_path: Path) -> None:
    s = _server(stand_in, tmp_path, "stubborn", stop_timeout_s=1.0)
    with s:
        deadline = time.monotonic() + 10
        while len(group_pids(s.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(group_pids(s.pid)) >= 2  # main + grandchild, both ignoring SIGTERM
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 15
    assert s.proc is not None and s.proc.returncode == -signal.SIGKILL
    assert group_pids(s.pid) == []


def test_check_alive_after_the_process_dies(stand_in: str, tmp_path: Path) -> None:
    s = _server(stand_in, tmp_path, "ready")
    with s:
        os.kill(s.pid, signal.SIGKILL)  # type: ignore[arg-type]
        s.proc.wait(5)  # type: ignore[union-attr]
        with pytest.raises(ServerDiedError, match="exited with code -9"):
            s.check_alive()


def test_port_in_use_is_refused_before_spawning(stand_in: str, tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        s = _server(stand_in, tmp_path, "ready", port=held.getsockname()[1])
        with pytest.raises(ServerStartError, match="already in use"):
            s.start()
        assert s.proc is None


def test_detect_install_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError, match="does not exist"):
        detect_install(str(tmp_path / "nope" / "python"))
    with pytest.raises(ServerStartError, match="has no vLLM installed"):
        detect_install(sys.executable)  # the app's venv has no vLLM on purpose


def test_diagnose_log_prefers_the_last_error() -> None:
    log = "non-default args: {'max_model_len': 512}\nwarning: No such file or directory: x\n" \
          "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 448.00 MiB"
    assert diagnose_log(log).startswith("out of memory")  # type: ignore[union-attr]
    assert diagnose_log("User-specified max_model_len (100000) is greater than the derived max_model_len") \
        .startswith("--max-model-len")  # type: ignore[union-attr]


def test_attach_reads_model_and_version(stand_in: str, tmp_path: Path) -> None:
    s = _server(stand_in, tmp_path, "ready")
    with s:
        info = attach(s.base_url + "/v1/")
        assert (info.model, info.vllm_version, info.max_model_len) == ("standin-model", "0.0.0-standin", 512)


def test_attach_errors(stand_in: str, tmp_path: Path) -> None:
    with pytest.raises(EndpointError, match="must start with http"):
        attach("localhost:8000")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(EndpointError, match="unreachable"):
        attach(f"http://127.0.0.1:{port}", timeout_s=2)
    s = VllmServer(model="m", vllm_python=stand_in, env={"FAKE_KEY": "sekret"}, log_path=str(tmp_path / "l"))
    s.install = INSTALL
    s.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(s.base_url, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        with pytest.raises(EndpointError, match="API key"):
            attach(s.base_url, api_key="wrong")
        assert attach(s.base_url, api_key="sekret").model == "standin-model"
    finally:
        s.stop()


def test_second_interrupt_during_the_grace_wait_still_kills_the_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt raised inside stop()'s grace wait (a second Ctrl-C) must not skip SIGKILL."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                             "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
                            start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"  # SIGTERM is ignored now
    s = VllmServer(model="m", port=1, stop_timeout_s=30.0)
    s.proc, s._pgid = proc, proc.pid
    real_wait = proc.wait
    calls = {"n": 0}

    def wait(timeout: float | None = None) -> int:
        calls["n"] += 1
        if calls["n"] == 1:  # the grace wait: the user presses Ctrl-C again
            raise KeyboardInterrupt
        return real_wait(timeout)

    monkeypatch.setattr(proc, "wait", wait)
    with pytest.raises(KeyboardInterrupt):
        s.stop()
    proc.stdout.close()
    assert proc.poll() == -signal.SIGKILL
    assert s.stop() == -signal.SIGKILL  # idempotent afterwards


PARENT = textwrap.dedent("""\
    import sys
    from probes.target.server import VllmServer, VllmInstall
    s = VllmServer(model="m", vllm_python=sys.argv[1], log_path=sys.argv[2], stop_timeout_s=1.0,
                   env={{"FAKE_MODE": sys.argv[3]}})
    s.install = VllmInstall("stand-in", "0.0.0", cpu_build=False)
    s.__enter__()
    print(s.pid, flush=True)
    import time
    time.sleep(600)
""")


def _wait_group_gone(pgid: int, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := group_pids(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("mode", ["ready", "stubborn"])
def test_sigkill_of_the_probe_process_leaves_no_server(stand_in: str, tmp_path: Path, mode: str) -> None:
    """The probe (here a bare Python process) dies by SIGKILL: no atexit, no finally. The supervisor notices,
    stops the group (SIGTERM, then SIGKILL after the grace for a server that ignores SIGTERM)."""
    import subprocess

    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(), stand_in, str(tmp_path / "s.log"), mode],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert parent.stdout is not None
        pgid = int(parent.stdout.readline())
        assert len(group_pids(pgid)) >= (3 if mode == "stubborn" else 2)  # supervisor + server (+ grandchild)
        parent.kill()
        parent.wait(10)
        assert _wait_group_gone(pgid, 30.0) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        parent.stdout.close()  # type: ignore[union-attr]
    assert "the probe that started vLLM is gone" in (tmp_path / "s.log").read_text()


def test_sigkill_of_the_supervisor_takes_vllm_main_with_it(stand_in: str, tmp_path: Path) -> None:
    s = _server(stand_in, tmp_path, "ready")
    with s:
        pgid = s.pid
        server_pids = [p for p in group_pids(pgid) if p != pgid]
        assert server_pids
        os.kill(pgid, signal.SIGKILL)  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while any(p in group_pids(pgid) for p in server_pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(p in group_pids(pgid) for p in server_pids)  # PR_SET_PDEATHSIG in the child
    assert group_pids(pgid) == []


def test_identity_names_the_group_its_start_time_and_token(stand_in: str, tmp_path: Path) -> None:
    s = _server(stand_in, tmp_path, "ready")
    assert s.identity() is None
    with s:
        ident = s.identity()
        assert ident is not None and ident["pgid"] == ident["pid"] == s.pid
        assert ident["start_ticks"] == process_start_ticks(s.pid) and ident["start_ticks"]
        environ = Path(f"/proc/{s.pid}/environ").read_bytes().split(b"\0")
        assert f"SELFHOST_PROBE_SERVER={ident['token']}".encode() in environ
    assert process_start_ticks(s.pid) is None  # type: ignore[arg-type]
