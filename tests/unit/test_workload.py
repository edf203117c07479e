"""Workloads: exact lengths, reproducibility, prefix-cache hygiene, shared-prefix mode, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.load.workload import WorkloadSpec, build_requests, sample_lengths

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
    assert not {r.prompt_token_ids[:32] for r in other} & set(prefixes)


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
