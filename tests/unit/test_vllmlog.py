"""probes.observe.vllmlog against real server logs: the H100 reference runs (GPU build 0.26.0) and the CPU build."""

from __future__ import annotations

import gzip
from pathlib import Path

from probes.observe.vllmlog import STARTUP_KEYS, parse_startup, startup_notes

REF = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "h100-vllm0.26-2026-11-28"

CPU_LOG = """\
(EngineCore pid=16972) INFO 11-28 00:05:33 [core.py:133] Initializing a V1 LLM engine (v0.32.0) with config: model='/tmp/m'
(EngineCore pid=16972) INFO 11-28 00:05:36 [cpu_worker.py:260] Explicitly set (1.0/12.59) GiB for KV cache on node 0.
(EngineCore pid=16972) INFO 11-28 00:05:36 [kv_cache_utils.py:2327] CPU KV cache size: 1,048,576 tokens, Maximum concurrency for 512 tokens per request: 2048.00x
(EngineCore pid=16972) INFO 11-28 00:05:40 [core.py:402] init engine (profile, create kv cache, warmup model) took 4.29 s
"""


def _ref(label: str) -> dict:
    return parse_startup(gzip.open(REF / f"vllm-{label}.log.gz", "rt").read())


def test_h100_llama8b_log():
    s = _ref("llama-3.1-8b-bf16")
    assert s["device"] == "GPU" and s["engine_version"] == "0.26.0"
    assert (s["weights_gib"], s["kv_cache_gib"], s["kv_cache_tokens"]) == (15.0, 56.51, 462_944)
    assert (s["device_total_gib"], s["gpu_memory_utilization"], s["cuda_graph_gib"]) == (79.18, 0.92, 0.98)
    assert s["torch_compile_s"] == 30.41 and s["init_engine_s"] == 63.04
    # the budget identity vLLM itself prints: util x total = weights + activations + non-torch + KV (to 0.05 GiB)
    budget = s["gpu_memory_utilization"] * s["device_total_gib"]
    parts = s["weights_gib"] + s["peak_activation_gib"] + s["non_torch_gib"] + s["kv_cache_gib"]
    assert abs(budget - parts) < 0.05


def test_h100_llama70b_fp8_log_and_notes():
    s = _ref("llama-3.3-70b-fp8")
    assert (s["weights_gib"], s["kv_cache_tokens"], s["max_concurrency"]) == (67.73, 8_576, 2.09)
    notes = startup_notes(s)
    assert any("8,576 tokens" in n for n in notes)
    assert any("torch.compile 111.1 s" in n for n in notes)
    assert any("outside --gpu-memory-utilization 0.92" in n for n in notes)


def test_cpu_build_log():
    s = parse_startup(CPU_LOG)
    assert s["device"] == "CPU" and s["engine_version"] == "0.32.0"
    assert s["kv_cache_tokens"] == 1_048_576 and s["max_concurrency"] == 2048.0
    assert s["weights_gib"] is None and s["cuda_graph_gib"] is None
    assert startup_notes(s) == ["vLLM KV cache: 1,048,576 tokens, room for 2048 requests of 512 tokens at once"]


def test_garbage_gives_all_none():
    s = parse_startup("Traceback ... CUDA out of memory\n\x00\xff")
    assert set(s) == set(STARTUP_KEYS) and all(v is None for v in s.values())
    assert startup_notes(s) == []
