"""/metrics parsing against real text captured from vLLM's CPU build 0.32.0 mid-run (3 requests running)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from probes.observe.promscrape import MetricsSampler, ServerMetrics, parse_metrics, scrape, summarize_samples

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vllm_metrics_cpu_0.32.txt"


def test_parses_a_real_vllm_metrics_page():
    m = parse_metrics(FIXTURE.read_text())
    assert m == ServerMetrics(
        kv_cache_usage_perc=pytest.approx(0.0003662556464412159),
        num_requests_running=3.0,
        num_requests_waiting=0.0,
        num_preemptions_total=0.0,
        prompt_tokens_total=1472.0,
        generation_tokens_total=733.0,
        request_success_total=43.0,  # summed over finished_reason (length=43, the others 0)
        prefix_cache_queries_total=1472.0,
        prefix_cache_hits_total=0.0,
        kv_cache_size_tokens=1048576.0,  # from vllm:cache_config_info's labels
    )


def test_sums_over_engines_and_takes_max_kv_usage():
    text = (
        'vllm:num_requests_running{engine="0"} 2\n'
        'vllm:num_requests_running{engine="1"} 5\n'
        'vllm:kv_cache_usage_perc{engine="0"} 0.2\n'
        'vllm:kv_cache_usage_perc{engine="1"} 0.7\n'
        "# TYPE vllm:generation_tokens_total counter\n"
        'vllm:generation_tokens_total{engine="0"} 10\n'
        'vllm:generation_tokens_total{engine="1"} 30\n'
    )
    m = parse_metrics(text)
    assert (m.num_requests_running, m.kv_cache_usage_perc, m.generation_tokens_total) == (7.0, 0.7, 40.0)


def test_absent_metrics_are_none_for_other_servers():
    m = parse_metrics("# TYPE http_requests_total counter\nhttp_requests_total 12\n")
    assert m == ServerMetrics()


def test_malformed_text_is_a_value_error():
    with pytest.raises(ValueError, match="Prometheus"):
        parse_metrics("vllm:num_requests_running{engine= 1 2\n")


class FakeHTTP:
    def __init__(self, text: str, status: int = 200) -> None:
        self.text, self.status_code, self.urls = text, status, []

    def get(self, url: str, timeout: float):
        self.urls.append((url, timeout))
        return self


def test_scrape_uses_the_session_and_returns_none_on_trouble():
    fake = FakeHTTP(FIXTURE.read_text())
    assert scrape("http://h:1/", session=fake, timeout_s=2.0).num_requests_running == 3.0
    assert fake.urls == [("http://h:1/metrics", 2.0)]
    assert scrape("http://h:1", session=FakeHTTP("", status=404)) is None
    assert scrape("http://h:1", session=FakeHTTP("vllm:x{ 1 2")) is None
    assert scrape("http://127.0.0.1:9", timeout_s=1.0) is None  # nothing listens on the discard port


def test_sampler_collects_in_the_background_and_stops():
    fake = FakeHTTP('vllm:kv_cache_usage_perc{engine="0"} 0.5\n')
    with MetricsSampler("http://h:1", interval_s=0.01, session=fake) as sampler:
        deadline = time.monotonic() + 5
        while len(sampler.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    n = len(sampler.samples)
    assert n >= 3
    time.sleep(0.05)
    assert len(sampler.samples) == n  # stopped
    times = [t for t, _ in sampler.samples]
    assert times == sorted(times) and all(m.kv_cache_usage_perc == 0.5 for _, m in sampler.samples)
    with pytest.raises(ValueError, match="interval_s"):
        MetricsSampler("http://h:1", interval_s=0)


def test_summary_of_a_window():
    before = parse_metrics(FIXTURE.read_text())
    after = ServerMetrics(
        **{**before.__dict__, "prompt_tokens_total": 1472.0 + 640, "generation_tokens_total": 733.0 + 320,
           "request_success_total": 63.0, "prefix_cache_queries_total": 1472.0 + 640,
           "prefix_cache_hits_total": 160.0, "num_preemptions_total": 2.0}
    )
    samples = [(0.0, ServerMetrics(kv_cache_usage_perc=0.1, num_requests_running=4, num_requests_waiting=0)),
               (1.0, ServerMetrics(kv_cache_usage_perc=0.3, num_requests_running=8, num_requests_waiting=2)),
               (2.0, ServerMetrics())]
    s = summarize_samples(samples, before, after)
    assert s["samples"] == 3
    assert s["kv_cache_usage_peak"] == 0.3 and s["kv_cache_usage_mean"] == pytest.approx(0.2)
    assert (s["num_requests_running_max"], s["num_requests_waiting_max"]) == (8, 2)
    assert (s["prompt_tokens"], s["generation_tokens"], s["request_success"], s["preemptions"]) == (640, 320, 20, 2)
    assert s["prefix_cache_hit_rate"] == pytest.approx(160 / 640)
    assert s["kv_cache_size_tokens"] == 1048576.0


def test_summary_without_scrapes_is_all_unknown():
    s = summarize_samples([], None, None)
    assert s["samples"] == 0
    assert all(v is None for k, v in s.items() if k != "samples")
