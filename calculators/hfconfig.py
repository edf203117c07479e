"""Hugging Face ``config.json`` keys -> the fields of :class:`calculators.modelspec.ModelArch`, or a refusal.

Which keys each family uses (read from transformers' and vLLM's model code):

- MoE: ``num_local_experts`` (Mixtral), ``num_experts`` (Qwen-MoE), ``n_routed_experts`` (DeepSeek/Kimi),
  ``num_experts_per_tok``, ``moe_intermediate_size``; shared experts ``shared_expert_intermediate_size``
  (Qwen2-MoE, with an H x 1 gate) or ``n_shared_experts`` x ``moe_intermediate_size`` (DeepSeek); dense layers
  ``first_k_dense_replace`` + ``moe_layer_freq`` (DeepSeek: layer i is MoE when i >= k and i % freq == 0) or
  ``decoder_sparse_step`` + ``mlp_only_layers`` (Qwen: MoE when (i + 1) % step == 0 and i not listed);
- MLA: ``kv_lora_rank``, ``q_lora_rank`` (null: no query compression), ``qk_nope_head_dim``,
  ``qk_rope_head_dim``, ``v_head_dim`` (a ``head_dim`` key in MLA configs is not the cache's);
- sliding window: ``sliding_window`` (``sliding_window_size`` in early Gemma 2 files) with ``layer_types``
  when present, else Gemma 2's alternation, Gemma 3's ``sliding_window_pattern``, Qwen's
  ``use_sliding_window`` + ``max_window_layers``, or every layer (Mistral v0.1, vLLM's model-level window).

Anything else is refused by name: a ``model_type`` outside :data:`SUPPORTED_MODEL_TYPES`, a key neither read
nor listed as harmless, a vision/audio tower, or ``mlp_bias``/``use_bidirectional_attention`` away from false.
"""

from __future__ import annotations

import json
import math

from calculators.filelimits import short

__all__ = ["SUPPORTED_MODEL_TYPES", "arch_fields"]

# Keys that must be in config.json (or its ``text_config``); the rest have Hugging Face defaults.
_REQUIRED = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")
# Every size field is a 32-bit count in vLLM/torch; beyond it a value is a typo (or an attack), not a model.
_MAX_FIELD = 2**31 - 1


def _int(field: str, value: object, *, low: int = 1, where: str = "config.json") -> int:
    """A whole number in [low, 2**31 - 1]; ints are checked as ints (a 400-digit one is no OverflowError)."""
    bad = ValueError(f"{where}: {field} must be a whole number >= {low}, got {short(value)}")
    if isinstance(value, bool) or value is None:
        raise bad
    if isinstance(value, int):
        n = value
    else:
        try:
            f = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(f) or f != int(f):
            raise bad
        n = int(f)
    if n < low:
        raise ValueError(f"{where}: {field} must be >= {low}, got {short(n)}")
    if n > _MAX_FIELD:
        raise ValueError(f"{where}: {field} must be <= {_MAX_FIELD:,}, got {short(n)}")
    return n


def _bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


# model_type -> what the parser models. Anything else is refused by name rather than guessed.
SUPPORTED_MODEL_TYPES = {
    "llama": "dense GQA", "mistral": "dense GQA, optional sliding window on every layer",
    "mixtral": "MoE top-k", "qwen2": "dense GQA, QKV bias", "qwen3": "dense GQA",
    "qwen2_moe": "MoE top-k + gated shared expert", "qwen3_moe": "MoE top-k",
    "gemma": "dense", "gemma2": "dense, sliding window on every other layer",
    "gemma3_text": "dense, sliding window on 5 of 6 layers", "phi3": "dense GQA",
    "deepseek_v2": "MLA + MoE with shared experts", "deepseek_v3": "MLA + MoE with shared experts",
    "kimi_k2": "MLA + MoE with shared experts (DeepSeek-V3 layout)",
}
# Multimodal wrappers whose ``text_config`` holds the language model (vision tower weights are not counted).
_WRAPPER_TYPES = ("llava", "llava_next", "gemma3", "mistral3")

# Keys the parser reads: they set the shape.
_SHAPE_KEYS = frozenset({
    "model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "vocab_size", "max_position_embeddings", "tie_word_embeddings", "attention_bias",
    "num_local_experts", "num_experts", "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
    "shared_expert_intermediate_size", "n_shared_experts", "first_k_dense_replace", "moe_layer_freq",
    "decoder_sparse_step", "mlp_only_layers", "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim",
    "qk_rope_head_dim", "v_head_dim", "sliding_window", "use_sliding_window", "max_window_layers",
    "sliding_window_pattern", "sliding_window_size", "layer_types", "text_config",
})
# Keys understood only at their default: anything else changes the model in a way the parser does not model.
_DEFAULT_ONLY = {"mlp_bias": False, "use_bidirectional_attention": False, "is_encoder_decoder": False,
                 "add_cross_attention": False}
# Keys known not to change weight bytes, KV bytes or bytes read per step: token ids, dtypes, init and training
# settings, rotary and softcap settings, routing details (which experts, not how many), norms' epsilons.
_HARMLESS_KEYS = frozenset({
    "architectures", "auto_map", "_name_or_path", "name_or_path", "transformers_version", "torch_dtype", "dtype",
    "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "unk_token_id", "decoder_start_token_id",
    "initializer_range", "initializer_factor", "use_cache", "hidden_act", "hidden_activation", "rms_norm_eps",
    "layer_norm_eps", "layer_norm_epsilon", "rope_theta", "rope_scaling", "rope_parameters",
    "rope_local_base_freq", "rope_interleave", "partial_rotary_factor", "original_max_position_embeddings",
    "attention_dropout", "hidden_dropout", "embd_pdrop", "resid_pdrop", "dropout", "pretraining_tp",
    "output_router_logits", "router_aux_loss_coef", "router_jitter_noise", "aux_loss_alpha", "seq_aux",
    "norm_topk_prob", "routed_scaling_factor", "scoring_func", "topk_method", "n_group", "topk_group",
    "ep_size", "num_nextn_predict_layers", "query_pre_attn_scalar", "attn_logit_softcapping",
    "final_logit_softcapping", "cache_implementation", "quantization_config", "model_max_length",
    "is_decoder", "return_dict", "output_attentions", "output_hidden_states", "torchscript", "use_bfloat16",
    "tokenizer_class", "chat_template", "bos_token", "eos_token", "max_length", "tie_encoder_decoder",
    "problem_type", "id2label", "label2id", "task_specific_params", "finetuning_task", "prefix",
    "image_token_index", "image_token_id", "ignore_index", "use_return_dict", "unsloth_fixed", "use_flash_attention_2", "_attn_implementation", "attn_implementation",
})


def _refuse_unknown(cfg: dict, where: str) -> None:
    for key, default in _DEFAULT_ONLY.items():
        if cfg.get(key) not in (None, default):
            raise ValueError(f"{where}: {key} {short(cfg[key])} is not modelled (only {json.dumps(default)})")
    for key in ("vision_config", "audio_config"):
        if cfg.get(key) is not None:
            raise ValueError(f"{where}: {key}: the {key.split('_')[0]} tower's weights are not modelled; give the "
                             "language model's text_config as a config.json of its own")
    unknown = sorted(k for k in cfg if k not in _SHAPE_KEYS and k not in _HARMLESS_KEYS and k not in _DEFAULT_ONLY)
    if unknown:
        names = ", ".join(short(k, 60) for k in unknown[:12]) + (" ..." if len(unknown) > 12 else "")
        raise ValueError(f"{where}: unknown keys that change the math: {names}; supported architectures: "
                         f"{', '.join(SUPPORTED_MODEL_TYPES)}")


def _opt_int(cfg: dict, key: str, where: str, *, low: int = 0) -> int:
    v = cfg.get(key)
    return 0 if v is None else _int(key, v, low=low, where=where)


def _moe_fields(cfg: dict, model_type: str, layers: int, hidden: int, where: str) -> dict:
    raw = cfg.get("num_local_experts", cfg.get("num_experts", cfg.get("n_routed_experts")))
    experts = 0 if raw in (None, 0, 1) else _int("num_experts", raw, low=2, where=where)
    if not experts:
        return {}
    per_tok = _int("num_experts_per_tok", cfg.get("num_experts_per_tok"), where=where)
    if per_tok > experts:
        raise ValueError(f"{where}: num_experts_per_tok ({per_tok}) must be <= the number of experts ({experts})")
    width = _opt_int(cfg, "moe_intermediate_size", where, low=1)
    shared = _opt_int(cfg, "shared_expert_intermediate_size", where)
    n_shared = _opt_int(cfg, "n_shared_experts", where)
    if n_shared:  # DeepSeek: n_shared_experts experts of the routed width, fused into one MLP
        shared += n_shared * (width or _int("intermediate_size", cfg["intermediate_size"], where=where))
    # Which layers keep a dense MLP: DeepSeek first_k_dense_replace + moe_layer_freq; Qwen decoder_sparse_step
    # + mlp_only_layers (transformers: layer i is MoE when i not in mlp_only_layers and (i+1) % step == 0).
    first_dense = _opt_int(cfg, "first_k_dense_replace", where)
    freq = _opt_int(cfg, "moe_layer_freq", where, low=1) or 1
    step = _opt_int(cfg, "decoder_sparse_step", where, low=1) or 1
    only = cfg.get("mlp_only_layers") or []
    if not isinstance(only, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in only):
        raise ValueError(f"{where}: mlp_only_layers must be a list of layer numbers, got {short(only)}")
    moe = sum(1 for i in range(layers) if i >= first_dense and i % freq == 0 and (i + 1) % step == 0
              and i not in only)
    if first_dense > layers:
        raise ValueError(f"{where}: first_k_dense_replace ({first_dense}) must be <= num_hidden_layers ({layers})")
    return {
        "num_experts": experts, "experts_per_token": per_tok, "expert_intermediate_size": width,
        "shared_expert_intermediate_size": shared, "shared_expert_gate": model_type == "qwen2_moe" and shared > 0,
        "dense_mlp_layers": layers - moe,
    }


def _mla_fields(cfg: dict, where: str) -> dict:
    rank = cfg.get("kv_lora_rank")
    if rank in (None, 0):
        return {}
    out = {"kv_lora_rank": _int("kv_lora_rank", rank, where=where), "q_lora_rank": _opt_int(cfg, "q_lora_rank", where)}
    for k in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
        out[k] = _int(k, cfg.get(k), where=where)
    return out


def _sliding_fields(cfg: dict, model_type: str, layers: int, where: str) -> dict:
    """Window size and how many layers use it, the way transformers and vLLM read each family's keys."""
    window = cfg.get("sliding_window", cfg.get("sliding_window_size"))  # early Gemma 2 files carry both
    if window in (None, 0, False) or cfg.get("use_sliding_window") is False:
        return {}  # Qwen2/3 ship sliding_window with use_sliding_window false: every layer is full attention
    w = _int("sliding_window", window, where=where)
    types = cfg.get("layer_types")
    if isinstance(types, list) and types:
        if len(types) != layers or any(t not in ("sliding_attention", "full_attention") for t in types):
            raise ValueError(f"{where}: layer_types must list 'sliding_attention'/'full_attention' for each of "
                             f"the {layers} layers")
        n = sum(t == "sliding_attention" for t in types)
    elif model_type == "gemma2":
        n = (layers + 1) // 2  # layers 0, 2, 4, ... slide
    elif model_type == "gemma3_text":
        pattern = _opt_int(cfg, "sliding_window_pattern", where, low=1) or 6
        n = sum(1 for i in range(layers) if (i + 1) % pattern)
    elif cfg.get("use_sliding_window"):  # Qwen2: layers from max_window_layers on use the window
        n = max(0, layers - _opt_int(cfg, "max_window_layers", where))
    else:
        n = layers  # Mistral v0.1 style: every layer
    return {"sliding_window": w, "sliding_window_layers": n} if n else {}


def arch_fields(config: object, *, model_id: str = "custom", where: str = "config.json") -> dict:
    """The :class:`~calculators.modelspec.ModelArch` fields (all but ``id``) of a parsed ``config.json``;
    ``ValueError`` with a one-line message naming the field, key or model type otherwise (see the module doc).

    >>> arch_fields({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
    ...              "intermediate_size": 128, "vocab_size": 100})["head_dim"]
    16
    """
    if not isinstance(config, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(config).__name__}")
    cfg = dict(config)
    inner = cfg.get("text_config")
    if isinstance(inner, dict):
        outer_type = str(cfg.get("model_type") or "")[:200]
        if outer_type and outer_type not in _WRAPPER_TYPES and outer_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"{where}: model_type {short(outer_type, 60)} is not modelled; supported "
                             f"architectures: {', '.join(SUPPORTED_MODEL_TYPES)} (or a {'/'.join(_WRAPPER_TYPES)} "
                             "wrapper around one)")
        _refuse_unknown(cfg, where)
        inner = dict(inner)
        if outer_type == "gemma3" and not inner.get("model_type"):
            inner["model_type"] = "gemma3_text"
        cfg = {**{k: v for k, v in cfg.items() if k in _SHAPE_KEYS and k != "model_type"}, **inner}
        cfg.pop("text_config", None)
    missing = [k for k in _REQUIRED if cfg.get(k) is None]
    if missing:
        raise ValueError(f"{where}: missing required field(s): {', '.join(missing)}")
    model_type = str(cfg.get("model_type") or "")[:200]
    if model_type not in SUPPORTED_MODEL_TYPES:
        what = f"model_type {short(model_type, 60)} is not modelled" if model_type else "model_type is missing"
        raise ValueError(f"{where}: {what}; supported architectures: {', '.join(SUPPORTED_MODEL_TYPES)}")
    _refuse_unknown(cfg, where)
    layers = _int("num_hidden_layers", cfg["num_hidden_layers"], where=where)
    hidden = _int("hidden_size", cfg["hidden_size"], where=where)
    heads = _int("num_attention_heads", cfg["num_attention_heads"], where=where)
    kv = cfg.get("num_key_value_heads")
    kv_heads = heads if kv is None else _int("num_key_value_heads", kv, where=where)
    if heads % kv_heads:
        raise ValueError(
            f"{where}: num_attention_heads ({heads}) must be divisible by num_key_value_heads ({kv_heads})"
        )
    mla = _mla_fields(cfg, where)
    hd = cfg.get("head_dim")
    if mla:
        head_dim = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"]  # head_dim in MLA configs is not the cache's
    elif hd is None:
        if hidden % heads:
            raise ValueError(
                f"{where}: hidden_size ({hidden}) must be divisible by num_attention_heads ({heads}) "
                "when head_dim is not given"
            )
        head_dim = hidden // heads
    else:
        head_dim = _int("head_dim", hd, where=where)
    moe = _moe_fields(cfg, model_type, layers, hidden, where)
    sliding = _sliding_fields(cfg, model_type, layers, where)
    tie_default = model_type.startswith("gemma")
    return dict(
        name=str(cfg.get("_name_or_path") or model_id)[:200],
        model_type=model_type,
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=_int("intermediate_size", cfg["intermediate_size"], where=where),
        vocab_size=_int("vocab_size", cfg["vocab_size"], where=where),
        max_position_embeddings=_int(
            "max_position_embeddings", cfg.get("max_position_embeddings") or 4096, where=where
        ),
        tie_word_embeddings=_bool(cfg.get("tie_word_embeddings", tie_default)),
        attention_bias=_bool(cfg.get("attention_bias", model_type in ("qwen2", "qwen2_moe"))),
        **moe,
        **mla,
        **sliding,
    )

