"""calculators.ownership and the "owned" price tier: hand-computed breakdowns, the derived $/GPU-hour in the
scenario and report, exact TOML/URL round trips, energy per token from the bundled probe runs, and the CLI's
``ownership`` block."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators import cost, ownership
from calculators.scenario import (
    DEFAULT_SCENARIO,
    GPU_PRICE_TIERS,
    OWN_FIELDS,
    ScenarioError,
    apply_gpu,
    apply_gpu_tier,
    buy_input,
    dumps_toml,
    from_query_params,
    loads_toml,
    replace_field,
    to_query_params,
)
from probes.results import reference

ROOT = Path(__file__).resolve().parents[2]


def _owned(**fields):
    s = apply_gpu_tier(DEFAULT_SCENARIO, "owned")
    for k, v in fields.items():
        s = replace_field(s, f"self_host.{k}", v)
    return s


def test_hand_computed_breakdown():
    # 250k server, 8 GPUs, 48 months, 10% residual: capex 250000*0.9/48 = 4687.5
    # energy (600*8 + 1500) W = 6300 W * 730 h * 1.2 / 1000 = 5518.8 kWh * $0.15 = 827.82
    # total 4687.5 + 827.82 + 1500 + 800 = 7815.32 -> / 8 / 730 = 1.33824...
    b = ownership.BuyInput(250_000, 8, 48, 0.1, 1500, 600, 1500, 0.15, 1.2, 800, "typed")
    c = ownership.owned_cost(b)
    assert c.capex_usd_per_month == pytest.approx(4687.5)
    assert c.energy_kwh_per_month == pytest.approx(5518.8)
    assert c.energy_usd_per_month == pytest.approx(827.82)
    assert c.total_usd_per_month == pytest.approx(7815.32)
    assert c.usd_per_gpu_hour == pytest.approx(7815.32 / 8 / 730)


@given(server=st.floats(0, 1e7), months=st.floats(1, 600), k=st.floats(0.01, 100))
def test_capex_scales_with_price_and_inversely_with_months(server, months, k):
    def capex(usd, m):
        return ownership.owned_cost(ownership.BuyInput(usd, 8, m, 0.2, 0, 0, 0, 0, 1.0)).capex_usd_per_month
    assert capex(server * k, months) == pytest.approx(capex(server, months) * k, rel=1e-9, abs=1e-9)
    assert capex(server, min(months * 2, 600)) <= capex(server, months)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("pue", 0.9, "pue must be >= 1"), ("residual_fraction", 1.5, "residual_fraction must be <= 1"),
    ("gpus_per_server", 0, "gpus_per_server must be"), ("power_kind", "guess", "power_kind must be one of"),
])
def test_bad_buy_inputs_name_the_field(field, value, message):
    kw = dict(server_usd=1, gpus_per_server=8, amortization_months=36, residual_fraction=0.2,
              hosting_usd_per_month=0, power_w_per_gpu=500, server_overhead_w=0, usd_per_kwh=0.1, pue=1.5)
    kw[field] = value
    with pytest.raises(ValueError, match=message):
        ownership.BuyInput(**kw)


def test_owned_tier_derives_the_price_from_catalog_defaults():
    s = apply_gpu_tier(DEFAULT_SCENARIO, "owned")
    h = s.self_host
    assert "owned" in GPU_PRICE_TIERS and h.gpu_price_tier == "owned"
    # H100 server 317,000 over 36 months, 20% residual; 700 W TDP x 0.8 = 560 W x 8 + 2000 W, PUE 1.58, $0.0806
    capex = 317_000 * 0.8 / 36
    energy = (560 * 8 + 2000) * 730 * 1.58 / 1000 * 0.0806
    expected = (capex + energy + 2000 + 1000) / 8 / 730
    assert h.gpu_usd_per_hour == pytest.approx(expected)
    r = cost.evaluate(s)
    assert r.ownership is not None and r.ownership.usd_per_gpu_hour == h.gpu_usd_per_hour
    assert r.self_host.gpu_usd_per_month == pytest.approx(expected * 730)
    assert any(t.startswith("Owned servers: $317,000 per 8-GPU server") for t in r.reasons)
    assert cost.gpu_price_words(s).startswith("owned: derived")


def test_measured_watts_replace_tdp_and_typing_a_price_leaves_owning():
    s = _owned(own_power_w=420.0, own_power_kind="measured: run 1 at concurrency 32")
    b = buy_input(s.self_host)
    assert (b.power_w_per_gpu, b.power_kind) == (420.0, "measured")
    assert s.self_host.gpu_usd_per_hour < apply_gpu_tier(DEFAULT_SCENARIO, "owned").self_host.gpu_usd_per_hour
    typed = replace_field(s, "self_host.gpu_usd_per_hour", 2.0)
    assert typed.self_host.gpu_price_tier == "typed" and typed.self_host.gpu_usd_per_hour == 2.0
    assert cost.evaluate(typed).ownership is None


def test_owned_gpu_without_a_catalog_server_needs_a_price_and_says_so():
    owned_b200 = replace_field(DEFAULT_SCENARIO, "self_host.gpu", "b200")
    with pytest.raises(ScenarioError, match=r"self_host\.own_server_usd is required for an owned b200"):
        apply_gpu_tier(owned_b200, "owned")
    s = apply_gpu_tier(replace_field(owned_b200, "self_host.own_server_usd", 450_000.0), "owned")
    assert s.self_host.gpu_price_tier == "owned"
    assert buy_input(s.self_host).power_w_per_gpu == pytest.approx(1000 * 0.8)  # B200 TDP 1000 W x 0.8


def test_a_new_gpu_takes_its_own_server_and_power_and_keeps_the_money_inputs():
    s = _owned(own_server_usd=300_000.0, own_power_w=420.0, own_power_kind="measured: run 1", own_pue=1.2)
    h200 = apply_gpu(s, "h200").self_host
    assert (h200.gpu_price_tier, h200.own_server_usd, h200.own_power_w, h200.own_power_kind) == ("owned", None, None, "")
    assert h200.own_pue == 1.2 and buy_input(h200).server_usd == 340_000.0
    b200 = apply_gpu(s, "b200").self_host  # no catalog server: the on-demand rental tier, as for rental tiers
    assert b200.gpu_price_tier == "on-demand" and cost.evaluate(apply_gpu(s, "b200")).ownership is None


def test_a_derived_price_over_the_limit_is_refused_naming_the_fields():
    with pytest.raises(ScenarioError, match=r"over the 1000 limit: check self_host\.own_server_usd"):
        _owned(own_server_usd=1e9, own_months=1.0)


def test_toml_and_url_round_trips_are_exact():
    s = _owned(own_server_usd=123_456.5, own_gpus_per_server=4.0, own_months=24.0, own_residual=0.15,
               own_hosting_usd=900.0, own_power_w=455.25, own_power_kind="typed", own_load_factor=0.6,
               own_overhead_w=800.0, own_usd_per_kwh=0.21, own_pue=1.3, own_people_usd=0.0)
    assert loads_toml(dumps_toml(s)) == s
    got, problems = from_query_params(to_query_params(s))
    assert problems == [] and got == s
    assert {"own_usd", "own_months", "own_w", "own_pue", "gpu_tier"} <= set(to_query_params(s))
    assert len(OWN_FIELDS) == 12


def test_a_toml_file_may_just_say_owned():
    s = loads_toml('[traffic]\nrequests_per_day = 1000\ninput_tokens = 100\noutput_tokens = 10\n'
                   '[api]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 2\n'
                   '[self_host]\ngpu = "h200"\noutput_tokens_per_s = 1000\ngpu_price_tier = "owned"\nown_pue = 1.2\n')
    b = buy_input(s.self_host)
    assert (b.server_usd, b.pue) == (340_000.0, 1.2)
    assert s.self_host.gpu_usd_per_hour == ownership.owned_cost(b).usd_per_gpu_hour


def test_energy_per_output_token_from_the_bundled_h200_run():
    run = next(reference.load_run(r.path) for r in reference.discover() if r.key.startswith("h200-vllm0.26"))
    points = ownership.power_points(run)
    assert [p.concurrency for p in points] == [1, 8, 32, 128]
    p32 = run["points"][2]
    # NVML energy over the point / its output tokens, which matches mean W / output tok/s
    j = ownership.joules_per_output_token(p32)
    assert j == pytest.approx(p32["power"]["energy_j"] / p32["total_output_tokens"])
    assert j == pytest.approx(p32["power"]["mean_w"] / p32["output_tokens_per_s"], rel=0.02)
    assert points[2].w_per_gpu == pytest.approx(p32["power"]["mean_w"])
    # more load, fewer joules per token
    assert [q.j_per_output_token for q in points] == sorted((q.j_per_output_token for q in points), reverse=True)


def test_cli_evaluate_prints_the_ownership_block(tmp_path):
    s = _owned(own_power_w=633.68, own_power_kind="typed")
    path = tmp_path / "owned.toml"
    path.write_text(dumps_toml(s), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "calculators", "evaluate", str(path)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    block = json.loads(out)["ownership"]
    c = ownership.owned_cost(buy_input(s.self_host))
    assert block["usd_per_gpu_hour"] == pytest.approx(c.usd_per_gpu_hour)
    assert block["per_server_usd_per_month"]["total_usd"] == pytest.approx(c.total_usd_per_month)
    assert block["inputs"]["power_kind"] == "typed" and block["servers"] == pytest.approx(1 / 8)
    assert block["gpu_j_per_output_token_at_full_load"] == pytest.approx(633.68 / 3400)
    plain = subprocess.run([sys.executable, "-m", "calculators", "evaluate", "-"], cwd=ROOT, check=True,
                           input=dumps_toml(DEFAULT_SCENARIO), capture_output=True, text=True, timeout=120).stdout
    assert "ownership" not in json.loads(plain)


def test_what_the_verdict_rests_on_says_the_price_is_derived_from_owning():
    from calculators import provenance

    rows = provenance.rests_on(_owned(own_power_w=500.0, own_power_kind="typed"))
    row = next(r for r in rows if r.field == "GPU price")
    assert row.kind == "assumption" and "derived from owning servers" in row.source and "typed power" in row.source
