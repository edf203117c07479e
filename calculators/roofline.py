"""How fast can it be: decode and prefill ceilings from memory bandwidth and compute (a roofline).

Decode, one step of a batch of B sequences each holding ``context_tokens`` tokens, per GPU of a TP group::

    kv_read      = B * kv_bytes_per_token_per_layer * (full_layers * C + window_layers * min(C, window))
    bytes_read   = weights_read(B) / TP + kv_read
    t_memory     = bytes_read / bandwidth
    flops        = B * (2 * matmul_params + 2 * heads * (d_qk + d_v) * (full_layers * C + window_layers
                   * min(C, window))) / TP       (d_qk = d_v = head_dim; MLA decode: kv_lora + rope, kv_lora)
    t_compute    = flops / peak_flops          (fp8 peak for fp8 weights on GPUs with fp8 tensor cores)
    tokens/s     = B / max(t_memory, t_compute)      -> bound = "memory" or "compute"

The input-embedding table is a lookup: a step reads only the B rows of the batch's tokens, never the whole
V x H table; the LM head (output projection, H x V) is a GEMM read in full every step. With tied embeddings the
one table is read once, as the LM head. ``matmul_params`` = active parameters minus the input-embedding table
(a lookup does no FLOPs). On Llama-3.1-8B this lifts the H100 c=1 ceiling from 208 to 223 tok/s.

Sliding-window layers (Mistral v0.1, Gemma 2/3) attend to the last ``window`` tokens only, so they read
min(context, window) tokens of KV. MLA's cache (one latent per token and layer) is read whole by every TP rank.

MoE weights: a step reads the shared weights (attention, shared experts, dense layers, routers) plus every
routed expert that at least one of the B tokens routes to; with uniform routing the expected number of
distinct experts touched per MoE layer is E * (1 - (1 - k/E)^B) (:func:`expected_experts_touched`), so
B=1 reads the active parameters and large batches read all experts. Tensor-parallel communication and kernel
launch gaps are ignored: the ideal numbers are ceilings, never estimates.

The estimate divides each time by an efficiency: ``mbu`` (model bandwidth utilisation, default 0.73:
calibrated on our own H100 runs of vLLM 0.26.0 (benchmarks/README.md), which measured 69-77 % (mean 72.9 %)
at concurrency 1-32 for Llama-3.1-8B bf16 and Llama-3.3-70B fp8 with the bytes counted as above (55 % at 128,
where prefill steps interleave; counting the whole input-embedding table gave 73-79 % and the old 0.75);
published stacks reach 60-85 %, a vLLM sweep measured 77 % on an A100, facts README section 4.3)
and ``mfu`` (default 0.5, an engineering assumption for decode/prefill GEMMs). Calibrate them from probe runs.

Prefill of a P-token prompt: flops = P * (2 * (matmul_params - lm_head) + 2 * layers * heads * head_dim * P)
+ 2 * lm_head (causal attention averages P/2 keys; vLLM computes logits for the last position only), all
experts touched; TTFT floor = max(flops / peak, weights_read / bandwidth).

>>> from calculators.catalog import gpu
>>> from calculators.modelspec import model
>>> inp = RooflineInput(model("meta-llama/Llama-3.3-70B-Instruct"), gpu("h100-sxm"), context_tokens=0)
>>> p = decode_point(inp, 1)
>>> round(p.decode_tokens_per_s_max, 1), p.bound
(24.1, 'memory')
"""

from __future__ import annotations

from dataclasses import dataclass

from calculators.catalog import Gpu
from calculators.memory import check_deployment, kv_bytes_per_token, weight_bytes, weight_bytes_per_gpu
from calculators.modelspec import ModelArch
from calculators.validation import require_finite, require_int

__all__ = [
    "DEFAULT_MBU",
    "DEFAULT_MFU",
    "RooflineInput",
    "DecodePoint",
    "PrefillPoint",
    "peak_tflops",
    "input_embedding_params",
    "matmul_params",
    "expected_experts_touched",
    "kv_read_bytes",
    "weights_read_bytes",
    "decode_point",
    "decode_sweep",
    "prefill",
]

DEFAULT_MBU = 0.73  # calibrated: mean of the six c<=32 H100 points, benchmarks/README.md (vLLM 0.26.0)
DEFAULT_MFU = 0.5


@dataclass(frozen=True)
class RooflineInput:
    arch: ModelArch
    gpu: Gpu
    tensor_parallel_size: int = 1
    weight_dtype: str = "bf16"
    kv_cache_dtype: str = "auto"
    context_tokens: int = 1024
    mbu: float = DEFAULT_MBU
    mfu: float = DEFAULT_MFU

    def __post_init__(self) -> None:
        check_deployment(self.arch, self.tensor_parallel_size, self.weight_dtype, self.kv_cache_dtype)
        require_int("context_tokens", self.context_tokens, low=0, high=10**7)
        require_finite("mbu", self.mbu, low=0.0, high=1.0, low_inclusive=False)
        require_finite("mfu", self.mfu, low=0.0, high=1.0, low_inclusive=False)


@dataclass(frozen=True)
class DecodePoint:
    concurrency: int
    bound: str  # "memory" | "compute"
    step_ms_memory: float
    step_ms_compute: float
    decode_tokens_per_s_max: float
    per_user_tokens_per_s_max: float
    decode_tokens_per_s_est: float
    per_user_tokens_per_s_est: float
    bytes_read_per_gpu: float
    tpot_ms_floor: float


@dataclass(frozen=True)
class PrefillPoint:
    prompt_tokens: int
    prefill_tokens_per_s_max: float
    prefill_tokens_per_s_est: float
    ttft_ms_floor: float
    ttft_ms_est: float


def peak_tflops(gpu: Gpu, weight_dtype: str) -> float:
    """Dense tensor TFLOPS the GEMMs run at: fp8 peak for fp8 weights where the GPU has fp8, else bf16
    (int4 AWQ/GPTQ kernels dequantize to 16-bit; fp8 on an A100 runs as W8A16)."""
    if weight_dtype == "fp8" and gpu.fp8_dense_tflops:
        return gpu.fp8_dense_tflops
    return gpu.bf16_dense_tflops


def input_embedding_params(arch: ModelArch) -> int:
    """Parameters of the input-embedding table that a step does NOT read in full: V * H, or 0 when the table
    is tied to the LM head (then it is read every step, as the LM head).

    >>> from calculators.modelspec import model
    >>> input_embedding_params(model("meta-llama/Llama-3.1-8B-Instruct"))
    525336576
    """
    return 0 if arch.tie_word_embeddings else arch.vocab_size * arch.hidden_size


def matmul_params(arch: ModelArch) -> int:
    """Parameters a token multiplies by (2 FLOPs each): the active parameters less the input-embedding lookup.

    >>> from calculators.modelspec import model
    >>> round(matmul_params(model("meta-llama/Llama-3.1-8B-Instruct")) / 1e9, 2)
    7.5
    """
    return arch.active_params - input_embedding_params(arch)


def expected_experts_touched(num_experts: int, experts_per_token: int, batch: int) -> float:
    """Expected distinct experts a batch of B tokens routes to in one MoE layer, k of E per token uniformly::

        touched = E * (1 - (1 - k/E)^B)

    B=1 touches k; as B grows it approaches E (all experts' weights are read every step).

    >>> expected_experts_touched(64, 6, 1), round(expected_experts_touched(64, 6, 32), 1)
    (6.0, 61.3)
    >>> round(expected_experts_touched(8, 2, 4), 2), round(expected_experts_touched(256, 8, 1024), 1)
    (5.47, 256.0)
    """
    if num_experts <= 0:
        return 0.0
    return num_experts * (1.0 - (1.0 - experts_per_token / num_experts) ** batch)


def kv_read_bytes(arch: ModelArch, context_tokens: int, kv_cache_dtype: str = "auto", tp: int = 1) -> float:
    """KV bytes one GPU reads per sequence in a decode step at ``context_tokens``::

        kv_read = kv_bytes_per_token_per_gpu / layers * (full_layers * C + window_layers * min(C, window))

    >>> from calculators.modelspec import model
    >>> g = model("google/gemma-2-9b-it")
    >>> kv_read_bytes(g, 8192) / (kv_bytes_per_token(g) * 8192)  # half the layers read 4096 of 8192
    0.75
    >>> kv_read_bytes(model("deepseek-ai/DeepSeek-V2-Lite-Chat"), 1000, tp=2)  # MLA: 31,104 B/token, every GPU
    31104000.0
    """
    layers_read = arch.attention_layers_reading(context_tokens)
    return kv_bytes_per_token(arch, kv_cache_dtype, tp) * layers_read / arch.layers * context_tokens


def _attention_flops_per_token(arch: ModelArch, context_tokens: int) -> float:
    """2 * heads * (d_qk + d_v) * KV tokens attended, summed over layers (decode)."""
    d_qk, d_v = arch.decode_attention_dims
    return 2 * arch.attention_heads * (d_qk + d_v) * arch.attention_layers_reading(context_tokens) * context_tokens


def weights_read_bytes(arch: ModelArch, weight_dtype: str, batch: int) -> float:
    """Bytes of weights one step over ``batch`` tokens reads (whole model)::

        read = weight_bytes - 2 * input_embedding_params + 2 * H * min(B, V)      (dense)

    The input-embedding table (16-bit in every precision) is replaced by the B rows looked up; the LM head
    is read in full. For MoE, everything but the routed experts, plus the routed experts' bytes times the
    expected share touched, 1 - (1 - k/E)^B (:func:`expected_experts_touched` / E).

    >>> from calculators.modelspec import model
    >>> round(weights_read_bytes(model("meta-llama/Llama-3.1-8B-Instruct"), "bf16", 1) / 1e9, 2)
    15.01
    >>> m = model("mistralai/Mixtral-8x7B-Instruct-v0.1")
    >>> round(weights_read_bytes(m, "bf16", 1) / 1e9, 1), round(weights_read_bytes(m, "bf16", 64) / 1e9, 1)
    (25.5, 93.1)
    >>> ds = model("deepseek-ai/DeepSeek-V2-Lite-Chat")  # 2 x 2.66B active - 0.21B table at B=1
    >>> round(weights_read_bytes(ds, "bf16", 1) / 1e9, 2), round(weights_read_bytes(ds, "bf16", 256) / 1e9, 1)
    (4.9, 31.0)
    """
    total = weight_bytes(arch, weight_dtype)
    table = input_embedding_params(arch)
    rows = 2 * arch.hidden_size * min(batch, arch.vocab_size) if table else 0
    dense = total - 2 * table + rows
    if not arch.is_moe:
        return float(dense)
    expert_bytes = total * arch.expert_params / arch.total_params  # same bytes/param as the other linears
    share = expected_experts_touched(arch.num_experts, arch.experts_per_token, batch) / arch.num_experts
    return dense - expert_bytes + expert_bytes * share


def _per_gpu_share(arch: ModelArch, weight_dtype: str, tp: int) -> float:
    """The fraction of the weights one TP rank holds (and reads): 1/TP, a little more for the replicated
    norms, MLA down-projections and MoE routers (:func:`calculators.memory.weight_bytes_per_gpu`)."""
    if tp == 1:
        return 1.0
    return weight_bytes_per_gpu(arch, weight_dtype, tp) / weight_bytes(arch, weight_dtype)


def decode_point(inp: RooflineInput, concurrency: int) -> DecodePoint:
    """Ceiling and estimate of decode throughput at ``concurrency`` sequences (see the module docstring)."""
    b = require_int("concurrency", concurrency, low=1, high=10**6)
    a, tp = inp.arch, inp.tensor_parallel_size
    bytes_read = weights_read_bytes(a, inp.weight_dtype, b) * _per_gpu_share(a, inp.weight_dtype, tp) + \
        b * kv_read_bytes(a, inp.context_tokens, inp.kv_cache_dtype, tp)
    t_mem = bytes_read / (inp.gpu.mem_bandwidth_tbps * 1e12)
    flops_per_token = 2 * matmul_params(a) + _attention_flops_per_token(a, inp.context_tokens)
    t_cmp = b * flops_per_token / tp / (peak_tflops(inp.gpu, inp.weight_dtype) * 1e12)
    step = max(t_mem, t_cmp)
    step_est = max(t_mem / inp.mbu, t_cmp / inp.mfu)
    return DecodePoint(
        concurrency=b,
        bound="memory" if t_mem >= t_cmp else "compute",
        step_ms_memory=t_mem * 1e3,
        step_ms_compute=t_cmp * 1e3,
        decode_tokens_per_s_max=b / step,
        per_user_tokens_per_s_max=1 / step,
        decode_tokens_per_s_est=b / step_est,
        per_user_tokens_per_s_est=1 / step_est,
        bytes_read_per_gpu=bytes_read,
        tpot_ms_floor=step * 1e3,
    )


def decode_sweep(inp: RooflineInput, concurrencies: tuple[int, ...] | list[int]) -> tuple[DecodePoint, ...]:
    """:func:`decode_point` for each concurrency.

    >>> from calculators.catalog import gpu
    >>> from calculators.modelspec import model
    >>> inp = RooflineInput(model("meta-llama/Llama-3.1-8B-Instruct"), gpu("h100-sxm"), context_tokens=128)
    >>> [p.bound for p in decode_sweep(inp, [1, 4096])]
    ['memory', 'compute']
    """
    if not concurrencies:
        raise ValueError("concurrencies must list at least one value")
    return tuple(decode_point(inp, c) for c in concurrencies)


def prefill(inp: RooflineInput, prompt_tokens: int) -> PrefillPoint:
    """Prefill throughput ceiling and the TTFT floor for one prompt of ``prompt_tokens`` on an idle server.

    >>> from calculators.catalog import gpu
    >>> from calculators.modelspec import model
    >>> inp = RooflineInput(model("meta-llama/Llama-3.3-70B-Instruct"), gpu("h100-sxm"), 2, "fp8")
    >>> round(prefill(inp, 1000).ttft_ms_floor)
    35
    """
    p = require_int("prompt_tokens", prompt_tokens, low=1, high=10**7)
    a, tp = inp.arch, inp.tensor_parallel_size
    lm_head = a.vocab_size * a.hidden_size
    d_qk, d_v = a.prefill_attention_dims  # causal: a prompt token attends to P/2 keys on average
    attention = 2 * a.attention_heads * (d_qk + d_v) * a.attention_layers_reading(p // 2) * (p / 2)
    flops = (p * (2 * (matmul_params(a) - lm_head) + attention) + 2 * lm_head) / tp
    peak = peak_tflops(inp.gpu, inp.weight_dtype) * 1e12
    t_cmp = flops / peak
    t_mem = weights_read_bytes(a, inp.weight_dtype, p) * _per_gpu_share(a, inp.weight_dtype, tp) / (
        inp.gpu.mem_bandwidth_tbps * 1e12)
    t = max(t_cmp, t_mem)
    t_est = max(t_cmp / inp.mfu, t_mem / inp.mbu)
    return PrefillPoint(
        prompt_tokens=p,
        prefill_tokens_per_s_max=p / t,
        prefill_tokens_per_s_est=p / t_est,
        ttft_ms_floor=t * 1e3,
        ttft_ms_est=t_est * 1e3,
    )
