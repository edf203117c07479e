"""vLLM's ``/metrics``: parse (with ``prometheus_client.parser``, no regexes), scrape, sample, summarise.

A metric is the SUM of its samples over all label sets (engines, ``finished_reason``, ...) except
``kv_cache_usage_perc`` (a fraction 0..1 despite its name), which takes the MAX over engines, and
``kv_cache_size_tokens``, read from the labels of ``vllm:cache_config_info`` (summed over engines).
An absent metric is ``None`` (other servers, older vLLM).

>>> m = parse_metrics('vllm:num_requests_running{engine="0"} 3\\nvllm:prompt_tokens_total{engine="0"} 64\\n')
>>> m.num_requests_running, m.prompt_tokens_total, m.kv_cache_usage_perc
(3.0, 64.0, None)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["ServerMetrics", "parse_metrics", "scrape", "MetricsSampler", "summarize_samples"]

# ServerMetrics field -> the sample name in vLLM's exposition.
_SAMPLE_NAMES = {
    "kv_cache_usage_perc": "vllm:kv_cache_usage_perc",
    "num_requests_running": "vllm:num_requests_running",
    "num_requests_waiting": "vllm:num_requests_waiting",
    "num_preemptions_total": "vllm:num_preemptions_total",
    "prompt_tokens_total": "vllm:prompt_tokens_total",
    "generation_tokens_total": "vllm:generation_tokens_total",
    "request_success_total": "vllm:request_success_total",
    "prefix_cache_queries_total": "vllm:prefix_cache_queries_total",
    "prefix_cache_hits_total": "vllm:prefix_cache_hits_total",
}
_MAX_OVER_LABELS = {"kv_cache_usage_perc"}
_CACHE_INFO = "vllm:cache_config_info"


@dataclass(frozen=True)
class ServerMetrics:
    """One scrape of a vLLM server (gauges now, counters since start); ``None`` = not exposed."""

    kv_cache_usage_perc: float | None = None
    num_requests_running: float | None = None
    num_requests_waiting: float | None = None
    num_preemptions_total: float | None = None
    prompt_tokens_total: float | None = None
    generation_tokens_total: float | None = None
    request_success_total: float | None = None
    prefix_cache_queries_total: float | None = None
    prefix_cache_hits_total: float | None = None
    kv_cache_size_tokens: float | None = None


def parse_metrics(text: str) -> ServerMetrics:
    """Read the metrics above from Prometheus text exposition; raises ``ValueError`` on malformed text.

    >>> parse_metrics('vllm:request_success_total{finished_reason="length"} 5\\n'
    ...               'vllm:request_success_total{finished_reason="stop"} 2\\n').request_success_total
    7.0
    """
    wanted = {sample: name for name, sample in _SAMPLE_NAMES.items()}
    values: dict[str, list[float]] = {}
    kv_sizes: list[float] = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in wanted:
                    values.setdefault(wanted[sample.name], []).append(float(sample.value))
                elif sample.name == _CACHE_INFO:
                    size = sample.labels.get("kv_cache_size_tokens")
                    if size not in (None, "None", ""):
                        kv_sizes.append(float(size))
    except (ValueError, TypeError, IndexError, KeyError) as exc:  # the parser's errors on malformed text
        raise ValueError(f"metrics text is not valid Prometheus exposition: {exc}") from exc
    result: dict[str, float | None] = {}
    for name, found in values.items():
        result[name] = max(found) if name in _MAX_OVER_LABELS else sum(found)
    if kv_sizes:
        result["kv_cache_size_tokens"] = sum(kv_sizes)
    return ServerMetrics(**result)


def scrape(base_url: str, *, session: requests.Session | None = None, timeout_s: float = 5.0) -> ServerMetrics | None:
    """GET ``{base_url}/metrics`` and parse it; ``None`` when unreachable, not 200 or not parseable."""
    getter: Any = session if session is not None else requests
    try:
        response = getter.get(base_url.rstrip("/") + "/metrics", timeout=timeout_s)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    try:
        return parse_metrics(response.text)
    except ValueError:
        return None


class MetricsSampler:
    """Scrape ``/metrics`` every ``interval_s`` in a background thread.

    ``samples`` holds ``(t_s, ServerMetrics)`` with ``t_s`` = ``time.monotonic()`` offset from ``start()``;
    failed scrapes are skipped. Use as a context manager, or ``start()`` / ``stop()``.
    """

    def __init__(self, base_url: str, interval_s: float = 1.0, session: requests.Session | None = None):
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self.base_url = base_url
        self.interval_s = interval_s
        self.session = session
        self.samples: list[tuple[float, ServerMetrics]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def start(self) -> MetricsSampler:
        """Start sampling (the first scrape is immediate)."""
        if self._thread is not None:
            raise RuntimeError("MetricsSampler already started")
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="metrics-sampler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        session = self.session if self.session is not None else requests.Session()
        try:
            while not self._stop.is_set():
                sample = scrape(self.base_url, session=session, timeout_s=max(self.interval_s, 1.0))
                if sample is not None:
                    self.samples.append((time.monotonic() - self._t0, sample))
                self._stop.wait(self.interval_s)
        finally:
            if self.session is None:
                session.close()

    def stop(self) -> list[tuple[float, ServerMetrics]]:
        """Stop and join the thread (bounded wait); returns the samples."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.interval_s))
        return self.samples

    def __enter__(self) -> MetricsSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _delta(before: ServerMetrics | None, after: ServerMetrics | None, name: str) -> float | None:
    if before is None or after is None:
        return None
    a, b = getattr(after, name), getattr(before, name)
    return None if a is None or b is None else a - b


def summarize_samples(
    samples: list[tuple[float, ServerMetrics]], before: ServerMetrics | None, after: ServerMetrics | None
) -> dict[str, Any]:
    """What the server saw during one point.

    Gauges from ``samples``: ``kv_cache_usage_peak`` / ``kv_cache_usage_mean`` (fractions 0..1),
    ``num_requests_running_max``, ``num_requests_waiting_max``. Counter deltas ``after - before``:
    ``preemptions``, ``prompt_tokens``, ``generation_tokens``, ``request_success``, ``prefix_cache_queries``,
    ``prefix_cache_hits``; ``prefix_cache_hit_rate = hits / queries`` (None when no query).
    ``kv_cache_size_tokens`` from the latest scrape. Anything unknown is None.

    >>> b = ServerMetrics(prompt_tokens_total=10, prefix_cache_queries_total=100, prefix_cache_hits_total=0)
    >>> a = ServerMetrics(prompt_tokens_total=74, prefix_cache_queries_total=300, prefix_cache_hits_total=50)
    >>> s = summarize_samples([(0.0, ServerMetrics(kv_cache_usage_perc=0.25))], b, a)
    >>> s["prompt_tokens"], s["prefix_cache_hit_rate"], s["kv_cache_usage_peak"]
    (64, 0.25, 0.25)
    """

    def gauge(name: str) -> list[float]:
        return [v for _, m in samples if (v := getattr(m, name)) is not None]

    kv = gauge("kv_cache_usage_perc")
    running = gauge("num_requests_running")
    waiting = gauge("num_requests_waiting")
    queries = _delta(before, after, "prefix_cache_queries_total")
    hits = _delta(before, after, "prefix_cache_hits_total")
    latest = next(
        (m.kv_cache_size_tokens for m in [after, *(m for _, m in reversed(samples))] if m and m.kv_cache_size_tokens),
        None,
    )
    return {
        "samples": len(samples),
        "kv_cache_usage_peak": max(kv) if kv else None,
        "kv_cache_usage_mean": sum(kv) / len(kv) if kv else None,
        "num_requests_running_max": max(running) if running else None,
        "num_requests_waiting_max": max(waiting) if waiting else None,
        "preemptions": _delta(before, after, "num_preemptions_total"),
        "prompt_tokens": _delta(before, after, "prompt_tokens_total"),
        "generation_tokens": _delta(before, after, "generation_tokens_total"),
        "request_success": _delta(before, after, "request_success_total"),
        "prefix_cache_queries": queries,
        "prefix_cache_hits": hits,
        "prefix_cache_hit_rate": hits / queries if hits is not None and queries else None,
        "kv_cache_size_tokens": latest,
    }
