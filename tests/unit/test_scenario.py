"""calculators.scenario: defaults, catalog look-ups, every bad value named, TOML and URL round trips."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators import gpuprices
from calculators.scenario import (
    DEFAULT_SCENARIO,
    LIMITS,
    PRICE_FIELDS,
    QUERY_KEYS,
    ScenarioError,
    apply_api_model,
    apply_gpu,
    apply_gpu_tier,
    dumps_toml,
    from_query_params,
    load_toml,
    loads_toml,
    replace_field,
    scenario_from_dict,
    scenario_to_dict,
    to_query_params,
)
from tests.strategies import FUZZ, bad_numbers, scenarios

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "scenarios").glob("*.toml"))
MINIMAL = {
    "traffic": {"requests_per_day": 1000, "input_tokens": 500, "output_tokens": 200},
    "api": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 4.0},
    "self_host": {"gpu": "l40s", "output_tokens_per_s": 900},
}


def test_three_examples_ship_and_load():
    assert {p.name for p in EXAMPLES} >= {"support-bot-8b.toml", "rag-assistant-70b.toml", "fine-tuned-model.toml"}
    for path in EXAMPLES:
        s = load_toml(path)
        assert s.name and s.self_host.throughput_source != "user input"
    assert load_toml(ROOT / "scenarios/fine-tuned-model.toml").context.fine_tuned_model is True


def test_default_scenario_is_the_support_bot_file():
    assert load_toml(ROOT / "scenarios/support-bot-8b.toml") == DEFAULT_SCENARIO


def test_defaults_applied():
    s = scenario_from_dict(MINIMAL)
    assert s.traffic.cached_input_fraction == 0 and s.traffic.peak_to_mean == 2.0
    assert s.api.cached_input_usd_per_mtok == 1.0 and s.api.model is None  # cached defaults to input
    # the default GPU price: the median of the L40S on-demand rows (1.09, 1.55, 2.25), not a community tier
    assert s.self_host.gpu_usd_per_hour == gpuprices.default_usd_per_hour("l40s") == 1.55
    assert (s.self_host.gpus_per_replica, s.self_host.min_replicas, s.self_host.prefill_tokens_per_s) == (1, 1, None)
    assert (s.self_host.ops_usd_per_month, s.self_host.fallback_fraction) == (0, 0)
    assert s.context.has_gpu_expertise and not s.context.fine_tuned_model and not s.context.needs_frontier_quality


def test_model_prices_and_explicit_overrides():
    d = copy.deepcopy(MINIMAL)
    d["api"] = {"model": "claude-sonnet-4.6", "output_usd_per_mtok": 12.0}  # an old catalog id: an alias
    s = scenario_from_dict(d)
    assert (s.api.input_usd_per_mtok, s.api.cached_input_usd_per_mtok, s.api.output_usd_per_mtok) == (3.0, 0.3, 12.0)
    assert s.api.model == "claude-sonnet-4.6" and s.api.cache_write_usd_per_mtok == 3.75
    assert s.api.typed == ("output_usd_per_mtok",)
    # written back, only the typed price is stored: the others are looked up again
    assert scenario_to_dict(s)["api"] == {"model": "claude-sonnet-4.6", "provider": "", "batch": False,
                                          "output_usd_per_mtok": 12.0, "cache_write_fraction": 0.0}


@pytest.mark.parametrize(
    ("model", "batch", "expected"),
    [
        ("gpt-6-sol", False, (2.0, 0.2, 2.5, 10.0)),  # a genai-prices id (genai-prices 0.2.3 data)
        ("gpt-6-sol", True, (1.0, 0.1, 1.25, 5.0)),  # its batch variant
        ("claude-sonnet-5-5", False, (2.0, 0.1, 2.5, 10.0)),
        ("claude-sonnet-5-5", True, (1.0, 0.05, 1.25, 5.0)),
        ("gpt-5-mini", False, (0.25, 0.025, None, 2.0)),  # retiring, still priced
    ],
)
def test_genai_prices_models_and_batch(model, batch, expected):
    d = copy.deepcopy(MINIMAL)
    d["api"] = {"model": model, "batch": batch}
    a = scenario_from_dict(d).api
    assert (a.input_usd_per_mtok, a.cached_input_usd_per_mtok, a.cache_write_usd_per_mtok,
            a.output_usd_per_mtok) == expected
    assert a.typed == () and a.batch is batch


def test_model_missing_from_the_price_data_names_the_reason():
    d = copy.deepcopy(MINIMAL)
    d["api"] = {"model": "deepinfra-llama-3.3-70b"}
    with pytest.raises(ScenarioError, match="api.model: 'deepinfra-llama-3.3-70b' is not in the price data .*"
                                            "DeepInfra is not in genai-prices 0.2.3: type its prices"):
        scenario_from_dict(d)
    d["api"] = {"model": "deepinfra-llama-3.3-70b", "input_usd_per_mtok": 0.10, "cached_input_usd_per_mtok": 0.10,
                "output_usd_per_mtok": 0.32}  # typed: the model is a label
    assert scenario_from_dict(d).api.typed == PRICE_FIELDS


def test_cache_write_share_and_cached_share_may_not_exceed_one():
    d = copy.deepcopy(MINIMAL)
    d["traffic"]["cached_input_fraction"] = 0.7
    d["api"]["cache_write_fraction"] = 0.4
    with pytest.raises(ScenarioError, match=r"api.cache_write_fraction \+ traffic.cached_input_fraction must be <= 1"):
        scenario_from_dict(d)


def test_zero_requests_per_day_is_allowed():
    d = copy.deepcopy(MINIMAL)
    d["traffic"]["requests_per_day"] = 0
    assert scenario_from_dict(d).traffic.requests_per_day == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(trafic={}), "unknown key 'trafic'; allowed: name, description, traffic"),
        (lambda d: d["traffic"].update(request_per_day=1), "unknown key 'traffic.request_per_day'; allowed:"),
        (lambda d: d.pop("self_host"), r"section \[self_host\] is required"),
        (lambda d: d["traffic"].pop("output_tokens"), "traffic.output_tokens is required"),
        (lambda d: d["api"].pop("output_usd_per_mtok"), "api.output_usd_per_mtok is required when api.model"),
        (lambda d: d.update(traffic=[1, 2]), "traffic must be a table"),
        (lambda d: d["traffic"].update(requests_per_day=-5), "traffic.requests_per_day must be >= 0, got -5"),
        (lambda d: d["traffic"].update(requests_per_day="20000"), "traffic.requests_per_day must be a number"),
        (lambda d: d["traffic"].update(requests_per_day=True), "traffic.requests_per_day must be a number"),
        (lambda d: d["traffic"].update(peak_to_mean=0.5), "traffic.peak_to_mean must be >= 1"),
        (lambda d: d["traffic"].update(input_tokens=math.nan), "traffic.input_tokens must be a finite number"),
        (lambda d: d["traffic"].update(requests_per_day=1e12), "traffic.requests_per_day must be <= 1e"),
        (lambda d: d["self_host"].update(gpu="h100"), "self_host.gpu: unknown GPU 'h100'; known: h100-sxm"),
        (lambda d: d["api"].update(model="gpt-6"), "api.model: model 'gpt-6' is not in the price data"),
        (lambda d: d["self_host"].update(gpus_per_replica=1.5), "self_host.gpus_per_replica must be a whole"),
        (lambda d: d["self_host"].update(min_replicas=0), "self_host.min_replicas must be >= 1"),
        (lambda d: d["self_host"].update(output_tokens_per_s=0), "self_host.output_tokens_per_s must be >= 0.001"),
        (lambda d: d["self_host"].update(fallback_fraction=1.5), "self_host.fallback_fraction must be <= 1"),
        (lambda d: d.update(context={"fine_tuned_model": "yes"}), "context.fine_tuned_model must be true or false"),
        (lambda d: d.update(name=3), "name must be text"),
    ],
)
def test_bad_dicts_name_the_field(mutate, message):
    d = copy.deepcopy(MINIMAL)
    mutate(d)
    with pytest.raises(ScenarioError, match=message):
        scenario_from_dict(d)


NUMERIC_FIELDS = sorted(LIMITS)


@pytest.mark.parametrize("dotted", NUMERIC_FIELDS)
@FUZZ
@given(data=st.data())
def test_fuzz_every_numeric_field_rejects_bad_values_by_name(dotted, data):
    low, high = LIMITS[dotted]
    bad = bad_numbers(low, high)
    optional = ("self_host.prefill_tokens_per_s", "api.cache_write_usd_per_mtok", "self_host.slo_good_fraction",
                "self_host.throughput_input_tokens", "self_host.throughput_output_tokens",
                "self_host.own_server_usd", "self_host.own_gpus_per_server", "self_host.own_power_w",
                "self_host.own_overhead_w")
    if dotted in optional or dotted.endswith(("_p50", "_p90", "_p99")):  # None: not given
        bad = bad.filter(lambda v: v is not None)
    value = data.draw(bad)
    with pytest.raises(ScenarioError, match=dotted.replace(".", r"\.")):
        replace_field(DEFAULT_SCENARIO, dotted, value)
    section, _, key = dotted.rpartition(".")
    d = scenario_to_dict(DEFAULT_SCENARIO)
    (d[section] if section else d)[key] = value
    with pytest.raises(ScenarioError, match=dotted.replace(".", r"\.")):
        scenario_from_dict(d)


def test_malformed_toml_says_the_line():
    with pytest.raises(ScenarioError, match=r"malformed TOML: .*line 3"):
        loads_toml("[traffic]\nrequests_per_day = 1\ninput_tokens = = 3\n")


def test_unreadable_file_is_a_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"name = \"caf\xe9\"\n")
    with pytest.raises(ScenarioError, match=r"latin1\.toml' is not UTF-8 text \(byte 0xe9 at offset 11\)"):
        load_toml(bad)


@FUZZ
@given(scenarios())
def test_toml_round_trip(s):
    assert loads_toml(dumps_toml(s)) == s
    assert scenario_from_dict(scenario_to_dict(s)) == s


@FUZZ
@given(scenarios(), scenarios())
def test_query_param_round_trip_on_any_base(s, base):
    params = to_query_params(s)
    assert set(params) == set(QUERY_KEYS) and all(isinstance(v, str) for v in params.values())
    got, problems = from_query_params(params, base=base)
    assert problems == [] and got == s


def test_query_params_short_keys():
    params = to_query_params(DEFAULT_SCENARIO)
    for key in ("rpd", "in", "out", "cached", "peak", "api", "api_in", "api_cached", "api_out", "gpu", "gpr",
                "gpu_usd", "otps", "ptps", "minrep", "ops", "fb", "frontier", "ft", "expert", "name"):
        assert key in params
    assert params["ptps"] == "" and params["frontier"] == "0" and params["expert"] == "1"


def test_partial_query_params_override_base_and_bad_ones_are_reported():
    s, problems = from_query_params({"rpd": "-3", "gpr": "2", "ft": "maybe", "ptps": "5000", "other_page": "x"})
    assert s.traffic.requests_per_day == DEFAULT_SCENARIO.traffic.requests_per_day
    assert s.self_host.gpus_per_replica == 2 and s.self_host.prefill_tokens_per_s == 5000
    assert s.context.fine_tuned_model is False
    assert len(problems) == 2
    assert "traffic.requests_per_day must be >= 0" in problems[0] and "'rpd'" in problems[0]
    assert "context.fine_tuned_model" in problems[1]


def test_query_params_gpu_or_model_alone_take_catalog_prices():
    s, problems = from_query_params({"gpu": "l40s", "api": "claude-haiku-4.5"})
    assert problems == []
    assert s.self_host.gpu_usd_per_hour == 1.55 and s.api.output_usd_per_mtok == 5.0 and s.api.typed == ()
    s2, problems2 = from_query_params({"gpu": "nope", "api": "nope"})
    assert s2 == DEFAULT_SCENARIO and len(problems2) == 2 and "known:" in problems2[0]
    assert "'api'" in problems2[1] and "not in the price data" in problems2[1]


def test_query_params_typed_and_database_prices_round_trip():
    s = replace_field(apply_api_model(DEFAULT_SCENARIO, "gpt-6-sol", batch=True), "api.output_usd_per_mtok", 4.0)
    params = to_query_params(s)
    assert (params["api"], params["batch"], params["api_in"], params["api_out"]) == ("gpt-6-sol", "1", "", "4")
    got, problems = from_query_params(params, base=DEFAULT_SCENARIO)
    assert problems == [] and got == s and got.api.input_usd_per_mtok == 1.0


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(QUERY_KEYS)) | st.text(max_size=8), st.text(max_size=30)))
def test_from_query_params_never_raises(params):
    s, problems = from_query_params(params)
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    assert s.traffic.requests_per_day >= 0


def test_replace_field_validates_and_rejects_unknown_fields():
    s = replace_field(DEFAULT_SCENARIO, "self_host.output_tokens_per_s", 3000.0)
    assert s.self_host.output_tokens_per_s == 3000.0 and s.self_host.gpu == DEFAULT_SCENARIO.self_host.gpu
    with pytest.raises(ScenarioError, match="unknown field 'traffic.rpd'"):
        replace_field(DEFAULT_SCENARIO, "traffic.rpd", 1)
    assert replace_field(DEFAULT_SCENARIO, "name", "x").name == "x"


def test_presets():
    s = apply_gpu(apply_api_model(DEFAULT_SCENARIO, "gpt-6-sol"), "b200")
    assert s.api.model == "gpt-6-sol" and s.api.output_usd_per_mtok == 10.0 and s.api.typed == ()
    # on-demand rows 6.00, 6.79, 6.99, 7.15, 8.60: the median, not the RunPod Community 5.98
    assert s.self_host.gpu_usd_per_hour == gpuprices.default_usd_per_hour("b200") == 6.99
    with pytest.raises(ScenarioError, match="api.model: model 'x' is not in the price data"):
        apply_api_model(DEFAULT_SCENARIO, "x")



def test_traffic_shape_from_a_trace_round_trips_through_toml_and_url():
    traffic = dataclasses.replace(
        DEFAULT_SCENARIO.traffic,
        input_tokens_p50=900.0,
        input_tokens_p90=4000.0,
        input_tokens_p99=12000.0,
        output_tokens_p99=1500.0,
        trace_name="azure-conv-2024.csv",
    )
    s = dataclasses.replace(DEFAULT_SCENARIO, traffic=traffic)
    assert loads_toml(dumps_toml(s)) == s
    back, problems = from_query_params(to_query_params(s))
    assert problems == [] and back == s
    assert back.traffic.output_tokens_p50 is None and back.traffic.trace_name == "azure-conv-2024.csv"
    with pytest.raises(ScenarioError, match=r"traffic\.input_tokens_p99"):
        replace_field(s, "traffic.input_tokens_p99", 2e7)


def test_gpu_price_tier_defaults_to_on_demand_and_a_price_without_a_tier_is_typed():
    s = scenario_from_dict(MINIMAL)
    assert s.self_host.gpu_price_tier == "on-demand"
    assert s.self_host.gpu_usd_per_hour == gpuprices.tier_usd_per_hour("l40s", "on-demand")
    typed = scenario_from_dict(MINIMAL | {"self_host": MINIMAL["self_host"] | {"gpu_usd_per_hour": 0.79}})
    assert (typed.self_host.gpu_price_tier, typed.self_host.gpu_usd_per_hour) == ("typed", 0.79)
    spot = scenario_from_dict(MINIMAL | {"self_host": MINIMAL["self_host"] | {"gpu": "h100-sxm",
                                                                             "gpu_price_tier": "spot"}})
    assert spot.self_host.gpu_usd_per_hour == gpuprices.tier_usd_per_hour("h100-sxm", "spot")
    # every tier of the TOML round-trips exactly, price and label
    for tier in gpuprices.tiers("h100-sxm"):
        s = apply_gpu_tier(DEFAULT_SCENARIO, tier)
        assert loads_toml(dumps_toml(s)) == s and from_query_params(to_query_params(s), base=spot)[0] == s
        assert f'gpu_price_tier = "{tier}"' in dumps_toml(s)


@pytest.mark.parametrize(("table", "message"), [
    ({"gpu_price_tier": "cheap"}, "self_host.gpu_price_tier must be one of spot, community, on-demand"),
    ({"gpu": "h200", "gpu_price_tier": "spot"}, "self_host.gpu_price_tier: GPU 'h200' has no spot price"),
    ({"gpu_price_tier": "typed"}, 'self_host.gpu_price_tier "typed" needs self_host.gpu_usd_per_hour'),
])
def test_bad_gpu_price_tiers_name_the_field(table, message):
    with pytest.raises(ScenarioError, match=message):
        scenario_from_dict(MINIMAL | {"self_host": MINIMAL["self_host"] | table})


def test_gpu_price_tier_in_urls_and_edits():
    s, problems = from_query_params({"gpu_tier": "community"})  # a tier alone takes its price
    assert problems == [] and s.self_host.gpu_price_tier == "community"
    assert s.self_host.gpu_usd_per_hour == gpuprices.tier_usd_per_hour("h100-sxm", "community")
    s2, problems2 = from_query_params({"gpu_tier": "cheap"})
    assert s2 == DEFAULT_SCENARIO and "'gpu_tier'" in problems2[0] and "(kept on-demand)" in problems2[0]
    typed = replace_field(s, "self_host.gpu_usd_per_hour", 2.0)  # a typed price is labelled typed
    assert typed.self_host.gpu_price_tier == "typed"
    back = apply_gpu(typed, "l40s")  # another GPU never keeps the old $/hour: its on-demand price
    assert back.self_host.gpu_price_tier == "on-demand"
    assert back.self_host.gpu_usd_per_hour == gpuprices.default_usd_per_hour("l40s")
