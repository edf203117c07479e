"""The vLLM launch plan: ``vllm serve`` and ``docker run`` argv chosen from the fit analysis, with reasons.

Flag names were checked against vLLM 0.26.0 (the engine config it logs at startup, e.g.
``enable_prefix_caching=True, enable_chunked_prefill=True``) and the current engine-args docs:
``--max-model-len``, ``--gpu-memory-utilization``, ``--max-num-seqs``, ``--max-num-batched-tokens``,
``--enable-prefix-caching``, ``--tensor-parallel-size``, ``--quantization``, ``--kv-cache-dtype``,
``--enable-chunked-prefill``, ``--enable-lora``, ``--max-lora-rank``, ``--max-loras``. The article's
``--num-scheduler-steps`` was removed with the V0 engine and is never emitted. Prefix caching and chunked
prefill are on by default in V1; we pass them anyway so the command says what it relies on.

The image is pinned to ``vllm/vllm-openai:v0.26.0`` (:data:`IMAGE`): the memory accounting in
:mod:`calculators.memory` was measured on that release, and defaults drift between releases (the default
``gpu_memory_utilization`` went from 0.9 to 0.92), so ``latest`` would silently change the capacity.

>>> from calculators.catalog import gpu
>>> from calculators.memory import FitInput
>>> from calculators.modelspec import model
>>> p = plan_launch(FitInput(model("meta-llama/Llama-3.1-8B-Instruct"), gpu("h100-sxm"), max_model_len=4096))
>>> p.serve_args[:4]
('--tensor-parallel-size', '1', '--max-model-len', '4096')
>>> p.vllm_serve_argv()[:3]
['vllm', 'serve', 'meta-llama/Llama-3.1-8B-Instruct']

Two caps keep the plan from throttling the probe or failing at startup (issue 9):

``--max-num-seqs`` (how many requests vLLM runs at once)::

    request_blocks = ceil(min(input + output, max_model_len) / 16)       # the expected request at its end
    kv_room        = floor(kv_capacity_tokens / 16) // request_blocks    # requests the KV cache can serve
    max_num_seqs   = max(1, min(kv_room, vllm_default, max_num_batched_tokens))

vLLM allocates KV pages on demand (16-token blocks), so the room is counted at the EXPECTED request length
(input + output tokens, default 512 + 256: the shape of the repo's reference H100 runs, benchmarks/README.md),
never at ``max_model_len``. ``vllm_default`` is vLLM's own (``EngineArgs.get_batch_defaults`` for the OpenAI
server: 1024 on GPUs of >= 70 GiB that are not A100s, else 256; read in the 0.32 source, and the 0.26 H100 logs
show the same branch: max_num_batched_tokens=8192, CUDA graphs captured up to min(2 * max_num_seqs, 512) = 512).
vLLM refuses ``max_num_batched_tokens < max_num_seqs``.

``--gpu-memory-utilization``::

    cap = floor_0.01((free_at_start - cuda_graphs - 0.15 GiB) / total)

vLLM refuses a budget above the memory free at startup, and captures CUDA graphs after sizing the KV cache, outside
the budget, keeping a 150 MiB profiling buffer (``gpu_worker.py``'s "to fully utilize gpu memory" sum).
``free_at_start`` is measured when the caller knows it, else total minus the CUDA context vLLM's logs show
(0.52 GiB at TP=1 on the H100 and H200, 1.54 GiB per GPU at TP=2). The CUDA-graph reserve is
:func:`cudagraph_reserve_gib`.

>>> p.max_num_seqs, p.gpu_memory_utilization_cap
(603, 0.97)

A deployment that vLLM would refuse or that dies at startup gets no command: ``will_not_start`` says why (weights
and activations over the budget, or a GPU too full to hold even the CUDA graphs), ``fixes`` what would fit, and
``flags`` is empty (:meth:`LaunchPlan.vllm_serve_argv` raises).

>>> bad = plan_launch(FitInput(model("meta-llama/Llama-3.3-70B-Instruct"), gpu("h100-sxm"), max_model_len=4096))
>>> bad.will_not_start[:60], bad.flags
('weights + activations need 133.9 GiB per GPU, more than the ', ())
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from calculators.catalog import Gpu
from calculators.memory import VLLM_0_26, FitInput, FitResult, fit
from calculators.modelspec import ModelArch
from calculators.roofline import RooflineInput, prefill
from calculators.validation import require_finite, require_int

__all__ = [
    "IMAGE",
    "DEFAULT_INPUT_TOKENS",
    "DEFAULT_OUTPUT_TOKENS",
    "LaunchFlag",
    "LaunchPlan",
    "cudagraph_reserve_gib",
    "free_gib_at_start_default",
    "free_gib_at_start_measured",
    "gpu_memory_utilization_cap",
    "kv_room_sequences",
    "plan_launch",
]

IMAGE = "vllm/vllm-openai:v0.26.0"
DEFAULT_INPUT_TOKENS = 512  # the repo's reference H100 runs (benchmarks/README.md): 512 in / 256 out
DEFAULT_OUTPUT_TOKENS = 256
CUDA_CONTEXT_GIB_TP1 = 0.52  # total - free at startup in vLLM 0.26 logs: H100 79.18 - 78.66, H200 139.80 - 139.29
CUDA_CONTEXT_GIB_TP = 1.54  # per GPU at TP=2 (H100 log: 79.18 - 77.64); NCCL and custom all-reduce come later
PROFILE_BUFFER_GIB = 150 / 1024  # vLLM's redundancy_buffer_memory (150 MiB) beside the KV cache
Gib = float


def cudagraph_reserve_gib(arch: ModelArch) -> Gib:
    """CUDA-graph memory vLLM captures outside the utilization budget, per GPU: 0.353 + 0.0196 * layers GiB.

    A two-point fit to vLLM 0.26.0 H100 logs at TP=1 (Llama-3.1-8B shape, 32 layers: 0.98 GiB; Llama-3.3-70B
    fp8, 80 layers: 1.92 GiB), 51 graph sizes up to 512; conservative at TP=2 (the 70B bf16 log: 1.51 GiB).

    >>> from calculators.modelspec import model
    >>> round(cudagraph_reserve_gib(model("meta-llama/Llama-3.1-8B-Instruct")), 2)
    0.98
    """
    return 0.353 + 0.0196 * arch.layers


def free_gib_at_start_default(gpu: Gpu, tensor_parallel_size: int = 1) -> Gib:
    """Free memory per GPU when vLLM starts on an otherwise idle GPU: total less the CUDA context it logs."""
    return gpu.usable_memory_gib - (CUDA_CONTEXT_GIB_TP1 if tensor_parallel_size == 1 else CUDA_CONTEXT_GIB_TP)


def free_gib_at_start_measured(gpu: Gpu, tensor_parallel_size: int,
                               devices: Sequence[tuple[str | None, float | None]]) -> tuple[Gib | None, str]:
    """Free memory per GPU when vLLM starts, from what NVML measures now, and a line saying where it came from.

    ``devices``: (catalog GPU id or None, NVML free MiB or None) for each GPU this machine sees, in index order
    (the caller reads them through ``probes.observe.gpu``). The first ``tensor_parallel_size`` GPUs of the
    planned type count; the least free one sets the value::

        free_at_start = min(min_i(free_mib_i) / 1024 - cuda_context, free on an idle GPU)

    where ``cuda_context`` is what vLLM itself adds before it checks (0.52 GiB at TP=1, 1.54 GiB per GPU at
    TP>1, :func:`free_gib_at_start_default`). None (with the reason) when this machine has no such GPU, too few
    of them, or NVML could not read one: the caller then assumes an idle GPU.

    >>> from calculators.catalog import gpu
    >>> free_gib_at_start_measured(gpu("h100-sxm"), 1, [("h100-sxm", 40_960.0)])[0]
    39.48
    >>> free_gib_at_start_measured(gpu("h100-sxm"), 2, [("h100-sxm", 80_000.0)])
    (None, 'this machine has 1 NVIDIA H100 SXM 80GB, fewer than the 2 planned: assumed idle GPUs')
    >>> free_gib_at_start_measured(gpu("h100-sxm"), 1, [])[1]
    'no NVIDIA GPU visible here: assumed an idle GPU'
    """
    tp = require_int("tensor_parallel_size", tensor_parallel_size, low=1, high=64)
    if not devices:
        return None, "no NVIDIA GPU visible here: assumed an idle GPU"
    frees = [free for gpu_id, free in devices if gpu_id == gpu.id][:tp]
    if len(frees) < tp:
        have = f"{len(frees)} {gpu.name}" if frees else f"no {gpu.name}"
        return None, f"this machine has {have}, fewer than the {tp} planned: assumed idle GPUs"
    if any(f is None for f in frees):
        return None, f"NVML could not read the free memory of every {gpu.name} here: assumed idle GPUs"
    nvml_free = min(float(f) for f in frees) / 1024  # type: ignore[arg-type]
    context = CUDA_CONTEXT_GIB_TP1 if tp == 1 else CUDA_CONTEXT_GIB_TP
    free = round(max(0.0, min(free_gib_at_start_default(gpu, tp), nvml_free - context)), 2)
    where = "the GPU" if tp == 1 else f"the least free of {tp} GPUs"
    return free, (f"measured now (NVML): {nvml_free:.2f} GiB free on {where}, less {context:.2f} GiB for vLLM's "
                  f"CUDA context{' and NCCL buffers' if tp > 1 else ''} = {free:.2f} GiB")


def gpu_memory_utilization_cap(arch: ModelArch, gpu: Gpu, tensor_parallel_size: int = 1,
                               free_gib_at_start: float | None = None) -> float:
    """Highest ``--gpu-memory-utilization`` that starts and survives CUDA-graph capture (module docstring);
    0 or less when the free memory does not even hold the graphs.

    >>> from calculators.catalog import gpu
    >>> from calculators.modelspec import model
    >>> gpu_memory_utilization_cap(model("meta-llama/Llama-3.3-70B-Instruct"), gpu("h100-sxm"))
    0.96
    >>> gpu_memory_utilization_cap(model("meta-llama/Llama-3.1-8B-Instruct"), gpu("h100-sxm"), free_gib_at_start=40)
    0.49
    """
    total = gpu.usable_memory_gib
    if free_gib_at_start is None:
        free = free_gib_at_start_default(gpu, tensor_parallel_size)
    else:
        free = require_finite("free_gib_at_start", free_gib_at_start, low=0.0, high=total)
    headroom = free - cudagraph_reserve_gib(arch) - PROFILE_BUFFER_GIB
    return min(1.0, math.floor(100 * headroom / total + 1e-9) / 100)


def kv_room_sequences(kv_capacity_tokens: int, request_tokens: int, block_size: int = VLLM_0_26.block_size) -> int:
    """Requests of ``request_tokens`` tokens the KV cache holds at once: whole 16-token blocks each.

    >>> kv_room_sequences(8_816, 512 + 256)
    11
    """
    require_int("request_tokens", request_tokens, low=1)
    return (max(0, kv_capacity_tokens) // block_size) // math.ceil(request_tokens / block_size)


@dataclass(frozen=True)
class LaunchFlag:
    name: str
    value: str | None  # None for a switch
    reason: str


@dataclass(frozen=True)
class LaunchPlan:
    model: str
    flags: tuple[LaunchFlag, ...]
    warnings: tuple[str, ...]
    tensor_parallel_size: int = 1
    image: str = IMAGE
    max_num_seqs: int = 0
    gpu_memory_utilization_cap: float = 1.0
    expected_request_tokens: int = DEFAULT_INPUT_TOKENS + DEFAULT_OUTPUT_TOKENS
    will_not_start: str = ""  # non-empty: vLLM would refuse or die at startup; then flags is empty
    fixes: tuple[str, ...] = ()  # what would start instead (calculators.memory's fixes), when it will not start
    caps: tuple[str, ...] = ()  # each flag the plan lowered or bounded, with its reason

    def _require_startable(self) -> None:
        if self.will_not_start:
            raise ValueError(f"will not start: {self.will_not_start}")

    @property
    def serve_args(self) -> tuple[str, ...]:
        """The flags after the model, as argv items (never a shell string)."""
        out: list[str] = []
        for f in self.flags:
            out.append(f.name)
            if f.value is not None:
                out.append(f.value)
        return tuple(out)

    def vllm_serve_argv(self, model: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> list[str]:
        """``vllm serve`` bound to loopback by default: vLLM itself listens on every interface unless told.

        Before exposing it, put it behind a proxy or add ``--api-key`` (read from an env var, never typed).
        """
        self._require_startable()
        require_int("port", port, low=1, high=65535)
        return ["vllm", "serve", model or self.model, *self.serve_args, "--host", host, "--port", str(port)]

    def docker_argv(self, model: str | None = None, port: int = 8000, hf_cache: str | None = None) -> list[str]:
        """``docker run`` of the pinned image; its entrypoint is ``vllm serve``, so the model comes first.

        ``--gpus`` carries literal double quotes (docker parses ``"device=0,1"`` as one CSV field);
        ``hf_cache`` defaults to ``~/.cache/huggingface`` expanded (argv is never passed through a shell).
        """
        self._require_startable()
        require_int("port", port, low=1, high=65535)
        cache = hf_cache or str(Path.home() / ".cache" / "huggingface")
        devices = ",".join(str(i) for i in range(self.tensor_parallel_size))
        return [
            "docker", "run", "--rm", "--gpus", f'"device={devices}"', "--ipc=host",
            "-p", f"127.0.0.1:{port}:8000",  # publish on loopback only; docker's default is 0.0.0.0
            "-v", f"{cache}:/root/.cache/huggingface",
            "-e", "HF_TOKEN",
            self.image, model or self.model, *self.serve_args,
        ]


def plan_launch(
    inp: FitInput,
    result: FitResult | None = None,
    *,
    enable_lora: bool | None = None,
    max_lora_rank: int | None = None,
    max_loras: int | None = None,
    prompt_tokens: int = 1024,
    input_tokens: int = DEFAULT_INPUT_TOKENS,
    output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    free_gib_at_start: float | None = None,
) -> LaunchPlan:
    """Flags for ``inp`` (a :class:`~calculators.memory.FitInput`), each with a one-line reason, and the
    warnings that apply (the article's failure modes: OOM on long prompts, prefill latency spikes,
    fragmentation; and raising the utilization on large models).

    ``input_tokens + output_tokens`` is the expected request, which sizes ``--max-num-seqs``;
    ``free_gib_at_start`` is the memory free per GPU when vLLM will start (measured, e.g. by NVML), which caps
    ``--gpu-memory-utilization`` with the CUDA-graph reserve (module docstring). ``prompt_tokens`` sizes the
    prefill-latency warning. A ``short-context`` fit gets ``--max-model-len`` lowered to what the KV cache
    holds. A deployment that will not start (weights and activations over the budget even at the capped
    utilization, or too little free memory for the CUDA graphs) gets no flags: ``will_not_start`` says why and
    ``fixes`` what would fit. ``caps`` lists each flag the plan lowered or bounded, with the reason.
    """
    require_int("input_tokens", input_tokens, low=1, high=10**7)
    require_int("output_tokens", output_tokens, low=1, high=10**7)
    enable_lora = bool(inp.max_loras) if enable_lora is None else enable_lora
    max_lora_rank = inp.max_lora_rank if max_lora_rank is None else max_lora_rank
    max_loras = (inp.max_loras or 1) if max_loras is None else max_loras
    warnings: list[str] = []
    flags: list[LaunchFlag] = []
    caps: list[str] = []
    tp = inp.tensor_parallel_size
    # utilization: vLLM's default unless asked, never above what starts and survives CUDA-graph capture
    cap = gpu_memory_utilization_cap(inp.arch, inp.gpu, tp, free_gib_at_start)
    free = free_gib_at_start if free_gib_at_start is not None else free_gib_at_start_default(inp.gpu, tp)
    graphs = cudagraph_reserve_gib(inp.arch)
    cap_text = (f"cap {max(cap, 0):g} = ({free:.2f} GiB free at start"
                + (" (measured)" if free_gib_at_start is not None else " on an idle GPU, assumed")
                + f" - {graphs:.2f} GiB of CUDA graphs - 0.15 GiB buffer) / {inp.gpu.usable_memory_gib:g} GiB")
    asked = VLLM_0_26.default_gpu_memory_utilization if inp.gpu_memory_utilization is None else inp.gpu_memory_utilization
    r = result or fit(inp)
    if cap <= 0:
        return LaunchPlan(
            model=inp.arch.id, flags=(), warnings=(), tensor_parallel_size=tp, gpu_memory_utilization_cap=0.0,
            will_not_start=(f"{free:.2f} GiB free per GPU at start does not hold even the {graphs:.2f} GiB of "
                            "CUDA graphs vLLM captures; free the GPU first (another process holds its memory)"),
            fixes=("free the GPU's memory (stop the other process), or plan on another GPU",))
    if asked > cap:
        inp = replace(inp, gpu_memory_utilization=cap)
        r = fit(inp)
        caps.append(f"--gpu-memory-utilization {cap:g} (asked {asked:g}): vLLM refuses a budget above the free "
                    f"memory at startup and captures CUDA graphs outside it ({cap_text})")
        warnings.append(f"--gpu-memory-utilization lowered from {asked:g} to {cap:g}: vLLM refuses a budget above "
                        f"the free memory at startup and captures CUDA graphs outside it ({cap_text})")
    if r.verdict == "does-not-fit":
        need = r.weights_gib + r.activation_gib + r.non_torch_gib
        if need >= r.budget_gib:
            why = (f"weights + activations need {need:.1f} GiB per GPU, more than the {r.budget_gib:.1f} GiB "
                   f"budget at --gpu-memory-utilization {r.gpu_memory_utilization:g}")
        elif r.kv_capacity_tokens < VLLM_0_26.block_size:
            why = (f"the KV cache would hold only {r.kv_capacity_tokens:,} tokens, less than one "
                   f"{VLLM_0_26.block_size}-token block")
        else:
            why = f"vLLM would refuse these settings: {r.reasons[-1]}"
        return LaunchPlan(model=inp.arch.id, flags=(), warnings=(), tensor_parallel_size=tp,
                          gpu_memory_utilization_cap=cap, will_not_start=why, fixes=r.fixes, caps=tuple(caps))
    flags.append(LaunchFlag("--tensor-parallel-size", str(tp),
                            f"{r.weights_gib:.1f} GiB of weights per GPU across {tp} GPU(s)"))
    max_len = r.max_model_len
    if r.verdict == "short-context":
        asked_len = max_len
        max_len = max(16, r.max_context_tokens)
        inp = replace(inp, max_model_len=max_len)
        r = fit(inp)
        warnings.append(f"max_model_len lowered to {max_len:,}: the KV cache holds only that many tokens")
        caps.append(f"--max-model-len {max_len:,} (asked {asked_len:,}): the KV cache holds only that many tokens; "
                    "vLLM refuses to start with a longer one")
    flags.append(LaunchFlag("--max-model-len", str(max_len),
                            f"longest prompt + output; the KV cache holds {r.kv_capacity_tokens:,} tokens = "
                            f"{r.max_concurrent_sequences:.1f} sequences of this length"))
    flags.append(LaunchFlag("--gpu-memory-utilization", f"{r.gpu_memory_utilization:g}",
                            f"{r.budget_gib:.1f} GiB budget per GPU; pinned because the default moved 0.9 -> 0.92; "
                            + cap_text))
    # concurrency: what the KV cache serves at the expected request length, within vLLM's own default
    request = min(input_tokens + output_tokens, max_len)
    default_seqs = VLLM_0_26.default_max_num_seqs(inp.gpu)
    room = kv_room_sequences(r.kv_capacity_tokens, request)
    seqs = max(1, min(room, default_seqs, r.max_num_batched_tokens))
    limit = ("the KV room" if seqs == room else f"vLLM's default {default_seqs}" if seqs == default_seqs
             else f"--max-num-batched-tokens {r.max_num_batched_tokens} (vLLM requires it >= max_num_seqs)")
    flags.append(LaunchFlag(
        "--max-num-seqs", str(seqs),
        f"the KV cache serves {room:,} requests of {request:,} tokens ({input_tokens:,} in + {output_tokens:,} out, "
        f"pages allocated on demand) at once; vLLM's default is {default_seqs}; set by {limit}; "
        "shorter requests would fit more, longer ones get preempted"))
    caps.append(f"--max-num-seqs {seqs:,}: set by {limit} (the KV cache serves {room:,} requests of {request:,} "
                f"tokens at once; vLLM's default is {default_seqs:,})")
    flags.append(LaunchFlag("--max-num-batched-tokens", str(r.max_num_batched_tokens),
                            "prefill chunk size: bounds the activation reserve and each decode stall"))
    flags.append(LaunchFlag("--enable-chunked-prefill", None,
                            "long prompts are split so running decodes keep streaming (default on in V1)"))
    flags.append(LaunchFlag("--enable-prefix-caching", None,
                            "shared system prompts and chat history skip prefill (default on in V1)"))
    if inp.weight_dtype == "fp8":
        flags.append(LaunchFlag("--quantization", "fp8",
                                "fp8 weights halve the bf16 footprint (dynamic quantization of a bf16 checkpoint)"))
    elif inp.weight_dtype.startswith("int4"):
        warnings.append("int4 needs an AWQ or GPTQ checkpoint; vLLM detects the method from its config, "
                        "so no --quantization flag is passed")
    if inp.kv_cache_dtype == "fp8":
        flags.append(LaunchFlag("--kv-cache-dtype", "fp8", "fp8 KV doubles the tokens the cache holds"))
    if enable_lora:
        require_int("max_lora_rank", max_lora_rank, low=1, high=512)
        require_int("max_loras", max_loras, low=1, high=256)
        flags.append(LaunchFlag("--enable-lora", None, "serve LoRA adapters on the base model"))
        flags.append(LaunchFlag("--max-lora-rank", str(max_lora_rank),
                                "GPU slots are sized at this rank: keep it at the largest adapter's rank"))
        flags.append(LaunchFlag("--max-loras", str(max_loras), "adapters resident per batch; each slot costs GPU memory"))
    if r.verdict != "does-not-fit":
        if r.max_concurrent_sequences < 4:
            warnings.append(
                f"OOM/preemption on long prompts: only {r.max_concurrent_sequences:.1f} sequences of "
                f"{max_len:,} tokens fit in the KV cache; more concurrent long requests queue or are preempted"
            )
        rin = RooflineInput(inp.arch, inp.gpu, tp, inp.weight_dtype, inp.kv_cache_dtype)
        pf = prefill(rin, require_int("prompt_tokens", prompt_tokens, low=1, high=10**7))
        chunk = prefill(rin, r.max_num_batched_tokens)
        warnings.append(
            f"prefill latency spikes: a {prompt_tokens:,}-token prompt needs >= {pf.ttft_ms_floor:.0f} ms "
            f"(~{pf.ttft_ms_est:.0f} ms realistic); each {r.max_num_batched_tokens}-token prefill chunk stalls "
            f"running decodes ~{chunk.ttft_ms_est:.0f} ms: lower --max-num-batched-tokens for smoother streaming"
        )
    warnings.append(
        "fragmentation: PagedAttention wastes < 1 block (16 tokens) per sequence, but the PyTorch allocator "
        "can fragment near the limit; keep the utilization headroom for CUDA graphs and sampler buffers "
        "(CUDA graphs alone took 0.98 GiB for Llama-8B and 1.92 GiB for Llama-70B fp8 outside the budget on "
        "an H100, benchmarks/README.md)"
    )
    if r.gpu_memory_utilization > VLLM_0_26.default_gpu_memory_utilization or r.weights_gib > 0.6 * r.total_gib:
        warnings.append(
            "raising --gpu-memory-utilization to 0.95 on a large model has a real cost: a TP=2 Llama-70B bf16 "
            "run at 0.95 on H100s died of CUDA OOM at concurrency 32 (activations live outside the budget)"
        )
    warnings.append("--num-scheduler-steps (in the article) no longer exists in vLLM's V1 engine: not passed")
    if asked <= cap:
        caps.insert(0, f"--gpu-memory-utilization {r.gpu_memory_utilization:g}: within the {cap_text}")
    return LaunchPlan(model=inp.arch.id, flags=tuple(flags), warnings=tuple(warnings), tensor_parallel_size=tp,
                      max_num_seqs=seqs, gpu_memory_utilization_cap=max(cap, 0.0), expected_request_tokens=request,
                      caps=tuple(caps))
