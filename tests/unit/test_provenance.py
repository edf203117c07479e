"""``calculators.provenance``: what the verdict rests on, and when the throughput has gone stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calculators import apiprices, gpuprices, provenance
from calculators.provenance import ThroughputContext, reestimate, rests_on, stale_reasons, with_context
from calculators.scenario import (
    DEFAULT_SCENARIO,
    apply_api_model,
    apply_gpu,
    dumps_toml,
    from_query_params,
    loads_toml,
    replace_field,
    to_query_params,
)

ROOT = Path(__file__).resolve().parents[2]
H100_RUNS = ROOT / "benchmarks/results/h100-vllm0.26-2026-11-28"


def _rows(s, **kw):
    return {r.field: r for r in rests_on(s, **kw)}


def _shaped(i=512.0, o=256.0):
    """The default scenario with its throughput recorded at ``i`` in / ``o`` out on an H100, Llama 8B bf16."""
    return with_context(DEFAULT_SCENARIO, ThroughputContext("h100-sxm", "meta-llama/Llama-3.1-8B-Instruct",
                                                            "bf16", i, o))


def test_default_scenario_rests_on_catalog_prices_and_a_measured_throughput():
    rows = _rows(DEFAULT_SCENARIO)
    assert not stale_reasons(DEFAULT_SCENARIO)
    api = rows["API model and prices"]
    assert "gpt-6-luna" in api.value and api.kind == "catalog"
    assert api.source == apiprices.data_info().label and api.as_of == apiprices.data_info().date
    price = rows["GPU price"]
    assert price.kind == "catalog" and gpuprices.DEFAULT_STATISTIC in price.source and price.as_of
    t = rows["Self-host throughput"]
    assert t.kind == "measured" and t.stale is None
    assert "H100 SXM" in t.source and "meta-llama/Llama-3.1-8B-Instruct" in t.source and "fp8" in t.source
    assert rows["Traffic"].kind == "assumption" and rows["Ops"].kind == "assumption"
    assert {r.kind for r in rests_on(DEFAULT_SCENARIO)} <= set(provenance.KINDS)


def test_switching_the_gpu_makes_a_measured_throughput_stale_naming_both_gpus():
    s = apply_gpu(DEFAULT_SCENARIO, "l40s")
    (reason,) = stale_reasons(s)
    assert "H100 SXM" in reason and "L40S" in reason
    assert _rows(s)["Self-host throughput"].stale == reason


def test_a_typed_throughput_is_the_users_assumption_and_never_stale():
    s = replace_field(apply_gpu(DEFAULT_SCENARIO, "l40s"), "self_host.throughput_source", provenance.TYPED_SOURCE)
    assert stale_reasons(s) == []
    row = _rows(s)["Self-host throughput"]
    assert (row.kind, row.source) == ("assumption", "typed by you")  # the old point's context is not shown


@pytest.mark.parametrize(("field", "value", "stale"), [
    ("traffic.input_tokens", 640.0, False),   # +25 %: at the tolerance
    ("traffic.input_tokens", 641.0, True),
    ("traffic.input_tokens", 384.0, False),   # -25 %
    ("traffic.input_tokens", 383.0, True),
    ("traffic.output_tokens", 321.0, True),
    ("traffic.output_tokens", 300.0, False),  # +17 %
])
def test_request_shape_tolerance_is_25_percent_of_the_recorded_mean(field, value, stale):
    s = _shaped()
    s = replace_field(replace_field(s, "traffic.input_tokens", 512.0), "traffic.output_tokens", 256.0)
    assert stale_reasons(s) == []
    s = replace_field(s, field, value)
    reasons = stale_reasons(s)
    assert bool(reasons) is stale, reasons
    if stale:
        assert reasons[0].startswith("request shape: measured at 512 in / 256 out tokens")


def test_model_and_dtype_are_checked_when_the_caller_knows_them():
    s = _shaped(1500.0, 300.0)
    assert stale_reasons(s) == []
    assert stale_reasons(s, model="meta-llama/Llama-3.1-8B-Instruct", dtype="BF16") == []
    reasons = stale_reasons(s, model="Qwen/Qwen2.5-7B-Instruct", dtype="fp8")
    assert [r.split(":")[0] for r in reasons] == ["model", "dtype"]
    assert "Qwen/Qwen2.5-7B-Instruct" in reasons[0] and "bf16" in reasons[1]
    # nothing recorded: nothing to compare
    bare = with_context(DEFAULT_SCENARIO, ThroughputContext())
    assert stale_reasons(apply_gpu(bare, "l40s"), model="x", dtype="fp8") == []


def test_reestimate_labels_an_estimate_for_the_new_gpu_and_records_its_context():
    s = apply_gpu(DEFAULT_SCENARIO, "l40s")
    new = reestimate(s)
    h = new.self_host
    assert provenance.throughput_kind(h.throughput_source) == "estimate" and "l40s" in h.throughput_source
    assert (h.throughput_gpu, h.throughput_model, h.throughput_dtype) == (
        "l40s", "meta-llama/Llama-3.1-8B-Instruct", "fp8")
    assert (h.throughput_input_tokens, h.throughput_output_tokens) == (1500.0, 300.0)
    assert h.output_tokens_per_s != DEFAULT_SCENARIO.self_host.output_tokens_per_s
    assert stale_reasons(new) == [] and h.prefill_tokens_per_s is None
    assert "calibrat" in _rows(new)["Self-host throughput"].source


def test_reestimate_agrees_with_a_real_h100_run_at_its_shape():
    """The re-estimate is the calibrated closed loop: on the H100 8B bf16 run at 512/256, c=32, vLLM 0.26
    measured 3,455 output tok/s (benchmarks/results/h100-vllm0.26-2026-11-28)."""
    run = json.loads((H100_RUNS / "probe-llama-3.1-8b-bf16.json").read_text())
    measured = next(p["output_tokens_per_s"] for p in run["points"] if p["concurrency"] == 32)
    s = replace_field(replace_field(_shaped(), "traffic.input_tokens", 512.0), "traffic.output_tokens", 256.0)
    est = reestimate(s, concurrency=32).self_host.output_tokens_per_s
    assert abs(est - measured) / measured < 0.10, (est, measured)


def test_reestimate_says_why_it_cannot():
    with pytest.raises(ValueError, match="model the throughput was for is not recorded"):
        reestimate(with_context(DEFAULT_SCENARIO, ThroughputContext(gpu="h100-sxm")))
    with pytest.raises(ValueError, match="unknown model"):
        reestimate(with_context(DEFAULT_SCENARIO, ThroughputContext("h100-sxm", "nobody/none", "bf16")))
    with pytest.raises(ValueError, match="weight dtype"):
        reestimate(DEFAULT_SCENARIO, dtype="fp4")


def test_api_row_names_the_model_priced_or_typed_prices():
    rows = _rows(apply_api_model(DEFAULT_SCENARIO, "claude-sonnet-5-5"))
    assert "claude-sonnet-5-5" in rows["API model and prices"].value
    assert "gpt-6-luna" not in rows["API model and prices"].value
    typed = replace_field(DEFAULT_SCENARIO, "api.output_usd_per_mtok", 0.7)
    assert "typed by you: output" in _rows(typed)["API model and prices"].source
    custom = replace_field(DEFAULT_SCENARIO, "api.model", None)
    row = _rows(custom)["API model and prices"]
    assert (row.kind, row.source) == ("assumption", "typed by you") and row.value.startswith("custom")


def test_gpu_price_row_names_the_catalog_row_or_typed():
    assert _rows(replace_field(DEFAULT_SCENARIO, "self_host.gpu_usd_per_hour", 1.234))["GPU price"].kind == "assumption"
    r = next(p for p in gpuprices.prices("h100-sxm") if p.tier != gpuprices.DEFAULT_TIER)
    row = _rows(replace_field(DEFAULT_SCENARIO, "self_host.gpu_usd_per_hour", r.usd_per_gpu_hour))["GPU price"]
    assert row.kind.startswith("catalog") and row.as_of
    assert any(p.provider in row.source for p in gpuprices.prices("h100-sxm")
               if p.usd_per_gpu_hour == r.usd_per_gpu_hour)


def test_traffic_from_a_trace_is_measured():
    row = _rows(replace_field(DEFAULT_SCENARIO, "traffic.trace_name", "azure-conv-2024"))["Traffic"]
    assert (row.kind, row.source) == ("measured", "trace azure-conv-2024")


def test_context_fields_round_trip_through_toml_and_url():
    s = _shaped(512.0, 256.5)
    assert loads_toml(dumps_toml(s)) == s
    qp = to_query_params(s)
    assert (qp["tgpu"], qp["tmodel"], qp["tdtype"], qp["tin"], qp["tout"]) == (
        "h100-sxm", "meta-llama/Llama-3.1-8B-Instruct", "bf16", "512", "256.5")
    back, problems = from_query_params(qp)
    assert back == s and problems == []
    bad, problems = from_query_params({**qp, "tin": "-3"})
    assert problems and "self_host.throughput_input_tokens" in problems[0]
    assert bad == with_context(s, ThroughputContext("h100-sxm", "meta-llama/Llama-3.1-8B-Instruct", "bf16", None,
                                                    256.5))  # the bad value keeps the base's (none)


def test_run_context_from_a_real_reference_run():
    run = json.loads((H100_RUNS / "probe-llama-3.3-70b-fp8.json").read_text())
    ctx = provenance.run_context(run, "h100-sxm")
    assert ctx == ThroughputContext("h100-sxm", "meta-llama/Llama-3.3-70B-Instruct", "fp8", 512.0, 256.0)
    bf16 = provenance.run_context(json.loads((H100_RUNS / "probe-llama-3.1-8b-bf16.json").read_text()), None)
    assert (bf16.gpu, bf16.dtype) == ("", "")  # no --dtype/--quantization given: not recorded, not guessed


@pytest.mark.parametrize(("x", "text"), [(0.0, "0%"), (1e-9, "<1%"), (0.0049, "<1%"), (0.0099, "<1%"), (0.01, "1%"),
                                         (0.5, "50%"), (0.995, ">99%"), (1.0, "100%")])
def test_shares_never_read_zero_when_not_zero(x, text):
    assert provenance.pct_text(x) == text
