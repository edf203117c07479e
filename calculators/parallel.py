"""What one GPU holds when a model is split TP x PP x DP, beyond what :func:`calculators.memory.fit` models.

The memory fit models tensor parallelism (every rank holds ``1/TP`` of each layer, fitted to a real TP=2
startup; :func:`calculators.memory.per_gpu_memory`). Pipeline and data parallelism change per-GPU memory
as follows (vLLM 0.26 and the current source, ``vllm/distributed/utils.py::get_pp_indices``):

- **Pipeline parallel (PP)**: each stage holds a contiguous run of decoder layers. vLLM splits the layers
  evenly; a remainder goes one layer each to the stages before the last (``[27, 27, 26]`` for 80 layers on
  3 stages). The first stage also holds the input embedding, the last the final norm and the lm_head (a
  separate copy when embeddings are tied). Weights and KV bytes per token on a GPU scale with the stage's
  layers; the largest stage sets the KV capacity of the whole pipeline. The activation peak of a stage and
  the send/receive buffers between stages are **not measured** here, so :func:`require_fit_supported`
  refuses PP > 1 rather than guess a KV capacity.
- **Data parallel (DP)**: ``DP`` full replicas (each TP x PP GPUs with its own engine and KV cache).
  Per-GPU memory is that of one replica; KV capacity and throughput add up over replicas. Modelled.

>>> from calculators.modelspec import model
>>> p = parallel_layout(model("meta-llama/Llama-3.3-70B-Instruct"), tp=2, pp=2, dp=2)
>>> p.gpus, p.layers_per_stage, p.kv_bytes_per_token_per_gpu, p.replicas
(8, (40, 40), 81920, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from calculators.memory import (
    GIB,
    KV_CACHE_DTYPES,
    kv_bytes_per_token,
    kv_heads_per_gpu,
    weight_bytes,
    weight_bytes_per_gpu,
)
from calculators.modelspec import ModelArch
from calculators.validation import require_int

__all__ = ["ParallelLayout", "pp_partition", "parallel_layout", "require_fit_supported"]


def pp_partition(layers: int, pp: int) -> tuple[int, ...]:
    """Decoder layers per pipeline stage, as vLLM's ``get_pp_indices`` splits them by default::

        stage_i = layers // PP, plus 1 for each of the ``layers % PP`` stages just before the last

    >>> pp_partition(80, 3), pp_partition(32, 1), pp_partition(7, 4)
    ((27, 27, 26), (32,), (2, 2, 2, 1))
    """
    require_int("pipeline_parallel_size", pp, low=1, high=64)
    if pp > layers:
        raise ValueError(f"pipeline parallel size {pp} must not exceed the layers ({layers})")
    parts = [layers // pp] * pp
    for i in range(2, layers % pp + 2):
        parts[-i] += 1
    return tuple(parts)


@dataclass(frozen=True)
class ParallelLayout:
    """One TP x PP x DP deployment, per GPU of its largest pipeline stage (bytes)."""

    tensor_parallel_size: int
    pipeline_parallel_size: int
    data_parallel_size: int
    gpus: int  # TP * PP * DP
    replicas: int  # DP: engines with their own KV cache
    layers_per_stage: tuple[int, ...]
    weights_bytes_per_gpu: int  # the heaviest stage, / TP
    kv_bytes_per_token_per_gpu: int  # the stage with the most layers
    kv_heads_per_gpu: int


def parallel_layout(arch: ModelArch, tp: int = 1, pp: int = 1, dp: int = 1, weight_dtype: str = "bf16",
                    kv_cache_dtype: str = "auto") -> ParallelLayout:
    """Split of a TP x PP x DP deployment::

        gpus                = TP * PP * DP
        stage weights       = layers_i * (W - 2 B * (embeddings + H)) / layers
                              + 2 B * V * H on the first stage + 2 B * (V * H + H) on the last
        weights per GPU     = max over stages / TP     (PP = 1: calculators.memory.weight_bytes_per_gpu)
        kv_bytes/token/GPU  = 2 * max(layers_i) * max(1, kv_heads // TP) * head_dim * elem bytes
                              (MLA: max(layers_i) * (kv_lora_rank + qk_rope_head_dim) * elem bytes, whole on each GPU)
        per-GPU memory does not change with DP; replicas = DP

    Embeddings and lm_head are 16-bit in every weight dtype (as :func:`calculators.memory.weight_bytes`).

    >>> from calculators.modelspec import model
    >>> m = model("meta-llama/Llama-3.3-70B-Instruct")
    >>> round(parallel_layout(m, tp=2, pp=2).weights_bytes_per_gpu / GIB, 2)
    32.85
    >>> parallel_layout(model("meta-llama/Llama-3.1-8B-Instruct"), pp=33)
    Traceback (most recent call last):
    ...
    ValueError: pipeline parallel size 33 must not exceed the layers (32)
    """
    heads = kv_heads_per_gpu(arch, tp)
    stages = pp_partition(arch.layers, pp)
    require_int("data_parallel_size", dp, low=1, high=4096)
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ValueError(f"kv_cache_dtype must be one of {', '.join(KV_CACHE_DTYPES)}, got {kv_cache_dtype!r}")
    if pp == 1:
        per_gpu = weight_bytes_per_gpu(arch, weight_dtype, tp)
    else:
        embed = 2 * arch.vocab_size * arch.hidden_size
        head = 2 * (arch.vocab_size * arch.hidden_size + arch.hidden_size)
        decoder_per_layer = (weight_bytes(arch, weight_dtype) - 2 * (arch.embedding_params + arch.hidden_size)) / arch.layers
        stage_bytes = [n * decoder_per_layer for n in stages]
        stage_bytes[0] += embed
        stage_bytes[-1] += head
        per_gpu = math.ceil(max(stage_bytes) / tp)
    return ParallelLayout(
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        data_parallel_size=dp,
        gpus=tp * pp * dp,
        replicas=dp,
        layers_per_stage=stages,
        weights_bytes_per_gpu=per_gpu,
        kv_bytes_per_token_per_gpu=kv_bytes_per_token(arch, kv_cache_dtype, tp) // arch.layers * max(stages),
        kv_heads_per_gpu=heads,
    )


def require_fit_supported(layout: ParallelLayout) -> None:
    """Raise ``ValueError`` for what the memory fit does not model (PP > 1); DP and TP pass.

    >>> from calculators.modelspec import model
    >>> require_fit_supported(parallel_layout(model("meta-llama/Llama-3.1-8B-Instruct"), tp=2, dp=4))
    >>> require_fit_supported(parallel_layout(model("meta-llama/Llama-3.1-8B-Instruct"), pp=2))
    Traceback (most recent call last):
    ...
    ValueError: pipeline parallel size 2 is not modelled by the memory fit: a stage holds (16, 16) layers (weights 7.48 GiB per GPU), but its activation peak and the send/receive buffers between stages are not measured; use tensor parallel (--tensor-parallel-size) or data parallel replicas
    """
    if layout.pipeline_parallel_size > 1:
        raise ValueError(
            f"pipeline parallel size {layout.pipeline_parallel_size} is not modelled by the memory fit: a stage "
            f"holds {layout.layers_per_stage} layers (weights {layout.weights_bytes_per_gpu / GIB:.2f} GiB per "
            "GPU), but its activation peak and the send/receive buffers between stages are not measured; use "
            "tensor parallel (--tensor-parallel-size) or data parallel replicas"
        )
