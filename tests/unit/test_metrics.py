"""Metrics: hand-computed golden values, agreement with a real `vllm bench serve` result, invariants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.load.client import RequestResult
from probes.load.metrics import metrics_to_dict, request_samples, stats_ms, summarize

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vllm_bench_result_cpu.json"


def ok(index, *, prompt=10, out=3, ttft=0.1, itl=(0.02, 0.04), latency=None):
    latency = ttft + sum(itl) if latency is None else latency
    return RequestResult(
        index=index, success=True, prompt_tokens=prompt, output_tokens=out, ttft_s=ttft, itl_s=list(itl), latency_s=latency
    )


def test_golden_values_by_hand():
    # Request A: ttft 100 ms, 3 tokens, latency 160 ms -> TPOT (160-100)/2 = 30 ms, ITLs 20, 40.
    # Request B: ttft 300 ms, 5 tokens, latency 700 ms -> TPOT 400/4 = 100 ms, ITLs 100 x 4.
    # Request C: 1 token (no TPOT), ttft = latency = 50 ms.  Request D failed.
    a = ok(0, prompt=10, out=3, ttft=0.1, itl=(0.02, 0.04))
    b = ok(1, prompt=20, out=5, ttft=0.3, itl=(0.1, 0.1, 0.1, 0.1))
    c = ok(2, prompt=30, out=1, ttft=0.05, itl=())
    d = RequestResult(index=3, error="HTTP 500 Internal Server Error")
    m = summarize([a, b, c, d], duration_s=2.0)
    assert (m.completed, m.failed) == (3, 1)
    assert (m.total_input_tokens, m.total_output_tokens) == (60, 9)
    assert m.requests_per_s == 1.5
    assert m.output_tokens_per_s == 4.5
    assert m.total_tokens_per_s == 34.5
    assert m.goodput_requests_per_s is None
    # TTFT {50, 100, 300}: mean 150, median 100, p90 = 100 + 0.8*(300-100) = 260, p99 = 296
    assert m.ttft_ms.mean == pytest.approx(150.0)
    assert m.ttft_ms.median == pytest.approx(100.0)
    assert m.ttft_ms.p90 == pytest.approx(260.0)
    assert m.ttft_ms.p99 == pytest.approx(296.0)
    # TPOT {30, 100} (C has one token): mean 65, median 65, population std 35
    assert m.tpot_ms.mean == pytest.approx(65.0)
    assert m.tpot_ms.std == pytest.approx(35.0)
    # ITL pooled {20, 40, 100, 100, 100, 100}: mean 460/6, median 100
    assert m.itl_ms.mean == pytest.approx(460 / 6)
    assert m.itl_ms.median == pytest.approx(100.0)
    # E2EL {160, 700, 50}: median 160
    assert m.e2el_ms.median == pytest.approx(160.0)
    assert m.errors == ("1× HTTP 500 Internal Server Error",)


def test_goodput_counts_requests_meeting_every_target():
    a = ok(0, out=3, ttft=0.1, itl=(0.02, 0.04))  # TTFT 100, TPOT 30, E2EL 160
    b = ok(1, out=5, ttft=0.3, itl=(0.1,) * 4)  # TTFT 300, TPOT 100, E2EL 700
    c = ok(2, out=1, ttft=0.05, itl=())  # TTFT 50, TPOT counts as 0, E2EL 50
    rs = [a, b, c]
    assert summarize(rs, 1.0, goodput_ttft_ms=200).goodput_requests_per_s == 2.0
    assert summarize(rs, 1.0, goodput_ttft_ms=200, goodput_tpot_ms=20).goodput_requests_per_s == 1.0  # only c
    assert summarize(rs, 1.0, goodput_tpot_ms=30).goodput_requests_per_s == 2.0  # target inclusive
    assert summarize(rs, 2.0, goodput_e2el_ms=1000).goodput_requests_per_s == 1.5


def test_all_failed_is_zero_like_vllm_and_lists_errors():
    rs = [RequestResult(index=i, error="timeout: no complete response within 5 s") for i in range(3)]
    rs.append(RequestResult(index=3, error="HTTP 503 Service Unavailable"))
    m = summarize(rs, 1.0, goodput_ttft_ms=100)
    assert (m.completed, m.failed, m.output_tokens_per_s, m.goodput_requests_per_s) == (0, 4, 0.0, 0.0)
    assert m.ttft_ms == stats_ms([]) and m.ttft_ms.p99 == 0.0
    assert m.errors == ("3× timeout: no complete response within 5 s", "1× HTTP 503 Service Unavailable")


def test_zero_output_tokens_count_as_one_like_vllm_without_tokenizer():
    r = ok(0, out=0, ttft=0.2, itl=(), latency=0.2)
    m = summarize([r], 1.0)
    assert m.total_output_tokens == 1 and m.tpot_ms.mean == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"duration_s": 0.0}, "duration_s"), ({"duration_s": 1.0, "goodput_ttft_ms": 0}, "goodput_ttft_ms"),
     ({"duration_s": 1.0, "goodput_tpot_ms": -1}, "goodput_tpot_ms")],
)
def test_invalid_input_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        summarize([ok(0)], **kwargs)


def test_agrees_with_a_real_vllm_bench_serve_result():
    """Feed vLLM's own per-request numbers (`--save-detailed`) through summarize: every statistic must match
    what `vllm bench serve` computed from them (run: 16 prompts, 32 in / 16 out, max-concurrency 4,
    --goodput ttft:20 tpot:3, --metric-percentiles 50,90,99, CPU build 0.32.0)."""
    v = json.loads(FIXTURE.read_text())
    results = [
        RequestResult(
            index=i,
            success=not v["errors"][i],
            error=v["errors"][i],
            prompt_tokens=v["input_lens"][i],
            output_tokens=v["output_lens"][i],
            ttft_s=v["ttfts"][i],
            itl_s=v["itls"][i],
            latency_s=v["latencies"][i],
        )
        for i in range(len(v["ttfts"]))
    ]
    m = summarize(results, v["duration"], goodput_ttft_ms=20, goodput_tpot_ms=3)
    assert (m.completed, m.failed) == (v["completed"], v["failed"])
    assert (m.total_input_tokens, m.total_output_tokens) == (v["total_input_tokens"], v["total_output_tokens"])
    for ours, theirs in [
        (m.requests_per_s, "request_throughput"),
        (m.output_tokens_per_s, "output_throughput"),
        (m.total_tokens_per_s, "total_token_throughput"),
        (m.goodput_requests_per_s, "request_goodput"),
    ]:
        assert ours == pytest.approx(v[theirs], rel=1e-12), theirs
    for name in ("ttft", "tpot", "itl", "e2el"):
        stats = getattr(m, f"{name}_ms")
        for stat in ("mean", "median", "std", "p90", "p99"):
            assert getattr(stats, stat) == pytest.approx(v[f"{stat}_{name}_ms"], rel=1e-9), f"{stat}_{name}_ms"


def test_dict_and_samples_are_json_ready():
    m = summarize([ok(0), RequestResult(index=1, error="x")], 1.0, goodput_ttft_ms=500)
    d = json.loads(json.dumps(metrics_to_dict(m)))
    assert d["ttft_ms"]["median"] == pytest.approx(100.0)
    assert d["errors"] == ["1× x"] and d["goodput_requests_per_s"] == 1.0
    s = json.loads(json.dumps(request_samples([ok(7)])))
    assert s[0]["index"] == 7 and s[0]["itl_ms"] == pytest.approx([20.0, 40.0]) and s[0]["latency_ms"] == pytest.approx(160.0)


_result = st.builds(
    ok,
    st.integers(0, 1000),
    prompt=st.integers(1, 4000),
    out=st.integers(1, 50),
    ttft=st.floats(0.001, 10.0),
    itl=st.lists(st.floats(0.0, 1.0), max_size=20),
)


@given(st.lists(_result, min_size=1, max_size=30), st.floats(0.1, 1000.0), st.floats(1.0, 10_000.0))
def test_fuzz_invariants(results, duration_s, ttft_target_ms):
    m = summarize(results, duration_s, goodput_ttft_ms=ttft_target_ms)
    assert m.completed == len(results) and m.failed == 0
    assert 0.0 <= m.goodput_requests_per_s <= m.requests_per_s
    assert m.total_tokens_per_s == pytest.approx(m.output_tokens_per_s + m.total_input_tokens / duration_s)
    for stats in (m.ttft_ms, m.tpot_ms, m.itl_ms, m.e2el_ms):
        assert stats.median <= stats.p90 * (1 + 1e-12) + 1e-9 and stats.p90 <= stats.p99 * (1 + 1e-12) + 1e-9
    twice = summarize(results, 2 * duration_s)
    assert twice.output_tokens_per_s == pytest.approx(m.output_tokens_per_s / 2)
    assert twice.ttft_ms == m.ttft_ms
