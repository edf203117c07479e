"""Claim check: the article's claims (a)-(f) with their arithmetic, a possible claim, bad input, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators.claims import ARTICLE_CLAIMS, Claim, check_claim, usd_per_mtok
from tests.strategies import FUZZ


@pytest.mark.parametrize("key", list("abcdef"))
def test_article_claims_are_not_possible_and_show_arithmetic(key):
    v = check_claim(ARTICLE_CLAIMS[key])
    assert not v.possible
    assert v.lines[-1] == "verdict: not possible"
    assert any("GB per GPU" in line for line in v.lines)


def test_fit_only_claims_fail_on_memory():
    for key in "ab":
        v = check_claim(ARTICLE_CLAIMS[key])
        assert v.fit_verdict == "does-not-fit" and v.margin is None
        assert any(line.startswith("what would fit instead") for line in v.lines)


def test_claim_c_margin_by_hand():
    v = check_claim(ARTICLE_CLAIMS["c"])
    # one step reads 141.1 GB of weights less the 2.1 GB input-embedding table (only one row is looked up)
    # + 1000 tokens x 320 KiB of KV
    ceiling = 3.35e12 / (141.1e9 - 2 * 128_256 * 8192 + 1000 * 327_680)
    assert v.ceiling_tokens_per_s == pytest.approx(ceiling, rel=0.002)
    assert v.margin == pytest.approx(85 / ceiling, rel=0.002)


def test_claim_e_fits_but_is_far_above_the_ceiling():
    v = check_claim(ARTICLE_CLAIMS["e"])
    assert v.fits and v.fit_verdict == "fits"
    assert v.margin > 5
    assert any("only 8 of 32 streams" in line for line in v.lines)


def test_claim_f_cost_arithmetic():
    assert usd_per_mtok(2.50, 6400) == pytest.approx(0.1085, abs=1e-4)
    v = check_claim(ARTICLE_CLAIMS["f"])
    assert any("$0.109/M tokens" in line for line in v.lines)


def test_a_realistic_claim_is_possible():
    v = check_claim(Claim("x", "8B on one H100 at 150 tok/s", "meta-llama/Llama-3.1-8B-Instruct", "h100-sxm",
                          concurrency=1, claimed_tokens_per_s=150.0))
    assert v.possible and v.margin < 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_gpus": 0}, "num_gpus must be >= 1"), ({"concurrency": 1.5}, "concurrency must be a whole number"),
    ({"claimed_tokens_per_s": -1.0}, "claimed_tokens_per_s must be > 0"),
    ({"usd_per_gpu_hour": float("inf")}, "usd_per_gpu_hour must be a finite number"),
])
def test_bad_claims(kwargs, message):
    with pytest.raises(ValueError, match=None) as exc:
        Claim("x", "t", "meta-llama/Llama-3.1-8B-Instruct", "h100-sxm", **kwargs)
    assert message in str(exc.value)
    with pytest.raises(ValueError, match="unknown GPU"):
        check_claim(Claim("x", "t", "meta-llama/Llama-3.1-8B-Instruct", "h100"))


@FUZZ
@given(st.floats(1e-3, 1e7), st.integers(1, 2048), st.sampled_from(["bf16", "fp8", "int4-awq"]))
def test_possible_iff_fits_and_under_ceiling(claimed, conc, dtype):
    v = check_claim(Claim("x", "t", "meta-llama/Llama-3.1-8B-Instruct", "h100-sxm", 1, dtype, conc, claimed))
    assert v.possible == (v.fits and claimed <= v.ceiling_tokens_per_s)


def test_article_claims_c_and_e_cite_the_measured_h100_run():
    from calculators.claims import ARTICLE_CLAIMS, check_claim

    e = check_claim(ARTICLE_CLAIMS["e"])
    measured = [line for line in e.lines if line.startswith("measured:")]
    assert measured and "350 output tok/s" in measured[0]
    # the measured number sits under the ceiling the claim check computes, and the claim far above both
    assert 350 < e.ceiling_tokens_per_s < ARTICLE_CLAIMS["e"].claimed_tokens_per_s
    assert any("36.1 tok/s" in line for line in check_claim(ARTICLE_CLAIMS["c"]).lines)
