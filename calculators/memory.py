"""Will it fit: weights, KV cache and vLLM's memory budget per GPU, with a verdict and the smallest fix.

vLLM (V1 engine, checked in 0.26.0 and the current source) sizes its KV cache at startup as
(``vllm/v1/worker/gpu_worker.py::determine_available_memory``, ``vllm/utils/mem_utils.py::memory_profiling``)::

    requested      = gpu_memory_utilization * total GPU memory (what CUDA reports, not the marketing GB)
    non_kv         = weights + torch peak increase of the profile run (activations) + non-torch increase
    available_kv   = requested - non_kv            # logged: "Available KV cache memory: X GiB"
    kv_tokens      = floor(available_kv / (block_size * kv_bytes_per_token)) * block_size
                                                   # logged: "GPU KV cache size: N tokens"
    concurrency    = kv_tokens / max_model_len     # logged: "Maximum concurrency for L tokens per request"

CUDA-graph memory is NOT subtracted in 0.26 (measured: the same KV size with and without
``--enforce-eager``); it comes out of the ``1 - utilization`` headroom, as do sampler buffers: the fit flags
a headroom smaller than the graphs plus one activation peak (``runtime_headroom_short``; the 2xH100 run at
0.95 died of OOM at concurrency 32), and a utilization above the free memory at startup, which vLLM refuses
(``utilization_refused``, verdict ``does-not-fit``; ``vllm/v1/worker/utils.py::request_memory``).
The default ``gpu_memory_utilization`` is **0.92** in vLLM 0.25-0.30 (``vllm/config/cache.py``
``Field(default=0.92)``; the 0.26.0 log says "Requested memory: 0.920000 (util)" when the flag is absent),
not the 0.9 of older releases. The terms we model (constants in :data:`VLLM_0_26`):

- KV cache: bytes per token and per sequence, MLA and sliding-window layers (:mod:`calculators.kvcache`,
  re-exported here);
- weights: bytes per parameter by precision (:func:`weight_bytes`), divided by TP except the replicated
  norms (:func:`weight_bytes_per_gpu`); KV heads split over TP ranks, one per rank when TP > KV heads;
- activations: ``max_num_batched_tokens * 2 B * (1.55 * I + 12.5 * H) / TP``, a two-coefficient fit to three
  logged TP=1 profile runs (Llama-8B shape 1.10 GiB and Qwen2.5-7B shape 1.13 GiB on an H200; Llama-70B fp8 on an
  H100, 2.28 GiB implied), divided by TP because the H-wide tensors that dominate (q, attention output) are
  sharded like the MLP: the TP=2 Llama-70B log shows 1.0 GiB per GPU, where a replicated 12.5 * H term alone
  would be 1.56 GiB (the formula gives 1.12); ``max_num_batched_tokens`` defaults to 8192 on >= 70 GiB
  non-A100 GPUs, else 2048 (``vllm/engine/arg_utils.py::get_batch_defaults``);
- non-torch increase during the profile run: 0.22 GiB measured at TP=1, 0.06 GiB per GPU at TP=2 (the
  shared 2xH100 log);
- communication buffers: vLLM initialises NCCL (pynccl) and the custom all-reduce IPC buffers **before** its
  memory snapshot (``gpu_worker.py::init_device``), so they are not in the KV budget; they lower the free
  memory at startup instead, which vLLM requires to be >= ``utilization * total`` (else it refuses to start).
  Used before the snapshot: 0.52 GiB at TP=1 (CUDA context; H100 and H200 logs), 1.54 GiB at TP=2 (+1.02 GiB
  of NCCL communicators and custom all-reduce buffers, the 2xH100 log; at TP>2 the same, an estimate).
  See :func:`per_gpu_memory` for the split per GPU; pipeline and data parallel: :mod:`calculators.parallel`.

>>> from calculators.catalog import gpu
>>> from calculators.modelspec import model
>>> r = fit(FitInput(model("meta-llama/Llama-3.1-8B-Instruct"), gpu("h100-sxm"), max_model_len=4096))
>>> r.verdict, round(r.weights_gib, 2), r.kv_capacity_tokens
('fits', 14.96, 463232)
>>> r = fit(FitInput(model("meta-llama/Llama-3.3-70B-Instruct"), gpu("h100-sxm"), weight_dtype="bf16"))
>>> r.verdict, r.fixes[0]
('does-not-fit', 'fp8 weights (--quantization fp8): 67.7 GiB of weights, 8,816 KV tokens (fits with a short context only)')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from calculators.catalog import Gpu, gpus
from calculators.kvcache import (
    KV_CACHE_DTYPES,
    check_tensor_parallel,
    kv_bytes_per_sequence,
    kv_bytes_per_token,
    kv_heads_per_gpu,
    kv_layer_groups,
    max_context_tokens,
)
from calculators.modelspec import ModelArch
from calculators.validation import require_finite, require_int

__all__ = [
    "GIB",
    "WEIGHT_DTYPES",
    "KV_CACHE_DTYPES",
    "VllmAccounting",
    "VLLM_0_26",
    "FitInput",
    "FitResult",
    "weight_bytes",
    "kv_heads_per_gpu",
    "check_tensor_parallel",
    "check_deployment",
    "kv_bytes_per_token",
    "kv_bytes_per_sequence",
    "kv_layer_groups",
    "activation_bytes",
    "weight_bytes_per_gpu",
    "PerGpuMemory",
    "per_gpu_memory",
    "max_startup_utilization",
    "fit",
    "LORA_TARGETS",
    "lora_adapter_bytes",
]

GIB = 2**30
Bytes = int

WEIGHT_DTYPES = ("bf16", "fp16", "fp8", "int4-awq", "int4-gptq")
# int4 (AWQ/GPTQ, group size 128): 4-bit weights + one fp16 scale and one 4-bit zero point per 128 weights
# = 0.5 + (2 + 0.5) / 128 bytes per weight. Embeddings, lm_head and norms stay 16-bit.
_INT4_BYTES_PER_WEIGHT = 0.5 + 2.5 / 128


@dataclass(frozen=True)
class VllmAccounting:
    """The constants of vLLM's startup memory accounting that are not in the model or GPU tables."""

    version: str = "0.26.0"
    default_gpu_memory_utilization: float = 0.92
    block_size: int = 16
    activation_coef_intermediate: float = 1.55
    activation_coef_hidden: float = 12.5
    non_torch_gib: float = 0.22  # non-torch increase of the profile run at TP=1 (measured, H100/H200)
    non_torch_gib_tp: float = 0.06  # the same per GPU at TP>1 (measured at TP=2, 2xH100 log)
    startup_used_gib: float = 0.52  # used before vLLM's snapshot at TP=1: the CUDA context (H100, H200 logs)
    comm_buffers_gib_tp: float = 1.02  # + NCCL communicators and custom all-reduce buffers at TP>1 (2xH100 log)
    cudagraph_gib: float = 0.0  # subtracted from the KV budget: 0 in 0.26 (graphs sit outside the budget)
    # CUDA-graph memory outside the budget, a + b * layers through the two TP=1 H100 logs (Llama-8B shape
    # 0.98 GiB, 32 layers; Llama-70B fp8 1.92 GiB, 80 layers); the TP=2 70B bf16 log took 1.51 (this gives 1.92)
    cudagraph_outside_base_gib: float = 0.353
    cudagraph_outside_gib_per_layer: float = 0.0196
    # Room vLLM 0.26 needs above budget + graphs while serving, as a multiple of the activation peak (the
    # transient allocations that fragment scale with max_num_batched_tokens). One observation: the 2xH100 TP=2
    # run at 0.95 had 77.64 - 75.22 - 1.51 = 0.91 GiB there and died of CUDA OOM at concurrency 32 ("Tried to
    # allocate 448.00 MiB" = one 8192-token gate_up output per GPU, "340.12 MiB is free"); an estimate.
    runtime_margin_activation_factor: float = 1.0

    def default_max_num_batched_tokens(self, gpu: Gpu) -> int:
        """8192 on GPUs of >= 70 GiB that are not A100s, else 2048 (the API server's defaults)."""
        return 8192 if gpu.usable_memory_gib >= 70 and "a100" not in gpu.id else 2048

    def default_max_num_seqs(self, gpu: Gpu) -> int:
        return 1024 if gpu.usable_memory_gib >= 70 and "a100" not in gpu.id else 256


VLLM_0_26 = VllmAccounting()


def weight_bytes(arch: ModelArch, weight_dtype: str) -> Bytes:
    """Bytes of all weights (before TP split) for a precision.

    - bf16/fp16: 2 B per parameter;
    - fp8: 1 B per linear-layer weight + one fp32 scale per output channel; embeddings, lm_head, norms 2 B
      (vLLM's fp8 keeps them 16-bit: Llama-70B logs 67.7 GiB, not 65.7);
    - int4-awq / int4-gptq: 0.5 B + 2.5 B per group of 128 (fp16 scale, 4-bit zero) per linear weight,
      the rest 2 B.

    >>> from calculators.modelspec import model
    >>> round(weight_bytes(model("meta-llama/Llama-3.3-70B-Instruct"), "fp8") / GIB, 1)
    67.7
    """
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {weight_dtype!r}")
    if weight_dtype in ("bf16", "fp16"):
        return 2 * arch.total_params
    other = arch.total_params - arch.linear_params
    if weight_dtype == "fp8":
        return arch.linear_params + 4 * arch.linear_out_channels + 2 * other
    return math.ceil(_INT4_BYTES_PER_WEIGHT * arch.linear_params) + 2 * other


def activation_bytes(arch: ModelArch, tp: int, max_num_batched_tokens: int, acc: VllmAccounting = VLLM_0_26) -> Bytes:
    """Peak activation of vLLM's profile run per GPU: T * 2 B * (a * I_active + b * H) / TP.

    ``I_active`` is the MLP width a token passes through (``experts_per_token * I_expert + I_shared`` for MoE).
    Both terms
    shrink with TP (the 2xH100 Llama-70B log: 1.0 GiB per GPU; this gives 1.12).

    >>> from calculators.modelspec import model
    >>> round(activation_bytes(model("meta-llama/Llama-3.1-8B-Instruct"), 1, 8192) / GIB, 2)
    1.12
    >>> round(activation_bytes(model("meta-llama/Llama-3.3-70B-Instruct"), 2, 8192) / GIB, 2)
    1.12
    """
    inter = (arch.experts_per_token * arch.expert_width + arch.shared_expert_intermediate_size) if arch.is_moe \
        else arch.intermediate_size
    per_token = 2 * (acc.activation_coef_intermediate * inter + acc.activation_coef_hidden * arch.hidden_size) / tp
    return int(max_num_batched_tokens * per_token)


def weight_bytes_per_gpu(arch: ModelArch, weight_dtype: str, tp: int) -> Bytes:
    """Weight bytes one GPU holds at TP: (all - replicated) / TP + replicated.

    vLLM shards every linear layer, the input embedding (``VocabParallelEmbedding``) and the lm_head
    (``ParallelLMHead``) across TP ranks; the RMSNorm weights (``norm_params_per_layer * layers + H``), and
    for MLA the ``q_a_proj``/``kv_a_proj_with_mqa`` down-projections and for MoE the routers
    (:attr:`~calculators.modelspec.ModelArch.replicated_params`, counted at 16-bit) sit whole on every rank.

    >>> from calculators.modelspec import model
    >>> round(weight_bytes_per_gpu(model("meta-llama/Llama-3.3-70B-Instruct"), "bf16", 2) / GIB, 2)
    65.71
    """
    require_int("tensor_parallel_size", tp, low=1, high=64)
    replicated = 2 * arch.replicated_params
    return math.ceil((weight_bytes(arch, weight_dtype) - replicated) / tp) + replicated


@dataclass(frozen=True)
class PerGpuMemory:
    """What one TP rank holds, in bytes, split the way vLLM's startup log reports it.

    ``weights + activation + non_torch`` come out of the KV budget (``utilization * total``);
    ``comm_buffers`` (NCCL communicators, custom all-reduce IPC buffers) are allocated before vLLM's memory
    snapshot, so they are part of ``startup_used`` (lowering the free memory vLLM checks the budget against),
    not of the budget.
    """

    tensor_parallel_size: int
    weights_bytes: int
    weights_replicated_bytes: int
    activation_bytes: int
    non_torch_bytes: int
    comm_buffers_bytes: int
    startup_used_bytes: int
    kv_heads_per_gpu: int
    kv_heads_replicated: bool  # TP > num_kv_heads (or MLA at TP > 1): each KV head/latent sits on several ranks


def per_gpu_memory(arch: ModelArch, tp: int, weight_dtype: str, max_num_batched_tokens: int,
                   acc: VllmAccounting = VLLM_0_26) -> PerGpuMemory:
    """Per-GPU accounting for tensor parallelism TP=N, fitted to the 2xH100 Llama-70B bf16 log::

        weights      = (W - W_norms) / N + W_norms              (log: 65.71 GiB)
        activation   = T * 2 B * (1.55 * I + 12.5 * H) / N      (log: 1.0 GiB; this gives 1.12)
        non_torch    = 0.22 GiB at N = 1, 0.06 GiB at N > 1     (log: 0.06 GiB)
        comm_buffers = 0 at N = 1, 1.02 GiB at N > 1            (log: 77.64 of 79.18 GiB free at start)
        startup_used = 0.52 GiB CUDA context + comm_buffers
        kv_heads     = max(1, kv_heads // N)                    (replicated when N > kv_heads)

    >>> from calculators.modelspec import model
    >>> m = per_gpu_memory(model("meta-llama/Llama-3.3-70B-Instruct"), 2, "bf16", 8192)
    >>> [round(b / GIB, 2) for b in (m.weights_bytes, m.activation_bytes, m.non_torch_bytes, m.startup_used_bytes)]
    [65.71, 1.12, 0.06, 1.54]
    >>> per_gpu_memory(model("meta-llama/Llama-3.3-70B-Instruct"), 16, "bf16", 8192).kv_heads_replicated
    True
    """
    heads = kv_heads_per_gpu(arch, tp)
    comm = acc.comm_buffers_gib_tp * GIB if tp > 1 else 0.0
    return PerGpuMemory(
        tensor_parallel_size=tp,
        weights_bytes=weight_bytes_per_gpu(arch, weight_dtype, tp),
        weights_replicated_bytes=2 * arch.replicated_params,
        activation_bytes=activation_bytes(arch, tp, max_num_batched_tokens, acc),
        non_torch_bytes=int((acc.non_torch_gib_tp if tp > 1 else acc.non_torch_gib) * GIB),
        comm_buffers_bytes=int(comm),
        startup_used_bytes=int(acc.startup_used_gib * GIB + comm),
        kv_heads_per_gpu=heads,
        kv_heads_replicated=tp > 1 if arch.is_mla else tp > arch.kv_heads,
    )


def check_deployment(arch: ModelArch, tensor_parallel_size: int, weight_dtype: str, kv_cache_dtype: str) -> None:
    """The checks every deployment input shares (fit, roofline): TP divides the heads, known dtypes.

    >>> from calculators.modelspec import model
    >>> check_deployment(model("meta-llama/Llama-3.1-8B-Instruct"), 1, "fp4", "auto")
    Traceback (most recent call last):
    ...
    ValueError: weight_dtype must be one of bf16, fp16, fp8, int4-awq, int4-gptq, got 'fp4'
    """
    check_tensor_parallel(arch, tensor_parallel_size)
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {weight_dtype!r}")
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ValueError(f"kv_cache_dtype must be one of {', '.join(KV_CACHE_DTYPES)}, got {kv_cache_dtype!r}")


@dataclass(frozen=True)
class FitInput:
    """One deployment to check. ``None`` settings take vLLM's defaults for the GPU."""

    arch: ModelArch
    gpu: Gpu
    tensor_parallel_size: int = 1
    weight_dtype: str = "bf16"
    kv_cache_dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    max_num_batched_tokens: int | None = None
    concurrency: int | None = None
    max_loras: int = 0  # LoRA slots (--max-loras with --enable-lora); 0 = LoRA off
    max_lora_rank: int = 16

    def __post_init__(self) -> None:
        check_deployment(self.arch, self.tensor_parallel_size, self.weight_dtype, self.kv_cache_dtype)
        if self.max_model_len is not None:
            require_int("max_model_len", self.max_model_len, low=16, high=self.arch.max_position_embeddings)
        if self.gpu_memory_utilization is not None:
            require_finite("gpu_memory_utilization", self.gpu_memory_utilization, low=0.0, high=1.0,
                           low_inclusive=False)
        if self.max_num_batched_tokens is not None:
            require_int("max_num_batched_tokens", self.max_num_batched_tokens, low=1, high=10**7)
        if self.concurrency is not None:
            require_int("concurrency", self.concurrency, low=1, high=10**6)
        require_int("max_loras", self.max_loras, low=0, high=256)
        require_int("max_lora_rank", self.max_lora_rank, low=1, high=512)

    @property
    def context_tokens(self) -> int:
        """max_model_len, or the model's own limit when unset (as vLLM does)."""
        return self.max_model_len or self.arch.max_position_embeddings


@dataclass(frozen=True)
class FitResult:
    """Per-GPU memory breakdown (GiB), KV capacity for the whole replica, a verdict and fixes."""

    verdict: str  # "fits" | "short-context" | "does-not-fit"
    fits: bool
    total_gib: float
    budget_gib: float
    weights_gib: float
    activation_gib: float
    non_torch_gib: float
    kv_cache_gib: float
    kv_bytes_per_token: int  # per GPU
    kv_bytes_per_token_model: int  # whole model (all GPUs), for the "KV per token" a reader expects
    kv_capacity_tokens: int
    max_model_len: int
    max_concurrent_sequences: float
    max_context_tokens: int  # largest max_model_len that would start (0 if none)
    gpu_memory_utilization: float
    max_num_batched_tokens: int
    reasons: tuple[str, ...]
    fixes: tuple[str, ...] = field(default=())
    comm_buffers_gib: float = 0.0  # NCCL + custom all-reduce per GPU: outside the budget, inside startup_free
    startup_free_gib: float = 0.0  # free memory per GPU when vLLM takes its snapshot (estimate)
    utilization_refused: bool = False  # budget > startup_free: vLLM 0.26 raises at startup whatever the verdict
    cudagraph_outside_gib: float = 0.0  # estimate of the CUDA-graph pool captured after the KV cache
    runtime_headroom_short: bool = False  # startup_free - budget < cudagraph_outside + activation: may OOM

    def as_dict(self) -> dict[str, object]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["reasons"], d["fixes"] = list(self.reasons), list(self.fixes)
        return d


def _core(inp: FitInput, acc: VllmAccounting) -> FitResult:
    tp = inp.tensor_parallel_size
    util = acc.default_gpu_memory_utilization if inp.gpu_memory_utilization is None else inp.gpu_memory_utilization
    mnbt = inp.max_num_batched_tokens or acc.default_max_num_batched_tokens(inp.gpu)
    total = inp.gpu.usable_memory_gib * GIB
    budget = util * total
    lora = inp.max_loras * lora_adapter_bytes(inp.arch, inp.max_lora_rank) if inp.max_loras else 0
    per_gpu = per_gpu_memory(inp.arch, tp, inp.weight_dtype, mnbt, acc)
    weights = per_gpu.weights_bytes + lora / tp
    act = per_gpu.activation_bytes
    non_torch = per_gpu.non_torch_bytes
    startup_free = total - per_gpu.startup_used_bytes
    refused = budget > startup_free
    graphs = (acc.cudagraph_outside_base_gib + acc.cudagraph_outside_gib_per_layer * inp.arch.layers) * GIB
    margin = acc.runtime_margin_activation_factor * act
    needed_above = graphs + margin
    graphs_short = not refused and startup_free - budget < needed_above
    available = budget - weights - act - non_torch - acc.cudagraph_gib * GIB
    per_tok = kv_bytes_per_token(inp.arch, inp.kv_cache_dtype, tp)
    padded = sum(kv_layer_groups(inp.arch))  # hybrid sliding/full models: vLLM pads the layer groups
    block = acc.block_size * per_tok * padded / inp.arch.layers
    tokens = max(0, math.floor(available / block)) * acc.block_size
    ctx = inp.context_tokens
    # what one max_model_len sequence needs, in all-layer token units (= ctx without sliding-window layers)
    seq_tokens = kv_bytes_per_sequence(inp.arch, ctx, inp.kv_cache_dtype, tp, mnbt, acc.block_size) / (
        per_tok * padded / inp.arch.layers) if inp.arch.sliding_window_layers else ctx
    max_ctx = min(max_context_tokens(inp.arch, tokens, mnbt, acc.block_size), inp.arch.max_position_embeddings)
    g = lambda b: b / GIB  # noqa: E731
    reasons = [
        f"budget {util:g} x {inp.gpu.usable_memory_gib:g} GiB = {g(budget):.2f} GiB per GPU",
        f"weights {g(weight_bytes(inp.arch, inp.weight_dtype)):.2f} GiB {inp.weight_dtype} / TP {tp} = "
        f"{g(weights):.2f} GiB per GPU",
        f"activations {g(act):.2f} GiB (profile run of {mnbt} tokens) + non-torch {g(non_torch):.2f} GiB",
        f"KV cache {g(max(available, 0)):.2f} GiB / {per_tok:,} B per token per GPU = {tokens:,} tokens"
        + (f" (vLLM pads its sliding/full layer groups to {padded} layers)" if padded != inp.arch.layers else ""),
    ]
    if tp > 1:
        reasons.insert(3, f"NCCL and custom all-reduce buffers {g(per_gpu.comm_buffers_bytes):.2f} GiB per GPU: "
                          "allocated before vLLM measures, so outside the budget (less memory free at start)")
    if per_gpu.kv_heads_replicated and inp.arch.is_mla:
        reasons.insert(-1, f"MLA: each of the {tp} GPUs stores the whole {inp.arch.kv_elements_per_token_per_layer}-"
                           "element latent per token and layer (vLLM does not split it across TP ranks)")
    elif per_gpu.kv_heads_replicated:
        reasons.insert(-1, f"TP {tp} > {inp.arch.kv_heads} KV heads: each GPU stores one KV head, "
                           f"{tp // inp.arch.kv_heads} copies of every head across the GPUs")
    if available <= 0:
        verdict = "does-not-fit"
        reasons.append(
            f"does not fit: weights + activations need {g(weights + act + non_torch):.2f} GiB, "
            f"{g(-available):.2f} GiB more than the budget"
        )
    elif tokens < seq_tokens:
        verdict = "short-context" if tokens >= acc.block_size else "does-not-fit"
        reasons.append(
            f"the KV cache holds {tokens:,} tokens, fewer than max_model_len {ctx:,}: vLLM refuses to start "
            f"unless max_model_len <= {max_ctx:,}"
        )
    else:
        verdict = "fits"
        reasons.append(f"fits: {tokens / seq_tokens:.2f} sequences of {ctx:,} tokens at once" + (
            f" (its {inp.arch.sliding_window_layers} sliding-window layers keep at most "
            f"{inp.arch.sliding_window:,} tokens + one prefill chunk)" if inp.arch.sliding_window_layers else ""))
    if verdict == "fits" and inp.concurrency and tokens / seq_tokens < inp.concurrency:
        reasons.append(
            f"at concurrency {inp.concurrency} only {tokens / seq_tokens:.1f} full-length sequences fit; "
            "longer requests queue or are preempted"
        )
    if refused:  # vllm/v1/worker/utils.py::request_memory: free memory at startup < utilization * total
        if verdict == "fits":
            reasons[-1] = f"the memory would hold {tokens / seq_tokens:.2f} sequences of {ctx:,} tokens, but:"
        verdict = "does-not-fit"
        reasons.append(
            f"vLLM refuses to start: utilization {util:g} asks for {g(budget):.2f} GiB per GPU, but only about "
            f"{g(startup_free):.2f} GiB are free when it starts ({g(per_gpu.startup_used_bytes):.2f} GiB of CUDA "
            f"context{' and NCCL/custom all-reduce buffers' if tp > 1 else ''}); use "
            f"--gpu-memory-utilization {max_startup_utilization(inp.gpu, tp, acc):g} or less"
        )
    elif graphs_short:
        reasons.append(
            f"little room above the budget: {g(startup_free - budget):.2f} GiB is left for CUDA graphs (about "
            f"{g(graphs):.2f} GiB, captured after the KV cache) and about {g(margin):.2f} GiB of runtime "
            f"buffers, so vLLM may run out of memory at capture or under load; use --gpu-memory-utilization "
            f"{max(0.0, math.floor(100 * (startup_free - needed_above) / total) / 100):g} or --enforce-eager"
        )
    return FitResult(
        verdict=verdict,
        fits=verdict == "fits",
        total_gib=inp.gpu.usable_memory_gib,
        budget_gib=g(budget),
        weights_gib=g(weights),
        activation_gib=g(act),
        non_torch_gib=g(non_torch),
        kv_cache_gib=g(max(available, 0.0)),
        kv_bytes_per_token=per_tok,
        kv_bytes_per_token_model=kv_bytes_per_token(inp.arch, inp.kv_cache_dtype, 1),
        kv_capacity_tokens=tokens,
        max_model_len=ctx,
        max_concurrent_sequences=tokens / seq_tokens,
        max_context_tokens=max_ctx,
        gpu_memory_utilization=util,
        max_num_batched_tokens=mnbt,
        reasons=tuple(reasons),
        comm_buffers_gib=g(per_gpu.comm_buffers_bytes),
        startup_free_gib=g(startup_free),
        utilization_refused=refused,
        cudagraph_outside_gib=g(graphs),
        runtime_headroom_short=graphs_short,
    )


def max_startup_utilization(gpu: Gpu, tp: int = 1, acc: VllmAccounting = VLLM_0_26) -> float:
    """The largest ``--gpu-memory-utilization`` (2 decimals, rounded down) vLLM accepts at startup on an
    otherwise idle GPU: ``floor(100 * (total - startup_used) / total) / 100``, where ``startup_used`` is the
    CUDA context plus, at TP > 1, the NCCL and custom all-reduce buffers (:func:`per_gpu_memory`).

    >>> from calculators.catalog import gpu
    >>> max_startup_utilization(gpu("h100-sxm"), 1), max_startup_utilization(gpu("h100-sxm"), 2)
    (0.99, 0.98)
    """
    require_int("tensor_parallel_size", tp, low=1, high=64)
    used = acc.startup_used_gib + (acc.comm_buffers_gib_tp if tp > 1 else 0.0)
    return max(0.0, math.floor(100 * (1 - used / gpu.usable_memory_gib)) / 100)


def _label(r: FitResult) -> str:
    return {"fits": "fits", "short-context": "fits with a short context only", "does-not-fit": "does not fit"}[
        r.verdict
    ]


def _fixes(inp: FitInput, base: FitResult, acc: VllmAccounting) -> tuple[str, ...]:
    out: list[str] = []

    def attempt(text: str, **changes: object) -> FitResult | None:
        try:
            r = _core(replace(inp, **changes), acc)
        except ValueError:
            return None
        if r.verdict == "does-not-fit" or (base.verdict == "short-context" and r.verdict != "fits"):
            return None
        out.append(f"{prefix}{text}: {r.weights_gib:.1f} GiB of weights, {r.kv_capacity_tokens:,} KV tokens "
                   f"({_label(r)})")
        return r

    prefix = ""
    if base.utilization_refused:  # first the utilization vLLM accepts; the other fixes then start from it
        u = max_startup_utilization(inp.gpu, inp.tensor_parallel_size, acc)
        if u <= 0:
            return ()
        if attempt(f"--gpu-memory-utilization {u:g} (the most vLLM accepts at startup)", gpu_memory_utilization=u):
            return tuple(out)
        inp = replace(inp, gpu_memory_utilization=u)
        base = _core(inp, acc)
        prefix = f"--gpu-memory-utilization {u:g} and "
    if inp.weight_dtype in ("bf16", "fp16"):
        attempt("fp8 weights (--quantization fp8)", weight_dtype="fp8")
    if inp.kv_cache_dtype == "auto":
        attempt("fp8 KV cache (--kv-cache-dtype fp8)", kv_cache_dtype="fp8")
    for tp in (2, 4, 8):
        if tp > inp.tensor_parallel_size and attempt(
            f"TP={tp} (--tensor-parallel-size {tp})", tensor_parallel_size=tp
        ):
            break
    if base.verdict == "short-context" and base.max_context_tokens >= 16:
        out.append(f"{prefix}shorter context: --max-model-len {base.max_context_tokens} (the most the KV cache holds)")
    for g in sorted(gpus().values(), key=lambda x: x.usable_memory_gib):
        if g.usable_memory_gib > inp.gpu.usable_memory_gib and attempt(f"a bigger GPU: {g.name}", gpu=g):
            break
    if inp.weight_dtype in ("bf16", "fp16", "fp8"):
        attempt("int4 weights (AWQ/GPTQ checkpoint)", weight_dtype="int4-awq")
    return tuple(out)


def fit(inp: FitInput, acc: VllmAccounting = VLLM_0_26) -> FitResult:
    """Memory breakdown, KV capacity and verdict for ``inp``; ``fixes`` lists changes that make it fit
    (first the cheapest: fp8 weights, fp8 KV, more TP, shorter context, a bigger GPU, int4).

    Verdicts: ``fits`` (the KV cache holds at least one ``max_model_len`` sequence: vLLM starts),
    ``short-context`` (weights fit but the KV cache holds fewer tokens than ``max_model_len``: vLLM refuses
    to start until ``--max-model-len`` is lowered), ``does-not-fit`` (weights + activations exceed the budget,
    or ``utilization * total`` exceeds the memory free at startup, which vLLM refuses: ``utilization_refused``;
    the first fix is then :func:`max_startup_utilization`). ``runtime_headroom_short`` flags, without
    changing the verdict, a budget that leaves less above it than the CUDA graphs vLLM captures afterwards
    plus a runtime margin (the shared TP=2 run at 0.95 is flagged: it died of OOM at concurrency 32).

    >>> from calculators.catalog import gpu
    >>> from calculators.modelspec import model
    >>> r = fit(FitInput(model("meta-llama/Llama-3.3-70B-Instruct"), gpu("h100-sxm"), 2, max_model_len=4096,
    ...                  gpu_memory_utilization=0.95))
    >>> r.kv_capacity_tokens, r.utilization_refused  # the 2xH100 log: 55,328 tokens
    (54592, False)
    >>> r = fit(FitInput(model("meta-llama/Llama-3.1-8B-Instruct"), gpu("h100-sxm"), gpu_memory_utilization=1.0))
    >>> r.verdict, r.utilization_refused, r.fixes[0][:44]
    ('does-not-fit', True, '--gpu-memory-utilization 0.99 (the most vLLM')
    """
    base = _core(inp, acc)
    if base.verdict == "fits":
        return base
    return replace(base, fixes=_fixes(inp, base, acc))


# LoRA: target module -> (d_in, d_out) as functions of the architecture.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_adapter_bytes(arch: ModelArch, rank: int, targets: tuple[str, ...] = LORA_TARGETS, dtype_bytes: int = 2) -> Bytes:
    """GPU bytes of one LoRA adapter: rank * (d_in + d_out) per target module per layer * dtype bytes.

    MLP targets count once per expert for MoE. vLLM preallocates ``--max-loras`` slots at
    ``--max-lora-rank`` for the modules it supports, so the GPU cost is per slot, not per adapter loaded.

    >>> from calculators.modelspec import model
    >>> m = model("meta-llama/Llama-3.1-8B-Instruct")
    >>> round(lora_adapter_bytes(m, 16, ("q_proj", "k_proj", "v_proj", "o_proj")) / 1e6), round(lora_adapter_bytes(m, 16) / 1e6)
    (27, 84)
    """
    require_int("lora rank", rank, low=1, high=4096)
    h, q, kv, i = arch.hidden_size, arch.attention_heads * arch.head_dim, arch.kv_heads * arch.head_dim, arch.intermediate_size
    dims = {
        "q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
        "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h),
    }
    if not targets:
        raise ValueError(f"lora targets must name at least one of {', '.join(LORA_TARGETS)}")
    total = 0
    for t in targets:
        if t not in dims:
            raise ValueError(f"lora target {t!r} is not one of {', '.join(LORA_TARGETS)}")
        mult = max(arch.num_experts, 1) if t in ("gate_proj", "up_proj", "down_proj") else 1
        total += rank * sum(dims[t]) * mult
    return total * arch.layers * dtype_bytes
