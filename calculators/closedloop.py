"""Closed-loop throughput of a vLLM server for one request shape: mixed prefill/decode steps, KV reads, KV room.

A benchmark client keeps ``c`` requests in flight; each has ``I`` input and ``O`` output tokens and is replaced
the moment it finishes. vLLM's V1 engine runs *steps*; a step carries one decode token for every running sequence
plus prefill tokens of waiting prompts, at most ``B`` = ``--max-num-batched-tokens`` tokens in all (decode tokens
count too; a prompt longer than what is left is split into chunks). vLLM fills a step's budget greedily, so the
prompts that arrive together are prefilled together in a few *heavy* steps, and the others are *light* (decode
only). One step, per GPU of a TP group (functions of :mod:`calculators.roofline` and :mod:`calculators.memory`)::

    bytes    = weights_read(d + p) / TP + d * ctx * kv_bytes_per_token + p * kv_bytes_per_token
    flops    = (d + p) * 2 * matmul_params / TP + d * 4*L*H*hd * ctx / TP + p * 2*L*H*hd * I / TP
    t_step   = max(bytes / (bandwidth * mbu), flops / (peak * mfu)) + overhead

(d decode sequences at mean context ``ctx = I + O/2``; p prefill tokens, whose causal attention averages I/2
keys; the logits of prefill tokens are counted as if computed, a small over-count.)

A *cycle* is the time in which every running request completes once. With ``n`` = running sequences::

    n      = min(c, max_num_seqs, kv_tokens // (I + O), B - 1)   (the rest queue: bound "kv", "max-num-seqs"
                                                                   or "batched-tokens"; else "prefill"/"decode")
    k      = ceil(I / (B - n))               steps a prompt needs (1 unless I is close to B)
    P      = n * I                           prefill tokens per cycle
    heavy  = max(k, P / (B - n))             heavy steps per cycle, each carrying P / heavy prefill tokens
    steps  = max(O - 1 + k, heavy)           a request lives O - 1 decode steps + k prefill steps
    T      = heavy * t_step(n - P/heavy/I, P/heavy) + (steps - heavy) * t_step(n, 0)
    output tokens/s = n * O / T ;   TTFT ~ k * t_heavy (+ queueing for KV room) ;   TPOT = (T - k*t_heavy) / (O - 1)

A request's decode spans the *other* requests' heavy steps, which is why TPOT grows with prefill-heavy shapes
(2,048 in / 128 out at c=128 on an H200: 56 ms measured, 68 ms estimated; 4.8 ms at c=1). Where heavy steps
dominate, the estimate puts too few of them into TTFT and too many into TPOT (+7 % to +42 % on TPOT at
2,048/128 c >= 8 and 1,024/256 c=64; output tok/s stays within 11 %): measured median TTFTs were 3-4.5 heavy
steps, because requests of a closed loop come back bunched; that grouping is not modelled.

The three constants are fitted (``benchmarks/prediction_error.py --fit``) on the eleven vLLM 0.26.0 points of
the two reference runs at 512 in / 256 out (H100: Llama-3.1-8B bf16 c=1-128 and Llama-3.3-70B fp8 c=1-32;
H200: Llama-3.1-8B c=1-128) and checked on 22 held-out points of other shapes, batch budgets and a Qwen2.5-7B
shape (benchmarks/README.md, *Prediction error*: held-out MAE 5.3 % on output tok/s, 9.9 % on median TPOT):

* ``STEP_MBU`` = 0.79, the share of datasheet bandwidth a step's reads run at;
* ``STEP_OVERHEAD_MS`` = 0.90, a fixed cost per step (scheduling, launches, sampling). It is what makes one MBU
  fit both GPUs: the H200 moves the same bytes 1.43x faster, but the per-step cost does not shrink, so the
  "measured MBU" of a whole step reads 60-64 % on the H200 and 69-77 % on the H100;
* ``STEP_MFU`` = 0.56, the share of dense tensor peak the prefill GEMMs reach.

>>> from calculators.catalog import gpu
>>> from calculators.modelspec import model
>>> inp = ClosedLoopInput(model("meta-llama/Llama-3.1-8B-Instruct"), gpu("h200"), input_tokens=2048,
...                       output_tokens=128, kv_capacity_tokens=919_824)
>>> p = closed_loop_point(inp, 128)
>>> p.bound, round(p.output_tokens_per_s_est, -1), round(p.tpot_ms_est)
('prefill', 1850.0, 68)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from calculators.catalog import Gpu
from calculators.memory import FitInput, check_deployment, fit, kv_bytes_per_token
from calculators.modelspec import ModelArch
from calculators.roofline import matmul_params, peak_tflops, weights_read_bytes
from calculators.validation import require_finite, require_int

__all__ = [
    "STEP_MBU",
    "STEP_OVERHEAD_MS",
    "STEP_MFU",
    "CALIBRATION",
    "default_max_num_batched_tokens",
    "default_max_num_seqs",
    "ClosedLoopInput",
    "StepTime",
    "ClosedLoopPoint",
    "step_time",
    "closed_loop_point",
    "closed_loop_sweep",
]

STEP_MBU = 0.79
STEP_OVERHEAD_MS = 0.90
STEP_MFU = 0.56
CALIBRATION = {
    "step_mbu": STEP_MBU,
    "step_overhead_ms": STEP_OVERHEAD_MS,
    "step_mfu": STEP_MFU,
    "fitted_on": "vLLM 0.26.0, 512 in / 256 out: H100 Llama-3.1-8B bf16 c=1,8,32,128 + Llama-3.3-70B fp8 c=1,8,32; "
                 "H200 Llama-3.1-8B bf16 c=1,8,32,128 (benchmarks/prediction_error.py --fit)",
}


def default_max_num_batched_tokens(gpu: Gpu) -> int:
    """vLLM 0.26's ``--max-num-batched-tokens`` for ``vllm serve``: 8,192 on GPUs of >= 70 GiB other than the
    A100, else 2,048 (``EngineArgs.get_batch_defaults``; the H100/H200 server logs say "Chunked prefill is
    enabled with max_num_batched_tokens=8192").

    >>> from calculators.catalog import gpu
    >>> default_max_num_batched_tokens(gpu("h200")), default_max_num_batched_tokens(gpu("l4"))
    (8192, 2048)
    """
    return 8192 if gpu.usable_memory_gib >= 70 and "a100" not in gpu.id.lower() else 2048


def default_max_num_seqs(gpu: Gpu) -> int:
    """vLLM 0.26's ``--max-num-seqs`` for ``vllm serve``: 1,024 where the batch budget is 8,192, else 256."""
    return 1024 if default_max_num_batched_tokens(gpu) == 8192 else 256


@dataclass(frozen=True)
class ClosedLoopInput:
    """A deployment and a request shape. ``None`` budgets take vLLM's defaults for the GPU; ``None`` KV room
    takes :func:`calculators.memory.fit` at ``max_model_len`` (or I + O when that is None)."""

    arch: ModelArch
    gpu: Gpu
    tensor_parallel_size: int = 1
    weight_dtype: str = "bf16"
    kv_cache_dtype: str = "auto"
    input_tokens: int = 512
    output_tokens: int = 256
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    kv_capacity_tokens: int | None = None
    max_model_len: int | None = None
    step_mbu: float = STEP_MBU
    step_overhead_ms: float = STEP_OVERHEAD_MS
    step_mfu: float = STEP_MFU

    def __post_init__(self) -> None:
        check_deployment(self.arch, self.tensor_parallel_size, self.weight_dtype, self.kv_cache_dtype)
        require_int("input_tokens", self.input_tokens, low=1, high=10**7)
        require_int("output_tokens", self.output_tokens, low=1, high=10**7)
        if self.max_num_batched_tokens is not None:
            require_int("max_num_batched_tokens", self.max_num_batched_tokens, low=2, high=10**7)
        if self.max_num_seqs is not None:
            require_int("max_num_seqs", self.max_num_seqs, low=1, high=10**6)
        if self.kv_capacity_tokens is not None:
            require_int("kv_capacity_tokens", self.kv_capacity_tokens, low=0, high=10**10)
        require_finite("step_mbu", self.step_mbu, low=0.0, high=1.0, low_inclusive=False)
        require_finite("step_mfu", self.step_mfu, low=0.0, high=1.0, low_inclusive=False)
        require_finite("step_overhead_ms", self.step_overhead_ms, low=0.0, high=1000.0)

    @property
    def batched_tokens(self) -> int:
        return self.max_num_batched_tokens or default_max_num_batched_tokens(self.gpu)

    @property
    def seqs_cap(self) -> int:
        return self.max_num_seqs or default_max_num_seqs(self.gpu)

    def kv_tokens(self) -> int:
        """KV-cache room in tokens: the given number, else the memory fit's."""
        if self.kv_capacity_tokens is not None:
            return self.kv_capacity_tokens
        mml = self.max_model_len or self.input_tokens + self.output_tokens
        r = fit(FitInput(self.arch, self.gpu, self.tensor_parallel_size, self.weight_dtype, self.kv_cache_dtype,
                         mml, None, self.max_num_batched_tokens))
        return max(0, int(r.kv_capacity_tokens))


@dataclass(frozen=True)
class StepTime:
    memory_ms: float  # bytes / (bandwidth * mbu)
    compute_ms: float  # flops / (peak * mfu)
    total_ms: float  # max of the two + overhead
    bound: str  # "memory" | "compute"


@dataclass(frozen=True)
class ClosedLoopPoint:
    concurrency: int
    running: int  # sequences the server runs at once (<= concurrency)
    bound: str  # "decode" (light steps dominate the cycle) | "prefill" (heavy steps do) | what caps ``running``:
    #             "kv" | "max-num-seqs" | "batched-tokens"
    heavy_steps_per_cycle: float
    light_steps_per_cycle: float
    heavy_step_ms: float
    light_step_ms: float
    cycle_ms: float
    output_tokens_per_s_est: float
    requests_per_s_est: float
    tpot_ms_est: float
    ttft_ms_est: float
    queue_ms_est: float  # added to TTFT when more requests are sent than run at once

    def as_dict(self) -> dict:
        return asdict(self)


def step_time(inp: ClosedLoopInput, decode_seqs: float, prefill_tokens: float) -> StepTime:
    """Time of one step with ``decode_seqs`` decoding sequences (at the mean decode context I + O/2) and
    ``prefill_tokens`` prompt tokens (see the module docstring).

    >>> from calculators.catalog import gpu
    >>> from calculators.modelspec import model
    >>> inp = ClosedLoopInput(model("meta-llama/Llama-3.1-8B-Instruct"), gpu("h100-sxm"))
    >>> s = step_time(inp, 1, 0)
    >>> s.bound, round(s.total_ms, 2)
    ('memory', 6.6)
    """
    a, tp = inp.arch, inp.tensor_parallel_size
    d, p = max(0.0, float(decode_seqs)), max(0.0, float(prefill_tokens))
    ctx = inp.input_tokens + inp.output_tokens / 2
    kv = kv_bytes_per_token(a, inp.kv_cache_dtype, tp)
    tokens = max(1, math.ceil(d + p))
    bytes_read = weights_read_bytes(a, inp.weight_dtype, tokens) / tp + d * ctx * kv + p * kv
    attn = a.layers * a.attention_heads * a.head_dim
    flops = ((d + p) * 2 * matmul_params(a) + d * 4 * attn * ctx + p * 2 * attn * inp.input_tokens) / tp
    t_mem = bytes_read / (inp.gpu.mem_bandwidth_tbps * 1e12 * inp.step_mbu) * 1e3
    t_cmp = flops / (peak_tflops(inp.gpu, inp.weight_dtype) * 1e12 * inp.step_mfu) * 1e3
    return StepTime(t_mem, t_cmp, max(t_mem, t_cmp) + inp.step_overhead_ms, "memory" if t_mem >= t_cmp else "compute")


def closed_loop_point(inp: ClosedLoopInput, concurrency: int) -> ClosedLoopPoint:
    """Steady-state estimate at ``concurrency`` requests in flight (see the module docstring).

    Raises ``ValueError`` when the KV cache cannot hold one whole request (kv_tokens < I + O): vLLM refuses to
    start with a ``--max-model-len`` of that length (``python -m calculators fit`` says what would fit).

    >>> from calculators.catalog import gpu
    >>> from calculators.modelspec import model
    >>> closed_loop_point(ClosedLoopInput(model("meta-llama/Llama-3.1-8B-Instruct"), gpu("h100-sxm"),
    ...                                   kv_capacity_tokens=500), 1)
    Traceback (most recent call last):
    ValueError: the KV cache holds 500 tokens, fewer than one request of 512 + 256: vLLM would not start
    """
    c = require_int("concurrency", concurrency, low=1, high=10**6)
    i, o, b = inp.input_tokens, inp.output_tokens, inp.batched_tokens
    kv = inp.kv_tokens()
    if kv < i + o:
        raise ValueError(f"the KV cache holds {kv} tokens, fewer than one request of {i} + {o}: vLLM would not start")
    kv_seqs = kv // (i + o)
    n = min(c, inp.seqs_cap, kv_seqs, b - 1)
    free = b - n  # budget left for prompt tokens in a step that carries every running sequence
    k = math.ceil(i / free)
    prompt_tokens = n * i
    heavy = max(float(k), prompt_tokens / free)
    steps = max(o - 1 + k, heavy)
    light = steps - heavy
    per_heavy = prompt_tokens / heavy
    t_heavy = step_time(inp, max(0.0, n - per_heavy / i), per_heavy).total_ms
    t_light = step_time(inp, n, 0).total_ms
    cycle = heavy * t_heavy + light * t_light
    own_prefill = k * t_heavy
    queue = (c / n - 1) * cycle if c > n else 0.0
    tpot = (cycle - own_prefill) / (o - 1) if o > 1 else 0.0
    if n < c:
        bound = "kv" if n == kv_seqs else "max-num-seqs" if n == inp.seqs_cap else "batched-tokens"
    else:
        bound = "prefill" if heavy * t_heavy >= light * t_light else "decode"
    return ClosedLoopPoint(
        concurrency=c, running=n, bound=bound, heavy_steps_per_cycle=heavy, light_steps_per_cycle=light,
        heavy_step_ms=t_heavy, light_step_ms=t_light, cycle_ms=cycle,
        output_tokens_per_s_est=n * o / cycle * 1e3, requests_per_s_est=n / cycle * 1e3,
        tpot_ms_est=tpot, ttft_ms_est=own_prefill + queue, queue_ms_est=queue,
    )


def closed_loop_sweep(inp: ClosedLoopInput, concurrencies: tuple[int, ...] | list[int]) -> tuple[ClosedLoopPoint, ...]:
    """:func:`closed_loop_point` for each concurrency (the KV room is computed once).

    >>> from calculators.catalog import gpu
    >>> from calculators.modelspec import model
    >>> inp = ClosedLoopInput(model("meta-llama/Llama-3.3-70B-Instruct"), gpu("h100-sxm"), weight_dtype="fp8",
    ...                       kv_capacity_tokens=8576)
    >>> [(p.running, p.bound) for p in closed_loop_sweep(inp, [1, 32])]
    [(1, 'decode'), (11, 'kv')]
    """
    if not concurrencies:
        raise ValueError("concurrencies must list at least one value")
    fixed = replace(inp, kv_capacity_tokens=inp.kv_tokens())
    return tuple(closed_loop_point(fixed, c) for c in concurrencies)
