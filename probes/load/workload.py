"""Workloads: seeded, reproducible prompts (token ids or text) and output lengths for the load generator.

Two prompt forms, one per request kind (:mod:`probes.load.backends`):

* token ids (:func:`build_requests`, kind ``vllm-token-ids``): the completions API accepts
  ``"prompt": [int, ...]``, so the length is exact without a tokenizer round trip. Ids come from
  ``[reserved_ids, vocab_size)`` or ONLY from a ``token_pool`` of ids known valid (e.g. what the server's
  ``/tokenize`` returned for some text): a pool never depends on the server rejecting a bad id correctly;
* text (:func:`build_text_requests`, kinds ``completions`` and ``chat``): words of
  :data:`probes.load.words.WORDS`, each one token in common tokenizers, so ``input_tokens`` words are about
  ``input_tokens`` tokens (plus a chat template or BOS); the measured length is ``usage.prompt_tokens``.

:func:`requests_for` picks the form from the kind. Output length is asked with ``max_tokens`` (forced on
vLLM by ``ignore_eos``); what came back is checked per request (:mod:`probes.load.metrics`).

Prefix-cache hygiene (vLLM hashes the prompt in blocks, each hash chained to the previous block):

* every prompt is unique from its FIRST token (text: first word): the head of request ``i`` is drawn from a
  seeded permutation of the usable ids (words), so no two prompts of one workload share a first block by
  accident (more requests than ids: the fewest leading ids per head that make every head distinct; a chat
  template's fixed header before the user text is shared by all requests, as in any chat workload);
* the token content depends on ``(seed, salt)`` and the lengths on ``seed`` only, so sweep points built with
  different salts have the same lengths but different first blocks (a collision needs a whole block of
  random ids to repeat: probability about ``usable_ids ** -(block_size - 1)``);
* shared-prefix mode: ``shared_prefix_count`` system prompts of ``shared_prefix_tokens`` each, request ``i``
  starts with prefix ``i % shared_prefix_count`` (reused on purpose: that exercises
  ``--enable-prefix-caching``) and continues with a suffix unique from its first token. The prefixes depend
  on the seed only, not on the salt: the warm-up caches the same system prompts the measured requests use,
  as in production where a system prompt is hot, and as ``vllm bench serve``'s first test request warms
  its one prefix. (Measured on an H200: a cold prefix costs exactly one prefix computation per point,
  1,536 of 196,608 prompt tokens at c=32, since vLLM shares the blocks within the first wave; it does not
  explain a TTFT gap. See benchmarks/README.md.)

Lengths: ``fixed`` gives exactly ``input_tokens``/``output_tokens``; ``uniform`` draws uniformly in
``L * (1 - spread) .. L * (1 + spread)``; ``normal`` draws ``N(L, (L * spread)^2)``; both are rounded and
clipped to at least 1 (input: at least ``shared_prefix_tokens + 1``).

>>> reqs = build_requests(WorkloadSpec(input_tokens=8, output_tokens=4, num_requests=3), vocab_size=100)
>>> [r.input_tokens for r in reqs], [r.output_tokens for r in reqs]
([8, 8, 8], [4, 4, 4])
>>> len({r.prompt_token_ids[0] for r in reqs})
3
>>> text = build_text_requests(WorkloadSpec(input_tokens=5, output_tokens=4, num_requests=2))
>>> [len(r.prompt_text.split()) for r in text], text[0].prompt_token_ids, text[0].input_tokens
([5, 5], (), 5)
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from probes.load.words import WORDS

__all__ = [
    "DISTRIBUTIONS",
    "TOKEN_ID_KINDS",
    "TEXT_KINDS",
    "WorkloadSpec",
    "RequestInput",
    "build_requests",
    "build_text_requests",
    "requests_for",
    "sample_lengths",
]

DISTRIBUTIONS = ("fixed", "uniform", "normal")
TOKEN_ID_KINDS = ("vllm-token-ids",)  # request kinds whose prompt is token ids (probes.load.backends)
TEXT_KINDS = ("completions", "chat")  # request kinds whose prompt is text


@dataclass(frozen=True)
class WorkloadSpec:
    """What to send: lengths, how they vary, shared prefixes and the seed.

    ``shared_prefix_tokens`` is included in ``input_tokens``. Spreads are relative (0.25 = ±25 %).
    """

    input_tokens: int
    output_tokens: int
    num_requests: int
    distribution: str = "fixed"
    input_spread: float = 0.0
    output_spread: float = 0.0
    shared_prefix_count: int = 0
    shared_prefix_tokens: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "num_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        for name in ("input_spread", "output_spread"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        for name in ("shared_prefix_count", "shared_prefix_tokens", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if (self.shared_prefix_count == 0) != (self.shared_prefix_tokens == 0):
            raise ValueError(
                "shared_prefix_count and shared_prefix_tokens must both be 0 or both be >= 1, got "
                f"{self.shared_prefix_count} and {self.shared_prefix_tokens}"
            )
        if self.shared_prefix_tokens >= self.input_tokens:
            raise ValueError(
                f"shared_prefix_tokens must be < input_tokens ({self.input_tokens}), "
                f"got {self.shared_prefix_tokens}"
            )


@dataclass(frozen=True)
class RequestInput:
    """One request to send: its prompt (token ids, or text when ``prompt_text`` is set, then the ids are
    empty) and the number of tokens to generate."""

    index: int
    prompt_token_ids: tuple[int, ...]
    output_tokens: int
    prompt_text: str | None = None

    @property
    def input_tokens(self) -> int:
        """Prompt length in tokens: exact for token ids; for text the word count (about one token a word).

        >>> RequestInput(0, (), 1, prompt_text="time year people").input_tokens
        3
        """
        if self.prompt_text is not None:
            return len(self.prompt_text.split())
        return len(self.prompt_token_ids)


def _stable_int(*parts: object) -> int:
    """A 64-bit integer from ``parts`` that is the same on every machine and Python run (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def sample_lengths(
    mean_tokens: int, spread: float, distribution: str, count: int, rng: np.random.Generator, minimum: int = 1
) -> list[int]:
    """``count`` lengths around ``mean_tokens``, rounded and clipped to ``>= minimum``.

    >>> sample_lengths(10, 0.0, "normal", 3, np.random.default_rng(0))
    [10, 10, 10]
    >>> all(5 <= n <= 15 for n in sample_lengths(10, 0.5, "uniform", 50, np.random.default_rng(1)))
    True
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    if distribution == "fixed" or spread == 0.0:
        values = np.full(count, float(mean_tokens))
    elif distribution == "uniform":
        values = rng.uniform(mean_tokens * (1 - spread), mean_tokens * (1 + spread), size=count)
    else:
        values = rng.normal(mean_tokens, mean_tokens * spread, size=count)
    return [max(minimum, int(v)) for v in np.rint(values)]


def _unique_heads(count: int, usable: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``count`` distinct head tuples of symbols in ``[0, usable)``: one symbol each while ``count`` fits,
    else the fewest symbols per head that make every head distinct (a permuted mixed-radix index)."""
    width = 1
    while usable**width < count:
        width += 1
    codes = rng.permutation(usable**width)[:count] if usable**width <= 4 * count + 1_000_000 else None
    if codes is None:  # a huge space: distinct random codes by rejection (no full permutation in memory)
        seen: set[int] = set()
        codes_list: list[int] = []
        while len(codes_list) < count:
            c = int(rng.integers(0, usable**width))
            if c not in seen:
                seen.add(c)
                codes_list.append(c)
        codes = np.array(codes_list, dtype=object)
    heads = []
    for code in codes:
        code = int(code)
        digits = []
        for _ in range(width):
            code, digit = divmod(code, usable)
            digits.append(digit)
        heads.append(tuple(digits))
    return heads


def _fill(head: tuple[int, ...], length: int, usable: int, rng: np.random.Generator) -> list[int]:
    """``head`` followed by random symbols of ``[0, usable)`` up to ``length`` (the head is cut if longer)."""
    body = rng.integers(0, usable, size=max(0, length - len(head))).tolist()
    return list(head[:length]) + body


def _symbol_prompts(spec: WorkloadSpec, usable: int, salt: str) -> list[tuple[list[int], int]]:
    """Per request: its prompt as symbols in ``[0, usable)`` (mapped to ids or words by the caller) and its
    output length. Lengths and shared prefixes depend on ``spec.seed`` only, the rest on ``(spec.seed, salt)``."""
    n = spec.num_requests
    length_rng = np.random.default_rng(_stable_int("lengths", spec.seed))
    token_rng = np.random.default_rng(_stable_int("tokens", spec.seed, salt))

    prefix_len = spec.shared_prefix_tokens
    input_lens = sample_lengths(
        spec.input_tokens, spec.input_spread, spec.distribution, n, length_rng, minimum=prefix_len + 1
    )
    output_lens = sample_lengths(spec.output_tokens, spec.output_spread, spec.distribution, n, length_rng)

    prefixes: list[list[int]] = []
    if spec.shared_prefix_count:  # seed only, not salt: the warm-up and every point see the same system prompts
        prefix_rng = np.random.default_rng(_stable_int("prefixes", spec.seed))
        prefix_heads = _unique_heads(spec.shared_prefix_count, usable, prefix_rng)
        prefixes = [_fill(h, prefix_len, usable, prefix_rng) for h in prefix_heads]
    heads = _unique_heads(n, usable, token_rng)

    out = []
    for i in range(n):
        prefix = prefixes[i % len(prefixes)] if prefixes else []
        suffix = _fill(heads[i], input_lens[i] - len(prefix), usable, token_rng)
        out.append((prefix + suffix, output_lens[i]))
    return out


def _id_table(vocab_size: int | None, token_pool: Sequence[int] | None, reserved_ids: int) -> np.ndarray:
    """The ids a prompt may use: ``[reserved_ids, vocab_size)``, or the distinct ids of ``token_pool``
    (sorted, so the pool's order does not change the workload)."""
    if (vocab_size is None) == (token_pool is None):
        raise ValueError("give exactly one of vocab_size (ids in [reserved_ids, vocab_size)) or token_pool "
                         "(ids known valid)")
    if token_pool is not None:
        bad = [t for t in token_pool if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0]
        if bad:
            raise ValueError(f"token_pool must hold integer ids >= 0, got {bad[0]!r}")
        table = np.unique(np.asarray([int(t) for t in token_pool], dtype=np.int64))
        if len(table) < 2:
            raise ValueError(f"token_pool must hold >= 2 distinct ids, got {len(table)}")
        return table
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise ValueError(f"vocab_size must be an integer, got {vocab_size!r}")
    if not 0 <= reserved_ids < vocab_size - 1:
        raise ValueError(
            f"reserved_ids must be in [0, vocab_size - 1) so that >= 2 ids remain; got reserved_ids="
            f"{reserved_ids}, vocab_size={vocab_size}"
        )
    return np.arange(reserved_ids, vocab_size, dtype=np.int64)


def build_requests(
    spec: WorkloadSpec,
    *,
    vocab_size: int | None = None,
    token_pool: Sequence[int] | None = None,
    salt: str = "",
    reserved_ids: int = 16,
) -> list[RequestInput]:
    """The ``spec.num_requests`` token-id requests of a workload, reproducible from the arguments.

    Exactly one id source: ``vocab_size`` (ids in ``[reserved_ids, vocab_size)``; low ids are often special
    tokens) or ``token_pool`` (ids drawn ONLY from that set; ``reserved_ids`` does not apply, so leave
    special tokens out of the pool). Use one ``salt`` per sweep point (and another for warm-up) so points
    never share cached blocks.

    >>> spec = WorkloadSpec(input_tokens=12, output_tokens=2, num_requests=4,
    ...                     shared_prefix_count=2, shared_prefix_tokens=5)
    >>> reqs = build_requests(spec, vocab_size=1000, salt="c=4")
    >>> reqs[0].prompt_token_ids[:5] == reqs[2].prompt_token_ids[:5] != reqs[1].prompt_token_ids[:5]
    True
    >>> build_requests(spec, vocab_size=1000, salt="c=4") == reqs
    True
    >>> other = build_requests(spec, vocab_size=1000, salt="c=8")[0].prompt_token_ids
    >>> other[:5] == reqs[0].prompt_token_ids[:5], other[5:] != reqs[0].prompt_token_ids[5:]
    (True, True)
    >>> pool = [101, 2023, 3000, 7592]
    >>> set(build_requests(spec, token_pool=pool)[0].prompt_token_ids) <= set(pool)
    True
    """
    table = _id_table(vocab_size, token_pool, reserved_ids)
    return [
        RequestInput(index=i, prompt_token_ids=tuple(table[symbols].tolist()), output_tokens=out)
        for i, (symbols, out) in enumerate(_symbol_prompts(spec, len(table), salt))
    ]


def build_text_requests(spec: WorkloadSpec, salt: str = "") -> list[RequestInput]:
    """The ``spec.num_requests`` text requests of a workload: ``input_tokens`` words of
    :data:`~probes.load.words.WORDS` joined by single spaces (about that many tokens), seeded as the token-id
    form is (unique from the first word, shared prefixes of ``shared_prefix_tokens`` words, one ``salt`` per
    point).

    >>> spec = WorkloadSpec(input_tokens=6, output_tokens=2, num_requests=3,
    ...                     shared_prefix_count=1, shared_prefix_tokens=2)
    >>> reqs = build_text_requests(spec, salt="p0")
    >>> len({r.prompt_text.split()[2] for r in reqs}), len({" ".join(r.prompt_text.split()[:2]) for r in reqs})
    (3, 1)
    >>> build_text_requests(spec, salt="p0") == reqs != build_text_requests(spec, salt="p1")
    True
    """
    return [
        RequestInput(index=i, prompt_token_ids=(), output_tokens=out,
                     prompt_text=" ".join(WORDS[k] for k in symbols))
        for i, (symbols, out) in enumerate(_symbol_prompts(spec, len(WORDS), salt))
    ]


def requests_for(
    spec: WorkloadSpec,
    *,
    backend: str,
    vocab_size: int | None = None,
    token_pool: Sequence[int] | None = None,
    salt: str = "",
) -> list[RequestInput]:
    """The requests of ``spec`` in the prompt form of request kind ``backend``: token ids for
    ``vllm-token-ids`` (exactly one of ``vocab_size``/``token_pool``), text for ``completions`` and ``chat``
    (``vocab_size`` and ``token_pool`` are not used: text needs no vocabulary).

    >>> spec = WorkloadSpec(input_tokens=4, output_tokens=2, num_requests=2)
    >>> requests_for(spec, backend="chat", vocab_size=100)[0].prompt_token_ids
    ()
    >>> len(requests_for(spec, backend="vllm-token-ids", token_pool=[7, 8, 9])[0].prompt_token_ids)
    4
    """
    if backend in TOKEN_ID_KINDS:
        return build_requests(spec, vocab_size=vocab_size, token_pool=token_pool, salt=salt)
    if backend in TEXT_KINDS:
        return build_text_requests(spec, salt=salt)
    raise ValueError(f"unknown request kind {backend!r}; known: {', '.join(TOKEN_ID_KINDS + TEXT_KINDS)}")
