"""Synthetic model directories: real architecture shapes, random weights (vLLM ``--load-format dummy``).

A directory holds only ``config.json``, ``generation_config.json`` and tokenizer files; vLLM's dummy
loader fills every parameter with random values of the real shape, so a GPU box can measure a 70B-shaped
model in minutes without downloading weights. For dense models with the output length forced
(``ignore_eos``) throughput matches real weights; results must still say ``weights="synthetic"``.

The tokenizer is a WordLevel ``tokenizer.json`` written directly as JSON (no ``tokenizers`` package
needed) whose vocabulary covers every id in ``[0, vocab_size)``: any token id the load generator sends or
the model samples decodes to text, and decode -> encode round-trips (Metaspace pre-tokenizer + decoder).
Ids 0-7 are special tokens (see :data:`SPECIAL_TOKENS`); prompts should use ids >= 16.

Sources: a short id of :data:`CATALOG` (``tiny`` is the test model) or its Hugging Face repo id, any repo
id of the project catalog (``calculators.modelspec``: Llama, Qwen, Mistral, Mixtral, Gemma 2, Phi), or a
user's ``config.json`` (file, or a directory holding one), copied as-is. Missing fields of a model type take
the ``transformers`` config class defaults when vLLM loads the directory.

>>> import tempfile, json, pathlib
>>> d = write_model_dir("tiny", tempfile.mkdtemp())
>>> json.loads((d / "config.json").read_text())["vocab_size"]
4096
>>> len(json.loads((d / "tokenizer.json").read_text())["model"]["vocab"])
4096
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SPECIAL_TOKENS",
    "SyntheticArch",
    "CATALOG",
    "resolve_arch",
    "build_vocab",
    "tokenizer_json",
    "write_model_dir",
    "read_vocab_size",
    "MARKER_FILE",
]

SPECIAL_TOKENS: tuple[str, ...] = ("<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
MARKER_FILE = "synthetic.json"
_METASPACE = "\u2581"
_WORDS = ["the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "was", "for", "on", "are", "with", "as", "be", "at", "one", "have", "this", "from", "or", "by", "what", "we", "can", "all", "there", "when", "your", "how", "said", "each", "which", "do", "their", "time", "if", "will", "way", "about", "many", "then", "them", "would", "like", "so", "hello", "model", "token", "test", "prompt", "answer", "question", "server", "latency", "throughput", "cost", "price", "GPU", "CPU", "API"]  # noqa: SIM905 - a sentence reads better than a list literal

# Dependency-free Jinja; ends with an assistant header when add_generation_prompt is set.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


@dataclass(frozen=True)
class SyntheticArch:
    """A decoder-only transformer shape (the fields of a Llama/Qwen2 ``config.json``)."""

    architecture: str
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    attention_bias: bool = False
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    num_experts: int = 0  # mixture of experts: experts per layer (0 = dense)
    experts_per_token: int = 0
    hf_repo: str = ""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.vocab_size < 64:
            raise ValueError(f"vocab_size must be >= 64 (ids 0-15 are reserved), got {self.vocab_size}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")


def _llama(**kw: Any) -> SyntheticArch:
    return SyntheticArch(architecture="LlamaForCausalLM", model_type="llama", **kw)


def _qwen2(**kw: Any) -> SyntheticArch:
    return SyntheticArch(architecture="Qwen2ForCausalLM", model_type="qwen2", attention_bias=True, **kw)


# Shapes from the public config.json files (also /work/shared/facts/models.csv).
CATALOG: dict[str, SyntheticArch] = {
    "tiny": _llama(vocab_size=4096, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=2048),
    "llama-3.1-8b": _llama(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                           num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                           max_position_embeddings=131072, rope_theta=500000.0,
                           hf_repo="meta-llama/Llama-3.1-8B-Instruct"),
    "llama-3.3-70b": _llama(vocab_size=128256, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                            num_attention_heads=64, num_key_value_heads=8, head_dim=128,
                            max_position_embeddings=131072, rope_theta=500000.0,
                            hf_repo="meta-llama/Llama-3.3-70B-Instruct"),
    "qwen2.5-7b": _qwen2(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                         num_attention_heads=28, num_key_value_heads=4, head_dim=128,
                         max_position_embeddings=32768, rope_theta=1000000.0, hf_repo="Qwen/Qwen2.5-7B-Instruct"),
    "qwen2.5-72b": _qwen2(vocab_size=152064, hidden_size=8192, intermediate_size=29568, num_hidden_layers=80,
                          num_attention_heads=64, num_key_value_heads=8, head_dim=128,
                          max_position_embeddings=32768, rope_theta=1000000.0, hf_repo="Qwen/Qwen2.5-72B-Instruct"),
}


_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                  "mistral": "MistralForCausalLM", "mixtral": "MixtralForCausalLM", "gemma2": "Gemma2ForCausalLM",
                  "phi3": "Phi3ForCausalLM"}


def _from_modelspec(model_id: str) -> SyntheticArch | None:
    """The project catalog (``calculators.modelspec``) by HF repo id; None if it does not know the id."""
    try:
        from calculators import modelspec  # noqa: PLC0415 - the capacity calculator's catalog
        arch = modelspec.model(model_id)
    except (ImportError, ValueError, KeyError):
        return None
    if arch.is_mla or arch.shared_expert_intermediate_size or arch.expert_intermediate_size or arch.dense_mlp_layers:
        return None  # MLA / DeepSeek- or Qwen-style MoE: a Llama/Mixtral stand-in would be another model
    model_type = str(arch.model_type)
    return SyntheticArch(
        architecture=_ARCHITECTURES.get(model_type, "LlamaForCausalLM"),
        model_type=model_type if model_type in _ARCHITECTURES else "llama",
        vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.layers, num_attention_heads=arch.attention_heads, num_key_value_heads=arch.kv_heads,
        head_dim=arch.head_dim, max_position_embeddings=arch.max_position_embeddings,
        attention_bias=bool(arch.attention_bias), tie_word_embeddings=bool(arch.tie_word_embeddings),
        num_experts=int(arch.num_experts or 0), experts_per_token=int(arch.experts_per_token or 0),
        hf_repo=model_id)


def resolve_arch(model_id: str) -> SyntheticArch:
    """A catalog architecture by short id or Hugging Face repo id (case-insensitive).

    >>> resolve_arch("meta-llama/Llama-3.1-8B-Instruct").num_hidden_layers
    32
    >>> resolve_arch("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown synthetic model 'nope'; known: tiny, llama-3.1-8b, llama-3.3-70b, qwen2.5-7b, qwen2.5-72b (or a path to a config.json)
    """
    key = model_id.strip().lower()
    for cid, arch in CATALOG.items():
        if key in (cid, arch.hf_repo.lower()):
            return arch
    found = _from_modelspec(model_id)
    if found is not None:
        return found
    raise ValueError(f"unknown synthetic model {model_id!r}; known: {', '.join(CATALOG)} (or a path to a config.json)")


def build_vocab(vocab_size: int) -> dict[str, int]:
    """Token -> id covering exactly ``range(vocab_size)``: specials, a bare metaspace, words, fillers.

    >>> v = build_vocab(200)
    >>> sorted(v.values()) == list(range(200)), v["</s>"], v["\u2581t0"] > 8
    (True, 2, True)
    """
    if vocab_size < len(SPECIAL_TOKENS) + 2:
        raise ValueError(f"vocab_size must be >= {len(SPECIAL_TOKENS) + 2}, got {vocab_size}")
    vocab: dict[str, int] = {}
    for tok in (*SPECIAL_TOKENS, _METASPACE, *(_METASPACE + w for w in _WORDS)):
        if tok not in vocab and len(vocab) < vocab_size:
            vocab[tok] = len(vocab)
    i = 0
    while len(vocab) < vocab_size:
        vocab.setdefault(f"{_METASPACE}t{i}", len(vocab))
        i += 1
    return vocab


def tokenizer_json(vocab: Mapping[str, int]) -> dict[str, Any]:
    """The ``tokenizer.json`` document (HF ``tokenizers`` format 1.0) of a WordLevel tokenizer over ``vocab``."""
    metaspace = {"type": "Metaspace", "replacement": _METASPACE, "prepend_scheme": "always", "split": True}
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in SPECIAL_TOKENS]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": metaspace, "post_processor": None, "decoder": dict(metaspace),
            "model": {"type": "WordLevel", "vocab": dict(vocab), "unk_token": "<unk>"}}


def _arch_config(arch: SyntheticArch, dtype: str) -> dict[str, Any]:
    return {
        "architectures": [arch.architecture],
        "model_type": arch.model_type,
        "vocab_size": arch.vocab_size,
        "hidden_size": arch.hidden_size,
        "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": arch.num_hidden_layers,
        "num_attention_heads": arch.num_attention_heads,
        "num_key_value_heads": arch.num_key_value_heads,
        "head_dim": arch.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": arch.max_position_embeddings,
        "rms_norm_eps": 1e-5 if arch.model_type == "llama" else 1e-6,
        "rope_theta": arch.rope_theta,
        "tie_word_embeddings": arch.tie_word_embeddings,
        "attention_bias": arch.attention_bias,
        "mlp_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 3,
        "torch_dtype": dtype,
        "initializer_range": 0.02,
        "use_cache": True,
        **({"num_local_experts": arch.num_experts, "num_experts": arch.num_experts,
            "num_experts_per_tok": arch.experts_per_token} if arch.num_experts else {}),
    }


def _load_user_config(path: Path) -> dict[str, Any]:
    from calculators.filelimits import MAX_CONFIG_BYTES, parse_json, read_limited  # noqa: PLC0415

    cfg_path = path / "config.json" if path.is_dir() else path
    what = f"config.json {str(cfg_path)!r}"
    try:  # untrusted: size, UTF-8 (BOM fine), depth and integer limits, each a one-line ValueError
        config = parse_json(read_limited(cfg_path, MAX_CONFIG_BYTES, what), limit=MAX_CONFIG_BYTES, what=what)
    except OSError as exc:
        raise ValueError(f"{what} cannot be read: {exc.strerror or exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"config.json {str(cfg_path)!r} must hold a JSON object")
    vocab = config.get("vocab_size")
    if not isinstance(vocab, int) or vocab < 64:
        raise ValueError(f"config.json {str(cfg_path)!r}: vocab_size must be an integer >= 64 at the top level, "
                         f"got {vocab!r} (multimodal configs with a nested text_config are not supported)")
    if not config.get("architectures"):
        raise ValueError(f"config.json {str(cfg_path)!r}: 'architectures' is required (e.g. ['LlamaForCausalLM'])")
    return config


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")


def write_model_dir(source: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                    max_position_embeddings: int | None = None, dtype: str = "bfloat16") -> Path:
    """Write a servable model directory for ``source`` into ``out_dir`` and return its path.

    ``source``: a catalog id or HF repo id (:func:`resolve_arch`), or a path to a ``config.json`` (or a
    directory holding one), copied unchanged except ``max_position_embeddings`` when given. A marker file
    ``synthetic.json`` records the source and that the weights are random.
    """
    out = Path(out_dir)
    src_path = Path(os.fspath(source))
    if src_path.suffix == ".json" or (src_path.is_dir() and (src_path / "config.json").is_file()):
        if not src_path.exists():
            raise ValueError(f"synthetic source {str(src_path)!r} does not exist")
        config = _load_user_config(src_path)
        kind = "config.json"
    else:
        arch = resolve_arch(str(source))
        config = _arch_config(arch, dtype)
        kind = "catalog"
    if max_position_embeddings is not None:
        if max_position_embeddings < 16:
            raise ValueError(f"max_position_embeddings must be >= 16, got {max_position_embeddings}")
        config["max_position_embeddings"] = int(max_position_embeddings)
    vocab_size = int(config["vocab_size"])
    max_len = int(config.get("max_position_embeddings") or 8192)
    out.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab(vocab_size)
    _write_json(out / "tokenizer.json", tokenizer_json(vocab))
    added_decoder = {str(vocab[t]): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                     "single_word": False, "special": True} for t in SPECIAL_TOKENS}
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "add_bos_token": False, "add_eos_token": False,
        "clean_up_tokenization_spaces": False, "model_max_length": max_len,
        "added_tokens_decoder": added_decoder, "chat_template": CHAT_TEMPLATE})
    _write_json(out / "special_tokens_map.json",
                {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"})
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    _write_json(out / "config.json", config)
    if kind == "catalog":
        _write_json(out / "generation_config.json", {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3})
    _write_json(out / MARKER_FILE, {"source": os.fspath(source), "kind": kind, "weights": "synthetic",
                                    "note": "random weights of the real shape (serve with --load-format dummy)",
                                    "arch": asdict(arch) if kind == "catalog" else None})
    return out


def read_vocab_size(model: str | os.PathLike[str]) -> int | None:
    """``vocab_size`` from a local model directory's ``config.json``; None when unknown (not local, no field).

    >>> read_vocab_size("/nonexistent/model") is None
    True
    """
    cfg = Path(os.fspath(model)) / "config.json"
    try:
        value = json.loads(cfg.read_text(encoding="utf-8-sig")).get("vocab_size")
    except (OSError, ValueError, AttributeError, RecursionError):  # unknown, as documented: never a traceback
        return None
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0  # JSON true is not a size
    return int(value) if ok else None
