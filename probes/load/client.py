"""Load generator: streams completions from an OpenAI-compatible server the way ``vllm bench serve`` does.

asyncio + aiohttp, one coroutine per request, every timestamp from ``time.perf_counter()`` read through this
module's ``time`` (tests replace it with a scripted clock). Per request, as vLLM's
``async_request_openai_completions``:

* ``ttft_s``  = first chunk carrying ``choices`` - send time
* ``itl_s``   = gaps between consecutive ``choices`` chunks
* ``latency_s`` = last ``choices`` chunk - send time (E2EL)
* ``output_tokens`` / ``prompt_tokens`` from the final ``usage`` chunk (fallback: counted chunks / prompt length)

Arrival schedules (:func:`arrival_offsets_s`) follow vLLM's ``get_request``: rate ``inf`` sends everything at
once (closed loop when ``concurrency`` caps it); a finite rate draws gamma gaps (shape ``burstiness``, mean
``1/rate``; burstiness 1 = Poisson), seeded, rescaled so the last arrival is at ``n / rate``.

Client queue time, per request: ``queue_s = start_s - scheduled_s``, the actual send time minus the
*scheduled* arrival. It holds the wait for a concurrency slot and any lateness of the event loop (a busy
client sends late). vLLM's ``client_queue_time`` is ``start_time - request_arrival_time`` where the arrival
time is read *after* ``get_request`` woke up: only the semaphore wait; a late scheduler is invisible there.
vLLM reports it only when ``--max-concurrency`` is set; we always record it (about 0 when uncapped and on time).
vLLM's scheduler also sleeps against ``time.time()`` and measures with ``perf_counter``; ours uses
``perf_counter`` for both.

Errors are data: an HTTP status, an ``error`` event in the stream, a stream that ends without ``[DONE]``
(stricter than vLLM, which accepts it), a timeout or a reset connection give ``success=False`` and a one-line
``error``. ``stop`` (a ``threading.Event``) cancels what is in flight (``error="interrupted"``), drops what was
not sent yet and sets ``interrupted=True``. The API key goes into the ``Authorization`` header only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from probes.load.backends import BACKENDS, Backend
from probes.load.limits import CpuMeter, CpuUsage, NofileLimit, auto_workers, raise_nofile_limit
from probes.load.sse import SSEDecoder
from probes.load.workload import RequestInput

__all__ = [
    "RequestResult",
    "LoadResult",
    "arrival_offsets_s",
    "send_request",
    "run_load",
    "run_load_sync",
    "make_session",
    "client_facts",
    "request_headers",
    "resolve_workers",
    "INTERRUPTED",
]

INTERRUPTED = "interrupted"
_STOP_POLL_S = 0.05
_MAX_ERROR_BODY_CHARS = 300
KEEPALIVE_S = 4.0  # idle keep-alive of every run's connections: under vLLM's 5 s server-side default
FLEET_KEEPALIVE_S = KEEPALIVE_S  # (a fleet idles connections the most; trace replays and open-loop gaps too)


@dataclass
class RequestResult:
    """What one request measured (seconds, ``perf_counter`` based)."""

    index: int
    success: bool = False
    error: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    ttft_s: float = 0.0
    itl_s: list[float] = field(default_factory=list)
    latency_s: float = 0.0
    start_s: float = 0.0
    requested_output_tokens: int = 0  # what was asked (max_tokens); output_tokens is what came back
    scheduled_s: float = 0.0
    queue_s: float = 0.0
    end_s: float = 0.0
    replica: int | None = None  # which replica of a fleet it went to (probes.load.fleet); None: one endpoint


@dataclass
class LoadResult:
    """The measured requests of one run (warm-up kept apart), the run's wall time, and the client's own limits.

    ``cpu``: one :class:`~probes.load.limits.CpuUsage` per event loop (one per worker process) over the measured
    requests; ``nofile``: the open-file limit found and set at load start; ``workers``: processes used.
    """

    results: list[RequestResult]
    duration_s: float
    warmup_results: list[RequestResult]
    interrupted: bool = False
    cpu: tuple[CpuUsage, ...] = ()
    nofile: NofileLimit | None = None
    workers: int = 1


def arrival_offsets_s(count: int, request_rate: float, burstiness: float = 1.0, seed: int = 0) -> list[float]:
    """Send times (s after the run starts) of ``count`` requests, as vLLM's ``get_request`` computes them.

    gaps ~ Gamma(shape=burstiness, scale=1 / (rate * burstiness)); offsets = cumsum(gaps) * (count / rate) /
    sum(gaps). Rate ``inf`` gives all zeros; burstiness ``inf`` gives evenly spaced ``1/rate`` gaps.
    Drawn from ``numpy.random.RandomState(seed)``, the stream ``np.random.seed(seed)`` gives in vLLM.

    >>> arrival_offsets_s(3, math.inf)
    [0.0, 0.0, 0.0]
    >>> arrival_offsets_s(4, 2.0, burstiness=math.inf)
    [0.5, 1.0, 1.5, 2.0]
    >>> round(arrival_offsets_s(10, 5.0, seed=1)[-1], 9)
    2.0
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if not request_rate > 0:
        raise ValueError(f"request_rate must be > 0 (inf = no pacing), got {request_rate}")
    if not burstiness > 0:
        raise ValueError(f"burstiness must be > 0, got {burstiness}")
    if count == 0:
        return []
    if math.isinf(request_rate):
        return [0.0] * count
    if math.isinf(burstiness):
        gaps = np.full(count, 1.0 / request_rate)
    else:
        rng = np.random.RandomState(seed)
        gaps = rng.gamma(shape=burstiness, scale=1.0 / (request_rate * burstiness), size=count)
    offsets = np.cumsum(gaps)
    offsets *= (count / request_rate) / offsets[-1]
    return [float(x) for x in offsets]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


async def send_request(
    session: Any,
    url: str,
    model: str,
    request: RequestInput,
    *,
    headers: dict[str, str],
    run_start_s: float,
    request_timeout_s: float,
    backend: Backend = BACKENDS["vllm-token-ids"],
) -> RequestResult:
    """Send one streaming request and measure it; never raises except ``CancelledError``.

    Output events are those ``backend.is_output`` accepts (TTFT at the first, ITL between, E2EL at the last);
    ``output_tokens`` is ``usage.completion_tokens`` (else the count of output events), kept beside
    ``requested_output_tokens`` so a server that stopped early is counted, not failed
    (:func:`probes.load.metrics.summarize`). ``prompt_tokens`` is ``usage.prompt_tokens`` (else the
    request's own length: exact for token ids, the word count for text).
    """
    result = RequestResult(index=request.index, prompt_tokens=request.input_tokens,
                           requested_output_tokens=request.output_tokens)
    st = time.perf_counter()
    result.start_s = st - run_start_s
    last = st
    chunks = 0
    usage: dict[str, Any] | None = None
    done = False
    try:
        async with session.post(
            url,
            json=backend.payload(model, request),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=request_timeout_s),
        ) as response:
            if response.status != 200:
                body = (await response.text())[:_MAX_ERROR_BODY_CHARS].replace("\n", " ")
                result.error = f"HTTP {response.status} {response.reason or ''}: {body}".strip()
                return result
            decoder = SSEDecoder()
            async for raw in response.content.iter_any():
                for data in decoder.feed(raw):
                    if data == "[DONE]":
                        done = True
                        continue
                    message = json.loads(data)
                    if not isinstance(message, dict):
                        result.error = f"malformed stream event (not a JSON object): {data[:200]}"
                        return result
                    if "error" in message:
                        err = message["error"]
                        detail = err.get("message", err) if isinstance(err, dict) else err
                        result.error = f"server error in stream: {detail}"
                        return result
                    if backend.is_output(message):
                        now = time.perf_counter()
                        if chunks == 0:
                            result.ttft_s = now - st
                        else:
                            result.itl_s.append(now - last)
                        last = now
                        chunks += 1
                    if isinstance(message.get("usage"), dict):
                        usage = message["usage"]
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        result.error = f"timeout: no complete response within {request_timeout_s:g} s"
        return result
    except (aiohttp.ClientError, json.JSONDecodeError, UnicodeError, OSError) as exc:
        result.error = _one_line(exc)
        return result
    if chunks == 0:
        result.error = "no token received (empty stream)"
        return result
    if not done:
        result.error = f"truncated stream: ended after {chunks} token chunks without [DONE]"
        return result
    result.latency_s = last - st
    result.output_tokens = chunks
    if usage:
        try:
            result.output_tokens = int(usage.get("completion_tokens") or chunks)
            if usage.get("prompt_tokens") is not None:
                result.prompt_tokens = int(usage["prompt_tokens"])
        except (TypeError, ValueError):
            result.error = f"malformed usage in stream: {str(usage)[:200]}"
            return result
    result.success = True
    return result


def _validate(concurrency: int | None, request_timeout_s: float) -> None:
    if concurrency is not None and (isinstance(concurrency, bool) or concurrency < 1):
        raise ValueError(f"concurrency must be None (no cap) or an integer >= 1, got {concurrency!r}")
    if not request_timeout_s > 0:
        raise ValueError(f"request_timeout_s must be > 0, got {request_timeout_s}")


def _is_loopback(base_url: str) -> bool:
    return (urlsplit(base_url).hostname or "") in {"127.0.0.1", "localhost", "::1"}


async def _watch_stop(stop: threading.Event, tasks: list[asyncio.Task[Any]], flag: list[bool]) -> None:
    while not stop.is_set():
        await asyncio.sleep(_STOP_POLL_S)
    flag[0] = True
    for task in tasks:
        task.cancel()


async def _run_batch(
    requests: Sequence[RequestInput],
    offsets_s: Sequence[float],
    send: Callable[[RequestInput, float], Any],
    concurrency: int | None,
    stop: threading.Event | None,
    on_result: Callable[[RequestResult], None] | None,
    start_at: float | None = None,
) -> tuple[list[RequestResult], float, bool]:
    """Schedule ``requests`` at ``offsets_s`` under a semaphore; returns (results, duration_s, interrupted).

    The run starts at ``start_at`` (a ``perf_counter`` reading, possibly in the future: worker processes share
    one start) or now. Each result gets ``scheduled_s`` (its offset), ``queue_s = start_s - scheduled_s``
    (semaphore wait plus any lateness of this loop) and ``end_s`` (when its coroutine returned), all in
    seconds from the start. Results come back in request order; never-sent requests are dropped.
    """
    semaphore: Any = asyncio.Semaphore(concurrency) if concurrency else contextlib.nullcontext()
    tasks: list[asyncio.Task[RequestResult]] = []
    flag = [False]
    started: dict[int, RequestResult] = {}
    start = time.perf_counter() if start_at is None else start_at

    async def limited(request: RequestInput, offset_s: float) -> RequestResult:
        async with semaphore:
            try:
                result = await send(request, start)
            except asyncio.CancelledError:
                started[request.index] = RequestResult(index=request.index, error=INTERRUPTED,
                                                       scheduled_s=offset_s)
                raise
        result.scheduled_s = offset_s
        result.queue_s = result.start_s - offset_s
        result.end_s = time.perf_counter() - start
        if on_result is not None:
            on_result(result)
        return result

    async def wait_until(deadline: float) -> bool:
        """Sleep until ``deadline`` (perf_counter); False when stopped first."""
        if stop is None:  # loop: the event loop may wake a clock tick early, and queue_s must be >= 0
            while (delay := deadline - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            return True
        while not stop.is_set() and (rest := deadline - time.perf_counter()) > 0:
            await asyncio.sleep(min(rest, _STOP_POLL_S))
        return not stop.is_set()

    watcher = asyncio.ensure_future(_watch_stop(stop, tasks, flag)) if stop is not None else None
    try:
        for request, offset in zip(requests, offsets_s, strict=True):
            if flag[0] or (stop is not None and stop.is_set()):
                break
            if start + offset > time.perf_counter() and not await wait_until(start + offset):
                break
            tasks.append(asyncio.ensure_future(limited(request, offset)))
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for task in tasks:
            task.cancel()
    duration = time.perf_counter() - start
    interrupted = flag[0] or (stop is not None and stop.is_set())
    results: list[RequestResult] = []
    for request, outcome in zip(requests, outcomes, strict=False):
        if isinstance(outcome, RequestResult):
            results.append(outcome)
        elif isinstance(outcome, asyncio.CancelledError):
            if request.index in started:  # was in flight; never-sent ones are dropped
                results.append(started[request.index])
        else:
            raise outcome
    return results, duration, interrupted


def make_session(base_url: str, concurrency: int | None, keepalive_s: float = KEEPALIVE_S) -> aiohttp.ClientSession:
    """The session a run uses: keep-alive connections (closed after ``keepalive_s`` idle), at most
    ``concurrency`` of them (None: no cap).

    No overall timeout (each request has its own); proxies from the environment only for non-loopback URLs.
    """
    connector = aiohttp.TCPConnector(limit=concurrency or 0, keepalive_timeout=keepalive_s)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=not _is_loopback(base_url)
    )


def request_headers(api_key: str | None) -> dict[str, str]:
    """JSON content type, and the bearer token when a key is given (the key goes nowhere else)."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def resolve_workers(
    workers: int | None, concurrency: int | None, request_rate: float, num_requests: int
) -> int:
    """The worker count a run uses: ``None`` = :func:`~probes.load.limits.auto_workers`; never more than the
    requests, nor than ``concurrency`` (each worker needs a share of at least one stream).

    >>> resolve_workers(4, 2, math.inf, 100), resolve_workers(3, None, math.inf, 2), resolve_workers(1, 8, 1.0, 9)
    (2, 2, 1)
    """
    if workers is None:
        workers = auto_workers(concurrency, request_rate, num_requests)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be None (automatic) or an integer >= 1, got {workers!r}")
    return max(1, min(workers, concurrency or workers, max(num_requests, 1)))


async def run_load(
    *,
    base_url: str,
    model: str,
    requests: Sequence[RequestInput],
    concurrency: int | None = None,
    request_rate: float = math.inf,
    burstiness: float = 1.0,
    seed: int = 0,
    warmup: Sequence[RequestInput] = (),
    request_timeout_s: float = 600.0,
    session: aiohttp.ClientSession | None = None,
    on_result: Callable[[RequestResult], None] | None = None,
    stop: threading.Event | None = None,
    api_key: str | None = None,
    on_warmup_done: Callable[[], None] | None = None,
    backend: Backend | str = "vllm-token-ids",
    workers: int | None = 1,
    offsets_s: Sequence[float] | None = None,
    chooser: Any = None,
) -> LoadResult:
    """Drive ``requests`` at ``{base_url}{backend.path}`` and measure each one.

    Closed loop: ``concurrency=N`` with ``request_rate=inf``. Open loop: a finite ``request_rate`` (gamma
    arrivals); ``concurrency=None`` leaves it uncapped (every request is sent at its arrival time, however
    many are in flight), ``concurrency=N`` caps it (then ``queue_s`` shows the wait for a slot).
    ``warmup`` runs first, in the same session and under the same cap, and is not in ``results`` nor in
    ``duration_s`` (wall time from the first scheduled send to the last response). ``on_result`` is called
    in the event loop for each measured request as it finishes; ``on_warmup_done`` once between warm-up and
    the measured requests (e.g. to scrape ``/metrics`` counters so that server-side deltas exclude the warm-up).

    The soft ``RLIMIT_NOFILE`` is raised to the hard limit first (``LoadResult.nofile``) and the event loop's
    CPU time is measured over the measured requests (``LoadResult.cpu``). ``workers=N`` (``None``: automatic,
    :func:`resolve_workers`) spreads requests round-robin over N processes (:mod:`probes.load.workers`);
    an injected ``session`` cannot cross processes, so it needs ``workers`` 1 or None.

    ``offsets_s``: the send time of each request (s from the start, sorted), given by the caller instead of
    drawn from ``request_rate`` (a trace replay, :mod:`probes.load.replay`); ``request_rate`` then only
    picks the automatic worker count.

    ``chooser``: spread the requests over several replicas (a :class:`probes.load.fleet.Balancer`: ``urls``,
    ``choose() -> index``, ``release(index, ok=True/False/None)``); each request goes to
    ``{chooser.urls[i]}{backend.path}`` and its result carries ``replica = i``. One event loop sees every
    request in flight, so a chooser runs in one worker process (``workers`` is then 1).
    """
    _validate(concurrency, request_timeout_s)
    if offsets_s is None:
        offsets = arrival_offsets_s(len(requests), request_rate, burstiness, seed)
    else:
        offsets = [float(x) for x in offsets_s]
        if len(offsets) != len(requests) or any(not (0.0 <= x < math.inf) for x in offsets):
            raise ValueError(f"offsets_s must hold one finite offset >= 0 per request ({len(requests)}), "
                             f"got {len(offsets)}")
    kind = BACKENDS[backend] if isinstance(backend, str) else backend
    nofile = raise_nofile_limit()
    if session is not None or chooser is not None:
        if session is not None and workers not in (None, 1):
            raise ValueError("workers > 1 needs its own sessions: pass session=None")
        n_workers = 1
    else:
        n_workers = resolve_workers(workers, concurrency, request_rate, len(requests))
    if n_workers > 1:
        from probes.load.workers import run_in_workers

        return await run_in_workers(
            n_workers, base_url=base_url, model=model, requests=requests, offsets_s=offsets,
            concurrency=concurrency, warmup=warmup, request_timeout_s=request_timeout_s, on_result=on_result,
            stop=stop, api_key=api_key, on_warmup_done=on_warmup_done, backend=kind, nofile=nofile,
        )
    url = base_url.rstrip("/") + kind.path
    headers = request_headers(api_key)

    own_session = session is None
    if session is None:
        # a fleet's connections idle while the other replicas serve: drop them before vLLM's own 5 s keep-alive
        # (VLLM_HTTP_TIMEOUT_KEEP_ALIVE) closes them under a request being written ("Can not write request body")
        session = make_session(base_url, concurrency)
    try:

        async def send_chosen(request: RequestInput, run_start_s: float) -> RequestResult:
            i = chooser.choose()
            ok: bool | None = None
            try:
                result = await send_request(
                    session, chooser.urls[i].rstrip("/") + kind.path, model, request, headers=headers,
                    run_start_s=run_start_s, request_timeout_s=request_timeout_s, backend=kind)
                ok = result.success
            finally:
                chooser.release(i, ok=ok)
            result.replica = i
            return result

        def send(request: RequestInput, run_start_s: float) -> Any:
            if chooser is not None:
                return send_chosen(request, run_start_s)
            return send_request(
                session,
                url,
                model,
                request,
                headers=headers,
                run_start_s=run_start_s,
                request_timeout_s=request_timeout_s,
                backend=kind,
            )

        warm: list[RequestResult] = []
        interrupted = False
        if warmup:
            warm, _, interrupted = await _run_batch(
                warmup, [0.0] * len(warmup), send, concurrency, stop, None
            )
        if interrupted:
            return LoadResult(results=[], duration_s=0.0, warmup_results=warm, interrupted=True, nofile=nofile)
        if on_warmup_done is not None:
            on_warmup_done()
        with CpuMeter() as meter:
            results, duration, interrupted = await _run_batch(
                requests, offsets, send, concurrency, stop, on_result
            )
        return LoadResult(results=results, duration_s=duration, warmup_results=warm, interrupted=interrupted,
                          cpu=(meter.usage,), nofile=nofile, workers=1)
    finally:
        if own_session:
            await session.close()


def client_facts(load: LoadResult) -> dict[str, Any]:
    """The open-file limits the client found and set, for a point's record (worker count and CPU are in
    :class:`~probes.load.metrics.PointMetrics`).

    >>> client_facts(LoadResult([], 1.0, [], nofile=NofileLimit(1024, 4096, 4096)))
    {'nofile_soft_before': 1024, 'nofile_soft': 4096, 'nofile_hard': 4096, 'nofile_error': ''}
    """
    n = load.nofile
    return {"nofile_soft_before": n.soft_before if n else None,
            "nofile_soft": n.soft if n else None, "nofile_hard": n.hard if n else None,
            "nofile_error": n.error if n else ""}


def run_load_sync(**kwargs: Any) -> LoadResult:
    """:func:`run_load` in a fresh event loop (for threads and the CLI)."""
    return asyncio.run(run_load(**kwargs))
