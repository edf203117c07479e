"""calculators.apirates: long-context share from percentiles and the effective rates (goldens, invariants)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators import apirates
from calculators.cost import api_usd_per_request
from tests.strategies import FUZZ


def test_share_golden_between_p90_and_p99():
    # quantile rises 100k -> 400k over u in [0.9, 0.99]: above 272k from u = 0.9 + 0.09 * 172/300
    req, tok, basis = apirates.long_context_share(272_000, mean=40_000, p50=5000, p90=100_000, p99=400_000)
    assert req == pytest.approx(0.09 * 128 / 300 + 0.01, abs=1e-4)
    # E[q] = 0.5*2,500 + 0.4*52,500 + 0.09*250,000 + 0.01*400,000 = 48,750; the part above 272k:
    # 0.09*128/300 * (272k+400k)/2 + 0.01*400k = 0.0384 * 336,000 + 4,000 = 16,902.4 -> 0.3467
    assert tok == pytest.approx(16_902.4 / 48_750, abs=1e-3)
    assert "p99 400,000" in basis


def test_threshold_above_p99_reads_as_none_and_says_so():
    req, tok, basis = apirates.long_context_share(500_000, mean=1, p50=10, p90=20, p99=30)
    assert (req, tok) == (0.0, 0.0) and "above p99" in basis


def test_mean_only_traffic_is_all_or_nothing():
    assert apirates.long_context_share(200_000, mean=250_000, p50=None, p90=None, p99=None)[:2] == (1.0, 1.0)
    assert apirates.long_context_share(200_000, mean=199_999, p50=None, p90=None, p99=None)[:2] == (0.0, 0.0)


def test_cache_shares_over_one_are_refused():
    with pytest.raises(ValueError, match="cached_input_fraction \\+ cache_write_fraction must be <= 1"):
        apirates.effective_rates((1, 0.1, 1.25, 5), None, 0, 0, cached_fraction=0.8, cache_write_fraction=0.3)


@FUZZ
@given(st.floats(0, 1e6), st.floats(0.01, 1e5), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1),
       st.tuples(*[st.floats(0, 100)] * 4), st.tuples(*[st.floats(0, 100)] * 4))
def test_effective_rates_reproduce_the_blended_cost(inp, out, c, w_share, req, tok, base, long):
    w = (1 - c) * w_share
    p_in, p_c, p_out = apirates.effective_rates(base, long, req, tok, cached_fraction=c, cache_write_fraction=w)

    def mix(i, share):
        return (1 - share) * base[i] + share * long[i]

    direct = (inp * max(0.0, 1 - c - w) * mix(0, tok) + inp * c * mix(1, tok) + inp * w * mix(2, tok)
              + out * mix(3, req)) / 1e6
    assert api_usd_per_request(inp, out, c, p_in, p_c, p_out) == pytest.approx(direct, rel=1e-9, abs=1e-12)


@FUZZ
@given(st.floats(1, 1e6), st.floats(1, 1e6), st.floats(0, 1e6), st.floats(0, 1e6), st.floats(0, 1e6))
def test_share_falls_as_the_threshold_rises(t1, dt, p50, dp90, dp99):
    p90, p99 = p50 + dp90, p50 + dp90 + dp99
    lo = apirates.long_context_share(t1, mean=1, p50=p50, p90=p90, p99=p99)
    hi = apirates.long_context_share(t1 + dt, mean=1, p50=p50, p90=p90, p99=p99)
    assert hi[0] <= lo[0] and hi[1] <= lo[1] + 1e-12


def test_no_round_off_past_the_price_limit():
    # (1 - c) * p / (1 - c) came out as 1000.0000000000001 (over the $1,000/M limit) before
    rates = apirates.effective_rates((1000.0, 0.0, None, 0.0), None, 0.0, 0.0, cached_fraction=0.8032186726155306,
                                     cache_write_fraction=0.0)
    assert rates == (1000.0, 0.0, 0.0)
    rates = apirates.effective_rates((1000.0, 0.0, 1000.0, 0.0), None, 0.0, 0.0, cached_fraction=0.3,
                                     cache_write_fraction=0.1)
    assert rates[0] == 1000.0
