"""Which prompt token ids a server accepts, learned without ever depending on the server's input validation.

Why: vLLM 0.26.0 answers a prompt id EQUAL to the vocabulary size with HTTP 500 (a CUDA device-side
assert that kills the engine; ids above it get a 400). Probing the vocabulary by sending ids and watching for
400s (the old bisection) can therefore kill a healthy production server. Nothing here sends a generation
request; the only request is vLLM's ``POST /tokenize`` on plain text, whose answer are ids produced by the
server's own tokenizer (valid by construction).

:func:`learn_vocabulary` tries, in order, and records which one answered (:attr:`Vocabulary.source`):

1. ``user``: ``--vocab-size`` given by the user (clamped to what a local ``config.json`` knows, if any);
2. ``config.json``: a local model directory's ``vocab_size`` (and its ``tokenizer.json``'s size when that is
   smaller: a Qwen2.5 model has 152,064 embedding rows but 151,665 tokenizer ids);
3. ``tokenize``: vLLM's ``POST /tokenize`` on :data:`POOL_TEXT` (``add_special_tokens: false``): the distinct
   ids at or above ``reserved_ids`` become :attr:`Vocabulary.token_pool`; asked only when the target says it
   is vLLM (``/version`` answered), so a hosted API never sees an unknown route;
4. ``none``: nothing known: text prompts only (:attr:`Vocabulary.backend` is then ``completions``).

Seen on vLLM 0.32.0 (CPU) and 0.26.0 (H200, the version that crashed): ``/tokenize`` answers 200 with
``{"count", "max_model_len", "token_strs", "tokens"}``; completions built only from the pool answered 200 with
the exact output length, and the server stayed healthy.

Every id below :attr:`Vocabulary.id_bound` is one the model has: ``vocab_size`` when known, else
``max(token_pool) + 1`` (an id the tokenizer itself returned is below the vocabulary, so are all smaller ones).

>>> Vocabulary("tokenize", None, (20, 31, 400)).id_bound, Vocabulary("none", None, None).backend
(401, 'completions')
>>> Vocabulary("config.json", 4096, None).to_dict()
{'source': 'config.json', 'size': 4096, 'pool_size': None, 'backend': 'vllm-token-ids', 'note': ''}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from probes.target.endpoint import headers_for
from probes.target.synthetic import read_vocab_size

__all__ = ["Vocabulary", "learn_vocabulary", "tokenize_pool", "local_vocab_size", "read_tokenizer_size",
           "POOL_TEXT", "MIN_POOL", "SOURCES", "TOKEN_IDS_BACKEND", "TEXT_BACKEND"]

SOURCES = ("user", "config.json", "tokenize", "none")
TOKEN_IDS_BACKEND = "vllm-token-ids"
TEXT_BACKEND = "completions"
MIN_POOL = 16  # fewer distinct ids than this cannot make varied, prefix-unique prompts
RESERVED_IDS = 16  # as the workload: low ids are often special tokens (<unk> = 0 in many tokenizers)

# Plain, varied text: common English words separated by spaces (a word-level tokenizer knows them whole),
# numbers, punctuation, code and a few other scripts, so a BPE tokenizer yields a few hundred distinct ids.
POOL_TEXT = " ".join([
    "the of and to a in is it you that was for on are with as be at one have this from or by what we can",
    "all there when your how said each which do their time if will way about many then them would like so",
    "hello model token test prompt answer question server latency throughput cost price GPU CPU API",
    "The quick brown fox jumps over the lazy dog while seven wizards quietly judge boxing matches.",
    "In 2026, a cluster of 8 accelerators served 12,345 requests per minute at $2.49 per hour;",
    "median latency fell from 396.5 ms to 193.2 ms (about -51%) after warm-up.",
    "def throughput(tokens: int, seconds: float) -> float: return tokens / max(seconds, 1e-9)",
    "SELECT model, AVG(ttft_ms) FROM runs WHERE status = 'complete' GROUP BY model ORDER BY 2 DESC;",
    "Weather report: light rain, wind 12 km/h north-east, humidity 81 %, pressure 1013 hPa.",
    "Bonjour, comment allez-vous ? Très bien, merci. Guten Morgen! ¿Dónde está la estación?",
    "Привет, как дела? 你好，世界。こんにちは。안녕하세요. مرحبا بالعالم. नमस्ते दुनिया",
    "Mathematics: e^(i*pi) + 1 = 0; sqrt(2) ~ 1.41421356; sum_{k=1}^{n} k = n(n+1)/2.",
    "Shopping list: apples, bread, cheese, dates, eggs, flour, grapes, honey, ice cream, jam.",
    "<html><body><p class=\"note\">Hello &amp; welcome</p></body></html> {\"key\": [1, 2, 3]}",
    "Emoji and symbols: 🙂 🚀 ✓ → ≤ ≥ ∞ © ® ™ § ¶ • … « » — – ‘quoted’ “double”.",
])


@dataclass(frozen=True)
class Vocabulary:
    """What is known about the prompt ids a server accepts (see the module docstring).

    ``vocab_size``: ids in ``[0, vocab_size)`` exist (None: unknown). ``token_pool``: distinct ids the
    server's own tokenizer produced (None: not asked). Neither: send text prompts only.
    """

    source: str
    vocab_size: int | None
    token_pool: tuple[int, ...] | None
    note: str = ""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.vocab_size is not None and (isinstance(self.vocab_size, bool) or self.vocab_size < 1):
            raise ValueError(f"vocab_size must be None or an integer >= 1, got {self.vocab_size!r}")
        if self.token_pool is not None and (not self.token_pool or min(self.token_pool) < 0):
            raise ValueError("token_pool must be None or a non-empty tuple of ids >= 0")
        if self.vocab_size is not None and self.token_pool and max(self.token_pool) >= self.vocab_size:
            raise ValueError(f"token_pool holds id {max(self.token_pool)} >= vocab_size {self.vocab_size}")

    @property
    def id_bound(self) -> int | None:
        """Every id below this exists in the model (None: no id is known to be safe)."""
        if self.vocab_size is not None:
            return self.vocab_size
        return max(self.token_pool) + 1 if self.token_pool else None

    @property
    def backend(self) -> str:
        """``vllm-token-ids`` when ids are known, else the text backend ``completions``."""
        return TOKEN_IDS_BACKEND if self.id_bound is not None else TEXT_BACKEND

    def to_dict(self) -> dict[str, Any]:
        """What the run JSON records as ``run["vocabulary"]``."""
        return {"source": self.source, "size": self.vocab_size,
                "pool_size": len(self.token_pool) if self.token_pool is not None else None,
                "backend": self.backend, "note": self.note}


def read_tokenizer_size(model_dir: str | os.PathLike[str]) -> int | None:
    """``1 + the largest id`` of a local ``tokenizer.json`` (model vocabulary and added tokens); None if absent
    or unreadable. Reads JSON only (no ``tokenizers``/``transformers`` import in the app process)."""
    path = Path(os.fspath(model_dir)) / "tokenizer.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        vocab = doc["model"]["vocab"]
        if isinstance(vocab, dict):  # BPE, WordLevel, WordPiece: token -> id
            ids = [v for v in vocab.values() if isinstance(v, int)]
        else:  # Unigram: a list of [piece, score]; the id is the position
            ids = [len(vocab) - 1] if vocab else []
        ids += [t["id"] for t in doc.get("added_tokens") or [] if isinstance(t.get("id"), int)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    return max(ids) + 1 if ids else None


def local_vocab_size(model_dir: str | os.PathLike[str]) -> int | None:
    """Ids below this exist for a local model directory: ``config.json``'s ``vocab_size``, lowered to the
    ``tokenizer.json`` size when that is smaller; None when the directory has no usable config.json."""
    size = read_vocab_size(model_dir)
    if size is None:
        return None
    tok = read_tokenizer_size(model_dir)
    return min(size, tok) if tok is not None and tok >= MIN_POOL else size


def tokenize_pool(base_url: str, model: str, *, api_key: str | None = None, text: str = POOL_TEXT,
                  reserved_ids: int = RESERVED_IDS, timeout_s: float = 30.0,
                  session: Any = None) -> tuple[int, ...] | None:
    """Distinct ids (sorted, each >= ``reserved_ids``) that vLLM's ``POST /tokenize`` returns for ``text``;
    None when the route is missing, refuses, or answers something else than a list of non-negative ints.

    Request (vLLM ``TokenizeCompletionRequest``): ``{"model", "prompt", "add_special_tokens": false}``;
    response (``TokenizeResponse``): ``{"count", "max_model_len", "tokens": [int, ...]}``.
    """
    http = session or requests
    body = {"model": model, "prompt": text, "add_special_tokens": False}
    try:
        r = http.post(f"{base_url.rstrip('/')}/tokenize", json=body, headers=headers_for(api_key),
                      timeout=timeout_s)
        if r.status_code != 200:
            return None
        tokens = r.json().get("tokens")
    except (requests.RequestException, ValueError, AttributeError):
        return None
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                                                for t in tokens):
        return None
    pool = tuple(sorted({t for t in tokens if t >= reserved_ids}))
    return pool or None


def learn_vocabulary(*, base_url: str | None, model: str, is_vllm: bool, vocab_size: int | None = None,
                     model_path: str | os.PathLike[str] | None = None, api_key: str | None = None,
                     timeout_s: float = 30.0, session: Any = None) -> Vocabulary:
    """How to draw safe prompt ids for ``model`` at ``base_url`` (see the module docstring for the order).

    ``is_vllm``: the target is a vLLM server (managed, or ``/version`` answered), so ``/tokenize`` exists.
    Never sends a completion; at most one ``/tokenize`` request.
    """
    known = local_vocab_size(model_path) if model_path is not None else None
    if vocab_size is not None:
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
            raise ValueError(f"vocab_size must be an integer >= 1, got {vocab_size!r}")
        if known is not None and vocab_size > known:
            return Vocabulary("user", known, None, note=f"--vocab-size {vocab_size} lowered to {known}, the "
                                                        f"vocabulary of {model_path}")
        return Vocabulary("user", vocab_size, None, note=f"token ids drawn below --vocab-size {vocab_size}")
    if known is not None:
        return Vocabulary("config.json", known, None, note=f"vocabulary size {known} from the model's config.json")
    if is_vllm and base_url:
        pool = tokenize_pool(base_url, model, api_key=api_key, timeout_s=timeout_s, session=session)
        if pool is not None and len(pool) >= MIN_POOL:
            return Vocabulary("tokenize", None, pool,
                              note=f"{len(pool)} token ids learned from the server's /tokenize (its own "
                                   f"tokenizer): prompt ids come from them, none above {max(pool)}")
        got = "no answer" if pool is None else f"only {len(pool)} distinct ids"
        return Vocabulary("none", None, None, note=f"vocabulary unknown (/tokenize: {got}): text prompts only")
    return Vocabulary("none", None, None, note="vocabulary unknown (not a vLLM server, no --vocab-size): text "
                                               "prompts only")
