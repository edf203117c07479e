"""The load engine's new modes on a real vLLM (CPU build): worker processes and uncapped open loop.

Counts are checked against vLLM's own /metrics counters; no assertion on how fast anything was.
"""

from __future__ import annotations

import math

import pytest

from probes.load.client import run_load_sync
from probes.load.metrics import summarize
from probes.load.workload import WorkloadSpec, build_requests
from probes.target.server import VllmServer
from tests.integration.test_probe_vllm import _counters

pytestmark = [pytest.mark.integration]


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("workers", "concurrency", "rate"), [(2, 4, math.inf), (1, None, 4.0)],
                         ids=["two-workers-closed-loop", "uncapped-open-loop"])
def test_every_request_reaches_the_server_once(vllm_server: VllmServer, workers, concurrency, rate) -> None:
    spec = WorkloadSpec(input_tokens=40, output_tokens=6, num_requests=8, seed=11)
    reqs = build_requests(spec, vocab_size=4096, salt=f"loadgen-{workers}-{concurrency}")
    warm = build_requests(spec, vocab_size=4096, salt=f"loadgen-warm-{workers}-{concurrency}")[:4]
    before = _counters(vllm_server.base_url)
    load = run_load_sync(base_url=vllm_server.base_url, model=vllm_server.model_name, requests=reqs,
                         warmup=warm, concurrency=concurrency, request_rate=rate, workers=workers, seed=5)
    after = _counters(vllm_server.base_url)
    assert [r.index for r in load.results] == [r.index for r in reqs]
    assert all(r.success for r in load.results), [r.error for r in load.results if not r.success]
    assert load.workers == workers and len(load.cpu) == workers
    assert after["vllm:request_success"] - before["vllm:request_success"] == 8 + 4  # measured + warm-up
    assert after["vllm:generation_tokens"] - before["vllm:generation_tokens"] == 12 * 6
    m = summarize(load.results, load.duration_s, concurrency=concurrency, request_rate=rate, cpu=load.cpu)
    assert m.total_output_tokens == 8 * 6
    assert all(r.queue_s >= 0.0 and r.start_s <= r.end_s <= load.duration_s for r in load.results)
    assert m.ramp_up_s + m.steady_window_s + m.drain_s == pytest.approx(load.duration_s)
    assert m.client_workers == workers and m.client_bound in (True, False)
