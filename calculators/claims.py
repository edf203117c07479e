"""Is a throughput claim physically possible? Fit first, then the roofline ceiling, with the arithmetic.

A claim names a model, GPU(s), precision, concurrency and an aggregate output tokens/s. It is possible only if
the model fits (vLLM would start) and the claim is at or below the decode ceiling of :mod:`calculators.roofline`;
``margin`` = claimed / ceiling (above 1 = impossible). ``ARTICLE_CLAIMS`` are the claims (a)-(f) of ``ARTICLE``,
the seed article "Self-host a high-throughput inference server with vLLM" (facts README section 5), each
re-derived here.

>>> v = check_claim(ARTICLE_CLAIMS["c"])
>>> v.possible, round(v.ceiling_tokens_per_s, 1), round(v.margin, 1)
(False, 24.0, 3.5)
"""

from __future__ import annotations

from dataclasses import dataclass

from calculators.catalog import gpu
from calculators.cost import ARTICLE, usd_per_mtok_output
from calculators.memory import GIB, FitInput, fit, weight_bytes
from calculators.modelspec import model
from calculators.roofline import DEFAULT_MBU, DEFAULT_MFU, RooflineInput, decode_point
from calculators.validation import require_finite, require_int

__all__ = ["Claim", "ClaimVerdict", "check_claim", "ARTICLE", "ARTICLE_CLAIMS", "usd_per_mtok"]


@dataclass(frozen=True)
class Claim:
    key: str
    text: str
    model_id: str
    gpu_id: str
    num_gpus: int = 1
    weight_dtype: str = "bf16"
    concurrency: int = 1
    claimed_tokens_per_s: float | None = None  # aggregate output tokens/s; None = a fit-only claim
    context_tokens: int = 1000
    usd_per_gpu_hour: float | None = None  # for cost claims: $/M output tokens at the claimed rate
    measured: str = ""  # what a real run of the nearest setup measured (shown as a line, not used in the math)

    def __post_init__(self) -> None:
        require_int("num_gpus", self.num_gpus, low=1, high=64)
        require_int("concurrency", self.concurrency, low=1, high=10**6)
        require_int("context_tokens", self.context_tokens, low=1, high=10**7)
        if self.claimed_tokens_per_s is not None:
            require_finite("claimed_tokens_per_s", self.claimed_tokens_per_s, low=0.0, low_inclusive=False)
        if self.usd_per_gpu_hour is not None:
            require_finite("usd_per_gpu_hour", self.usd_per_gpu_hour, low=0.0, low_inclusive=False)


@dataclass(frozen=True)
class ClaimVerdict:
    claim: Claim
    possible: bool
    fits: bool
    fit_verdict: str
    ceiling_tokens_per_s: float
    estimate_tokens_per_s: float
    margin: float | None  # claimed / ceiling; None for fit-only claims
    bound: str
    lines: tuple[str, ...]


def usd_per_mtok(usd_per_hour: float, tokens_per_s: float) -> float:
    """$/M tokens = $/h / (tokens/s * 3600 / 1e6), fully used: :func:`calculators.cost.usd_per_mtok_output`.

    >>> round(usd_per_mtok(2.50, 6400), 4)
    0.1085
    """
    require_finite("usd_per_hour", usd_per_hour, low=0.0)
    require_finite("tokens_per_s", tokens_per_s, low=0.0, low_inclusive=False)
    return float(usd_per_mtok_output(usd_per_hour, tokens_per_s, 1.0))


def check_claim(claim: Claim, *, mbu: float = DEFAULT_MBU, mfu: float = DEFAULT_MFU) -> ClaimVerdict:
    """Fit and roofline verdict for one claim, with each step of the arithmetic as a text line."""
    arch, g = model(claim.model_id), gpu(claim.gpu_id)
    max_len = min(arch.max_position_embeddings, max(claim.context_tokens, 4096))
    fr = fit(FitInput(arch, g, claim.num_gpus, claim.weight_dtype, max_model_len=max_len))
    rin = RooflineInput(arch, g, claim.num_gpus, claim.weight_dtype, context_tokens=claim.context_tokens,
                        mbu=mbu, mfu=mfu)
    p = decode_point(rin, claim.concurrency)
    kv_lines: list[str] = []
    if fr.verdict != "does-not-fit" and fr.kv_capacity_tokens < claim.concurrency * claim.context_tokens:
        resident = max(1, fr.kv_capacity_tokens // claim.context_tokens)
        kv_lines.append(
            f"the KV cache holds {fr.kv_capacity_tokens:,} tokens: only {resident} of {claim.concurrency} streams "
            f"of {claim.context_tokens:,} tokens run at once, the rest queue; the ceiling uses {resident}"
        )
        p = decode_point(rin, resident)
    wb = weight_bytes(arch, claim.weight_dtype)
    lines = [
        f"{arch.name}: {arch.total_params / 1e9:.2f}B params x {claim.weight_dtype} = {wb / 1e9:.1f} GB "
        f"({wb / GIB:.1f} GiB) of weights; {claim.num_gpus} x {g.name} ({g.usable_memory_gib:g} GiB usable each)",
        f"fit: {fr.weights_gib:.1f} GiB weights per GPU vs a {fr.budget_gib:.1f} GiB budget "
        f"({fr.gpu_memory_utilization:g} x {g.usable_memory_gib:g}) -> {fr.verdict}"
        + (f", KV cache {fr.kv_capacity_tokens:,} tokens" if fr.verdict != "does-not-fit" else ""),
        *kv_lines,
        f"one decode step at concurrency {p.concurrency}, {claim.context_tokens:,} tokens of context each: "
        f"reads {p.bytes_read_per_gpu / 1e9:.1f} GB per GPU / {g.mem_bandwidth_tbps:g} TB/s = "
        f"{p.step_ms_memory:.2f} ms; compute {p.step_ms_compute:.2f} ms -> {p.bound}-bound",
        f"ceiling {p.concurrency} / {p.tpot_ms_floor:.2f} ms = {p.decode_tokens_per_s_max:,.1f} tok/s "
        f"({p.per_user_tokens_per_s_max:.1f} per stream); at {mbu:.0%} MBU / {mfu:.0%} MFU: "
        f"{p.decode_tokens_per_s_est:,.1f} tok/s",
    ]
    margin = None
    ok_speed = True
    if claim.claimed_tokens_per_s is not None:
        margin = claim.claimed_tokens_per_s / p.decode_tokens_per_s_max
        ok_speed = margin <= 1.0
        lines.append(
            f"claimed {claim.claimed_tokens_per_s:,.0f} tok/s = {margin:.2f} x the ceiling -> "
            + ("within physics" if ok_speed else "above what the memory bandwidth and compute allow")
        )
        if claim.usd_per_gpu_hour is not None:
            hourly = claim.usd_per_gpu_hour * claim.num_gpus
            lines.append(
                f"cost at the claim: ${hourly:.2f}/h / ({claim.claimed_tokens_per_s:,.0f} x 3600 / 1e6) = "
                f"${usd_per_mtok(hourly, claim.claimed_tokens_per_s):.3f}/M tokens; at the ceiling "
                f"${usd_per_mtok(hourly, p.decode_tokens_per_s_max):.3f}/M; at the estimate "
                f"${usd_per_mtok(hourly, p.decode_tokens_per_s_est):.3f}/M"
            )
    fits = fr.verdict != "does-not-fit"
    if not fits and fr.fixes:
        lines.append("what would fit instead: " + "; ".join(fr.fixes[:3]))
    if claim.measured:
        lines.append(f"measured: {claim.measured}")
    possible = fits and ok_speed
    lines.append("verdict: " + ("possible" if possible else "not possible"))
    return ClaimVerdict(
        claim=claim,
        possible=possible,
        fits=fits,
        fit_verdict=fr.verdict,
        ceiling_tokens_per_s=p.decode_tokens_per_s_max,
        estimate_tokens_per_s=p.decode_tokens_per_s_est,
        margin=margin,
        bound=p.bound,
        lines=tuple(lines),
    )


_L70 = "meta-llama/Llama-3.3-70B-Instruct"
_H100_MEASURED = ("this project's probe on one H100 80GB HBM3 (vLLM 0.26.0, Llama-3.3-70B shape, fp8, 512 in / 256 "
                  "out, 2026-11-28, benchmarks/README.md)")
ARTICLE_CLAIMS: dict[str, Claim] = {
    "a": Claim("a", "A single H100 80GB serves Llama 3.3 70B Instruct in fp16 with --tensor-parallel-size 1",
               _L70, "h100-sxm", 1, "bf16"),
    "b": Claim("b", "Llama 3.3 70B in fp16 fits in 2x A100 40GB", _L70, "a100-40gb", 2, "bf16"),
    "c": Claim("c", "Sequential single-stream ~85 tokens/s for Llama 3.3 70B fp16 on one H100",
               _L70, "h100-sxm", 1, "bf16", 1, 85.0,
               measured=_H100_MEASURED + ", the smallest setup that fits: 36.1 tok/s single-stream (TPOT 27.6 ms)"),
    "d": Claim("d", "32 concurrent requests: ~6,400 tokens/s aggregate (fp16, one H100)",
               _L70, "h100-sxm", 1, "bf16", 32, 6400.0),
    "e": Claim("e", "fp8, 32 concurrent: ~10,000 tokens/s (one H100)", _L70, "h100-sxm", 1, "fp8", 32, 10000.0,
               measured=_H100_MEASURED + " at 32 concurrent: 350 output tok/s, KV cache 100 % full, 22 preemptions, "
               "median TTFT 10 s"),
    "f": Claim("f", "6,400 tokens/s on a $2.50/hr H100 = $0.11 per million tokens",
               _L70, "h100-sxm", 1, "bf16", 32, 6400.0, usd_per_gpu_hour=2.50),
}
