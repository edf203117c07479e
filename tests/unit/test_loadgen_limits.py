"""The load client's own limits: queue time, uncapped open loop, RLIMIT_NOFILE, loop CPU, worker processes.

Scripted clock and fake session where no socket is needed; a fake streaming server (aiohttp.web in a thread of
this process) where worker processes must reach it over TCP. No assertion on how long anything took.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web

from probes.load import client as loadgen
from probes.load.backends import BACKENDS
from probes.load.client import INTERRUPTED, arrival_offsets_s, resolve_workers, run_load_sync
from probes.load.limits import raise_nofile_limit
from probes.load.metrics import summarize
from tests.unit.test_loadgen import DONE, FakeResponse, FakeSession, ScriptedClock, req, run, token, usage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clock(monkeypatch) -> ScriptedClock:
    c = ScriptedClock()
    monkeypatch.setattr(loadgen, "time", c)
    return c


def test_queue_time_is_the_wait_for_a_slot_in_a_closed_loop(clock):
    script = [(0.25, token()), (0.25, token()), (0.0, usage(4, 2)), (0.0, DONE)]
    session = FakeSession(lambda payload: FakeResponse(script, clock=clock))
    out = run(session, [req(i) for i in range(3)], concurrency=1)
    assert [r.scheduled_s for r in out.results] == [0.0] * 3  # closed loop: all arrive at once
    assert [r.queue_s for r in out.results] == pytest.approx([0.0, 0.5, 1.0])  # each waits for the one before
    assert [r.end_s for r in out.results] == pytest.approx([0.5, 1.0, 1.5])
    m = summarize(out.results, out.duration_s, concurrency=1)
    assert m.queue_ms.mean == pytest.approx(500.0)
    assert m.e2el_incl_queue_ms.median == pytest.approx(1000.0)  # 0.5 s latency + 0.5 s queue
    assert m.steady_note == "" and m.ramp_up_s == 0.0 and m.drain_s == pytest.approx(0.0)


def _gated_session(n: int) -> FakeSession:
    """Every response waits until all ``n`` requests were posted: only an uncapped client can finish."""
    gate = asyncio.Event()

    class Gated(FakeResponse):
        async def __aenter__(self):
            if len(session.calls) >= n:
                gate.set()
            await asyncio.wait_for(gate.wait(), 30)
            return self

    session = FakeSession(lambda p: Gated([(0.0, token()), (0.0, usage(4, 1)), (0.0, DONE)]))
    return session


def test_open_loop_without_cap_sends_every_arrival_and_records_its_schedule():
    n = 12
    session = _gated_session(n)
    out = run(session, [req(i) for i in range(n)], request_rate=2000.0, burstiness=math.inf)
    assert session.peak_in_flight == n and all(r.success for r in out.results)
    assert [r.scheduled_s for r in out.results] == arrival_offsets_s(n, 2000.0, math.inf)
    for r in out.results:
        assert r.queue_s == r.start_s - r.scheduled_s and r.queue_s >= 0.0  # never sent before its arrival


def test_raise_nofile_limit_lifts_soft_to_hard_in_a_fresh_process():
    code = (
        "import json, resource; from probes.load.limits import raise_nofile_limit as r\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "a = r(); b = r()\n"
        "print(json.dumps([a.soft_before, a.soft, a.hard, a.error, b.soft_before, b.soft,"
        " resource.getrlimit(resource.RLIMIT_NOFILE)[0], None if hard == resource.RLIM_INFINITY else hard]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    before, after, hard, error, again_before, again_after, now, real_hard = json.loads(out.stdout)
    assert before == 64 and error == ""
    if real_hard is None:  # unlimited hard limit: left alone, on purpose
        assert after == 64 and hard is None
    else:
        assert after == hard == real_hard == now and again_before == again_after == hard


def test_run_load_records_nofile_and_its_loop_cpu(clock):
    session = FakeSession(lambda p: FakeResponse([(0.1, token()), (0.0, DONE)], clock=clock))
    out = run(session, [req(0), req(1)])
    assert out.nofile == raise_nofile_limit() and out.workers == 1
    (cpu,) = out.cpu
    assert cpu.cpu_s >= 0.0 and cpu.wall_s >= 0.0
    m = summarize(out.results, out.duration_s, cpu=out.cpu)
    assert m.client_cpu_fraction == cpu.cpu_fraction and m.client_bound == (cpu.cpu_fraction > 0.7)


def test_worker_count_choice():
    assert resolve_workers(4, 2, math.inf, 100) == 2  # never more workers than streams
    assert resolve_workers(None, 1024, math.inf, 3072) >= 1
    with pytest.raises(ValueError, match="workers"):
        resolve_workers(0, 4, math.inf, 10)
    with pytest.raises(ValueError, match="session"):
        run(FakeSession(lambda p: None), [req(0)], workers=2)


# ------------------------------------------------------------------ worker processes against a real socket


class FakeServer:
    """Streaming completions on 127.0.0.1 in a thread; ``hang`` makes every measured request wait forever."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.prompts: list[int] = []
        self.arrived = threading.Event()
        self.hang_after = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.prompts.append(body["prompt"][0])
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if self.hang and body["prompt"][0] < 900:
            if len([p for p in self.prompts if p < 900]) >= self.hang_after:
                self.arrived.set()
            await asyncio.sleep(3600)
        for _ in range(body["max_tokens"]):
            await resp.write(b'data: {"choices": [{"index": 0, "text": "x"}]}\n\n')
        await resp.write(b"data: [DONE]\n\n")
        return resp

    def _run(self) -> None:
        async def main() -> None:
            app = web.Application()
            app.router.add_post("/v1/completions", self._complete)
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

        asyncio.run(main())

    def __enter__(self) -> FakeServer:
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _worker_pids(parent_pid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"probes.load.workers" in argv and str(parent_pid).encode() in argv:
                pids.append(int(entry.name))
    return pids


def _req(i: int, first: int) -> object:
    return loadgen.RequestInput(index=i, prompt_token_ids=(first, 7, 8), output_tokens=3)


def test_two_workers_merge_results_in_request_order_after_one_warmup():
    requests = [_req(i, i) for i in range(12)]
    warmup = [_req(100 + i, 900 + i) for i in range(4)]
    seen: list[int] = []
    server_prompts_at_warmup_done: list[int] = []
    built = dataclasses.replace(BACKENDS["vllm-token-ids"], description="built per target, not the registry's")
    with FakeServer() as server:
        out = run_load_sync(base_url=server.url, model="m", requests=requests, concurrency=4, workers=2,
                            warmup=warmup, backend=built, on_result=lambda r: seen.append(r.index),
                            on_warmup_done=lambda: server_prompts_at_warmup_done.append(len(server.prompts)))
    assert out.workers == 2 and len(out.cpu) == 2 and not out.interrupted
    assert [r.index for r in out.results] == list(range(12)) and all(r.success for r in out.results)
    assert [r.output_tokens for r in out.results] == [3] * 12
    assert sorted(seen) == list(range(12))
    assert sorted(r.index for r in out.warmup_results) == [100, 101, 102, 103]
    assert server_prompts_at_warmup_done == [4]  # once, after every warm-up and before any measured request
    assert sorted(server.prompts[:4]) == [900, 901, 902, 903]
    assert all(0.0 <= r.start_s <= r.end_s <= out.duration_s for r in out.results)  # one clock, one start
    assert _worker_pids(os.getpid()) == []


def test_a_backend_that_cannot_travel_to_workers_is_refused_before_any_process_starts():
    odd = dataclasses.replace(BACKENDS["vllm-token-ids"], is_output=lambda m: True)
    with pytest.raises(ValueError, match="picklable"):
        run_load_sync(base_url="http://127.0.0.1:9", model="m", requests=[_req(i, i) for i in range(4)],
                      concurrency=2, workers=2, backend=odd)
    assert _worker_pids(os.getpid()) == []


def test_stop_reaches_every_worker_and_none_is_left():
    stop = threading.Event()
    with FakeServer(hang=True) as server:
        server.hang_after = 4
        threading.Thread(target=lambda: server.arrived.wait(60) and stop.set(), daemon=True).start()
        out = run_load_sync(base_url=server.url, model="m", requests=[_req(i, i) for i in range(10)],
                            concurrency=4, workers=2, stop=stop)
    assert out.interrupted
    assert len(out.results) == 4 and all(r.error == INTERRUPTED for r in out.results)  # unsent ones dropped
    assert [r.index for r in out.results] == sorted(r.index for r in out.results)
    assert _worker_pids(os.getpid()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG are Linux")
def test_no_worker_outlives_a_killed_parent():
    code = (
        "import sys; from probes.load.client import run_load_sync, RequestInput\n"
        "run_load_sync(base_url=sys.argv[1], model='m', concurrency=2, workers=2,\n"
        "              requests=[RequestInput(i, (i, 1), 3) for i in range(4)])\n"
    )
    with FakeServer(hang=True) as server:
        server.hang_after = 2
        parent = subprocess.Popen([sys.executable, "-c", code, server.url], cwd=ROOT,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert server.arrived.wait(60), "the workers never reached the server"
            pids = _worker_pids(parent.pid)
            assert len(pids) == 2
        finally:
            parent.send_signal(signal.SIGKILL)
            parent.wait(30)
        deadline = time.monotonic() + 30  # a bound on waiting, not a measured claim
        while _worker_pids(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _worker_pids(parent.pid) == []
