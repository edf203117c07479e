"""Which API rate applies to a request shape: long-context tier share and cache writes, as pure math.

A vendor's long-context tier bills the WHOLE request at the tier rates once its input exceeds
``threshold`` tokens (the cliff model genai-prices uses). With the input-length percentiles of a trace
(p50, p90, p99), the input length's quantile function is taken as piecewise linear through
(0, 0), (0.5, p50), (0.9, p90), (0.99, p99) and flat at p99 up to 1 (the top 1 % is unknown, so the
share above a threshold beyond p99 reads as 0: a lower bound). Then::

    request_share = P(input > threshold)
    input_token_share = E[input; input > threshold] / E[input]

Typed-in (mean-only) traffic has no spread: every request is taken to be the mean (share 0 or 1).

Cache writes: a share ``w`` of input tokens written to the vendor's prompt cache is billed at the write
rate. Both are folded into the three rates the cost model uses, so that
``api_usd_per_request(in, out, c, *effective_rates(...))`` is the exact blended cost::

    p_in'  = ((1 - c - w) * p_in_mix + w * p_write_mix) / (1 - c)      (p_in' = p_in when c = 1)
    p_c'   = p_cached_mix,  p_out' = p_out_mix
    p_mix  = (1 - share) * p_base + share * p_tier   (input-side: token share; output: request share)

>>> long_context_share(200_000, mean=3000, p50=None, p90=None, p99=None)
(0.0, 0.0, 'mean input 3,000 tokens (no percentiles)')
>>> req, tok, _ = long_context_share(20_000, mean=6000, p50=2000, p90=20_000, p99=40_000)
>>> round(req, 3), round(tok, 2)   # tokens above: (0.09*30,000 + 0.01*40,000) / 8,000 = 0.3875
(0.1, 0.39)
>>> effective_rates((2.0, 0.2, 2.5, 10.0), None, 0.0, 0.0, cached_fraction=0.5, cache_write_fraction=0.1)
(2.1, 0.2, 10.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["long_context_share", "effective_rates"]

_U = np.linspace(0.0, 1.0, 20_001)


def long_context_share(threshold: float, *, mean: float, p50: float | None, p90: float | None,
                       p99: float | None) -> tuple[float, float, str]:
    """(request share, input-token share, basis text) of requests whose input exceeds ``threshold``."""
    pts = (p50, p90, p99)
    if any(p is None for p in pts):
        share = 1.0 if mean > threshold else 0.0
        return share, share, f"mean input {mean:,.0f} tokens (no percentiles)"
    p50_, p90_, p99_ = (float(p) for p in pts)  # type: ignore[arg-type]
    q = np.interp(_U, [0.0, 0.5, 0.9, 0.99, 1.0], [0.0, p50_, p90_, p99_, p99_])
    above = q > threshold
    total = float(q.sum())
    req = float(above.mean())
    tok = float(q[above].sum() / total) if total > 0 else 0.0
    basis = f"input percentiles p50 {p50_:,.0f} / p90 {p90_:,.0f} / p99 {p99_:,.0f} tokens"
    if threshold >= p99_:
        basis += " (threshold above p99: under 1% of requests, not priced)"
    return req, tok, basis


def effective_rates(base: tuple[float, float, float | None, float], long: tuple[float, float, float | None,
                    float] | None, request_share: float, token_share: float, *, cached_fraction: float,
                    cache_write_fraction: float) -> tuple[float, float, float]:
    """(input, cached input, output) $/M that reproduce the blended cost; see the module docstring.

    ``base``/``long``: (input, cached, cache write or None, output); a None write rate bills writes as input.
    """
    c, w = cached_fraction, cache_write_fraction
    if c + w > 1 + 1e-12:
        raise ValueError(f"cached_input_fraction + cache_write_fraction must be <= 1, got {c:g} + {w:g}")
    lg = long or base

    def mix(i: int, share: float) -> float:
        b = base[i] if base[i] is not None else base[0]
        t = lg[i] if lg[i] is not None else lg[0]
        lo, hi = sorted((float(b), float(t)))  # type: ignore[arg-type]
        return min(hi, max(lo, (1 - share) * float(b) + share * float(t)))  # type: ignore[arg-type]  (no round-off past either rate)

    p_in, p_c, p_w, p_out = mix(0, token_share), mix(1, token_share), mix(2, token_share), mix(3, request_share)
    if c >= 1 or w == 0:
        return p_in, p_c, p_out
    p_in_eff = (max(0.0, 1 - c - w) * p_in + w * p_w) / (1 - c)
    return min(max(p_in, p_w), max(min(p_in, p_w), p_in_eff)), p_c, p_out
