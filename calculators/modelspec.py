"""Model architectures: the shapes that decide memory and speed, from the catalog or a user's ``config.json``.

A :class:`ModelArch` holds what a Hugging Face ``config.json`` says about a decoder-only transformer (dense
GQA: Llama, Mistral, Qwen2/3, Gemma, Phi-3; MoE: Mixtral, Qwen-MoE, DeepSeek; MLA: DeepSeek-V2/V3, Kimi K2;
sliding-window layers: Mistral v0.1, Gemma 2/3); :mod:`calculators.hfconfig` reads the keys and refuses the
rest. Parameter counts (equal to transformers' own for every fixture in ``tests/fixtures/configs/``):

- attention per layer = H*(n_h*d) [q] + 2*H*(n_kv*d) [k, v] + (n_h*d)*H [o], plus (n_h + 2*n_kv)*d bias
  when ``attention_bias``; MLA: see :attr:`ModelArch.attention_params_per_layer`;
- MLP = 3*H*I per dense layer (gated: gate, up, down); per MoE layer E * 3*H*I_expert routed experts + an
  H*E router + 3*H*I_shared shared experts (+ H for Qwen2-MoE's shared-expert gate);
- norms per layer = 2*H (Gemma 2/3: 4*H; + MLA's latent norms; + Qwen3/Gemma 3 q/k norms 2*d);
  embeddings V*H, lm_head V*H unless tied, final norm H;
- active params (MoE) = total - (E - k) * 3*H*I_expert * MoE layers (only k of E routed experts run per token).

>>> m = model("meta-llama/Llama-3.1-8B-Instruct")
>>> round(m.total_params / 1e9, 2), m.kv_heads, m.head_dim
(8.03, 8, 128)
>>> mx = model("mistralai/Mixtral-8x7B-Instruct-v0.1")
>>> round(mx.total_params / 1e9, 1), round(mx.active_params / 1e9, 1)
(46.7, 12.9)
>>> from_config({"num_hidden_layers": 2, "hidden_size": 64})
Traceback (most recent call last):
...
ValueError: config.json: missing required field(s): num_attention_heads, intermediate_size, vocab_size
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from calculators.catalog import DATA_DIR
from calculators.filelimits import MAX_CONFIG_BYTES, FileLimitError, parse_json, read_limited
from calculators.hfconfig import SUPPORTED_MODEL_TYPES, arch_fields

__all__ = ["ModelArch", "SUPPORTED_MODEL_TYPES", "models", "model", "published_params_b", "published_active_params_b",
           "from_config", "from_config_text", "load_model"]

Params = int

_QK_NORM_TYPES = ("qwen3", "qwen3_moe", "gemma3_text")


@dataclass(frozen=True)
class ModelArch:
    """A decoder-only transformer's shape. ``num_experts == 0`` means dense, ``kv_lora_rank == 0`` means
    ordinary (GQA/MHA) attention, ``sliding_window == 0`` means every layer attends to the whole context."""

    id: str
    name: str
    model_type: str
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int  # the dense MLP's width (for MoE without a separate expert width: the expert's)
    vocab_size: int
    max_position_embeddings: int
    num_experts: int = 0  # routed experts per MoE layer
    experts_per_token: int = 0  # top-k routing
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    source: str = "user config.json"
    as_of: str = ""
    notes: str = ""
    # MoE beyond Mixtral: expert width when it differs from intermediate_size, always-on shared experts
    # (summed width; Qwen2-MoE adds an H x 1 sigmoid gate), and layers that keep a dense MLP
    expert_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    shared_expert_gate: bool = False
    dense_mlp_layers: int = 0
    # Multi-head latent attention (DeepSeek-V2/V3, Kimi K2): 0 = not MLA
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # Sliding-window attention: window tokens and how many of the layers use it (Mistral v0.1: all;
    # Gemma 2: every other; Gemma 3: 5 of 6)
    sliding_window: int = 0
    sliding_window_layers: int = 0

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_mlp_layers if self.is_moe else 0

    @property
    def full_attention_layers(self) -> int:
        return self.layers - self.sliding_window_layers

    @property
    def embedding_params(self) -> Params:
        """Input embeddings plus lm_head (once when tied): kept in 16-bit by quantized checkpoints."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def attention_params_per_layer(self) -> Params:
        """Linear weights of one attention block.

        GQA: H*(n_h*d) [q] + 2*H*(n_kv*d) [k, v] + (n_h*d)*H [o] (+ (n_h + 2*n_kv)*d bias).
        MLA: q = H*q_lora + q_lora*n_h*(nope+rope) (or H*n_h*(nope+rope) without q_lora),
        kv_a = H*(kv_lora+rope), kv_b = kv_lora*n_h*(nope+v), o = n_h*v*H.
        """
        h, n = self.hidden_size, self.attention_heads
        if self.is_mla:
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            q = (h * self.q_lora_rank + self.q_lora_rank * n * qk) if self.q_lora_rank else h * n * qk
            kv_a = h * (self.kv_lora_rank + self.qk_rope_head_dim)
            kv_b = self.kv_lora_rank * n * (self.qk_nope_head_dim + self.v_head_dim)
            return q + kv_a + kv_b + n * self.v_head_dim * h
        d = self.head_dim
        q_out, kv_out = n * d, self.kv_heads * d
        bias = (q_out + 2 * kv_out) if self.attention_bias else 0
        return h * q_out + 2 * h * kv_out + q_out * h + bias

    @property
    def expert_width(self) -> int:
        return self.expert_intermediate_size or self.intermediate_size

    @property
    def expert_params_per_layer(self) -> Params:
        """One routed expert's (or the dense MLP's) gate, up and down projections: 3*H*I."""
        return 3 * self.hidden_size * (self.expert_width if self.is_moe else self.intermediate_size)

    @property
    def shared_expert_params_per_layer(self) -> Params:
        """The always-active shared experts of one MoE layer: 3*H*I_shared (+ H for Qwen2-MoE's gate)."""
        gate = self.hidden_size if self.shared_expert_gate else 0
        return 3 * self.hidden_size * self.shared_expert_intermediate_size + gate

    @property
    def mlp_params_per_layer(self) -> Params:
        """One MoE layer's MLP (routed experts + H*E router + shared experts), or the dense MLP."""
        if not self.is_moe:
            return self.expert_params_per_layer
        return (self.num_experts * self.expert_params_per_layer + self.hidden_size * self.num_experts
                + self.shared_expert_params_per_layer)

    @property
    def mlp_params(self) -> Params:
        """All layers' MLPs: dense layers at 3*H*I, MoE layers at :attr:`mlp_params_per_layer`."""
        if not self.is_moe:
            return self.layers * self.expert_params_per_layer
        return self.dense_mlp_layers * 3 * self.hidden_size * self.intermediate_size + \
            self.moe_layers * self.mlp_params_per_layer

    @property
    def norm_params_per_layer(self) -> Params:
        """RMSNorm weights of one layer: 2*H (Gemma 2/3: 4*H), plus MLA's q_a and kv_a norms, plus the per-head
        q and k norms of Qwen3 and Gemma 3 (2*d)."""
        mla = (self.kv_lora_rank + self.q_lora_rank) if self.is_mla else 0
        qk_norm = 2 * self.head_dim if self.model_type in _QK_NORM_TYPES else 0
        return (4 if self.model_type.startswith("gemma") and self.model_type != "gemma" else 2) * \
            self.hidden_size + mla + qk_norm

    @property
    def linear_params(self) -> Params:
        """Parameters inside the transformer layers' linear projections (what fp8/int4 quantize)."""
        return self.layers * self.attention_params_per_layer + self.mlp_params

    @property
    def total_params(self) -> Params:
        return self.linear_params + self.layers * self.norm_params_per_layer + self.embedding_params + \
            self.hidden_size

    @property
    def active_params(self) -> Params:
        """Parameters used per token: for MoE only ``experts_per_token`` of ``num_experts`` routed experts run
        (shared experts and dense layers always do)."""
        if not self.is_moe:
            return self.total_params
        idle = (self.num_experts - self.experts_per_token) * self.expert_params_per_layer * self.moe_layers
        return self.total_params - idle

    @property
    def expert_params(self) -> Params:
        """All routed experts' parameters (0 for dense): the part of the weights that MoE decode reads sparsely."""
        return self.num_experts * self.expert_params_per_layer * self.moe_layers if self.is_moe else 0

    @property
    def replicated_params(self) -> Params:
        """Parameters every tensor-parallel rank holds whole (vLLM): the norms, and MLA's down-projections
        (``q_a_proj``, ``kv_a_proj_with_mqa``: ``ReplicatedLinear``) and the MoE routers (``gate``)."""
        norms = self.norm_params_per_layer * self.layers + self.hidden_size
        mla = self.layers * self.hidden_size * (self.kv_lora_rank + self.qk_rope_head_dim + self.q_lora_rank) \
            if self.is_mla else 0
        return norms + mla + self.moe_layers * self.hidden_size * self.num_experts

    @property
    def linear_out_channels(self) -> int:
        """Output channels of every linear weight (fp8 keeps one fp32 scale per output channel)."""
        h, n = self.hidden_size, self.attention_heads
        if self.is_mla:
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            attn = (self.q_lora_rank + n * qk) + (self.kv_lora_rank + self.qk_rope_head_dim) + \
                n * (self.qk_nope_head_dim + self.v_head_dim) + h
        else:
            attn = (n + 2 * self.kv_heads) * self.head_dim + h
        dense_mlp = 2 * self.intermediate_size + h
        if not self.is_moe:
            return self.layers * (attn + dense_mlp)
        moe = self.num_experts * (2 * self.expert_width + h) + self.num_experts + \
            (2 * self.shared_expert_intermediate_size + h if self.shared_expert_intermediate_size else 0)
        return self.layers * attn + self.dense_mlp_layers * dense_mlp + self.moe_layers * moe

    @property
    def kv_elements_per_token_per_layer(self) -> int:
        """Cache elements one token adds to one layer: 2 * n_kv * d (K and V), or MLA's one latent
        kv_lora_rank + qk_rope_head_dim (vLLM ``MLAAttention``: ``num_kv_heads = 1``, no separate V)."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.kv_heads * self.head_dim

    def kv_elements_per_token(self) -> int:
        """KV elements one token adds to the cache over all layers (sliding-window layers counted whole, as
        vLLM's logged token capacity does): 2 * layers * kv_heads * head_dim, MLA: layers * (r_kv + r_rope).

        >>> model("meta-llama/Llama-3.3-70B-Instruct").kv_elements_per_token() * 2 // 1024
        320
        >>> model("deepseek-ai/DeepSeek-V2-Lite-Chat").kv_elements_per_token() * 2  # 27 * 576 * 2 B
        31104
        """
        return self.layers * self.kv_elements_per_token_per_layer

    def attention_layers_reading(self, context_tokens: int) -> float:
        """Layer-equivalents of KV a decode step reads at ``context_tokens``: full layers read the whole
        context, sliding-window layers min(context, window)::

            read_tokens = full_layers * context + window_layers * min(context, window)

        returned as ``read_tokens / context`` (0 context: the layer count).

        >>> model("google/gemma-2-9b-it").attention_layers_reading(8192)  # 21 full + 21 * 4096/8192
        31.5
        """
        if context_tokens <= 0 or not self.sliding_window_layers:
            return float(self.layers)
        window = min(context_tokens, self.sliding_window)
        return self.full_attention_layers + self.sliding_window_layers * window / context_tokens

    @property
    def decode_attention_dims(self) -> tuple[int, int]:
        """(q.k width, v width) per head a decode step multiplies against each cached token: (d, d), or for
        MLA's absorbed decode (vLLM ``forward_mqa``) (kv_lora + rope, kv_lora)."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim, self.kv_lora_rank
        return self.head_dim, self.head_dim

    @property
    def prefill_attention_dims(self) -> tuple[int, int]:
        """(q.k width, v width) per head in prefill: (d, d), or MLA's (nope + rope, v_head_dim)."""
        if self.is_mla:
            return self.qk_nope_head_dim + self.qk_rope_head_dim, self.v_head_dim
        return self.head_dim, self.head_dim


def from_config(config: object, *, model_id: str = "custom", where: str = "config.json") -> ModelArch:
    """Build a :class:`ModelArch` from a parsed Hugging Face ``config.json``; refuse what it does not model.

    Reads ``text_config`` when present (multimodal wrappers; the vision tower is not counted). Defaults follow
    transformers: ``num_key_value_heads`` = ``num_attention_heads``, ``head_dim`` = hidden / heads, untied
    embeddings (Gemma: tied), QKV bias for ``qwen2``/``qwen2_moe``. MoE: ``num_local_experts`` (Mixtral),
    ``num_experts`` (Qwen-MoE) or ``n_routed_experts`` (DeepSeek), ``num_experts_per_tok``,
    ``moe_intermediate_size``, shared experts (``shared_expert_intermediate_size`` or ``n_shared_experts``)
    and dense layers (``first_k_dense_replace``/``moe_layer_freq``, ``decoder_sparse_step``/
    ``mlp_only_layers``). MLA: ``kv_lora_rank``, ``q_lora_rank``, ``qk_nope_head_dim``, ``qk_rope_head_dim``,
    ``v_head_dim``. Sliding window: ``sliding_window`` with ``layer_types``, Gemma's alternation,
    ``sliding_window_pattern`` or Qwen's ``use_sliding_window``/``max_window_layers``.

    Refused with a one-line ``ValueError``: a ``model_type`` outside :data:`SUPPORTED_MODEL_TYPES`, and any key
    neither read nor known to be harmless (token ids, dtypes, rotary, routing details, ...).

    >>> cfg = {"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096,
    ...        "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
    ...        "vocab_size": 128256, "max_position_embeddings": 131072}
    >>> round(from_config(cfg).total_params / 1e9, 2)
    8.03
    >>> from_config({**cfg, "num_key_value_heads": 7})
    Traceback (most recent call last):
    ...
    ValueError: config.json: num_attention_heads (32) must be divisible by num_key_value_heads (7)
    >>> from_config({**cfg, "foo_experts": 4, "bar_window": 9})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: config.json: unknown keys that change the math: 'bar_window', 'foo_experts'; supported architectures: llama, ...
    >>> from_config({**cfg, "model_type": "mamba"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: config.json: model_type 'mamba' is not modelled; supported architectures: llama, mistral, ...
    """
    return ModelArch(id=model_id, **arch_fields(config, model_id=model_id, where=where))



def from_config_text(text: str | bytes, *, model_id: str = "custom", where: str = "config.json") -> ModelArch:
    """Parse ``config.json`` text (e.g. an upload); ValueError on bad JSON or bad fields.

    The text is untrusted: at most 4 MiB, UTF-8 (a byte-order mark is fine), nested at most 32 deep,
    integers within 64 bits, no NaN (see :mod:`calculators.filelimits`). ``where`` names the file in errors.

    >>> from_config_text("{not json")
    Traceback (most recent call last):
    ...
    ValueError: config.json is not valid JSON: Expecting property name enclosed in double quotes (line 1 column 2)
    """
    try:
        data = parse_json(text, limit=MAX_CONFIG_BYTES, what=where)
    except FileLimitError as exc:
        raise ValueError(str(exc)) from None
    return from_config(data, model_id=model_id, where=where)


_CSV_META = frozenset({"id", "name", "published_params_b", "published_active_params_b", "notes", "source", "as_of"})


@cache
def models() -> dict[str, ModelArch]:
    """The catalog (``data/models.csv``) by Hugging Face repo id, in file order."""
    out: dict[str, ModelArch] = {}
    with open(DATA_DIR / "models.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if not r.get("source") or not r.get("as_of"):
                raise ValueError(f"models.csv: row {r.get('id')!r} lacks source or as_of")
            cfg = {k: v for k, v in r.items() if v not in ("", None) and k not in _CSV_META}
            extra = cfg.pop("config_extra", None)
            if extra:  # MoE/MLA/sliding-window keys of the model's config.json, as a JSON object
                cfg.update(json.loads(extra))
            arch = from_config(cfg, model_id=r["id"], where=f"models.csv row {r['id']}")
            out[r["id"]] = ModelArch(
                **{
                    **arch.__dict__,
                    "name": r["name"],
                    "source": r["source"],
                    "as_of": r["as_of"],
                    "notes": r["notes"],
                }
            )
    return out


@cache
def published_params_b() -> dict[str, float]:
    """The parameter counts the sources publish (billions), to cross-check the computed ones."""
    with open(DATA_DIR / "models.csv", newline="", encoding="utf-8") as f:
        return {r["id"]: float(r["published_params_b"]) for r in csv.DictReader(f)}


@cache
def published_active_params_b() -> dict[str, float]:
    """Active parameters per token the sources publish (billions), for the MoE rows that state them."""
    with open(DATA_DIR / "models.csv", newline="", encoding="utf-8") as f:
        return {r["id"]: float(r["published_active_params_b"]) for r in csv.DictReader(f)
                if r.get("published_active_params_b")}


def model(model_id: str) -> ModelArch:
    """One catalog model by repo id; ValueError listing the known ids otherwise."""
    table = models()
    if model_id not in table:
        raise ValueError(f"unknown model {model_id!r}; known: {', '.join(table)} (or give a config.json path)")
    return table[model_id]


def load_model(id_or_path: str) -> ModelArch:
    """A catalog id, or a path to a ``config.json`` file: the id is its folder's name (``Model/config.json``) or
    the file's stem (``deepseek-v2-lite-chat.json``)."""
    if id_or_path in models():
        return models()[id_or_path]
    p = Path(id_or_path)
    if p.suffix == ".json" or p.is_file():
        try:
            data = read_limited(p, MAX_CONFIG_BYTES, f"config file {id_or_path!r}")
        except OSError as exc:
            raise ValueError(f"cannot read config file {id_or_path!r}: {exc.strerror or exc}") from None
        except FileLimitError as exc:
            raise ValueError(str(exc)) from None
        name = p.stem if p.stem != "config" else (p.parent.name or p.stem)  # .../Model-Name/config.json
        return from_config_text(data, model_id=name, where=f"config file {id_or_path!r}")
    return model(id_or_path)
