"""calculators.cost: exact values and messages that the first mutation run showed unpinned (constants such as
1e6 hidden by loose tolerances, argument bounds whose errors were matched by substring, the fallback share in
the break-even, the exact d == 0 edge, the replica tolerance of the break-even step, the reasons' wording)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from calculators import cost
from calculators.scenario import replace_field
from tests.pinned import RAG_PINNED, SUPPORT_BOT

RAG = Path(__file__).resolve().parents[2] / "scenarios/rag-assistant-70b.toml"
BE = {"api_usd_per_request": 0.001, "busy_s_per_request": 1.0, "peak_to_mean": 1.0, "min_replicas": 1,
      "gpus_per_replica": 1, "gpu_usd_per_hour": 1.0}


def _message(fn, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        fn(**kwargs)
    return str(info.value)


def test_constants_to_twelve_digits():
    assert cost.usd_per_mtok_output(2.50, 6400, 1.0) == pytest.approx(2.5e6 / (6400 * 3600), rel=1e-12)
    assert cost.self_host_usd_per_month(1, 1, 1.0) == 730.0  # ops and fallback default to 0
    r = cost.evaluate(SUPPORT_BOT)
    assert r.api.output_tokens_per_month == pytest.approx(20_000 * 730 / 24 * 300, rel=1e-12)
    assert r.api.usd_per_mtok_output_equiv == pytest.approx(0.00080625 / 300 * 1e6, rel=1e-12)  # $2.6875
    assert r.self_host.effective_output_tokens_per_s == pytest.approx(3400, rel=1e-12)
    assert r.self_host.usd_per_mtok_output == pytest.approx(3463.7 / (20_000 * 730 / 24 * 300) * 1e6, rel=1e-12)


def test_a_few_output_tokens_a_month_still_have_a_price_per_token():
    s = replace_field(replace_field(SUPPORT_BOT, "traffic.requests_per_day", 0.01), "traffic.output_tokens", 1)
    r = cost.evaluate(s)  # 0.01 * 730 / 24 = 0.304 output tokens a month
    assert r.self_host.usd_per_mtok_output == pytest.approx(r.self_host.usd_per_month / (0.01 * 730 / 24) * 1e6)


@pytest.mark.parametrize(("fn", "kwargs", "message"), [
    (cost.self_host_usd_per_month, {"replicas": 1e21, "gpus_per_replica": 1, "gpu_usd_per_hour": 1.0},
     "replicas must be <= 1e+20, got 1e+21"),
    (cost.usd_per_mtok_output, {"gpu_usd_per_hour": 1.0, "output_tokens_per_s": 10.0, "utilization": 1.5},
     "utilization must be <= 1, got 1.5"),
    (cost.breakeven_requests_per_day, BE | {"api_usd_per_request": 2e6},
     "api_usd_per_request must be <= 1e+06, got 2e+06"),
    (cost.breakeven_requests_per_day, BE | {"busy_s_per_request": -1.0}, "busy_s_per_request must be >= 0, got -1"),
    (cost.breakeven_requests_per_day, BE | {"min_replicas": 0}, "min_replicas must be >= 1, got 0"),
    (cost.breakeven_requests_per_day, BE | {"fallback_fraction": -0.5}, "fallback_fraction must be >= 0, got -0.5"),
    (cost.breakeven_requests_per_day, BE | {"fallback_fraction": 1.5}, "fallback_fraction must be <= 1, got 1.5"),
    (cost.breakeven_utilization, {"gpu_usd_per_hour": 1.0, "gpus_per_replica": 1, "busy_s_per_request": 2e12,
                                  "api_usd_per_request": 0.01}, "busy_s_per_request must be <= 1e+12, got 2e+12"),
    (cost.breakeven_utilization, {"gpu_usd_per_hour": 1.0, "gpus_per_replica": 1, "busy_s_per_request": 1.0,
                                  "api_usd_per_request": -0.01}, "api_usd_per_request must be >= 0, got -0.01"),
    (cost.breakeven_utilization, {"gpu_usd_per_hour": 1.0, "gpus_per_replica": 1, "busy_s_per_request": 1.0,
                                  "api_usd_per_request": 2e6}, "api_usd_per_request must be <= 1e+06, got 2e+06"),
    (cost.evaluate, {"s": {"traffic": {}}}, "evaluate expects a Scenario, got dict"),
])
def test_bad_arguments_get_exactly_this_message(fn, kwargs, message):
    assert _message(fn, **kwargs) == message


def test_min_replicas_upper_bound_in_the_break_even():
    high = int(cost.LIMITS["self_host.min_replicas"][1])
    assert cost.breakeven_requests_per_day(**BE | {"min_replicas": high})[1] == high
    assert _message(cost.breakeven_requests_per_day, **BE | {"min_replicas": high + 1}) == (
        f"min_replicas must be <= {high}, got {high + 1}")


def test_the_fallback_share_leaves_the_replicas_and_the_api_bill():
    # a = 0.001 * 730/24; f = 0.5: b = 0.5a = 0.0152083; k = 0.5 / 86,400; G = 730; d = b - G k = 0.0109838;
    # ops k / d = 5.27 -> 6 replicas; x = (6 * 730 + 10,000) / b = 14,380 / 0.0152083 = 945,534.2
    x, n = cost.breakeven_requests_per_day(**BE | {"ops_usd_per_month": 10_000, "fallback_fraction": 0.5})
    assert n == 6 and x == pytest.approx(14_380 / (0.5 * 0.001 * 730 / 24), rel=1e-12)
    # and in evaluate: 2,000,000 req/day, half to the API: 2e6 * 0.5 * 300/3400 / 86,400 * 2 = 2.04 -> 3 replicas
    s = replace_field(replace_field(SUPPORT_BOT, "traffic.requests_per_day", 2e6),
                      "self_host.fallback_fraction", 0.5)
    assert cost.evaluate(s).self_host.replicas == 3


def test_a_replica_that_exactly_pays_for_itself():
    # a = $24/request, busy 86,400 s, $1/GPU-hour: b = 24 * 730/24 = 730 = G * k, so d == 0 exactly
    edge = BE | {"api_usd_per_request": 24.0, "busy_s_per_request": 86_400.0}
    assert cost.breakeven_requests_per_day(**edge) == (1.0, 1)  # no ops: break-even at 730 / 730 = 1 req/day
    assert cost.breakeven_requests_per_day(**edge | {"ops_usd_per_month": 0.5}) is None  # ops never recovered


def test_float_noise_does_not_add_a_replica_to_the_break_even_step():
    # ops chosen so that ops * k / d is 5 up to rounding: the first feasible step is 5, not 6
    k, b = 1.0 / 86_400, 0.001 * 730 / 24
    d = b - 730 * k
    x, n = cost.breakeven_requests_per_day(**BE | {"ops_usd_per_month": 5 * d / k})
    assert n == 5 and x == pytest.approx((5 * 730 + 5 * d / k) / b)


def test_report_to_dict_carries_every_value():
    r = cost.evaluate(RAG_PINNED)
    d = cost.report_to_dict(r)
    assert d["api"] == vars(r.api) and d["breakeven"] == vars(r.breakeven)
    assert {k: v for k, v in d["self_host"].items() if k != "breakdown"} == vars(r.self_host)
    assert d["savings_usd_per_month"] == r.savings_usd_per_month and d["reasons"] == list(r.reasons)


DEFAULT_REASONS = [
    "At 20,000 requests/day the API costs $490/month and self-hosting $3,464/month (1 replica(s) of 1x NVIDIA "
    "H100 SXM 80GB at $2.69/GPU-hour (typed) = $1,964/month, ops $1,500/month, API fallback $0/month): the API is cheaper by $2,973/month.",
    "Break-even: self-hosting is no dearer from 141,240 requests/day (1 replica(s)), and at every higher volume.",
    "Per output token, a replica matches the API ($2.69/M output-equivalent) at 8% average utilization.",
    "Capacity assumes 3,400 output tokens/s per replica (output tokens only); source: measured: Lambda "
    "vllm-benchmark, Llama-3.1-8B FP8, 1xH100 SXM, vLLM 0.5.4 (2024-09).",
    "Average GPU utilization is 2% (sized for a 2x peak, 1 minimum replica(s)): most of the GPU time you pay "
    "for is idle.",
    "Consideration: a single replica is one outage from downtime; the article \"Self-host a high-throughput "
    "inference server with vLLM\" advises \"Always have a fallback to API\" (or set min_replicas to 2).",
]


def test_the_default_scenario_reasons_word_for_word():
    assert list(cost.evaluate(SUPPORT_BOT).reasons) == DEFAULT_REASONS


def test_every_conditional_reason_word_for_word():
    s = replace_field(replace_field(replace_field(SUPPORT_BOT, "self_host.gpu_usd_per_hour", 50.0),
                                    "traffic.requests_per_day", 500), "self_host.ops_usd_per_month", 100.0)
    s = dataclasses.replace(s, context=dataclasses.replace(s.context, needs_frontier_quality=True,
                                                           fine_tuned_model=True, has_gpu_expertise=False))
    assert list(cost.evaluate(s).reasons) == [
        "At 500 requests/day the API costs $12.26/month and self-hosting $36,600/month (1 replica(s) of 1x "
        "NVIDIA H100 SXM 80GB at $50/GPU-hour (typed) = $36,500/month, ops $100/month, API fallback $0/month): the API "
        "is cheaper by "
        "$36,588/month.",
        "Self-hosting never breaks even at these prices: even a fully used replica costs more per request than "
        "the API (or the API is free).",
        "Per output token, a replica matches the API ($2.69/M output-equivalent) at 152% average utilization "
        "(above 100%: a replica is dearer per token than the API even when fully busy).",
        DEFAULT_REASONS[3],
        "Average GPU utilization is <1% (sized for a 2x peak, 1 minimum replica(s)): most of the GPU time you pay "
        "for is idle.",
        "Consideration: under 1,000 requests/day the rule of thumb of the article \"Self-host a high-throughput "
        "inference server with vLLM\" is that the API is cheaper, simpler and more reliable.",
        "Consideration: frontier quality is not self-hostable; no open-weight model matches frontier APIs on hard "
        "reasoning, so this compares against a model you could not replace one-for-one.",
        "Consideration: the team has no GPU expertise; vLLM's failure modes (CUDA mismatches, NCCL errors, kernel "
        "crashes) need someone comfortable with Linux and CUDA, so budget ops time.",
        "Consideration: a fine-tuned model is only self-hostable (no API serves your adapter), so the API side here "
        "is a reference price, not an alternative.",
        DEFAULT_REASONS[5],
    ]
    rag = cost.evaluate(RAG_PINNED).reasons
    assert any(x.startswith("Capacity assumes 1,700 output tokens/s per replica (plus a prefill rate); ")
               for x in rag)


# --- every argument's bounds, scalar and elementwise, without relying on which fields Hypothesis happens to draw --

VALID = {
    cost.api_usd_per_request: {"input_tokens": 100.0, "output_tokens": 10.0, "cached_input_fraction": 0.5,
                               "input_usd_per_mtok": 1.0, "cached_input_usd_per_mtok": 0.1,
                               "output_usd_per_mtok": 2.0},
    cost.api_usd_per_month: {"requests_per_day": 10.0, "input_tokens": 100.0, "output_tokens": 10.0,
                             "cached_input_fraction": 0.5, "input_usd_per_mtok": 1.0,
                             "cached_input_usd_per_mtok": 0.1, "output_usd_per_mtok": 2.0},
    cost.replica_busy_s_per_request: {"output_tokens": 10.0, "output_tokens_per_s": 100.0, "input_tokens": 100.0,
                                      "cached_input_fraction": 0.5, "prefill_tokens_per_s": 1000.0},
    cost.replicas_needed: {"requests_per_day": 10.0, "busy_s_per_request": 1.0, "peak_to_mean": 2.0,
                           "min_replicas": 1, "fallback_fraction": 0.5},
    cost.self_host_usd_per_month: {"replicas": 2.0, "gpus_per_replica": 1, "gpu_usd_per_hour": 1.0,
                                   "ops_usd_per_month": 10.0, "fallback_api_usd_per_month": 5.0},
    cost.usd_per_mtok_output: {"gpu_usd_per_hour": 1.0, "output_tokens_per_s": 100.0, "utilization": 0.5,
                               "gpus_per_replica": 1},
    cost.breakeven_requests_per_day: BE | {"ops_usd_per_month": 10.0, "fallback_fraction": 0.5},
    cost.breakeven_utilization: {"gpu_usd_per_hour": 1.0, "gpus_per_replica": 1, "busy_s_per_request": 1.0,
                                 "api_usd_per_request": 0.01},
}
ELEMENTWISE = list(VALID)[:6]
BOUNDS = {"replicas": (0, 1e20), "fallback_api_usd_per_month": (0, 1e20), "busy_s_per_request": (0, cost.MAX_BUSY_S),
          "api_usd_per_request": (0, cost.MAX_API_USD_PER_REQUEST), "utilization": (cost.MIN_UTILIZATION, 1),
          "cached_input_fraction": (0, 1), "fallback_fraction": (0, 1)}


def _bounds(arg: str) -> tuple[float, float]:
    if arg in BOUNDS:
        return BOUNDS[arg]
    (low, high), = [v for k, v in cost.LIMITS.items() if k.endswith("." + arg)]
    return low, high


CASES = [(fn, arg, bad) for fn, kwargs in VALID.items() for arg in kwargs
         for bad in (_bounds(arg)[0] - 0.5 * max(abs(_bounds(arg)[0]), 1e-6), _bounds(arg)[1] * 1.5)]


@pytest.mark.parametrize(("fn", "arg", "bad"), CASES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_each_argument_outside_its_bounds_is_refused_by_name(fn, arg, bad):
    assert _message(fn, **VALID[fn] | {arg: bad}).startswith(f"{arg} must be ")


@pytest.mark.parametrize(("fn", "arg"), [(fn, arg) for fn in ELEMENTWISE for arg in VALID[fn]],
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_each_argument_is_checked_elementwise_too(fn, arg):
    good = VALID[fn][arg]
    low, high = _bounds(arg)
    below, above = low - 0.5 * max(abs(low), 1e-6), high * 1.5

    def msg(values):
        return _message(fn, **VALID[fn] | {arg: np.array(values)})
    assert msg([good, below]) == f"{arg} must be >= {low:g}, got {below:g}"
    assert msg([good, above]) == f"{arg} must be <= {high:g}, got {above:g}"
    assert msg([good, np.nan]) == f"{arg} must be finite numbers, got nan"
    assert msg([True, False]) == f"{arg} must be numbers, got booleans"
    assert msg(["a", "b"]).startswith(f"{arg} must be numbers, got ")
    assert np.all(np.isfinite(fn(**VALID[fn] | {arg: np.array([good, good])})))


def test_min_replicas_must_be_whole_and_defaults_are_documented():
    assert _message(cost.replicas_needed, requests_per_day=1.0, busy_s_per_request=1.0, min_replicas=1.5) == (
        "min_replicas must be a whole number, got 1.5")
    # defaults: peak_to_mean 2, min 1 replica, no fallback; no prefill term unless a prefill rate is given
    assert cost.replicas_needed(86_400 / 2 * 3, 1.0) == 3
    assert cost.replica_busy_s_per_request(10, 100, prefill_tokens_per_s=1000) == pytest.approx(0.1)
    assert cost.replica_busy_s_per_request(10, 100, 1000, prefill_tokens_per_s=1000) == pytest.approx(1.1)
