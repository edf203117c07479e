"""Model architectures: the shapes that decide memory and speed, from the catalog or a user's ``config.json``.

A :class:`ModelArch` holds what a Hugging Face ``config.json`` says about a decoder-only transformer
(Llama, Mistral, Qwen2/3, Mixtral, Gemma 2, Phi-3 style keys). Parameter counts are computed from it:

- attention per layer = H*(n_h*d) [q] + 2*H*(n_kv*d) [k, v] + (n_h*d)*H [o], plus (n_h + 2*n_kv)*d bias
  when ``attention_bias``;
- MLP per layer = 3*H*I (gated: gate, up, down), times the expert count for MoE, plus an H*E router;
- norms per layer = 2*H (Gemma 2: 4*H); embeddings V*H, lm_head V*H unless tied, final norm H;
- active params (MoE) = total - (E - k) * 3*H*I * layers (only k of E experts run per token).

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
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from calculators.catalog import DATA_DIR
from calculators.filelimits import MAX_CONFIG_BYTES, FileLimitError, parse_json, read_limited, short

__all__ = ["ModelArch", "models", "model", "published_params_b", "from_config", "from_config_text", "load_model"]

Params = int

# Keys that must be in config.json (or its ``text_config``); the rest have Hugging Face defaults.
_REQUIRED = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")
# Every size field is a 32-bit count in vLLM/torch; beyond it a value is a typo (or an attack), not a model.
_MAX_FIELD = 2**31 - 1


@dataclass(frozen=True)
class ModelArch:
    """A decoder-only transformer's shape. ``num_experts == 0`` means dense."""

    id: str
    name: str
    model_type: str
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    num_experts: int = 0
    experts_per_token: int = 0
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    source: str = "user config.json"
    as_of: str = ""
    notes: str = ""

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def embedding_params(self) -> Params:
        """Input embeddings plus lm_head (once when tied): kept in 16-bit by quantized checkpoints."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def attention_params_per_layer(self) -> Params:
        h, d = self.hidden_size, self.head_dim
        q_out, kv_out = self.attention_heads * d, self.kv_heads * d
        bias = (q_out + 2 * kv_out) if self.attention_bias else 0
        return h * q_out + 2 * h * kv_out + q_out * h + bias

    @property
    def expert_params_per_layer(self) -> Params:
        """One expert's (or the dense MLP's) gate, up and down projections: 3*H*I."""
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def mlp_params_per_layer(self) -> Params:
        if not self.is_moe:
            return self.expert_params_per_layer
        return self.num_experts * self.expert_params_per_layer + self.hidden_size * self.num_experts

    @property
    def norm_params_per_layer(self) -> Params:
        return (4 if self.model_type.startswith("gemma") else 2) * self.hidden_size

    @property
    def linear_params(self) -> Params:
        """Parameters inside the transformer layers' linear projections (what fp8/int4 quantize)."""
        return self.layers * (self.attention_params_per_layer + self.mlp_params_per_layer)

    @property
    def total_params(self) -> Params:
        per_layer = self.attention_params_per_layer + self.mlp_params_per_layer + self.norm_params_per_layer
        return self.layers * per_layer + self.embedding_params + self.hidden_size

    @property
    def active_params(self) -> Params:
        """Parameters used per token: for MoE only ``experts_per_token`` of ``num_experts`` experts run."""
        if not self.is_moe:
            return self.total_params
        idle = (self.num_experts - self.experts_per_token) * self.expert_params_per_layer * self.layers
        return self.total_params - idle

    @property
    def expert_params(self) -> Params:
        """All experts' parameters (0 for dense): the part of the weights that MoE decode reads sparsely."""
        return self.num_experts * self.expert_params_per_layer * self.layers if self.is_moe else 0

    def kv_elements_per_token(self) -> int:
        """K and V elements one token adds to the cache: 2 * layers * kv_heads * head_dim.

        >>> model("meta-llama/Llama-3.3-70B-Instruct").kv_elements_per_token() * 2 // 1024
        320
        """
        return 2 * self.layers * self.kv_heads * self.head_dim


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


def from_config(config: object, *, model_id: str = "custom", where: str = "config.json") -> ModelArch:
    """Build a :class:`ModelArch` from a parsed Hugging Face ``config.json``.

    Reads ``text_config`` when present (multimodal wrappers). Defaults follow transformers:
    ``num_key_value_heads`` = ``num_attention_heads``, ``head_dim`` = hidden / heads, untied embeddings
    (Gemma: tied), QKV bias for ``qwen2``. MoE keys: ``num_local_experts`` (Mixtral) or ``num_experts``
    (Qwen-MoE, with ``moe_intermediate_size``), and ``num_experts_per_tok``.

    >>> cfg = {"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096,
    ...        "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
    ...        "vocab_size": 128256, "max_position_embeddings": 131072}
    >>> round(from_config(cfg).total_params / 1e9, 2)
    8.03
    >>> from_config({**cfg, "num_key_value_heads": 7})
    Traceback (most recent call last):
    ...
    ValueError: config.json: num_attention_heads (32) must be divisible by num_key_value_heads (7)
    """
    if not isinstance(config, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(config).__name__}")
    cfg = dict(config)
    if isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg, **cfg["text_config"]}
    missing = [k for k in _REQUIRED if cfg.get(k) is None]
    if missing:
        raise ValueError(f"{where}: missing required field(s): {', '.join(missing)}")
    layers = _int("num_hidden_layers", cfg["num_hidden_layers"], where=where)
    hidden = _int("hidden_size", cfg["hidden_size"], where=where)
    heads = _int("num_attention_heads", cfg["num_attention_heads"], where=where)
    kv = cfg.get("num_key_value_heads")
    kv_heads = heads if kv is None else _int("num_key_value_heads", kv, where=where)
    if heads % kv_heads:
        raise ValueError(
            f"{where}: num_attention_heads ({heads}) must be divisible by num_key_value_heads ({kv_heads})"
        )
    hd = cfg.get("head_dim")
    if hd is None:
        if hidden % heads:
            raise ValueError(
                f"{where}: hidden_size ({hidden}) must be divisible by num_attention_heads ({heads}) "
                "when head_dim is not given"
            )
        head_dim = hidden // heads
    else:
        head_dim = _int("head_dim", hd, where=where)
    model_type = str(cfg.get("model_type") or "unknown")[:200]
    experts_raw = cfg.get("num_local_experts", cfg.get("num_experts"))
    experts = 0 if experts_raw in (None, 0, 1) else _int("num_local_experts", experts_raw, low=2, where=where)
    if experts:
        per_tok = _int("num_experts_per_tok", cfg.get("num_experts_per_tok"), where=where)
        if per_tok > experts:
            raise ValueError(
                f"{where}: num_experts_per_tok ({per_tok}) must be <= the number of experts ({experts})"
            )
        inter_raw = cfg.get("moe_intermediate_size") or cfg["intermediate_size"]
    else:
        per_tok, inter_raw = 0, cfg["intermediate_size"]
    tie_default = model_type.startswith("gemma")
    return ModelArch(
        id=model_id,
        name=str(cfg.get("_name_or_path") or model_id)[:200],
        model_type=model_type,
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=_int("intermediate_size", inter_raw, where=where),
        vocab_size=_int("vocab_size", cfg["vocab_size"], where=where),
        max_position_embeddings=_int(
            "max_position_embeddings", cfg.get("max_position_embeddings") or 4096, where=where
        ),
        num_experts=experts,
        experts_per_token=per_tok,
        tie_word_embeddings=_bool(cfg.get("tie_word_embeddings", tie_default)),
        attention_bias=_bool(cfg.get("attention_bias", model_type == "qwen2")),
    )


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


@cache
def models() -> dict[str, ModelArch]:
    """The catalog (``data/models.csv``) by Hugging Face repo id, in file order."""
    out: dict[str, ModelArch] = {}
    with open(DATA_DIR / "models.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if not r.get("source") or not r.get("as_of"):
                raise ValueError(f"models.csv: row {r.get('id')!r} lacks source or as_of")
            cfg = {k: (v if v != "" else None) for k, v in r.items()}
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


def model(model_id: str) -> ModelArch:
    """One catalog model by repo id; ValueError listing the known ids otherwise."""
    table = models()
    if model_id not in table:
        raise ValueError(f"unknown model {model_id!r}; known: {', '.join(table)} (or give a config.json path)")
    return table[model_id]


def load_model(id_or_path: str) -> ModelArch:
    """A catalog id, or a path to a ``config.json`` file (its parent folder name becomes the id)."""
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
        return from_config_text(data, model_id=p.parent.name or p.stem, where=f"config file {id_or_path!r}")
    return model(id_or_path)
