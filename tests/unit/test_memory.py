"""Memory fit: golden values by hand, invariants, LoRA sizes, bad input and fuzzing."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from calculators.catalog import gpu, gpus
from calculators.memory import (
    GIB,
    KV_CACHE_DTYPES,
    VLLM_0_26,
    WEIGHT_DTYPES,
    FitInput,
    activation_bytes,
    check_tensor_parallel,
    fit,
    kv_bytes_per_sequence,
    kv_bytes_per_token,
    kv_heads_per_gpu,
    kv_layer_groups,
    lora_adapter_bytes,
    weight_bytes,
    weight_bytes_per_gpu,
)
from calculators.modelspec import model, models
from tests.strategies import FUZZ

L8 = model("meta-llama/Llama-3.1-8B-Instruct")
L70 = model("meta-llama/Llama-3.3-70B-Instruct")


def test_kv_bytes_per_token_by_hand():
    assert kv_bytes_per_token(L8) == 2 * 32 * 8 * 128 * 2 == 131_072
    assert kv_bytes_per_token(L70) == 327_680
    assert kv_bytes_per_token(L70, "fp8") == 163_840
    assert kv_bytes_per_token(L70, "auto", 2) == 163_840  # KV heads split across TP
    assert kv_bytes_per_token(L70, "auto", 16) == kv_bytes_per_token(L70, "auto", 8)  # replicated past 8 heads


def test_kv_heads_replication_rule():
    assert [kv_heads_per_gpu(L70, tp) for tp in (1, 2, 4, 8, 16, 32, 64)] == [8, 4, 2, 1, 1, 1, 1]


def test_weight_bytes_by_hand():
    assert weight_bytes(L8, "bf16") == 2 * L8.total_params
    # int4: linear weights at 0.5 B + 2.5 B per group of 128; embeddings, lm_head and norms 2 B
    emb_norm = L8.total_params - L8.linear_params
    assert weight_bytes(L8, "int4-awq") == pytest.approx(L8.linear_params * (0.5 + 2.5 / 128) + 2 * emb_norm, abs=1)
    assert weight_bytes(L70, "fp8") / GIB == pytest.approx(67.7, abs=0.05)  # the logged H100 value


def test_fit_arithmetic_by_hand():
    r = fit(FitInput(L8, gpu("h100-sxm"), max_model_len=4096, gpu_memory_utilization=0.5))
    act = 8192 * 2 * (1.55 * 14336 + 12.5 * 4096)
    avail = 0.5 * 79.18 * GIB - 2 * L8.total_params - act - 0.22 * GIB
    assert r.kv_capacity_tokens == int(avail // (16 * 131_072)) * 16
    assert r.max_concurrent_sequences == r.kv_capacity_tokens / 4096
    assert r.activation_gib == pytest.approx(act / GIB)


def test_small_gpus_use_the_smaller_batched_token_default():
    assert VLLM_0_26.default_max_num_batched_tokens(gpu("a100-80gb")) == 2048
    assert VLLM_0_26.default_max_num_batched_tokens(gpu("l4")) == 2048
    assert VLLM_0_26.default_max_num_batched_tokens(gpu("h100-sxm")) == 8192


def test_70b_bf16_on_one_h100_does_not_fit_and_says_what_would():
    r = fit(FitInput(L70, gpu("h100-sxm"), max_model_len=4096))
    assert r.verdict == "does-not-fit" and not r.fits and r.kv_capacity_tokens == 0
    assert any(f.startswith("fp8 weights") for f in r.fixes)
    assert any(f.startswith("TP=2") for f in r.fixes)
    assert any("bigger GPU" in f for f in r.fixes)


def test_short_context_verdict_and_fix():
    r = fit(FitInput(L70, gpu("h100-sxm"), weight_dtype="fp8", max_model_len=32768))
    assert r.verdict == "short-context"
    assert f"--max-model-len {r.max_context_tokens}" in " ".join(r.fixes)
    again = fit(FitInput(L70, gpu("h100-sxm"), weight_dtype="fp8", max_model_len=r.max_context_tokens))
    assert again.verdict == "fits"


def test_lora_sizes_match_the_worked_examples():
    attn = ("q_proj", "k_proj", "v_proj", "o_proj")
    assert lora_adapter_bytes(L8, 16, attn) / 1e6 == pytest.approx(27, abs=0.5)
    assert lora_adapter_bytes(L8, 16) / 1e6 == pytest.approx(84, abs=0.5)
    assert lora_adapter_bytes(L70, 16, attn) / 1e6 == pytest.approx(131, abs=0.5)
    assert lora_adapter_bytes(L70, 8) / 1e6 == pytest.approx(207, abs=0.5)
    assert lora_adapter_bytes(L70, 64) == 8 * lora_adapter_bytes(L70, 8)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tensor_parallel_size": 3}, "tensor parallel size 3 must divide the attention heads (64)"),
    ({"tensor_parallel_size": 0}, "tensor_parallel_size must be >= 1"),
    ({"weight_dtype": "int3"}, "weight_dtype must be one of"),
    ({"kv_cache_dtype": "int8"}, "kv_cache_dtype must be one of"),
    ({"max_model_len": 10**6}, "max_model_len must be <= 131072"),
    ({"gpu_memory_utilization": 0.0}, "gpu_memory_utilization must be > 0"),
    ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization must be <= 1"),
    ({"gpu_memory_utilization": float("nan")}, "gpu_memory_utilization must be a finite number"),
])
def test_bad_input_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=None) as exc:
        FitInput(L70, gpu("h100-sxm"), **kwargs)
    assert message in str(exc.value)


def test_kv_heads_must_divide_or_be_divided():
    qwen7 = model("Qwen/Qwen2.5-7B-Instruct")  # 28 heads, 4 KV heads
    with pytest.raises(ValueError, match="must be a multiple of the KV heads"):
        check_tensor_parallel(qwen7, 14)
    check_tensor_parallel(qwen7, 28 // 7)  # 4 divides 28 and equals the KV heads


_models = st.sampled_from(list(models().values()))
_gpus = st.sampled_from(list(gpus().values()))


@st.composite
def fit_inputs(draw):
    arch = draw(_models)
    tps = [t for t in (1, 2, 4, 8) if arch.attention_heads % t == 0 and (arch.kv_heads % t == 0 or t % arch.kv_heads == 0)]
    return FitInput(
        arch, draw(_gpus), draw(st.sampled_from(tps)), draw(st.sampled_from(WEIGHT_DTYPES)),
        draw(st.sampled_from(KV_CACHE_DTYPES)),
        draw(st.integers(16, arch.max_position_embeddings)),
        draw(st.floats(0.05, 1.0)),
        draw(st.one_of(st.none(), st.integers(256, 65536))),
    )


@FUZZ
@given(fit_inputs(), st.floats(0.01, 0.5))
def test_more_memory_never_fits_less(inp, extra):
    a = fit(inp)
    bigger_gpu = dataclasses.replace(inp.gpu, usable_memory_gib=inp.gpu.usable_memory_gib * (1 + extra))
    more_util = dataclasses.replace(inp, gpu_memory_utilization=min(1.0, inp.gpu_memory_utilization + extra))
    for b in (fit(dataclasses.replace(inp, gpu=bigger_gpu)), fit(more_util)):
        assert b.kv_capacity_tokens >= a.kv_capacity_tokens
    # a bigger GPU never loses a fit; more utilization loses one only where vLLM refuses it at startup
    assert not (a.fits and not fit(dataclasses.replace(inp, gpu=bigger_gpu)).fits)
    b = fit(more_util)
    assert not (a.fits and not b.fits) or b.utilization_refused


@FUZZ
@given(fit_inputs())
def test_fp8_never_needs_more_than_bf16(inp):
    bf = fit(dataclasses.replace(inp, weight_dtype="bf16"))
    f8 = fit(dataclasses.replace(inp, weight_dtype="fp8"))
    i4 = fit(dataclasses.replace(inp, weight_dtype="int4-awq"))
    assert i4.weights_gib <= f8.weights_gib <= bf.weights_gib
    assert i4.kv_capacity_tokens >= f8.kv_capacity_tokens >= bf.kv_capacity_tokens
    kv8 = fit(dataclasses.replace(inp, kv_cache_dtype="fp8"))
    kv16 = fit(dataclasses.replace(inp, kv_cache_dtype="auto"))
    assert kv8.kv_capacity_tokens >= kv16.kv_capacity_tokens


@FUZZ
@given(fit_inputs())
def test_tp_invariants(inp):
    # What holds: per-GPU weights and activations never grow with TP, and doubling an already-parallel TP
    # (2 -> 4 -> 8) never gives fewer KV tokens. TP 1 -> 2 is not claimed: TP > 1 adds ~1 GiB of NCCL and
    # custom all-reduce buffers per GPU before vLLM's snapshot, which can refuse a utilization TP=1 accepts.
    tp = inp.tensor_parallel_size
    assume(tp >= 2 and inp.arch.attention_heads % (2 * tp) == 0
           and (inp.arch.kv_heads % (2 * tp) == 0 or (2 * tp) % inp.arch.kv_heads == 0))
    a = fit(inp)
    b = fit(dataclasses.replace(inp, tensor_parallel_size=2 * tp))
    assert b.weights_gib <= a.weights_gib and b.activation_gib <= a.activation_gib
    assert b.kv_capacity_tokens >= a.kv_capacity_tokens


@FUZZ
@given(fit_inputs())
def test_verdict_is_consistent_with_the_numbers(inp):
    r = fit(inp)
    assert r.fits == (r.verdict == "fits") == (r.kv_capacity_tokens >= r.max_model_len and not r.utilization_refused)
    assert r.utilization_refused == (r.budget_gib > r.startup_free_gib)
    assert r.kv_capacity_tokens % 16 == 0 and r.kv_capacity_tokens >= 0
    if r.verdict == "fits":
        assert r.fixes == ()
    assert r.activation_gib * GIB == pytest.approx(
        activation_bytes(inp.arch, inp.tensor_parallel_size, r.max_num_batched_tokens), abs=1)


@FUZZ
@given(st.dictionaries(st.sampled_from(["tensor_parallel_size", "max_model_len", "gpu_memory_utilization",
                                         "max_num_batched_tokens", "concurrency"]),
                       st.one_of(st.integers(-5, 10**7), st.floats(allow_nan=True, allow_infinity=True),
                                 st.text(max_size=3), st.none(), st.booleans())))
def test_fuzz_fit_input_returns_result_or_value_error(kwargs):
    try:
        inp = FitInput(L8, gpu("h100-sxm"), **kwargs)
    except ValueError:
        return
    assert fit(inp).verdict in ("fits", "short-context", "does-not-fit")


def test_lora_slots_count_as_weights():
    base = fit(FitInput(L8, gpu("h100-sxm"), max_model_len=4096))
    with_lora = fit(FitInput(L8, gpu("h100-sxm"), max_model_len=4096, max_loras=4, max_lora_rank=64))
    assert (with_lora.weights_gib - base.weights_gib) * GIB == pytest.approx(4 * lora_adapter_bytes(L8, 64))
    assert with_lora.kv_capacity_tokens < base.kv_capacity_tokens


# --- MLA, MoE and sliding-window memory (issue 9 item 2) ----------------------------------------------------------

DS_LITE = model("deepseek-ai/DeepSeek-V2-Lite-Chat")


def test_deepseek_v2_lite_on_an_l4_is_refused_with_its_real_weights_and_mla_kv():
    # the done-when: >= 28 GiB of weights and MLA-sized KV (~31 KB/token bf16), or refused by name.
    # Before: 5.0 GiB of weights and 221 KB/token, and it "fit".
    r = fit(FitInput(DS_LITE, gpu("l4"), max_model_len=4096))
    assert r.weights_gib >= 28 and r.weights_gib == pytest.approx(15_706_484_224 * 2 / GIB)  # 29.26
    assert r.kv_bytes_per_token == 27 * (512 + 64) * 2 == 31_104
    assert r.verdict == "does-not-fit" and not r.fits


def test_deepseek_v2_lite_fits_on_an_h100_with_mla_kv():
    r = fit(FitInput(DS_LITE, gpu("h100-sxm"), max_model_len=4096))
    assert r.fits and r.weights_gib >= 28 and r.kv_bytes_per_token == 31_104
    assert r.kv_capacity_tokens == pytest.approx(r.kv_cache_gib * GIB / 31_104, abs=16)


def test_mla_latent_is_not_split_across_tensor_parallel_ranks():
    # vLLM MLAAttention: num_kv_heads = 1, head_size = kv_lora_rank + qk_rope_head_dim on every rank
    assert [kv_bytes_per_token(DS_LITE, "auto", tp) for tp in (1, 2, 4, 8)] == [31_104] * 4
    assert kv_bytes_per_token(DS_LITE, "fp8") == 15_552
    check_tensor_parallel(DS_LITE, 16)  # 16 heads; the 16 "KV heads" of the config play no part
    with pytest.raises(ValueError, match="must divide the attention heads"):
        check_tensor_parallel(DS_LITE, 3)
    r = fit(FitInput(DS_LITE, gpu("h100-sxm"), 2, max_model_len=4096))
    assert r.kv_bytes_per_token == r.kv_bytes_per_token_model == 31_104
    assert any("MLA" in line and "does not split" in line for line in r.reasons)


def test_mla_replicated_down_projections_and_moe_routers_per_gpu():
    # q_a/kv_a projections (ReplicatedLinear) and routers sit whole on every rank; the rest is split
    w1 = weight_bytes(DS_LITE, "bf16")
    w2 = weight_bytes_per_gpu(DS_LITE, "bf16", 2)
    replicated = 2 * (27 * 2048 * 576 + 26 * 2048 * 64 + 27 * (2 * 2048 + 512) + 2048)
    assert w2 == math.ceil((w1 - replicated) / 2) + replicated


def test_moe_activation_width_counts_shared_experts():
    q = model("Qwen/Qwen1.5-MoE-A2.7B-Chat")
    per_tok = 2 * (VLLM_0_26.activation_coef_intermediate * (4 * 1408 + 5632) + VLLM_0_26.activation_coef_hidden * 2048)
    assert activation_bytes(q, 1, 8192) == int(8192 * per_tok)


def test_gemma2_kv_capacity_is_logged_as_if_every_layer_were_full():
    # vLLM 0.26 hybrid allocator: two groups of 21 layers share one pool; "GPU KV cache size" =
    # num_blocks // 2 groups * 16, num_blocks = available // (21 layers * page): the all-layer count
    g = model("google/gemma-2-9b-it")
    assert kv_bytes_per_token(g) == 2 * 42 * 8 * 256 * 2
    r = fit(FitInput(g, gpu("h100-sxm"), max_model_len=8192))
    avail = int(r.kv_cache_gib * GIB)
    page = 16 * 2 * 8 * 256 * 2  # one layer's block
    assert r.kv_capacity_tokens == pytest.approx(avail // (21 * page) // 2 * 16, abs=16)


def test_sliding_window_sequences_need_less_than_their_context():
    g = model("google/gemma-2-9b-it")
    short = fit(FitInput(g, gpu("h100-sxm"), max_model_len=4096))
    long = fit(FitInput(g, gpu("h100-sxm"), max_model_len=8192))
    # vLLM's "Maximum concurrency": window layers hold min(4095 + 8192, context) + a block per sequence
    assert long.max_concurrent_sequences == pytest.approx(
        long.kv_capacity_tokens / kv_bytes_per_sequence(g, 8192) * kv_bytes_per_token(g))
    assert short.kv_capacity_tokens == long.kv_capacity_tokens
    m = model("mistralai/Mistral-7B-v0.1")  # every layer slides: a 32k sequence needs 6160 tokens' worth at 2048
    assert kv_bytes_per_sequence(m, 32768, max_num_batched_tokens=2048) == 6160 * kv_bytes_per_token(m)
    r = fit(FitInput(m, gpu("l4"), max_model_len=32768))
    assert r.fits and r.max_context_tokens == 32768
    assert r.max_concurrent_sequences == pytest.approx(r.kv_capacity_tokens / 6160)


def test_pipeline_stage_kv_for_mla_is_the_stage_layers_latent():
    from calculators.parallel import parallel_layout  # noqa: PLC0415

    p = parallel_layout(DS_LITE, tp=2, pp=3)
    assert p.layers_per_stage == (9, 9, 9) and p.kv_bytes_per_token_per_gpu == 9 * 576 * 2


def test_gemma3_hybrid_groups_are_padded_as_vllm_logs_them():
    # 22 window + 4 full layers: groups of 4 (1 full, 6 window incl. 2 padding layers) share one pool;
    # vLLM logs num_blocks // 7 groups * 16 with num_blocks = available // (4 layers * page)
    from pathlib import Path  # noqa: PLC0415

    from calculators.modelspec import load_model  # noqa: PLC0415

    g3 = load_model(str(Path(__file__).parents[1] / "fixtures" / "configs" / "gemma-3-1b-it.json"))
    assert kv_layer_groups(g3) == (4, 24)
    r = fit(FitInput(g3, gpu("l4"), max_model_len=32768))
    page = 16 * 1 * 256 * 2 * 2  # one layer's block: 16 tokens x 1 KV head x 256 x (K, V) x 2 B
    assert r.kv_capacity_tokens == pytest.approx(int(r.kv_cache_gib * GIB) // (4 * page) // 7 * 16, abs=16)
    assert r.kv_capacity_tokens < r.kv_cache_gib * GIB / kv_bytes_per_token(g3)  # 28 padded layers, not 26
    assert any("pads its sliding/full layer groups to 28 layers" in line for line in r.reasons)
