"""One run spread over several worker processes, for when one event loop cannot absorb the load.

Each worker (``python -m probes.load.workers``) is a fresh interpreter with its own event loop and
``aiohttp`` session. The parent deals requests round-robin (request ``i`` to worker ``i mod N``), splits the
concurrency cap (``c // N``, the first ``c mod N`` workers one more) and keeps the arrival offsets.

Timestamps merge because ``time.perf_counter()`` is ``CLOCK_MONOTONIC`` on Linux (``mach_absolute_time`` on
macOS, QPC on Windows): one clock for every process of the machine. The parent picks the run's start ``T``
(a ``perf_counter`` reading a little in the future) and every worker measures ``start_s``, ``scheduled_s`` and
``end_s`` from that same ``T``; ``duration_s`` is the latest worker end minus ``T``.

Protocol (JSON lines): parent -> worker stdin: the job, then ``go T`` after every worker's warm-up (so that
``on_warmup_done`` runs once, between warm-up and the measured requests), and ``stop`` on a user stop.
Worker -> stdout: ``{"t": "warm", ...}``, one ``{"t": "result", ...}`` per finished request (the parent calls
``on_result`` with it), then ``{"t": "done", ...}`` with the interrupted ones, duration and loop CPU time.
The API key travels in the job on the pipe, never in argv or the environment (``ps`` shows both).

No worker outlives the parent: each worker asks the kernel for ``SIGKILL`` when its parent goes away
(``PR_SET_PDEATHSIG``, Linux; it fires when the *thread* that started it ends, and the parent always waits
for its workers in that thread), and treats end-of-file on stdin as a stop everywhere. The parent kills and
reaps every worker on its way out, also when cancelled. A worker that dies leaves its unanswered requests
failed with its exit status and last stderr line (errors are data).

Limits: a worker with free slots cannot take another worker's queued requests (with a shared semaphore it
could), so a closed loop over unequal requests is slightly less tight than one loop; requests must be
:class:`~probes.load.workload.RequestInput` of JSON values, and the :class:`~probes.load.backends.Backend`
must pickle (module-level functions or ``functools.partial`` of them; it travels pickled on the pipe from the
parent that built it, the only source the worker unpickles).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from probes.load.backends import Backend
from probes.load.client import (
    LoadResult,
    RequestResult,
    _run_batch,
    make_session,
    request_headers,
    send_request,
)
from probes.load.limits import CpuMeter, CpuUsage, NofileLimit, raise_nofile_limit
from probes.load.workload import RequestInput

__all__ = ["run_in_workers", "split_cap", "worker_main"]

_START_LEAD_S = 0.1
_STOP_GRACE_S = 10.0
_LINE_LIMIT_BYTES = 1 << 28
_PR_SET_PDEATHSIG = 1


def split_cap(concurrency: int | None, workers: int) -> list[int | None]:
    """Per-worker concurrency caps summing to ``concurrency`` (None stays None).

    >>> split_cap(10, 4), split_cap(None, 2)
    ([3, 3, 2, 2], [None, None])
    """
    if concurrency is None:
        return [None] * workers
    return [concurrency // workers + (1 if w < concurrency % workers else 0) for w in range(workers)]


def _request_to_json(r: RequestInput) -> dict[str, Any]:
    return dataclasses.asdict(r)


def _request_from_json(d: dict[str, Any]) -> RequestInput:
    return RequestInput(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _result_from_json(d: dict[str, Any]) -> RequestResult:
    return RequestResult(**d)


# ---------------------------------------------------------------- parent side


async def run_in_workers(
    n_workers: int,
    *,
    base_url: str,
    model: str,
    requests: Sequence[RequestInput],
    offsets_s: Sequence[float],
    concurrency: int | None,
    warmup: Sequence[RequestInput],
    request_timeout_s: float,
    on_result: Callable[[RequestResult], None] | None,
    stop: threading.Event | None,
    api_key: str | None,
    on_warmup_done: Callable[[], None] | None,
    backend: Backend,
    nofile: NofileLimit | None,
) -> LoadResult:
    """Run one load over ``n_workers`` processes; the same :class:`LoadResult` as one loop, in request order."""
    try:  # module-level functions and partials of them pickle; a lambda does not
        backend_blob = base64.b64encode(pickle.dumps(backend)).decode()
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise ValueError(f"workers > 1 need a picklable backend ({backend.name!r}: {exc})") from None
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    caps = split_cap(concurrency, n_workers)
    shares = [list(range(w, len(requests), n_workers)) for w in range(n_workers)]
    procs: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(n_workers):
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "probes.load.workers", str(os.getpid()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=env, limit=_LINE_LIMIT_BYTES,
            ))
        for w, proc in enumerate(procs):
            job = {
                "base_url": base_url, "model": model, "backend": backend_blob, "api_key": api_key,
                "request_timeout_s": request_timeout_s, "concurrency": caps[w],
                "requests": [_request_to_json(requests[i]) for i in shares[w]],
                "offsets_s": [offsets_s[i] for i in shares[w]],
                "warmup": [_request_to_json(r) for r in warmup[w::n_workers]],
            }
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(job).encode() + b"\n")
            await proc.stdin.drain()
        return await _drive(procs, shares, requests, on_result, stop, on_warmup_done, nofile)
    finally:
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()


async def _send_line(proc: asyncio.subprocess.Process, line: str) -> None:
    if proc.stdin is None or proc.stdin.is_closing():
        return
    with contextlib.suppress(ConnectionError, BrokenPipeError):
        proc.stdin.write(line.encode() + b"\n")
        await proc.stdin.drain()


async def _drive(
    procs: list[asyncio.subprocess.Process],
    shares: list[list[int]],
    requests: Sequence[RequestInput],
    on_result: Callable[[RequestResult], None] | None,
    stop: threading.Event | None,
    on_warmup_done: Callable[[], None] | None,
    nofile: NofileLimit | None,
) -> LoadResult:
    n = len(procs)
    warm: list[list[RequestResult]] = [[] for _ in range(n)]
    got: dict[int, RequestResult] = {}
    done: list[dict[str, Any] | None] = [None] * n
    stderr_tail = [""] * n
    warmed = [asyncio.get_running_loop().create_future() for _ in range(n)]
    start_box: list[float] = []
    stopped = [False]

    async def read_stderr(w: int) -> None:
        stream = procs[w].stderr
        assert stream is not None
        while line := await stream.readline():
            if text := line.decode(errors="replace").strip():
                stderr_tail[w] = text[-300:]

    async def read(w: int) -> None:
        stream = procs[w].stdout
        assert stream is not None
        while line := await stream.readline():
            msg = json.loads(line)
            if msg["t"] == "warm":
                warm[w] = [_result_from_json(d) for d in msg["results"]]
                if not warmed[w].done():
                    warmed[w].set_result(bool(msg["interrupted"]))
            elif msg["t"] == "result":
                result = _result_from_json(msg["result"])
                got[result.index] = result
                if on_result is not None:
                    on_result(result)
            elif msg["t"] == "done":
                for d in msg["interrupted_results"]:
                    got.setdefault(d["index"], _result_from_json(d))
                done[w] = msg
        if not warmed[w].done():
            warmed[w].set_result(False)  # died before the warm-up ended: its requests fail below

    async def watch_stop() -> None:
        assert stop is not None
        while not stop.is_set():
            await asyncio.sleep(0.05)
        stopped[0] = True
        for proc in procs:
            await _send_line(proc, "stop")

    readers = [asyncio.ensure_future(read(w)) for w in range(n)]
    readers += [asyncio.ensure_future(read_stderr(w)) for w in range(n)]
    watcher = asyncio.ensure_future(watch_stop()) if stop is not None else None
    try:
        warm_interrupted = any(await asyncio.gather(*warmed))
        if not (warm_interrupted or stopped[0]):
            if on_warmup_done is not None:
                on_warmup_done()
            start_box.append(time.perf_counter() + _START_LEAD_S)
            for proc in procs:
                await _send_line(proc, f"go {start_box[0]!r}")
        else:
            for proc in procs:
                await _send_line(proc, "stop")
        waiting = asyncio.gather(*(proc.wait() for proc in procs))
        if stopped[0]:
            try:
                await asyncio.wait_for(waiting, _STOP_GRACE_S)
            except TimeoutError:  # a worker ignored "stop": what it reported so far is kept
                for proc in procs:
                    if proc.returncode is None:
                        proc.kill()
        else:
            await waiting
        await asyncio.gather(*(proc.wait() for proc in procs))
        await asyncio.gather(*readers)
    finally:
        for task in [*readers, *([watcher] if watcher else [])]:
            task.cancel()
        await asyncio.gather(*readers, *([watcher] if watcher else []), return_exceptions=True)

    warm_all = [r for w in range(n) for r in warm[w]]
    interrupted = stopped[0] or any(bool(d and d["interrupted"]) for d in done)
    if not start_box:
        return LoadResult(results=[], duration_s=0.0, warmup_results=warm_all, interrupted=True, nofile=nofile,
                          workers=n)
    for w in range(n):
        if done[w] is None and not interrupted:  # a worker died: its unanswered requests failed
            why = f"load worker {w} exited with status {procs[w].returncode}: {stderr_tail[w] or 'no message'}"
            for i in shares[w]:
                got.setdefault(requests[i].index, RequestResult(index=requests[i].index, error=why))
    results = [got[r.index] for r in requests if r.index in got]
    duration = max((d["duration_s"] for d in done if d), default=time.perf_counter() - start_box[0])
    cpu = tuple(CpuUsage(d["cpu_s"], d["wall_s"]) for d in done if d)
    return LoadResult(results=results, duration_s=duration, warmup_results=warm_all, interrupted=interrupted,
                      cpu=cpu, nofile=nofile, workers=n)


# ---------------------------------------------------------------- worker side


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux for SIGKILL when the parent goes; exit now if it is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(3)


def _emit(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


async def _worker(reader: asyncio.StreamReader) -> None:
    job = json.loads(await reader.readline())
    raise_nofile_limit()
    stop = threading.Event()
    go: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def listen() -> None:
        while line := await reader.readline():
            word, _, arg = line.decode().strip().partition(" ")
            if word == "go" and not go.done():
                go.set_result(float(arg))
            elif word == "stop":
                break
        stop.set()  # "stop", or end of file: the parent is gone
        if not go.done():
            go.set_result(float("nan"))

    listener = asyncio.ensure_future(listen())
    backend: Backend = pickle.loads(base64.b64decode(job["backend"]))  # from our own parent, on its pipe
    url = job["base_url"].rstrip("/") + backend.path
    headers = request_headers(job["api_key"])
    requests = [_request_from_json(d) for d in job["requests"]]
    warmup = [_request_from_json(d) for d in job["warmup"]]
    session = make_session(job["base_url"], job["concurrency"])
    try:

        def send(request: RequestInput, run_start_s: float) -> Any:
            return send_request(session, url, job["model"], request, headers=headers, run_start_s=run_start_s,
                                request_timeout_s=job["request_timeout_s"], backend=backend)

        warm: list[RequestResult] = []
        interrupted = False
        if warmup:
            warm, _, interrupted = await _run_batch(warmup, [0.0] * len(warmup), send, job["concurrency"],
                                                    stop, None)
        _emit({"t": "warm", "interrupted": interrupted, "results": [dataclasses.asdict(r) for r in warm]})
        start = await go
        if stop.is_set() or start != start:  # nan: stopped before the start
            _emit({"t": "done", "interrupted": True, "interrupted_results": [], "duration_s": 0.0,
                   "cpu_s": 0.0, "wall_s": 0.0})
            return
        reported: set[int] = set()

        def on_result(r: RequestResult) -> None:
            reported.add(r.index)
            _emit({"t": "result", "result": dataclasses.asdict(r)})

        with CpuMeter() as meter:
            results, duration, interrupted = await _run_batch(
                requests, job["offsets_s"], send, job["concurrency"], stop, on_result, start_at=start
            )
        _emit({"t": "done", "interrupted": interrupted, "duration_s": duration,
               "interrupted_results": [dataclasses.asdict(r) for r in results if r.index not in reported],
               "cpu_s": meter.usage.cpu_s, "wall_s": duration})  # wall from T, not from before the wait
    finally:
        listener.cancel()
        await session.close()


def worker_main(argv: Sequence[str]) -> int:
    """Entry point of one worker process: ``python -m probes.load.workers PARENT_PID`` (job on stdin)."""
    _die_with_parent(int(argv[0]))

    async def main() -> None:
        reader = asyncio.StreamReader(limit=_LINE_LIMIT_BYTES)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await _worker(reader)

    try:
        asyncio.run(main())
    except BrokenPipeError:  # the parent stopped reading: it is gone
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main(sys.argv[1:]))
