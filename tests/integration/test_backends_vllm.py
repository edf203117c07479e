"""Text-prompt request kinds on a real vLLM (CPU build): completions and chat, with vLLM's length-forcing
fields and with the standard OpenAI body a hosted API gets. Counts only (no timing): every request answered
2xx, our request and token counts equal the deltas of vLLM's own /metrics counters, and the prompt length
of a text prompt is what the word list promises on the synthetic tokenizer (one token a word)."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from probes.load.backends import get_backend
from probes.load.client import run_load_sync
from probes.load.metrics import summarize
from probes.load.workload import WorkloadSpec, requests_for
from probes.target.server import VllmServer

pytestmark = [pytest.mark.integration]

SPEC = WorkloadSpec(input_tokens=40, output_tokens=6, num_requests=6, seed=11)


def _counters(base_url: str) -> dict[str, float]:
    """vLLM's request/token counters and HTTP responses by status class and handler (2xx, 4xx, 5xx)."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in ("vllm:request_success_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total"):
                out[s.name] = out.get(s.name, 0.0) + s.value
            elif s.name == "http_requests_total":
                key = f"http {s.labels.get('handler')} {s.labels.get('status')}"
                out[key] = out.get(key, 0.0) + s.value
    return out


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] - before.get(k, 0.0)}


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("kind", "vllm_extras"), [("completions", True), ("chat", True), ("chat", False)])
def test_text_kinds_on_vllm_count_like_the_server(vllm_server: VllmServer, kind: str, vllm_extras: bool) -> None:
    backend = get_backend(kind, vllm_extras=vllm_extras)
    reqs = requests_for(SPEC, backend=kind, salt=f"{kind}-{vllm_extras}")
    before = _counters(vllm_server.base_url)
    out = run_load_sync(base_url=vllm_server.base_url, model=vllm_server.model_name, requests=reqs,
                        concurrency=3, backend=backend, request_timeout_s=120.0)
    delta = _delta(before, _counters(vllm_server.base_url))

    assert [r.error for r in out.results if not r.success] == []
    n = SPEC.num_requests
    # the server answered every request 2xx and nothing else (no 4xx/5xx on any handler)
    assert {k: v for k, v in delta.items() if k.startswith("http ")} == {f"http {backend.path} 2xx": n}
    assert delta["vllm:request_success_total"] == n
    assert delta["vllm:prompt_tokens_total"] == sum(r.prompt_tokens for r in out.results)
    assert delta["vllm:generation_tokens_total"] == sum(r.output_tokens for r in out.results)

    overheads = {r.prompt_tokens - SPEC.input_tokens for r in out.results}
    if kind == "completions":
        assert overheads == {0}  # one token per word, no BOS on the synthetic tokenizer
    else:
        assert len(overheads) == 1 and overheads.pop() > 0  # the chat template's fixed tokens

    m = summarize(out.results, out.duration_s)
    assert all(r.requested_output_tokens == SPEC.output_tokens for r in out.results)
    if vllm_extras:  # ignore_eos + min_tokens: the asked length, exactly
        assert {r.output_tokens for r in out.results} == {SPEC.output_tokens}
        assert m.output_length_mismatches == 0 and m.output_length_min_ratio == 1.0
    else:  # the hosted body: may stop early at EOS, counted, never longer
        assert all(1 <= r.output_tokens <= SPEC.output_tokens for r in out.results)
        assert m.output_length_mismatches == sum(r.output_tokens != SPEC.output_tokens for r in out.results)
