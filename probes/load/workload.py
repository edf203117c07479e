"""Workloads: seeded, reproducible token-id prompts of exact lengths for the load generator.

A prompt is a list of token ids (the completions API accepts ``"prompt": [int, ...]``), so its length is
exact without a tokenizer round trip. Output length is forced by ``max_tokens`` + ``ignore_eos``.

Prefix-cache hygiene (vLLM hashes the prompt in blocks, each hash chained to the previous block):

* every prompt is unique from its FIRST token: the first token of request ``i`` is drawn from a seeded
  permutation of the usable ids, so no two prompts of one workload share a first block by accident;
* the token content depends on ``(seed, salt)`` and the lengths on ``seed`` only, so sweep points built with
  different salts have the same lengths but different first blocks (a collision needs a whole block of
  random ids to repeat: probability about ``usable_ids ** -(block_size - 1)``);
* shared-prefix mode: ``shared_prefix_count`` system prompts of ``shared_prefix_tokens`` each, request ``i``
  starts with prefix ``i % shared_prefix_count`` (reused on purpose: that exercises
  ``--enable-prefix-caching``) and continues with a suffix unique from its first token.

Lengths: ``fixed`` gives exactly ``input_tokens``/``output_tokens``; ``uniform`` draws uniformly in
``L * (1 - spread) .. L * (1 + spread)``; ``normal`` draws ``N(L, (L * spread)^2)``; both are rounded and
clipped to at least 1 (input: at least ``shared_prefix_tokens + 1``).

>>> reqs = build_requests(WorkloadSpec(input_tokens=8, output_tokens=4, num_requests=3), vocab_size=100)
>>> [r.input_tokens for r in reqs], [r.output_tokens for r in reqs]
([8, 8, 8], [4, 4, 4])
>>> len({r.prompt_token_ids[0] for r in reqs})
3
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

__all__ = ["DISTRIBUTIONS", "WorkloadSpec", "RequestInput", "build_requests", "sample_lengths"]

DISTRIBUTIONS = ("fixed", "uniform", "normal")


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
    """One request to send: its prompt as token ids and the number of tokens to generate."""

    index: int
    prompt_token_ids: tuple[int, ...]
    output_tokens: int

    @property
    def input_tokens(self) -> int:
        """Prompt length in tokens."""
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


def _unique_heads(count: int, low: int, high: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``count`` distinct head tuples of ids in ``[low, high)``: one id each while ``count`` fits the vocabulary,
    else the fewest ids per head that make every head distinct (a permuted mixed-radix index)."""
    usable = high - low
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
            digits.append(low + digit)
        heads.append(tuple(digits))
    return heads


def _fill(head: tuple[int, ...], length: int, low: int, high: int, rng: np.random.Generator) -> list[int]:
    """``head`` followed by random ids up to ``length`` (the head is cut if longer than ``length``)."""
    body = rng.integers(low, high, size=max(0, length - len(head))).tolist()
    return list(head[:length]) + body


def build_requests(
    spec: WorkloadSpec, *, vocab_size: int, salt: str = "", reserved_ids: int = 16
) -> list[RequestInput]:
    """The ``spec.num_requests`` requests of a workload, reproducible from ``(spec, vocab_size, salt)``.

    Token ids are drawn from ``[reserved_ids, vocab_size)`` (low ids are often special tokens).
    Use one ``salt`` per sweep point (and another for warm-up) so points never share cached blocks.

    >>> spec = WorkloadSpec(input_tokens=12, output_tokens=2, num_requests=4,
    ...                     shared_prefix_count=2, shared_prefix_tokens=5)
    >>> reqs = build_requests(spec, vocab_size=1000, salt="c=4")
    >>> reqs[0].prompt_token_ids[:5] == reqs[2].prompt_token_ids[:5] != reqs[1].prompt_token_ids[:5]
    True
    >>> build_requests(spec, vocab_size=1000, salt="c=4") == reqs
    True
    >>> build_requests(spec, vocab_size=1000, salt="c=8")[0].prompt_token_ids[:5] != reqs[0].prompt_token_ids[:5]
    True
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise ValueError(f"vocab_size must be an integer, got {vocab_size!r}")
    if not 0 <= reserved_ids < vocab_size - 1:
        raise ValueError(
            f"reserved_ids must be in [0, vocab_size - 1) so that >= 2 ids remain; got reserved_ids="
            f"{reserved_ids}, vocab_size={vocab_size}"
        )
    low, high = reserved_ids, vocab_size
    n = spec.num_requests
    length_rng = np.random.default_rng(_stable_int("lengths", spec.seed))
    token_rng = np.random.default_rng(_stable_int("tokens", spec.seed, salt))

    prefix_len = spec.shared_prefix_tokens
    input_lens = sample_lengths(
        spec.input_tokens, spec.input_spread, spec.distribution, n, length_rng, minimum=prefix_len + 1
    )
    output_lens = sample_lengths(spec.output_tokens, spec.output_spread, spec.distribution, n, length_rng)

    prefixes: list[list[int]] = []
    if spec.shared_prefix_count:
        prefix_heads = _unique_heads(spec.shared_prefix_count, low, high, token_rng)
        prefixes = [_fill(h, prefix_len, low, high, token_rng) for h in prefix_heads]
    heads = _unique_heads(n, low, high, token_rng)

    requests = []
    for i in range(n):
        prefix = prefixes[i % len(prefixes)] if prefixes else []
        suffix = _fill(heads[i], input_lens[i] - len(prefix), low, high, token_rng)
        requests.append(RequestInput(index=i, prompt_token_ids=tuple(prefix + suffix), output_tokens=output_lens[i]))
    return requests
