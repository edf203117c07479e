"""Per-GPU memory under TP x PP x DP: hand-worked values, vLLM's layer split, invariants and fuzzing."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from calculators.catalog import gpu, gpus
from calculators.memory import (
    GIB,
    WEIGHT_DTYPES,
    FitInput,
    fit,
    kv_bytes_per_token,
    max_startup_utilization,
    per_gpu_memory,
    weight_bytes,
    weight_bytes_per_gpu,
)
from calculators.modelspec import model, models
from calculators.parallel import parallel_layout, pp_partition, require_fit_supported
from tests.strategies import FUZZ

L8 = model("meta-llama/Llama-3.1-8B-Instruct")
L70 = model("meta-llama/Llama-3.3-70B-Instruct")


def _tps(arch):
    return [t for t in (1, 2, 4, 8, 16) if arch.attention_heads % t == 0
            and (arch.kv_heads % t == 0 or t % arch.kv_heads == 0)]


def test_vllm_layer_split_by_hand():
    # get_pp_indices: the remainder goes one each to the stages just before the last
    assert pp_partition(80, 3) == (27, 27, 26)
    assert pp_partition(80, 6) == (13, 13, 13, 14, 14, 13)
    assert pp_partition(32, 4) == (8, 8, 8, 8)
    with pytest.raises(ValueError, match="must not exceed the layers"):
        pp_partition(4, 5)


def test_tp2_weights_per_gpu_by_hand():
    # Llama-70B bf16: 2 B * 70.55e9 params / 2 ranks; only the RMSNorms (161 * 8192 * 2 B = 2.6 MB) are replicated
    norms = 2 * (2 * 80 + 1) * 8192
    assert weight_bytes_per_gpu(L70, "bf16", 2) == pytest.approx((weight_bytes(L70, "bf16") - norms) / 2 + norms, abs=1)
    assert weight_bytes_per_gpu(L70, "bf16", 1) == weight_bytes(L70, "bf16")


def test_pp_stages_hold_their_layers_plus_embedding_or_lm_head_by_hand():
    # Llama-8B bf16, PP=2: 16 decoder layers of (14.96 GiB - 2 * 0.98 GiB embeddings - norm) / 32 + one 0.98 GiB table
    p = parallel_layout(L8, pp=2)
    table = 2 * 128256 * 4096
    per_layer = (weight_bytes(L8, "bf16") - 2 * table - 2 * 4096) / 32
    assert p.weights_bytes_per_gpu == pytest.approx(16 * per_layer + table + 2 * 4096, abs=1)
    assert p.kv_bytes_per_token_per_gpu == kv_bytes_per_token(L8) // 2
    assert (p.gpus, p.replicas) == (2, 1)


def test_dp_multiplies_gpus_not_per_gpu_memory():
    one, four = parallel_layout(L70, tp=4), parallel_layout(L70, tp=4, dp=4)
    assert (four.gpus, four.replicas) == (16, 4)
    assert (four.weights_bytes_per_gpu, four.kv_bytes_per_token_per_gpu) == (
        one.weights_bytes_per_gpu, one.kv_bytes_per_token_per_gpu)


def test_pp_is_refused_by_the_fit_with_a_reason_and_tp_dp_pass():
    require_fit_supported(parallel_layout(L70, tp=8, dp=2))
    with pytest.raises(ValueError, match=r"pipeline parallel size 4 is not modelled.*\(20, 20, 20, 20\) layers"):
        require_fit_supported(parallel_layout(L70, pp=4))


def test_kv_heads_replicate_past_their_count():
    m = per_gpu_memory(L70, 16, "bf16", 8192)
    assert (m.kv_heads_per_gpu, m.kv_heads_replicated) == (1, True)
    assert per_gpu_memory(L70, 8, "bf16", 8192).kv_heads_replicated is False


def test_comm_buffers_only_at_tp_above_one_and_outside_the_budget():
    # the same utilization leaves the same budget; TP=2 moves ~1 GiB of NCCL/all-reduce buffers out of the free
    # memory at start, not out of the KV cache
    a, b = per_gpu_memory(L8, 1, "bf16", 8192), per_gpu_memory(L8, 2, "bf16", 8192)
    assert a.comm_buffers_bytes == 0 and b.comm_buffers_bytes / GIB == pytest.approx(1.02)
    assert b.startup_used_bytes - a.startup_used_bytes == b.comm_buffers_bytes
    r = fit(FitInput(L8, gpu("h100-sxm"), 2, max_model_len=4096))
    assert r.budget_gib == pytest.approx(0.92 * 79.18)
    assert r.startup_free_gib == pytest.approx(79.18 - 1.54)
    assert r.comm_buffers_gib == pytest.approx(1.02)


@FUZZ
@given(st.sampled_from(list(models().values())), st.sampled_from(WEIGHT_DTYPES), st.data())
def test_fuzz_layout_weights_and_layers_add_up(arch, dtype, data):
    tp = data.draw(st.sampled_from(_tps(arch)))
    pp = data.draw(st.integers(1, min(arch.layers, 16)))
    p = parallel_layout(arch, tp=tp, pp=pp, weight_dtype=dtype)
    assert sum(p.layers_per_stage) == arch.layers and max(p.layers_per_stage) - min(p.layers_per_stage) <= 1
    # the heaviest stage holds at least its share of the whole and never more than the whole
    assert weight_bytes(arch, dtype) / (tp * pp) <= p.weights_bytes_per_gpu * (1 + 1e-9)
    assert p.weights_bytes_per_gpu <= weight_bytes_per_gpu(arch, dtype, tp)
    assert p.kv_bytes_per_token_per_gpu <= kv_bytes_per_token(arch, "auto", tp)


@FUZZ
@given(st.sampled_from(list(gpus().values())), st.sampled_from([1, 2, 4, 8]))
def test_fuzz_the_largest_accepted_utilization_is_accepted(g, tp):
    u = max_startup_utilization(g, tp)
    arch = L8 if L8.attention_heads % tp == 0 else L70
    assume(u > 0)
    r = fit(FitInput(arch, g, tp, gpu_memory_utilization=u, max_model_len=1024))
    assert not r.utilization_refused
    over = min(1.0, u + 0.02)
    assert fit(FitInput(arch, g, tp, gpu_memory_utilization=over, max_model_len=1024)).utilization_refused


@FUZZ
@given(st.sampled_from(list(gpus().values())), st.sampled_from([1, 2, 8]), st.floats(0.3, 1.0))
def test_fuzz_the_suggested_utilization_clears_the_headroom_flag(g, tp, util):
    r = fit(FitInput(L70 if tp == 8 else L8, g, tp, gpu_memory_utilization=util, max_model_len=1024))
    assert not (r.utilization_refused and r.runtime_headroom_short)
    if r.runtime_headroom_short:
        suggested = float(re.search(r"--gpu-memory-utilization ([0-9.]+)", r.reasons[-1]).group(1))
        assume(suggested > 0)
        assert suggested < util
        lower = fit(FitInput(L70 if tp == 8 else L8, g, tp, gpu_memory_utilization=suggested, max_model_len=1024))
        assert not lower.runtime_headroom_short and not lower.utilization_refused
