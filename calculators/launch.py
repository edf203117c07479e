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
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from calculators.memory import VLLM_0_26, FitInput, FitResult, fit
from calculators.roofline import RooflineInput, prefill
from calculators.validation import require_int

__all__ = ["IMAGE", "LaunchFlag", "LaunchPlan", "plan_launch"]

IMAGE = "vllm/vllm-openai:v0.26.0"


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
        require_int("port", port, low=1, high=65535)
        return ["vllm", "serve", model or self.model, *self.serve_args, "--host", host, "--port", str(port)]

    def docker_argv(self, model: str | None = None, port: int = 8000, hf_cache: str | None = None) -> list[str]:
        """``docker run`` of the pinned image; its entrypoint is ``vllm serve``, so the model comes first.

        ``--gpus`` carries literal double quotes (docker parses ``"device=0,1"`` as one CSV field);
        ``hf_cache`` defaults to ``~/.cache/huggingface`` expanded (argv is never passed through a shell).
        """
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
) -> LaunchPlan:
    """Flags for ``inp`` (a :class:`~calculators.memory.FitInput`), each with a one-line reason, and the
    warnings that apply (the article's failure modes: OOM on long prompts, prefill latency spikes,
    fragmentation; and raising the utilization on large models).

    A ``short-context`` fit gets ``--max-model-len`` lowered to what the KV cache holds; a ``does-not-fit``
    one still gets a plan, with a first warning that vLLM will fail at startup and the fixes.
    """
    r = result or fit(inp)
    enable_lora = bool(inp.max_loras) if enable_lora is None else enable_lora
    max_lora_rank = inp.max_lora_rank if max_lora_rank is None else max_lora_rank
    max_loras = (inp.max_loras or 1) if max_loras is None else max_loras
    warnings: list[str] = []
    flags: list[LaunchFlag] = []
    if r.verdict == "does-not-fit":
        warnings.append("this will fail at startup (weights + activations exceed the budget); fix first: "
                        + ("; ".join(r.fixes[:3]) or "use a bigger GPU or more GPUs"))
    tp = inp.tensor_parallel_size
    flags.append(LaunchFlag("--tensor-parallel-size", str(tp),
                            f"{r.weights_gib:.1f} GiB of weights per GPU across {tp} GPU(s)"))
    max_len = r.max_model_len
    if r.verdict == "short-context":
        max_len = max(16, r.max_context_tokens)
        inp = replace(inp, max_model_len=max_len)
        r = fit(inp)
        warnings.append(f"max_model_len lowered to {max_len:,}: the KV cache holds only that many tokens")
    flags.append(LaunchFlag("--max-model-len", str(max_len),
                            f"longest prompt + output; the KV cache holds {r.kv_capacity_tokens:,} tokens = "
                            f"{r.max_concurrent_sequences:.1f} sequences of this length"))
    flags.append(LaunchFlag("--gpu-memory-utilization", f"{r.gpu_memory_utilization:g}",
                            f"{r.budget_gib:.1f} GiB budget per GPU; pinned because the default moved 0.9 -> 0.92"))
    default_seqs = VLLM_0_26.default_max_num_seqs(inp.gpu)
    room = max(1, int(r.kv_capacity_tokens // max(1, max_len // 2)))
    seqs = min(default_seqs, inp.concurrency or default_seqs, room) if r.kv_capacity_tokens else 1
    flags.append(LaunchFlag("--max-num-seqs", str(seqs),
                            f"KV room for ~{room} sequences at half of max_model_len; more would only be preempted"))
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
    return LaunchPlan(model=inp.arch.id, flags=tuple(flags), warnings=tuple(warnings), tensor_parallel_size=tp)
