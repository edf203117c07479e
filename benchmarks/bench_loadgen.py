"""How fast can the load generator consume a stream? (It must never be the bottleneck of a probe.)

Starts a fake OpenAI-compatible completions server (aiohttp.web on 127.0.0.1, in its own process) that
answers every request instantly with ``max_tokens`` SSE token events (one write per token, like vLLM),
a usage event and ``[DONE]``; then drives it with :func:`probes.load.client.run_load` and prints the tokens/s and
requests/s the client side sustained. Compare with what a GPU serves: e.g. ~8,000 output tok/s for an 8B
model at concurrency 128 on one H100 (/work/shared/vllm/README.md).

Run: ``.venv/bin/python benchmarks/bench_loadgen.py [--requests 512 --output-tokens 256 --concurrency 64]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.load.client import run_load_sync  # noqa: E402
from probes.load.metrics import summarize  # noqa: E402
from probes.load.workload import WorkloadSpec, build_requests  # noqa: E402

__all__ = ["serve", "main"]


async def _completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    n = int(body["max_tokens"])
    prompt = len(body["prompt"])
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i in range(n):
        event = {"id": "cmpl-x", "object": "text_completion", "model": body["model"],
                 "choices": [{"index": 0, "text": f" t{i}", "logprobs": None, "finish_reason": None}]}
        await resp.write(f"data: {json.dumps(event)}\n\n".encode())
    usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
    await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


def serve() -> None:
    """Run the fake server on a free port; print the port on stdout, serve until killed."""

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/v1/completions", _completions)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(start())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--input-tokens", type=int, default=512)
    parser.add_argument("--output-tokens", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.serve:
        serve()
        return 0
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        base_url = f"http://127.0.0.1:{port}"
        spec = WorkloadSpec(input_tokens=ns.input_tokens, output_tokens=ns.output_tokens, num_requests=ns.requests)
        reqs = build_requests(spec, vocab_size=32000)
        print(f"fake server on {base_url}; {ns.requests} requests x {ns.output_tokens} tokens, "
              f"concurrency {ns.concurrency}")
        for i in range(ns.repeat):
            t0 = time.process_time()
            load = run_load_sync(base_url=base_url, model="fake", requests=reqs, concurrency=ns.concurrency)
            cpu_s = time.process_time() - t0
            m = summarize(load.results, load.duration_s)
            print(f"run {i + 1}: {m.completed} ok / {m.failed} failed in {m.duration_s:.2f} s: "
                  f"{m.output_tokens_per_s:,.0f} output tok/s, {m.requests_per_s:,.1f} req/s; "
                  f"client CPU {cpu_s:.2f} s ({cpu_s / max(m.total_output_tokens, 1) * 1e6:.1f} us/token); "
                  f"median ITL {m.itl_ms.median:.3f} ms")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
