"""Workloads: exact lengths, reproducibility, prefix-cache hygiene, shared-prefix mode, validation;
token pools (every id sent is in the pool), text prompts and the choice of form by request kind."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.load.words import WORDS
from probes.load.workload import (
    TEXT_KINDS,
    TOKEN_ID_KINDS,
    RequestInput,
    WorkloadSpec,
    build_requests,
    build_text_requests,
    requests_for,
    sample_lengths,
)

BLOCK = 16  # a typical GPU KV block (the CPU build uses 128): prefix caching matches whole blocks


def first_block(r, size=BLOCK):
    return r.prompt_token_ids[:size]


def test_fixed_lengths_are_exact_and_ids_avoid_reserved():
    reqs = build_requests(WorkloadSpec(input_tokens=100, output_tokens=20, num_requests=50), vocab_size=500)
    assert [r.index for r in reqs] == list(range(50))
    assert {r.input_tokens for r in reqs} == {100} and {r.output_tokens for r in reqs} == {20}
    ids = np.array([t for r in reqs for t in r.prompt_token_ids])
    assert ids.min() >= 16 and ids.max() < 500


def test_every_prompt_is_unique_from_its_first_token():
    reqs = build_requests(WorkloadSpec(input_tokens=64, output_tokens=4, num_requests=300), vocab_size=1000)
    assert len({r.prompt_token_ids[0] for r in reqs}) == 300


def test_more_requests_than_ids_still_gives_distinct_heads():
    reqs = build_requests(WorkloadSpec(input_tokens=8, output_tokens=1, num_requests=50), vocab_size=20, reserved_ids=10)
    assert len({r.prompt_token_ids[:2] for r in reqs}) == 50


def test_reproducible_and_salt_changes_content_not_lengths():
    spec = WorkloadSpec(input_tokens=40, output_tokens=10, num_requests=20, distribution="uniform",
                        input_spread=0.5, output_spread=0.5, seed=3)
    a = build_requests(spec, vocab_size=32000, salt="point0")
    assert a == build_requests(spec, vocab_size=32000, salt="point0")
    b = build_requests(spec, vocab_size=32000, salt="point1")
    assert [r.input_tokens for r in a] == [r.input_tokens for r in b]
    assert [r.output_tokens for r in a] == [r.output_tokens for r in b]
    assert not {first_block(r) for r in a} & {first_block(r) for r in b}
    c = build_requests(WorkloadSpec(**{**spec.__dict__, "seed": 4}), vocab_size=32000, salt="point0")
    assert [r.input_tokens for r in a] != [r.input_tokens for r in c]


def test_shared_prefix_mode_reuses_prefixes_and_suffixes_are_unique():
    spec = WorkloadSpec(input_tokens=50, output_tokens=5, num_requests=12, shared_prefix_count=3,
                        shared_prefix_tokens=32)
    reqs = build_requests(spec, vocab_size=4096, salt="s")
    prefixes = [r.prompt_token_ids[:32] for r in reqs]
    assert len(set(prefixes)) == 3
    assert all(prefixes[i] == prefixes[i % 3] for i in range(12))
    assert len({r.prompt_token_ids[32] for r in reqs}) == 12
    assert {r.input_tokens for r in reqs} == {50}
    other = build_requests(spec, vocab_size=4096, salt="t")
    # system prompts are the same for every salt (warm-up caches them), suffixes are not
    assert [r.prompt_token_ids[:32] for r in other] == prefixes
    assert not {r.prompt_token_ids[32:] for r in other} & {r.prompt_token_ids[32:] for r in reqs}
    assert build_requests(replace(spec, seed=1), vocab_size=4096, salt="s")[0].prompt_token_ids[:32] != prefixes[0]


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
def test_distributions_spread_around_the_mean(distribution):
    lens = sample_lengths(1000, 0.2, distribution, 4000, np.random.default_rng(0))
    assert abs(np.mean(lens) - 1000) < 10
    assert np.std(lens) > 50
    if distribution == "uniform":
        assert min(lens) >= 800 and max(lens) <= 1200


def test_lengths_never_drop_below_prefix_plus_one():
    spec = WorkloadSpec(input_tokens=10, output_tokens=3, num_requests=300, distribution="normal",
                        input_spread=0.9, output_spread=0.9, shared_prefix_count=1, shared_prefix_tokens=8)
    reqs = build_requests(spec, vocab_size=100)
    assert min(r.input_tokens for r in reqs) >= 9 and min(r.output_tokens for r in reqs) >= 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_tokens": 0}, "input_tokens"),
        ({"output_tokens": -1}, "output_tokens"),
        ({"num_requests": 0}, "num_requests"),
        ({"distribution": "zipf"}, "distribution"),
        ({"input_spread": 1.0}, "input_spread"),
        ({"shared_prefix_count": 2}, "shared_prefix_count"),
        ({"shared_prefix_count": 1, "shared_prefix_tokens": 10}, "shared_prefix_tokens"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_spec_names_the_field(kwargs, field):
    base = {"input_tokens": 10, "output_tokens": 5, "num_requests": 4}
    with pytest.raises(ValueError, match=field):
        WorkloadSpec(**{**base, **kwargs})


def test_invalid_vocab_names_the_field():
    spec = WorkloadSpec(input_tokens=4, output_tokens=1, num_requests=1)
    with pytest.raises(ValueError, match="reserved_ids"):
        build_requests(spec, vocab_size=16)


@given(
    st.integers(1, 300), st.integers(1, 50), st.integers(1, 40), st.integers(0, 2**31), st.integers(56, 50_000)
)
def test_fuzz_exact_lengths_unique_heads(input_tokens, output_tokens, n, seed, vocab):
    spec = WorkloadSpec(input_tokens=input_tokens, output_tokens=output_tokens, num_requests=n, seed=seed)
    reqs = build_requests(spec, vocab_size=vocab)
    assert len(reqs) == n
    assert all(r.input_tokens == input_tokens and r.output_tokens == output_tokens for r in reqs)
    assert len({r.prompt_token_ids[0] for r in reqs}) == n
    assert all(16 <= t < vocab for r in reqs for t in r.prompt_token_ids)


# --- token pools: ids drawn ONLY from a set known valid ---------------------------------------------------


@given(
    pool=st.lists(st.integers(0, 200_000), min_size=2, max_size=60, unique=True),
    input_tokens=st.integers(2, 200),
    n=st.integers(1, 40),
    prefixes=st.integers(0, 3),
    seed=st.integers(0, 2**31),
    salt=st.text(max_size=8),
)
def test_fuzz_every_id_sent_is_in_the_pool(pool, input_tokens, n, prefixes, seed, salt):
    spec = WorkloadSpec(input_tokens=input_tokens, output_tokens=3, num_requests=n, seed=seed,
                        shared_prefix_count=prefixes, shared_prefix_tokens=1 if prefixes else 0,
                        distribution="uniform", input_spread=0.5)
    reqs = build_requests(spec, token_pool=pool, salt=salt)
    allowed = set(pool)
    assert len(reqs) == n
    assert all(t in allowed for r in reqs for t in r.prompt_token_ids)
    assert all(r.input_tokens >= 1 + (1 if prefixes else 0) and r.prompt_text is None for r in reqs)


def test_a_pool_of_two_ids_still_gives_distinct_heads():
    reqs = build_requests(WorkloadSpec(input_tokens=12, output_tokens=1, num_requests=40), token_pool=[500, 7])
    assert len({r.prompt_token_ids[:6] for r in reqs}) == 40  # 2**6 >= 40: six-id heads


def test_pool_uses_distinct_ids_in_any_order_and_ignores_reserved_ids():
    spec = WorkloadSpec(input_tokens=30, output_tokens=2, num_requests=5, seed=1)
    a = build_requests(spec, token_pool=[9, 3, 5, 3, 9], salt="p")
    assert a == build_requests(spec, token_pool=(3, 5, 9), salt="p")  # the pool's order and repeats do not matter
    assert {t for r in a for t in r.prompt_token_ids} <= {3, 5, 9}  # ids < reserved_ids=16 are fine in a pool
    assert build_requests(spec, token_pool=np.array([3, 5, 9]), salt="p") == a  # numpy ints are ids too


def test_vocab_range_is_the_pool_of_all_usable_ids():
    spec = WorkloadSpec(input_tokens=40, output_tokens=2, num_requests=7, shared_prefix_count=2,
                        shared_prefix_tokens=10, seed=5)
    assert build_requests(spec, vocab_size=300, salt="s") == build_requests(
        spec, token_pool=range(16, 300), salt="s")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of vocab_size"),
        ({"vocab_size": 100, "token_pool": [1, 2]}, "exactly one of vocab_size"),
        ({"token_pool": [7, 7]}, ">= 2 distinct ids"),
        ({"token_pool": [3, -1]}, "integer ids >= 0, got -1"),
        ({"token_pool": [3, 4.0]}, "integer ids >= 0, got 4.0"),
        ({"token_pool": [3, True]}, "integer ids >= 0, got True"),
    ],
)
def test_invalid_id_sources_are_refused(kwargs, match):
    spec = WorkloadSpec(input_tokens=4, output_tokens=1, num_requests=1)
    with pytest.raises(ValueError, match=match):
        build_requests(spec, **kwargs)


# --- text prompts -----------------------------------------------------------------------------------------


def test_text_prompts_have_the_asked_word_counts_from_the_word_list():
    spec = WorkloadSpec(input_tokens=50, output_tokens=7, num_requests=20, distribution="normal",
                        input_spread=0.3, output_spread=0.2, seed=2)
    text = build_text_requests(spec, salt="p0")
    ids = build_requests(spec, vocab_size=1000, salt="p0")
    assert [r.input_tokens for r in text] == [r.input_tokens for r in ids]  # same lengths as the id form
    assert [r.output_tokens for r in text] == [r.output_tokens for r in ids]
    words = set(WORDS)
    for r in text:
        assert r.prompt_token_ids == ()
        assert r.prompt_text == r.prompt_text.strip() and "  " not in r.prompt_text
        assert set(r.prompt_text.split()) <= words
        assert r.input_tokens == len(r.prompt_text.split())


def test_text_prompts_are_unique_from_their_first_word_even_past_the_word_list():
    n = len(WORDS) + 50  # more requests than words: two-word heads
    reqs = build_text_requests(WorkloadSpec(input_tokens=8, output_tokens=1, num_requests=n))
    assert len({tuple(r.prompt_text.split()[:2]) for r in reqs}) == n
    few = build_text_requests(WorkloadSpec(input_tokens=8, output_tokens=1, num_requests=100))
    assert len({r.prompt_text.split()[0] for r in few}) == 100


def test_text_shared_prefix_mode_and_salts():
    spec = WorkloadSpec(input_tokens=40, output_tokens=2, num_requests=9, shared_prefix_count=3,
                        shared_prefix_tokens=30, seed=4)
    reqs = build_text_requests(spec, salt="a")
    words = [r.prompt_text.split() for r in reqs]
    prefixes = [" ".join(w[:30]) for w in words]
    assert prefixes[0] == prefixes[3] == prefixes[6] and len(set(prefixes)) == 3
    assert len({w[30] for w in words}) == 9  # suffixes unique from their first word
    assert build_text_requests(spec, salt="a") == reqs
    other = build_text_requests(spec, salt="b")
    assert [" ".join(r.prompt_text.split()[:30]) for r in other] == prefixes  # same system prompts
    assert {" ".join(r.prompt_text.split()[30:]) for r in other}.isdisjoint(" ".join(w[30:]) for w in words)
    assert [r.input_tokens for r in other] == [r.input_tokens for r in reqs]


def test_requests_for_picks_the_prompt_form_of_the_kind():
    spec = WorkloadSpec(input_tokens=6, output_tokens=2, num_requests=3, seed=9)
    assert TOKEN_ID_KINDS == ("vllm-token-ids",) and set(TEXT_KINDS) == {"completions", "chat"}
    assert requests_for(spec, backend="vllm-token-ids", vocab_size=500, salt="x") == build_requests(
        spec, vocab_size=500, salt="x")
    assert requests_for(spec, backend="vllm-token-ids", token_pool=[40, 41], salt="x") == build_requests(
        spec, token_pool=[40, 41], salt="x")
    for kind in TEXT_KINDS:  # text needs no vocabulary; a given one is not used
        assert requests_for(spec, backend=kind, vocab_size=500, salt="x") == build_text_requests(spec, "x")
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        requests_for(spec, backend="vllm-token-ids")
    with pytest.raises(ValueError, match="unknown request kind 'responses'; known: vllm-token-ids, completions, chat"):
        requests_for(spec, backend="responses")


def test_text_request_input_tokens_counts_words():
    assert RequestInput(0, (), 1, prompt_text="time  year\npeople").input_tokens == 3
    assert RequestInput(0, (5, 6), 1).input_tokens == 2
