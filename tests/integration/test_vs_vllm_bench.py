"""Our probe and ``vllm bench serve`` against the same real (CPU) vLLM server: counts and definitions, no timings.

What is checked, and why it is deterministic:

- counts: each client's requests and tokens equal the deltas of the server's own ``/metrics`` counters over
  its run (vLLM records a step's stats before any stream of that step can be read), and the workload asked for;
- definitions: ``vllm bench serve --save-detailed`` records every request's TTFT, ITLs and latency; our
  ``summarize`` fed those very samples reproduces every statistic vLLM printed (mean, median, std, p90, p99 of
  TTFT, TPOT, ITL, E2EL; request, output and total throughput) to 1e-9.

What is NOT checked here: how the two clients' timings compare. On this shared 2-core machine the CPU vLLM's
timings swing by up to 10x with other load (a run once read TPOT 0.03 ms: the server delivered a whole stream
at once), so that comparison is a benchmark: ``benchmarks/bench_vs_vllm_bench.py``, numbers in
``benchmarks/README.md``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.bench_vs_vllm_bench import probe_point, vllm_bench
from probes.load.client import RequestResult
from probes.load.metrics import summarize
from probes.target.server import VllmServer

pytestmark = [pytest.mark.integration]

INPUT_TOKENS, OUTPUT_TOKENS, REQUESTS, CONCURRENCY = 128, 32, 16, 4
SHAPE = {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS, "requests": REQUESTS,
         "concurrency": CONCURRENCY}
ALL_STATS = ("--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99")


def _counters(base_url: str) -> dict[str, float]:
    """vLLM's request/token counters, summed over label sets (independent of probes.observe.promscrape)."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    wanted = {"vllm:request_success": 0.0, "vllm:prompt_tokens": 0.0, "vllm:generation_tokens": 0.0}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.endswith("_total") and s.name.removesuffix("_total") in wanted:
                wanted[s.name.removesuffix("_total")] += s.value
    return wanted


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in before}


@pytest.mark.timeout(480)
def test_probe_and_vllm_bench_counts_equal_the_server_counters(vllm_python: str, vllm_server: VllmServer,
                                                               tmp_path: Path) -> None:
    url = vllm_server.base_url
    # ours: the point's own /metrics deltas cover exactly the measured requests (warm-up before the scrape)
    before = _counters(url)
    p = probe_point(base_url=url, model="tiny", seed=0, warmups=2, alive=vllm_server.is_running, **SHAPE)
    seen = _delta(before, _counters(url))
    assert (p["completed"], p["failed"]) == (REQUESTS, 0)
    assert (p["total_input_tokens"], p["total_output_tokens"]) == (REQUESTS * INPUT_TOKENS, REQUESTS * OUTPUT_TOKENS)
    sm = p["server_metrics"]
    assert (sm["request_success"], sm["prompt_tokens"], sm["generation_tokens"]) == (
        REQUESTS, REQUESTS * INPUT_TOKENS, REQUESTS * OUTPUT_TOKENS)
    # and the whole call, warm-up included: the warm-up of the same shape on top, 2 asked but raised to the
    # concurrency (a point warms up with at least as many requests as it keeps in flight)
    warm = max(2, CONCURRENCY)
    assert p["warmup_requests"] == warm
    assert seen == {"vllm:request_success": REQUESTS + warm, "vllm:prompt_tokens": (REQUESTS + warm) * INPUT_TOKENS,
                    "vllm:generation_tokens": (REQUESTS + warm) * OUTPUT_TOKENS}

    # theirs, no warm-up so that the server's deltas are exactly its measured requests
    before = _counters(url)
    v = vllm_bench(vllm_python, base_url=url, model="tiny", tokenizer=vllm_server.model, out_dir=tmp_path, seed=0,
                   warmups=0, **SHAPE)
    seen = _delta(before, _counters(url))
    assert (v["completed"], v["failed"]) == (REQUESTS, 0)
    assert seen == {"vllm:request_success": v["completed"], "vllm:prompt_tokens": v["total_input_tokens"],
                    "vllm:generation_tokens": v["total_output_tokens"]}
    assert (v["total_input_tokens"], v["total_output_tokens"]) == (REQUESTS * INPUT_TOKENS, REQUESTS * OUTPUT_TOKENS)


@pytest.mark.timeout(300)
def test_our_metric_definitions_reproduce_vllm_bench_on_its_own_samples(vllm_python: str, vllm_server: VllmServer,
                                                                        tmp_path: Path) -> None:
    v = vllm_bench(vllm_python, base_url=vllm_server.base_url, model="tiny", tokenizer=vllm_server.model,
                   out_dir=tmp_path, seed=1, warmups=0, detailed=True, extra_args=ALL_STATS, **SHAPE)
    assert len(v["ttfts"]) == REQUESTS and not any(v["errors"])
    results = [RequestResult(index=i, success=not v["errors"][i], error=v["errors"][i],
                             prompt_tokens=v["input_lens"][i], output_tokens=v["output_lens"][i],
                             ttft_s=v["ttfts"][i], itl_s=v["itls"][i], latency_s=v["latencies"][i])
               for i in range(REQUESTS)]
    m = summarize(results, v["duration"])
    assert (m.completed, m.failed, m.total_input_tokens, m.total_output_tokens) == (
        v["completed"], v["failed"], v["total_input_tokens"], v["total_output_tokens"])
    for ours, theirs in ((m.requests_per_s, "request_throughput"), (m.output_tokens_per_s, "output_throughput"),
                         (m.total_tokens_per_s, "total_token_throughput")):
        assert ours == pytest.approx(v[theirs], rel=1e-9), theirs
    for name in ("ttft", "tpot", "itl", "e2el"):
        stats = getattr(m, f"{name}_ms")
        for stat in ("mean", "median", "std", "p90", "p99"):
            assert getattr(stats, stat) == pytest.approx(v[f"{stat}_{name}_ms"], rel=1e-9, abs=1e-12), \
                f"{stat}_{name}_ms"
