"""AppTest of the Break-even page's "owned (buy)" tier: the buy panel, its breakdown (the same numbers as
``python -m calculators evaluate``), the derived $/GPU-hour, and a verdict that changes with owning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from calculators import cost, ownership
from calculators.scenario import DEFAULT_SCENARIO, apply_gpu_tier, buy_input, dumps_toml, replace_field
from ui.widgets import usd

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60
# 800,000 requests/day of the support bot: 2 replicas; rented on-demand the API is cheaper, owned it is not
BUSY = replace_field(DEFAULT_SCENARIO, "traffic.requests_per_day", 800_000.0)


@pytest.fixture(autouse=True)
def _store(tmp_path, monkeypatch):
    """A results store of this test's own (a real SQLite file), so the page never touches the user's."""
    monkeypatch.setenv("APP__PROBE__DB", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    from ui import ownership_view

    ownership_view._stored_options.clear()
    return tmp_path / "runs.sqlite"


def _page(rpd: str = "800000") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S)
    at.query_params["rpd"] = rpd
    at.switch_page("app_pages/1_Break_even.py").run()
    assert not at.exception, at.exception
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _breakdown(at: AppTest):
    frames = [d.value for d in at.dataframe if "Cost" in d.value.columns]
    assert len(frames) == 1, frames
    return frames[0].set_index("Cost")


def test_choosing_owned_shows_the_breakdown_and_flips_the_verdict():
    at = _page()
    rented = cost.evaluate(BUSY)
    assert rented.verdict == "api" and _metrics(at)["Savings, $/month"] == usd(rented.savings_usd_per_month)
    assert not [d for d in at.dataframe if "Cost" in d.value.columns]  # no buy panel while renting

    at.selectbox(key="be_gpu_tier").set_value("owned").run()
    assert not at.exception and not at.error
    owned = cost.evaluate(apply_gpu_tier(BUSY, "owned"))
    assert owned.verdict == "self_host"
    assert at.number_input(key="be_gpu_usd_per_hour").value == pytest.approx(owned.scenario.self_host.gpu_usd_per_hour)
    m = _metrics(at)
    assert m["Self-host, $/month"] == usd(owned.self_host.usd_per_month)
    assert m["Savings, $/month"] == usd(owned.savings_usd_per_month)
    table = _breakdown(at)
    c = owned.ownership
    assert table.loc["Total", "$ per server-month"] == pytest.approx(round(c.total_usd_per_month, 2))
    fleet = [col for col in table.columns if col.startswith("$ per month, fleet")][0]
    assert table.loc["Total", fleet] == pytest.approx(round(c.total_usd_per_month * 2 / 8, 2))  # 2 GPUs
    assert at.query_params["gpu_tier"] in ("owned", ["owned"])
    assert any("TDP" in c.value and "not a measurement" in c.value for c in at.caption)


def test_buy_inputs_and_a_measured_run_feed_the_price_like_the_cli(tmp_path):
    at = _page()
    at.selectbox(key="be_gpu_tier").set_value("owned").run()
    at.number_input(key="be_own_server_usd").set_value(250_000.0).run()
    at.number_input(key="be_own_usd_per_kwh").set_value(0.2).run()
    at.radio(key="be_own_power_source").set_value("measured run").run()
    pick = next(o for o in at.selectbox(key="be_own_run_point").options
                if "h200-vllm0.26" in o and "concurrency 32" in o)  # the 8B run (633.682 W at c=32)
    at.selectbox(key="be_own_run_point").set_value(pick).run()
    assert not at.exception and not at.error

    expected = apply_gpu_tier(BUSY, "owned")
    for field, value in (("own_server_usd", 250_000.0), ("own_usd_per_kwh", 0.2)):
        expected = replace_field(expected, f"self_host.{field}", value)
    b = buy_input(replace_field(expected, "self_host.own_power_w", 633.682).self_host)
    table = _breakdown(at)
    assert table.loc["Purchase, amortized net of residual", "$ per server-month"] == pytest.approx(
        round(250_000 * 0.8 / 36, 2))
    assert at.number_input(key="be_gpu_usd_per_hour").value == pytest.approx(ownership.owned_cost(b).usd_per_gpu_hour,
                                                                             rel=1e-5)

    # the scenario the page holds, downloaded as TOML and evaluated by the CLI, gives the same breakdown
    params = {k: v[0] if isinstance(v, list) else v for k, v in at.query_params.items()}
    assert params["own_wkind"].startswith("measured: h200")
    from calculators.scenario import from_query_params  # noqa: PLC0415

    s, problems = from_query_params(params)
    assert problems == []
    path = tmp_path / "page.toml"
    path.write_text(dumps_toml(s), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "calculators", "evaluate", str(path)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    block = json.loads(out)["ownership"]
    for label, key in (("Purchase, amortized net of residual", "capex_usd"), ("Hosting / colocation", "hosting_usd"),
                       ("People", "people_usd"), ("Total", "total_usd")):
        assert table.loc[label, "$ per server-month"] == pytest.approx(round(block["per_server_usd_per_month"][key], 2))
    assert block["inputs"]["power_kind"] == "measured"
    assert _metrics(at)["Self-host, $/month"] == usd(json.loads(out)["self_host"]["usd_per_month"])


def test_a_gpu_without_a_catalog_server_price_asks_for_one():
    at = _page()
    at.selectbox(key="be_gpu").set_value("b200").run()
    at.selectbox(key="be_gpu_tier").set_value("owned").run()
    assert not at.exception
    assert any("No sourced purchase price" in w.value for w in at.warning)
    assert at.selectbox(key="be_gpu_tier").value == "owned"
    at.number_input(key="be_own_server_usd").set_value(450_000.0).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _breakdown(at).loc["Purchase, amortized net of residual", "$ per server-month"] == pytest.approx(
        round(450_000 * 0.8 / 36, 2))


def test_a_run_of_the_results_store_can_supply_the_measured_power(_store):
    from probes.results import reference
    from probes.results.store import open_store

    run = next(reference.load_run(r.path) for r in reference.discover() if r.key.startswith("h200-vllm0.26"))
    run["points"] = run["points"][2:3]
    run["points"][0]["power"]["mean_w"] = 321.0  # a run of our own, told apart from the bundled one
    rid = open_store(str(_store)).save_run(run)
    at = _page()
    at.selectbox(key="be_gpu_tier").set_value("owned").run()
    at.radio(key="be_own_power_source").set_value("measured run").run()
    options = at.selectbox(key="be_own_run_point").options
    mine = [o for o in options if o.startswith(f"run {rid}:")]
    assert len(mine) == 1 and "321 W/GPU" in mine[0]
    at.selectbox(key="be_own_run_point").set_value(mine[0]).run()
    assert not at.exception and not at.error
    assert at.query_params["own_w"] in ("321", ["321"])
    assert any("321 W per GPU [measured]" in c.value for c in at.caption)


def test_changing_the_gpu_while_owned_takes_the_new_gpus_server_and_power():
    at = _page()
    at.selectbox(key="be_gpu_tier").set_value("owned").run()
    at.radio(key="be_own_power_source").set_value("typed watts").run()
    at.number_input(key="be_own_power_w").set_value(333.0).run()
    assert at.query_params["own_w"] in ("333", ["333"])
    at.selectbox(key="be_gpu").set_value("h200").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="be_gpu_tier").value == "owned"
    assert at.radio(key="be_own_power_source").value == "TDP × load factor"  # the H100's watts do not carry over
    assert at.number_input(key="be_own_server_usd").value == 340_000.0
    expected = apply_gpu_tier(replace_field(BUSY, "self_host.gpu", "h200"), "owned")
    assert at.number_input(key="be_gpu_usd_per_hour").value == pytest.approx(expected.self_host.gpu_usd_per_hour)
    at.selectbox(key="be_gpu").set_value("l40s").run()  # no catalog server price: back to renting on demand
    assert not at.exception and at.selectbox(key="be_gpu_tier").value == "on-demand"
    assert not [d for d in at.dataframe if "Cost" in d.value.columns]
