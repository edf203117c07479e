"""Workload contracts: the exact prompts of a seed (the docstring promises the same ids on every machine and
Python run, so a probe run can be repeated), length distributions and their clipping, head uniqueness when
the vocabulary is small or huge, and the argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from probes.load.workload import WorkloadSpec, build_requests, sample_lengths

SPEC = WorkloadSpec(input_tokens=6, output_tokens=3, num_requests=3, seed=7)


def test_the_prompts_of_a_seed_are_pinned():
    # recorded once (numpy PCG64 seeded by sha256 of the seed and salt): any change to the derivation shows here
    reqs = build_requests(SPEC, vocab_size=50, salt="p0")
    assert [r.prompt_token_ids for r in reqs] == [(45, 30, 24, 41, 36, 36), (20, 40, 23, 24, 32, 40),
                                                  (30, 30, 26, 45, 24, 36)]
    assert [(r.index, r.output_tokens, r.input_tokens) for r in reqs] == [(0, 3, 6), (1, 3, 6), (2, 3, 6)]
    spread = WorkloadSpec(input_tokens=6, output_tokens=3, num_requests=3, seed=7, distribution="uniform",
                          input_spread=0.5, output_spread=0.5)
    assert [r.input_tokens for r in build_requests(spread, vocab_size=50, salt="p0")] == [8, 4, 8]


def test_salt_changes_the_ids_but_not_the_lengths_and_seed_changes_both():
    spec = WorkloadSpec(input_tokens=20, output_tokens=5, num_requests=6, seed=1, distribution="normal",
                        input_spread=0.3, output_spread=0.3)
    a, b = build_requests(spec, vocab_size=1000, salt="x"), build_requests(spec, vocab_size=1000, salt="y")
    assert [r.input_tokens for r in a] == [r.input_tokens for r in b]
    assert [r.output_tokens for r in a] == [r.output_tokens for r in b]
    assert all(x.prompt_token_ids[0] != y.prompt_token_ids[0] for x, y in zip(a, b, strict=True))
    other = build_requests(WorkloadSpec(**{**spec.__dict__, "seed": 2}), vocab_size=1000, salt="x")
    assert [r.input_tokens for r in other] != [r.input_tokens for r in a]


def test_ids_stay_inside_the_usable_range():
    reqs = build_requests(WorkloadSpec(input_tokens=64, output_tokens=1, num_requests=50), vocab_size=40,
                          reserved_ids=30)
    ids = {t for r in reqs for t in r.prompt_token_ids}
    assert min(ids) == 30 and max(ids) == 39  # 64 x 50 draws from 10 ids hit both ends


def test_more_requests_than_ids_still_get_distinct_heads():
    # 2 usable ids, 7 requests: heads need 3 ids each (2**3 = 8 >= 7), all different
    reqs = build_requests(WorkloadSpec(input_tokens=5, output_tokens=1, num_requests=7), vocab_size=4,
                          reserved_ids=2)
    heads = [r.prompt_token_ids[:3] for r in reqs]
    assert len(set(heads)) == 7 and all(set(h) <= {2, 3} for h in heads)
    assert len({r.prompt_token_ids[:2] for r in reqs}) == 4  # two ids per head would not be enough


def test_a_huge_vocabulary_draws_distinct_heads_without_a_full_permutation():
    reqs = build_requests(WorkloadSpec(input_tokens=3, output_tokens=1, num_requests=200), vocab_size=3_000_000)
    assert len({r.prompt_token_ids[0] for r in reqs}) == 200
    assert all(16 <= r.prompt_token_ids[0] < 3_000_000 for r in reqs)


def test_shared_prefixes_repeat_by_index_and_suffixes_are_unique():
    spec = WorkloadSpec(input_tokens=10, output_tokens=1, num_requests=6, shared_prefix_count=3,
                        shared_prefix_tokens=4, distribution="uniform", input_spread=0.9)
    reqs = build_requests(spec, vocab_size=500)
    assert all(r.input_tokens >= 5 for r in reqs)  # at least the prefix plus one token
    for i, r in enumerate(reqs):
        assert r.prompt_token_ids[:4] == reqs[i % 3].prompt_token_ids[:4]
    assert len({r.prompt_token_ids[:4] for r in reqs}) == 3
    assert len({r.prompt_token_ids[4] for r in reqs}) == 6


def test_sample_lengths_by_distribution():
    rng = np.random.default_rng(3)
    assert sample_lengths(10, 0.5, "fixed", 3, rng) == [10, 10, 10]
    assert sample_lengths(10, 0.0, "uniform", 2, rng) == [10, 10]
    assert sample_lengths(10, 0.5, "normal", 8, np.random.default_rng(3)) == [20, 1, 12, 7, 8, 9, 1, 9]
    clipped = sample_lengths(2, 0.9, "normal", 12, np.random.default_rng(3), minimum=2)
    assert min(clipped) == 2 and clipped == [6, 2, 3, 2, 2, 2, 2, 2, 2, 8, 2, 2]
    uniform = sample_lengths(100, 0.2, "uniform", 500, np.random.default_rng(4))
    assert 80 <= min(uniform) <= 82 and 118 <= max(uniform) <= 120
    with pytest.raises(ValueError, match="distribution must be one of"):
        sample_lengths(10, 0.1, "poisson", 1, rng)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input_tokens": 0}, "input_tokens must be an integer >= 1, got 0"),
    ({"output_tokens": True}, "output_tokens must be an integer >= 1, got True"),
    ({"num_requests": 2.0}, "num_requests must be an integer >= 1, got 2.0"),
    ({"distribution": "zipf"}, "distribution must be one of ('fixed', 'uniform', 'normal'), got 'zipf'"),
    ({"input_spread": 1.0}, "input_spread must be in [0, 1), got 1.0"),
    ({"output_spread": -0.1}, "output_spread must be in [0, 1), got -0.1"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"shared_prefix_count": 2}, "shared_prefix_count and shared_prefix_tokens must both be 0 or both be >= 1, "
                                 "got 2 and 0"),
    ({"shared_prefix_count": 1, "shared_prefix_tokens": 8}, "shared_prefix_tokens must be < input_tokens (8), "
                                                            "got 8"),
])
def test_spec_errors_name_the_field_and_value(kwargs, message):
    with pytest.raises(ValueError) as info:
        WorkloadSpec(**{"input_tokens": 8, "output_tokens": 2, "num_requests": 2, **kwargs})
    assert str(info.value) == message


def test_vocabulary_arguments_are_checked():
    with pytest.raises(ValueError, match="vocab_size must be an integer, got True"):
        build_requests(SPEC, vocab_size=True)
    with pytest.raises(ValueError, match=r"reserved_ids must be in \[0, vocab_size - 1\) so that >= 2 ids remain; "
                                         r"got reserved_ids=16, vocab_size=17"):
        build_requests(SPEC, vocab_size=17)  # 16 reserved: one id left
    assert {t for r in build_requests(SPEC, vocab_size=18) for t in r.prompt_token_ids} <= {16, 17}


def test_more_pinned_prompts_default_salt_and_spread_only_on_outputs():
    # the default salt is part of the recipe too
    assert [r.prompt_token_ids for r in build_requests(SPEC, vocab_size=50)] == [
        tuple(r.prompt_token_ids) for r in build_requests(SPEC, vocab_size=50, salt="")]
    assert build_requests(SPEC, vocab_size=50)[0].prompt_token_ids != build_requests(
        SPEC, vocab_size=50, salt="p0")[0].prompt_token_ids
    # no input spread: input lengths draw nothing, so the output lengths are those of the seed's first draws
    spec = WorkloadSpec(input_tokens=4, output_tokens=3, num_requests=2, seed=7, distribution="uniform",
                        output_spread=0.9)
    assert [r.output_tokens for r in build_requests(spec, vocab_size=50)] == [5, 2]


@pytest.mark.parametrize(("vocab_size", "ids"), [
    # usable ids = vocab - 16; up to 4 x count + 1,000,000 = 1,000,008 codes (2 requests): a seeded permutation,
    # beyond: rejection draws
    (1_000_020, [(605572, 651461, 986580, 897434), (381003, 238908, 122023, 351794)]),
    (1_000_024, [(139784, 651464, 986584, 897437), (100885, 238909, 122024, 351796)]),  # 1,000,008: permutation
    (1_000_025, [(942039, 819538, 762465, 65229), (773099, 232060, 315441, 532381)]),  # 1,000,009: rejection
])
def test_pinned_heads_on_both_sides_of_the_permutation_limit(vocab_size, ids):
    reqs = build_requests(WorkloadSpec(input_tokens=4, output_tokens=1, num_requests=2), vocab_size=vocab_size)
    assert [r.prompt_token_ids for r in reqs] == ids


def test_pinned_two_id_heads_when_requests_outnumber_the_ids():
    # 1,100 usable ids, 1,101 requests: two ids per head, 1,210,000 codes > 4 x 1,101 + 1,000,000: rejection
    reqs = build_requests(WorkloadSpec(input_tokens=3, output_tokens=1, num_requests=1101), vocab_size=1116)
    assert (reqs[0].prompt_token_ids, reqs[-1].prompt_token_ids) == ((254, 1052, 941), (1036, 353, 925))
    assert len({r.prompt_token_ids[:2] for r in reqs}) == 1101


def test_zero_reserved_ids_and_prefix_ids_stay_in_range():
    assert min(t for r in build_requests(SPEC, vocab_size=3, reserved_ids=0) for t in r.prompt_token_ids) >= 0
    spec = WorkloadSpec(input_tokens=40, output_tokens=1, num_requests=4, shared_prefix_count=2,
                        shared_prefix_tokens=30)
    ids = [t for r in build_requests(spec, vocab_size=100, reserved_ids=50) for t in r.prompt_token_ids]
    assert min(ids) >= 50 and max(ids) < 100


@pytest.mark.parametrize("field", ["shared_prefix_count", "shared_prefix_tokens", "seed"])
def test_booleans_are_not_counts(field):
    with pytest.raises(ValueError, match=f"{field} must be an integer >= 0, got True"):
        WorkloadSpec(input_tokens=8, output_tokens=2, num_requests=2, **{field: True})
