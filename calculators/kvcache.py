"""The KV cache per GPU as vLLM 0.26 sizes it: bytes per token (GQA heads split over TP, MLA's latent whole on
every rank), what one sequence holds at most (sliding-window layers keep a window), and the hybrid layer
groups vLLM pads. :mod:`calculators.memory` re-exports these; the memory fit and the roofline use them.
"""

from __future__ import annotations

import math

from calculators.modelspec import ModelArch
from calculators.validation import require_int

__all__ = ["KV_CACHE_DTYPES", "check_tensor_parallel", "kv_heads_per_gpu", "kv_bytes_per_token",
           "kv_bytes_per_sequence", "kv_layer_groups", "max_context_tokens"]

Bytes = int
KV_CACHE_DTYPES = ("auto", "fp8")


def check_tensor_parallel(arch: ModelArch, tp: int) -> None:
    """vLLM's rules: attention heads divisible by TP; KV heads divisible by TP, or TP a multiple of them.

    >>> from calculators.modelspec import model
    >>> check_tensor_parallel(model("microsoft/phi-4"), 3)
    Traceback (most recent call last):
    ...
    ValueError: tensor parallel size 3 must divide the attention heads (40)
    """
    require_int("tensor_parallel_size", tp, low=1, high=64)
    if arch.attention_heads % tp:
        raise ValueError(f"tensor parallel size {tp} must divide the attention heads ({arch.attention_heads})")
    if arch.is_mla:  # one latent per token, replicated on every rank: no KV-head rule
        return
    if tp <= arch.kv_heads and arch.kv_heads % tp:
        raise ValueError(f"tensor parallel size {tp} must divide the KV heads ({arch.kv_heads})")
    if tp > arch.kv_heads and tp % arch.kv_heads:
        raise ValueError(f"tensor parallel size {tp} must be a multiple of the KV heads ({arch.kv_heads})")


def kv_heads_per_gpu(arch: ModelArch, tp: int) -> int:
    """KV heads each GPU stores: kv_heads / TP, or 1 (a replica) when TP > kv_heads (vLLM's
    ``max(1, total_num_kv_heads // tp)``).

    >>> from calculators.modelspec import model
    >>> kv_heads_per_gpu(model("meta-llama/Llama-3.3-70B-Instruct"), 16)
    1
    """
    check_tensor_parallel(arch, tp)
    if arch.is_mla:
        return 1
    return max(1, arch.kv_heads // tp)


def kv_bytes_per_token(arch: ModelArch, kv_cache_dtype: str = "auto", tp: int = 1) -> Bytes:
    """Per-GPU KV bytes one token adds, every layer counted::

        GQA/MHA:  2 (K and V) * layers * kv_heads_per_gpu * head_dim * elem bytes
        MLA:      layers * (kv_lora_rank + qk_rope_head_dim) * elem bytes, the same on every TP rank

    MLA (DeepSeek-V2/V3, Kimi K2) caches one latent per token and layer, with no separate V: vLLM's
    ``MLAAttention`` sets ``head_size = kv_lora_rank + qk_rope_head_dim`` and ``num_kv_heads = 1`` whatever the
    TP size, and ``MLAAttentionSpec.real_page_size_bytes`` has no factor 2; the latent is not split across GPUs.
    ``auto`` stores KV in the activation dtype (2 B, also for fp8/int4 weights); ``fp8`` uses 1 B.
    Sliding-window layers count whole here: vLLM 0.26 logs "GPU KV cache size" that way (its hybrid
    allocator gives each layer group the same number of blocks); what a sequence needs is
    :func:`kv_bytes_per_sequence`.

    >>> from calculators.modelspec import model
    >>> kv_bytes_per_token(model("meta-llama/Llama-3.1-8B-Instruct"))
    131072
    >>> ds = model("deepseek-ai/DeepSeek-V2-Lite-Chat")
    >>> kv_bytes_per_token(ds), kv_bytes_per_token(ds, tp=2)  # 27 * 576 * 2 B, not split by TP
    (31104, 31104)
    """
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ValueError(f"kv_cache_dtype must be one of {', '.join(KV_CACHE_DTYPES)}, got {kv_cache_dtype!r}")
    elem = 1 if kv_cache_dtype == "fp8" else 2
    if arch.is_mla:
        check_tensor_parallel(arch, tp)
        return arch.layers * arch.kv_elements_per_token_per_layer * elem
    return 2 * arch.layers * kv_heads_per_gpu(arch, tp) * arch.head_dim * elem


def kv_bytes_per_sequence(arch: ModelArch, context_tokens: int, kv_cache_dtype: str = "auto", tp: int = 1,
                          max_num_batched_tokens: int = 8192, block_size: int = 16) -> Bytes:
    """Per-GPU KV bytes one sequence of ``context_tokens`` holds at most, as vLLM 0.26 sizes it
    (``FullAttentionSpec``/``SlidingWindowSpec.max_memory_usage_bytes``)::

        full layers:     ceil(context / block) * block tokens
        window layers:   (ceil(min(window - 1 + max_num_batched_tokens, context) / block) + 1) * block tokens

    times each layer's bytes per token (hybrid models: the padded layer counts of :func:`kv_layer_groups`).
    Without sliding-window layers this is ``ceil(context / block) * block * kv_bytes_per_token``. This assumes
    vLLM's hybrid KV-cache manager, on by default in 0.26; with ``--disable-hybrid-kv-cache-manager`` (or a KV
    connector that turns it off) window layers keep the whole context and the plain formula applies.

    >>> from calculators.modelspec import model
    >>> g = model("google/gemma-2-9b-it")
    >>> kv_bytes_per_sequence(g, 8192, max_num_batched_tokens=2048) / kv_bytes_per_token(g)  # (8192 + 6160) / 2
    7176.0
    >>> m = model("mistralai/Mistral-7B-v0.1")
    >>> kv_bytes_per_sequence(m, 32768, max_num_batched_tokens=2048) // kv_bytes_per_token(m)  # 4095+2048 -> 6160
    6160
    """
    per_layer = kv_bytes_per_token(arch, kv_cache_dtype, tp) / arch.layers
    full = math.ceil(context_tokens / block_size) * block_size
    if not arch.sliding_window_layers:
        return int(round(arch.layers * full * per_layer))
    swa = min(arch.sliding_window - 1 + max_num_batched_tokens, context_tokens)
    swa_tokens = (math.ceil(swa / block_size) + 1) * block_size
    full_layers, window_layers = kv_layer_groups(arch)
    return int(round((full_layers * full + window_layers * swa_tokens) * per_layer))


def kv_layer_groups(arch: ModelArch) -> tuple[int, int]:
    """(full, window) layer counts as vLLM 0.26's hybrid KV-cache manager allocates them, padding included.

    With both kinds present, layers go into groups of ``g`` that share one block pool
    (``vllm/v1/core/kv_cache_utils.py::_get_kv_cache_groups_uniform_page_size``): ``g`` = the smaller count, or the
    larger when it is under 1.5x the smaller; each kind is padded up to a multiple of ``g``. The logged
    "GPU KV cache size" is ``num_blocks // groups * block`` with ``num_blocks = available // (g * page)``, i.e.
    available memory over the padded layer count. One kind only: no padding.

    >>> from calculators.modelspec import model
    >>> kv_layer_groups(model("google/gemma-2-9b-it")), kv_layer_groups(model("meta-llama/Llama-3.1-8B-Instruct"))
    ((21, 21), (32, 0))
    >>> from calculators.modelspec import from_config
    >>> g3 = {"model_type": "gemma3_text", "num_hidden_layers": 26, "hidden_size": 1152, "num_attention_heads": 4,
    ...       "num_key_value_heads": 1, "head_dim": 256, "intermediate_size": 6912, "vocab_size": 262144,
    ...       "sliding_window": 512, "sliding_window_pattern": 6}
    >>> kv_layer_groups(from_config(g3))  # 4 full + 22 window -> groups of 4: 1 full, 6 window (2 padding layers)
    (4, 24)
    """
    n_win, n_full = arch.sliding_window_layers, arch.full_attention_layers
    if not n_win or not n_full:
        return n_full, n_win
    small, large = min(n_win, n_full), max(n_win, n_full)
    g = large if large < 1.5 * small else small
    return math.ceil(n_full / g) * g, math.ceil(n_win / g) * g


def max_context_tokens(arch: ModelArch, tokens: int, mnbt: int, block: int) -> int:
    """Largest ``max_model_len`` whose :func:`kv_bytes_per_sequence` fits in a cache of ``tokens`` (the logged
    all-layer count): ``tokens`` without sliding-window layers; with them, what the full-attention layers can
    hold once the window layers have their window + one prefill chunk (``mnbt``); any length when every layer
    slides.

    >>> from calculators.modelspec import model
    >>> max_context_tokens(model("google/gemma-2-9b-it"), 20_000, 8192, 16)  # (42 * 20,000 - 21 * 8,208) / 21
    31792
    >>> max_context_tokens(model("mistralai/Mistral-7B-v0.1"), 20_000, 8192, 16)
    32768
    """
    if not arch.sliding_window_layers:
        return tokens
    full_layers, window_layers = kv_layer_groups(arch)
    swa = window_layers * (math.ceil(min(arch.sliding_window - 1 + mnbt, arch.max_position_embeddings) / block)
                           + 1) * block
    room = tokens * (full_layers + window_layers) - swa  # token-layer slots left for the full-attention layers
    if room < 0:
        return 0
    if not full_layers:
        return arch.max_position_embeddings
    return room // full_layers // block * block
