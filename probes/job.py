"""One probe, end to end, as a function (:func:`execute`) and as a background job (:class:`ProbeJob`).

:func:`execute` is what both the CLI and the Probe page run: write the synthetic model if asked, start vLLM
(or attach to an endpoint), sweep, and ALWAYS stop the server (``finally``), returning the run JSON with
its status (start failures are recorded as ``status="failed"`` with the message, not raised).

:class:`ProbeJob` runs :func:`execute` in a thread for the page: one probe per GPU at a time through an
exclusive ``flock`` on ``<data_dir>/probe-gpu<N>.lock`` (released by the OS if the process dies), with a
status file ``probe-gpu<N>.json`` beside it that any session can read (:func:`running_probe`): who runs,
the phase, progress, the ``run_id`` whose partial results are in the store after every point, and the
managed server's identity (``server``: process group, start time, token). The OS drops the lock of a
killed probe but not its status file: the next probe to take the lock reaps a server still listed there
(:func:`probes.target.reaper.reap`) or refuses with :class:`~probes.errors.LeftoverServerError`.
``stop()`` sets the stop event, waits, and tears the server down itself if the thread does not finish.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import os
import socket
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from probes.errors import ProbeBusyError, ProbeError
from probes.load.backends import get_backend, resolve_backend_name
from probes.load.fleet import FleetSpec, finish_fleet_run, fleet_run_block, split_endpoints
from probes.load.replay import TraceReplay
from probes.observe import gpu as gpu_mod
from probes.observe.vllmlog import parse_startup, startup_notes
from probes.plan.replay import read_trace, run_replay
from probes.plan.sweep import SweepConfig, SweepProgress, new_run, run_sweep
from probes.settings import ProbeSettings, load_settings, require_enabled
from probes.target.endpoint import attach, attach_fleet
from probes.target.reaper import reap
from probes.target.server import VllmServer, detect_install
from probes.target.synthetic import write_model_dir
from probes.target.vocabulary import TOKEN_IDS_BACKEND, Vocabulary, learn_vocabulary

AUTO = "auto"  # ProbeRequest.backend's default on the branch that adds the field: choose from the target

__all__ = ["ProbeRequest", "execute", "is_local_url", "GpuLock", "GpuLocks", "running_probe", "ProbeJob",
           "sweep_target_kwargs"]


@dataclass(frozen=True)
class ProbeRequest:
    """What to probe: exactly one of ``model`` (real weights), ``synthetic`` (catalog id or config.json) or
    ``endpoint`` (URL, or several replica URLs separated by commas or spaces: :mod:`probes.load.fleet`, spread
    by ``balance``); vLLM flags in ``serve_args``. ``api_key`` is sent to an endpoint, never stored.
    ``trace``: replay that trace as the load (:mod:`probes.plan.replay`) instead of sweeping the config."""

    config: SweepConfig
    model: str | None = None
    synthetic: str | None = None
    endpoint: str | None = None
    serve_args: tuple[str, ...] = ()
    vllm_python: str | None = None
    host: str | None = None
    port: int | None = None
    served_model_name: str | None = None
    startup_timeout_s: float = 900.0
    log_path: str | None = None
    gpu_indices: tuple[int, ...] = (0,)
    vocab_size: int | None = None  # token ids are drawn below this; None = from config.json or the server
    api_key: str | None = field(default=None, repr=False)
    backend: str = "auto"  # request kind (probes.load.backends): "auto" or one of BACKEND_NAMES
    trace: TraceReplay | None = None
    balance: str = "round-robin"  # how load is spread over several endpoint replicas (probes.load.fleet)
    visible_devices: str | None = None  # CUDA_VISIBLE_DEVICES for the managed server (the locked GPUs); None: inherit

    def __post_init__(self) -> None:
        given = [n for n in ("model", "synthetic", "endpoint") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError(f"exactly one of model, synthetic or endpoint is required, got {given or 'none'}")
        if self.startup_timeout_s <= 0:
            raise ValueError(f"startup_timeout_s must be > 0, got {self.startup_timeout_s}")
        if self.backend != "auto":
            get_backend(self.backend)  # ValueError naming the known kinds


def _log_default(_msg: str) -> None:
    return None


def is_local_url(url: str) -> bool:
    """True for a loopback URL (then this box's GPU is the endpoint's).

    >>> is_local_url("http://127.0.0.1:8000"), is_local_url("http://[::1]:80/v1"), is_local_url("https://api.x.com")
    (True, True, False)
    """
    host = urllib.parse.urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def execute(req: ProbeRequest, *, settings: ProbeSettings | None = None, stop: threading.Event | None = None,
            on_progress: Callable[[SweepProgress], None] | None = None,
            on_point: Callable[[dict[str, Any]], None] | None = None,
            on_server: Callable[[VllmServer], None] | None = None,
            on_started: Callable[[dict[str, Any]], None] | None = None,
            log: Callable[[str], None] = _log_default) -> dict[str, Any]:
    """Run one probe and return the run JSON. The managed server is stopped before this returns.

    ``on_server`` gets the server before it starts (to stop it from elsewhere); ``on_started`` gets its
    :meth:`~probes.target.server.VllmServer.identity` right after the spawn (for the GPU lock's status file).
    """
    settings = settings or load_settings()
    require_enabled(settings)
    stop = stop or threading.Event()
    trace = read_trace(req.trace) if req.trace else None  # a bad trace fails here, before any server starts
    if req.endpoint:
        urls = split_endpoints(req.endpoint)
        infos = attach_fleet(urls, api_key=req.api_key) if len(urls) > 1 else (attach(urls[0], api_key=req.api_key),)
        info = infos[0]
        fleet = FleetSpec(tuple(i.base_url for i in infos), req.balance) if len(infos) > 1 else None
        local = is_local_url(info.base_url)
        snapshot = gpu_mod.inspect() if local else None
        run = new_run(model=info.model, weights="unknown", config=req.config, vllm_version=info.vllm_version,
                      gpu=gpu_mod.gpu_summary(snapshot, req.gpu_indices) if snapshot else None,
                      server={"mode": "endpoint", "base_url": info.base_url, "argv": [], "serve_args": []},
                      notes=["attached to an endpoint: weights and flags unknown"])
        if fleet:
            run["fleet"] = fleet_run_block([(i.base_url, i.model, i.vllm_version) for i in infos], fleet.balance)
            run["notes"].append(f"fleet of {len(infos)} replicas, load spread {fleet.balance} by the client; "
                                "GPU and server metrics per replica (the GPU block is this box's only)")
        is_vllm = all(i.vllm_version is not None for i in infos)
        vocab = _vocabulary(req, run, base_url=info.base_url, model=info.model, model_path=None, is_vllm=is_vllm)
        if fleet:
            vocab = _fleet_vocabulary(req, run, vocab, infos[1:], is_vllm=is_vllm)
        target = sweep_target_kwargs(vocab, getattr(req, "backend", None), is_vllm=is_vllm)
        if isinstance(target, str):
            return _failed(run, target, on_point)
        run["vocabulary"]["backend"] = target["backend"].name
        result = _load_plan(req, trace, min((i.max_model_len for i in infos if i.max_model_len), default=None))(
            run, req.config, base_url=info.base_url, model=info.model, **target, api_key=req.api_key,
            stop=stop, on_progress=on_progress, on_point=on_point, gpu_indices=req.gpu_indices if local else [],
            **({"fleet": fleet} if fleet else {}))
        finish_fleet_run(result)
        return result
    python = req.vllm_python or settings.vllm_python
    if not python:
        raise ValueError("vllm_python (--vllm-python or env VLLM_PYTHON) is required: the interpreter of "
                         "vLLM's environment")
    install = detect_install(python)
    notes: list[str] = []
    serve_args = list(req.serve_args)
    with contextlib.ExitStack() as stack:
        if req.synthetic:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="probe-synthetic-"))
            model_path, label, weights = str(write_model_dir(req.synthetic, tmp)), req.synthetic, "synthetic"
            src = Path(req.synthetic)
            local_name = (src.parent if src.suffix == ".json" else src).resolve().name
            served = req.served_model_name or (local_name if src.exists() else req.synthetic)
            if "--load-format" not in serve_args:
                serve_args += ["--load-format", "dummy"]
            notes.append("synthetic weights (--load-format dummy): random values of the real shape; "
                         "throughput matches real weights for dense models with forced output length")
        else:
            model_path, label, weights = str(req.model), str(req.model), "real"
            served = req.served_model_name or str(req.model)
        if install.cpu_build and "--enforce-eager" not in serve_args:
            serve_args.append("--enforce-eager")
            notes.append("CPU build of vLLM: added --enforce-eager")
        env = {"CUDA_VISIBLE_DEVICES": req.visible_devices} if req.visible_devices is not None else None
        server = VllmServer(model=model_path, serve_args=serve_args, vllm_python=python,
                            host=req.host or settings.host, port=req.port, served_model_name=served,
                            log_path=req.log_path, startup_timeout_s=req.startup_timeout_s, env=env)
        server.install = install
        stack.callback(server.stop)
        if on_server:
            on_server(server)
        snapshot = gpu_mod.inspect()
        run = new_run(model=label, weights=weights, config=req.config, vllm_version=install.version,
                      gpu=gpu_mod.gpu_summary(snapshot, req.gpu_indices),
                      server={"mode": "managed", "base_url": server.base_url, "argv": server.argv,
                              "serve_args": serve_args, "cuda_visible_devices": req.visible_devices}, notes=notes)
        if not snapshot.available:
            run["notes"].append(snapshot.reason)
        log(f"starting vLLM {install.version or '?'} ({'CPU' if install.cpu_build else 'GPU'} build) on "
            f"{server.base_url}")
        try:
            server.start()
            if on_started:
                on_started(server.identity() or {})
            log(f"waiting for /health (log: {server.log_path})")
            server.wait_until_ready(stop=stop)
        except ProbeError as exc:
            server.stop()
            run["status"] = "interrupted" if stop.is_set() else "failed"
            run["error"] = str(exc)
            if on_point:
                on_point(run)
            return run
        run["cold_start_s"] = server.cold_start_s
        run["vllm_version"] = server.version() or install.version
        _record_gpu_memory(run, req.gpu_indices)
        _record_startup(run, server.log_path, _data_parallel_size(serve_args))
        log(f"vLLM ready after {server.cold_start_s:.1f} s")

        def describe_exit() -> str:
            rc = server.proc.poll() if server.proc else None
            return (f"the vLLM server exited (code {rc}) during the run\n--- last lines of the vLLM log ---\n"
                    f"{server.log_tail(20)}")

        vocab = _vocabulary(req, run, base_url=server.base_url, model=server.model_name,
                            model_path=model_path if Path(model_path).is_dir() else None, is_vllm=True)
        target = sweep_target_kwargs(vocab, getattr(req, "backend", None))
        if isinstance(target, str):
            server.stop()
            return _failed(run, target, on_point)
        run["vocabulary"]["backend"] = target["backend"].name
        max_len = _served_max_model_len(server.base_url) if trace else None
        return _load_plan(req, trace, max_len)(
            run, req.config, base_url=server.base_url, model=server.model_name, **target,
            alive=server.is_running, describe_exit=describe_exit, stop=stop, on_progress=on_progress,
            on_point=on_point, gpu_indices=req.gpu_indices)
    raise AssertionError("unreachable")  # pragma: no cover


def _load_plan(req: ProbeRequest, trace: tuple[str, list[Any]] | None,
               max_model_len: int | None) -> Callable[..., dict[str, Any]]:
    """The plan that drives the load: :func:`run_sweep`, or :func:`run_replay` of the trace read up front."""
    if trace is None or req.trace is None:
        return run_sweep
    replay, (fmt, requests) = req.trace, trace

    def replay_plan(run: dict[str, Any], config: SweepConfig, **kwargs: Any) -> dict[str, Any]:
        return run_replay(run, config, replay, requests, trace_format=fmt, max_model_len=max_model_len, **kwargs)

    return replay_plan


def _served_max_model_len(base_url: str) -> int | None:
    """The managed server's max model length from its ``/v1/models`` (None if it does not say)."""
    try:
        return attach(base_url).max_model_len
    except ProbeError:
        return None


def _vocabulary(req: ProbeRequest, run: dict[str, Any], *, base_url: str, model: str, model_path: str | None,
                is_vllm: bool) -> Vocabulary:
    """Learn which prompt ids are safe (never by sending ids: see :mod:`probes.target.vocabulary`) and record
    how in ``run["vocabulary"]`` and a note. A text backend chosen by the user needs no vocabulary."""
    backend = getattr(req, "backend", None)  # the field another branch adds: "auto" or a request kind
    if backend not in (None, "", AUTO, TOKEN_IDS_BACKEND):
        vocab = Vocabulary("none", None, None, note=f"text prompts ({backend}): no token ids sent")
    else:
        vocab = learn_vocabulary(base_url=base_url, model=model, is_vllm=is_vllm, vocab_size=req.vocab_size,
                                 model_path=model_path, api_key=req.api_key)
    run["vocabulary"] = vocab.to_dict()
    run.setdefault("notes", []).append(vocab.note)
    return vocab


def _fleet_vocabulary(req: ProbeRequest, run: dict[str, Any], first: Vocabulary, others: Any, *,
                      is_vllm: bool) -> Vocabulary:
    """The first replica's vocabulary when every replica agrees on it (same id bound and token pool); else no
    ids at all (``auto`` then sends text; an explicit token-id request fails), recorded in a note."""
    if first.source == "none":
        return first
    for info in others:
        other = learn_vocabulary(base_url=info.base_url, model=info.model, is_vllm=is_vllm,
                                 vocab_size=req.vocab_size, model_path=None, api_key=req.api_key)
        if (other.id_bound, other.token_pool) != (first.id_bound, first.token_pool):
            note = (f"replicas disagree on the vocabulary ({run['fleet']['replicas'][0]['url']}: ids below "
                    f"{first.id_bound}, {info.base_url}: below {other.id_bound}): no token ids sent, text prompts")
            vocab = Vocabulary("none", None, None, note=note)
            run["vocabulary"] = vocab.to_dict()
            run["notes"].append(note)
            return vocab
    run["notes"].append(f"all {len(others) + 1} replicas agree on the vocabulary")
    return first


def sweep_target_kwargs(vocab: Vocabulary, backend: str | None = None, *,
                        is_vllm: bool = True) -> dict[str, Any] | str:
    """What :func:`~probes.plan.sweep.run_sweep` receives about the prompts: ``backend`` (a
    :class:`~probes.load.backends.Backend`, chosen by :func:`~probes.load.backends.resolve_backend_name`),
    and for token ids exactly one of ``token_pool`` (draw ONLY these ids: what ``/tokenize`` returned) or
    ``vocab_size`` (every id below it exists); a message (str) when this target cannot be probed safely.

    >>> sorted(sweep_target_kwargs(Vocabulary("tokenize", None, (20, 30))))
    ['backend', 'token_pool']
    >>> sweep_target_kwargs(Vocabulary("none", None, None), "auto", is_vllm=False)["backend"].name
    'chat'
    >>> sweep_target_kwargs(Vocabulary("none", None, None), "vllm-token-ids")[:40]
    'token ids were asked for, but this serve'
    """
    chosen = resolve_backend_name(backend or AUTO, vocab_known=vocab.id_bound is not None, is_vllm=is_vllm)
    if chosen == TOKEN_IDS_BACKEND and vocab.id_bound is None:
        return ("token ids were asked for, but this server's vocabulary is unknown (no --vocab-size, no local "
                "config.json, no vLLM /tokenize): pass --vocab-size N, or use a text request kind")
    kwargs: dict[str, Any] = {"backend": get_backend(chosen, vllm_extras=is_vllm)}
    if chosen != TOKEN_IDS_BACKEND:
        return kwargs  # text prompts: no ids at all
    if vocab.token_pool is not None:
        kwargs["token_pool"] = vocab.token_pool  # exactly one of token_pool / vocab_size reaches the workload
    else:
        kwargs["vocab_size"] = vocab.id_bound
    return kwargs


def _failed(run: dict[str, Any], message: str, on_point: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    run["status"], run["error"] = "failed", message
    if on_point:
        on_point(run)
    return run


def _record_gpu_memory(run: dict[str, Any], indices: tuple[int, ...]) -> None:
    """Add the GPU memory in use once the server is up (weights + KV cache + activations) to ``run["gpu"]``."""
    if not run.get("gpu"):
        return
    snap = gpu_mod.inspect()
    used = [g.memory_used_mib for g in snap.gpus if g.index in indices and g.memory_used_mib is not None]
    if used:
        run["gpu"]["memory_used_mib_after_start"] = sum(used)


def _data_parallel_size(serve_args: list[str] | tuple[str, ...]) -> int:
    """``--data-parallel-size`` (or ``-dp``, vLLM's short form) among the serve args; 1 when absent.

    >>> _data_parallel_size(["--max-model-len", "512", "--data-parallel-size", "2"]), _data_parallel_size(["-dp=4"])
    (2, 4)
    """
    for i, arg in enumerate(serve_args):
        name, eq, value = arg.partition("=")
        if name in ("--data-parallel-size", "-dp"):
            text = value if eq else (serve_args[i + 1] if i + 1 < len(serve_args) else "")
            return int(text) if text.isdigit() and int(text) > 0 else 1
    return 1


def _record_startup(run: dict[str, Any], log_path: str | None, data_parallel_size: int = 1) -> None:
    """What vLLM logged at startup (memory split, KV capacity, compile time) -> ``run["startup"]`` + notes.

    With ``--data-parallel-size D`` every DP rank logs its own KV cache: the parsed figures are one rank's, and a
    note says what the D ranks hold together (``startup.data_parallel_size`` records D)."""
    if not log_path:
        return
    try:
        text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    run["startup"] = parse_startup(text)
    run.setdefault("notes", []).extend(startup_notes(run["startup"]))
    tokens = run["startup"].get("kv_cache_tokens")
    if data_parallel_size > 1:
        run["startup"]["data_parallel_size"] = data_parallel_size
        if tokens is not None:
            run["notes"].append(f"data parallel {data_parallel_size}: the KV cache above is one DP rank's; the "
                                f"{data_parallel_size} ranks hold {data_parallel_size * tokens:,} tokens together")


class GpuLock:
    """An exclusive, non-blocking ``flock`` per GPU index under ``data_dir``; the OS drops it if we die."""

    reap_grace_s = 30.0  # a leftover server gets this long after SIGTERM before SIGKILL
    reap_kill_wait_s = 10.0  # and this long to be gone after SIGKILL, else LeftoverServerError

    def __init__(self, data_dir: str | os.PathLike[str], gpu_index: int = 0) -> None:
        self.dir = Path(data_dir)
        self.gpu_index = gpu_index
        self.lock_path = self.dir / f"probe-gpu{gpu_index}.lock"
        self.status_path = self.dir / f"probe-gpu{gpu_index}.json"
        self._fh: IO[str] | None = None
        self.reaped: list[int] = []

    def acquire(self, status: dict[str, Any], *, attempts: int = 5, retry_s: float = 0.05) -> None:
        """Take the lock or raise ProbeBusyError naming who holds it.

        A few short retries: :func:`running_probe` (a page polling) holds the lock for microseconds, which
        must not read as "another probe is running". Once taken, a server that the previous holder's status
        file still lists (that probe was killed) is reaped (pids in :attr:`reaped`); if it cannot be, the
        lock is released again and LeftoverServerError says what to stop.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "a+")  # noqa: SIM115 - held open while locked
        for attempt in range(attempts):
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt + 1 < attempts:
                    time.sleep(retry_s)
        else:
            fh.close()
            other = _read_json(self.status_path) or {}
            raise ProbeBusyError(
                f"another probe is running on GPU {self.gpu_index} (pid {other.get('pid', '?')} on "
                f"{other.get('host', '?')}, started {other.get('started_at', '?')}, model "
                f"{other.get('model', '?')}): wait for it or stop it") from None
        previous = _read_json(self.status_path) or {}
        if isinstance(previous.get("server"), dict):
            try:
                self.reaped = reap(previous["server"], grace_s=self.reap_grace_s,
                                   kill_wait_s=self.reap_kill_wait_s)
            except BaseException:
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()
                raise
        self._fh = fh
        self.write_status(status)

    def write_status(self, status: dict[str, Any]) -> None:
        tmp = self.status_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(status, default=str), encoding="utf-8")
        os.replace(tmp, self.status_path)

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self.status_path.unlink()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> GpuLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class GpuLocks:
    """One :class:`GpuLock` per GPU a probe uses (a TP=2 probe holds GPUs 0 and 1), taken in index order,
    all or none; same interface as :class:`GpuLock`."""

    def __init__(self, data_dir: str | os.PathLike[str], indices: tuple[int, ...] | list[int] = (0,)) -> None:
        self.locks = [GpuLock(data_dir, i) for i in sorted(set(indices) or {0})]

    @property
    def indices(self) -> list[int]:
        return [lock.gpu_index for lock in self.locks]

    def acquire(self, status: dict[str, Any]) -> None:
        """Take every lock in index order (two probes wanting overlapping groups cannot deadlock) or none: a
        busy GPU releases those already taken and raises ProbeBusyError naming the holder and the group."""
        taken: list[GpuLock] = []
        try:
            for lock in self.locks:
                lock.acquire(status)
                taken.append(lock)
        except ProbeBusyError as exc:
            for lock in taken:
                lock.release()
            if len(self.locks) == 1:
                raise
            group = ",".join(map(str, self.indices))
            raise ProbeBusyError(f"{exc} (this probe needs GPUs {group}, all or none: none taken)") from None
        except BaseException:
            for lock in taken:
                lock.release()
            raise

    def write_status(self, status: dict[str, Any]) -> None:
        for lock in self.locks:
            lock.write_status(status)

    @property
    def reaped(self) -> list[int]:
        """Pids of leftover servers reaped while acquiring (see :meth:`GpuLock.acquire`)."""
        return sorted({pid for lock in self.locks for pid in lock.reaped})

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()

    def __enter__(self) -> GpuLocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running_probe(data_dir: str | os.PathLike[str], gpu_index: int = 0) -> dict[str, Any] | None:
    """The status of the probe holding GPU ``gpu_index`` (from any process), or None if none runs."""
    lock_path = Path(data_dir) / f"probe-gpu{gpu_index}.lock"
    if not lock_path.exists():
        return None
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_json(Path(data_dir) / f"probe-gpu{gpu_index}.json") or {"pid": None}
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


class ProbeJob:
    """A probe running in a background thread (for the Probe page). Start with :meth:`start`."""

    def __init__(self, req: ProbeRequest, *, settings: ProbeSettings | None = None, store: Any = None) -> None:
        self.req = req
        self.settings = settings or load_settings()
        self.store = store
        self.stop_event = threading.Event()
        self.lock = GpuLocks(self.settings.data_dir, req.gpu_indices or (0,))
        self.progress: SweepProgress | None = None
        self.run: dict[str, Any] | None = None
        self.run_id: int | None = None
        self.error: str | None = None
        self.phase = "created"
        self.log: list[str] = []
        self._server: VllmServer | None = None
        self._server_identity: dict[str, Any] | None = None
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()
        self.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    # -- state shared with other sessions --------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """JSON-ready state: phase, progress, run_id (partial results are in the store), error."""
        with self._mutex:
            return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": self.started_at,
                    "model": self.req.synthetic or self.req.model or self.req.endpoint, "phase": self.phase,
                    "run_id": self.run_id, "error": self.error, "server": self._server_identity,
                    "progress": asdict(self.progress) if self.progress else None}

    def _publish(self) -> None:
        with contextlib.suppress(OSError):
            self.lock.write_status(self.status())

    def _on_progress(self, p: SweepProgress) -> None:
        with self._mutex:
            self.progress = p
            self.phase = "running"
        if p.phase != "load" or p.done == p.total:
            self._publish()

    def _on_point(self, run: dict[str, Any]) -> None:
        with self._mutex:
            self.run = json.loads(json.dumps(run, default=str))
        if self.store is not None:
            with contextlib.suppress(Exception):
                run["run_id"] = self.run_id = self.store.save_run(run)
        self._publish()

    def _log(self, msg: str) -> None:
        with self._mutex:
            self.log.append(msg)
            self.phase = "starting" if "starting" in msg or "waiting" in msg else self.phase

    def _main(self) -> None:
        try:
            run = execute(self.req, settings=self.settings, stop=self.stop_event, on_progress=self._on_progress,
                          on_point=self._on_point, on_server=self._set_server, on_started=self._on_started,
                          log=self._log)
            self._on_point(run)
            with self._mutex:
                self.error = run.get("error")
                self.phase = run["status"]
        except (ProbeError, ValueError, OSError) as exc:
            with self._mutex:
                self.error, self.phase = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - a bug must still end the job visibly, never leave it "running"
            with self._mutex:
                self.error, self.phase = f"internal error: {type(exc).__name__}: {exc}", "failed"
        finally:
            if self._server is not None:
                self._server.stop()
            self.lock.release()

    def _set_server(self, server: VllmServer) -> None:
        self._server = server

    def _on_started(self, identity: dict[str, Any]) -> None:
        with self._mutex:
            self._server_identity = identity
        self._publish()

    # -- control ----------------------------------------------------------------------------------------
    def start(self) -> ProbeJob:
        """Take the GPU lock (ProbeBusyError if another probe holds it) and start the thread."""
        require_enabled(self.settings)
        self.lock.acquire(self.status())
        self.phase = "starting"
        self._thread = threading.Thread(target=self._main, name="probe-job", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the job; True when it has finished."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not self.running

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop the probe; the server is torn down even if the thread does not finish in time."""
        self.stop_event.set()
        if not self.join(timeout_s) and self._server is not None:
            self._server.stop()
