"""AppTest of the Options page: add two options through the form and see both in the table with the numbers of
``compare_options``; edit one (GPU, typed throughput); a shared link reopens the same options; a bad link value is
reported, not raised."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from calculators import options as opts
from calculators.provenance import reestimate
from calculators.scenario import DEFAULT_SCENARIO, apply_gpu

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "app.py")
PAGE = "app_pages/5_Options.py"
TIMEOUT_S = 60


def _page(query_params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT_S)
    at.query_params.update(query_params or {})
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _add(at: AppTest, name: str, kind: str) -> None:
    at.text_input(key="opt_add_name").input(name)
    at.radio(key="opt_add_kind").set_value(kind)
    next(b for b in at.button if b.label == "Add option").click()
    at.run()
    assert not at.exception, at.exception


def _table(at: AppTest):
    frames = [df.value for df in at.dataframe]
    assert frames, "no table"
    return frames[0]


def test_add_two_options_both_in_the_table() -> None:
    at = _page()
    assert any("No options yet" in i.value for i in at.info)
    _add(at, "Self-host H100", "self_host")
    _add(at, "Just the API", "api")
    table = _table(at)
    assert list(table["Option"]) == ["Self-host H100", "Just the API"]
    expected = opts.compare_options(opts.OptionsSet(DEFAULT_SCENARIO.traffic, (
        opts.make_option("Self-host H100", DEFAULT_SCENARIO), opts.make_option("Just the API", DEFAULT_SCENARIO, "api"))))
    assert list(table["$/month"]) == [f"${v:,.0f}" for v in expected["monthly_usd"]]
    assert list(table["Replicas"]) == [str(expected["replicas"][0]), "—"]
    assert at.query_params["o1_name"] == "Self-host H100" and at.query_params["o2_kind"] == "api"
    assert len(at.get("plotly_chart")) == 1


def test_edit_gpu_and_typed_throughput() -> None:
    at = _page({"o1_name": "A"})
    key = next(s.key for s in at.selectbox if s.key and s.key.endswith("_gpu"))
    prefix = key.removesuffix("_gpu")
    at.selectbox(key=key).set_value("l40s")
    at.number_input(key=f"{prefix}_otps").set_value(1234.0)
    next(b for b in at.button if b.label == "Apply").click()
    at.run()
    assert not at.exception, at.exception
    row = _table(at).iloc[0]
    assert row["Deployment"] == "1x NVIDIA L40S 48GB" and row["Throughput tok/s"] == "1,234"
    assert row["Throughput from"] == "typed"
    assert at.query_params["o1_gpu"] == "l40s" and at.query_params["o1_otps"] == "1234"


def test_estimated_throughput_is_the_closed_loop_estimate() -> None:
    at = _page({"o1_name": "A"})
    prefix = next(s.key for s in at.selectbox if s.key and s.key.endswith("_gpu")).removesuffix("_gpu")
    at.selectbox(key=f"{prefix}_gpu").set_value("l40s")
    at.radio(key=f"{prefix}_src").set_value("estimate")
    at.selectbox(key=f"{prefix}_model").set_value("meta-llama/Llama-3.1-8B-Instruct")
    at.selectbox(key=f"{prefix}_dtype").set_value("bf16")
    next(b for b in at.button if b.label == "Apply").click()
    at.run()
    assert not at.exception, at.exception
    want = reestimate(apply_gpu(DEFAULT_SCENARIO, "l40s"), model="meta-llama/Llama-3.1-8B-Instruct", dtype="bf16")
    row = _table(at).iloc[0]
    assert row["Throughput from"] == "estimate"
    assert row["Throughput tok/s"] == f"{want.self_host.output_tokens_per_s:,.0f}"


def test_link_reopens_options_and_bad_values_are_reported() -> None:
    oset = opts.OptionsSet(DEFAULT_SCENARIO.traffic, (opts.make_option("A", apply_gpu(DEFAULT_SCENARIO, "l40s")),
                                                     opts.make_option("B", DEFAULT_SCENARIO, "api")))
    qp = opts.options_to_query_params(oset) | {"o1_gpr": "lots"}
    at = _page(qp)
    assert list(_table(at)["Option"]) == ["A", "B"]
    assert any("option 1 ('A')" in w.value and "gpus_per_replica must be a number" in w.value for w in at.warning)


def test_an_owned_option_keeps_its_tier_through_the_form_and_a_rented_one_can_become_owned():
    import dataclasses

    from calculators.scenario import DEFAULT_SCENARIO, apply_gpu_tier
    from ui.options_view import _apply_edit, option_tiers

    owned = apply_gpu_tier(DEFAULT_SCENARIO, "owned")  # H100: the catalog has a server price
    assert owned.self_host.gpu_price_tier == "owned" and "owned" in option_tiers(owned.self_host)
    opt = opts.Option(name="buy", kind="self_host", scenario=owned)
    form = {"gpu": owned.self_host.gpu, "gpr": owned.self_host.gpus_per_replica, "tier": "owned",
            "price": owned.self_host.gpu_usd_per_hour, "source": "typed",
            "otps": owned.self_host.output_tokens_per_s, "model": "", "dtype": "bf16", "api": ""}
    kept = _apply_edit(opt, form)
    assert kept.self_host.gpu_price_tier == "owned"
    assert kept.self_host.gpu_usd_per_hour == owned.self_host.gpu_usd_per_hour  # derived from the own_* fields
    rented = opts.Option(name="rent", kind="self_host", scenario=DEFAULT_SCENARIO)
    bought = _apply_edit(rented, {**form, "tier": "owned"})
    assert bought.self_host.gpu_price_tier == "owned" and bought == dataclasses.replace(bought)
    assert bought.self_host.gpu_usd_per_hour != DEFAULT_SCENARIO.self_host.gpu_usd_per_hour
