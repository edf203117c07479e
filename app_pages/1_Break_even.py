"""Break-even page: the scenario's inputs, grouped, and the three charts behind the verdict.

Thin page: widgets (keys ``be_``) → ``Scenario`` (validated by ``replace_field``) → cached calculators
→ Plotly. A rejected value shows ``st.error`` naming the field and the last good scenario stays.
"""

import streamlit as st

from calculators import figures, operating
from ui import (
    brief_view,
    cached,
    inputs,
    ownership_view,
    restson_view,
    results_view,
    state,
    traffic_view,
    uncertainty_view,
    widgets,
)

st.set_page_config(page_title="Break-even · Self-host or API?", page_icon="📈", layout="wide")

scenario = state.get_scenario()
st.title("Break-even")
widgets.show_url_problems()
for note in inputs.seed_widgets(scenario):
    st.warning(note)

with st.sidebar:
    with st.expander("Traffic", expanded=True):
        inputs.number_inputs(inputs.TRAFFIC)
        traffic_view.trace_uploader()
    with st.expander("API", expanded=True):
        inputs.api_model_select()
        inputs.number_inputs(inputs.API_PRICES)
        repriced = inputs.api_prices_update()
    with st.expander("Self-host", expanded=True):
        inputs.gpu_select()
        inputs.number_inputs(inputs.SELF_HOST)
    with st.expander("Ops and context", expanded=True):
        inputs.number_inputs(inputs.OPS)
        inputs.context_checkboxes()

new, errors = inputs.read_widgets(scenario)
new, errors = ownership_view.owned_section(new, errors)  # the "owned (buy)" tier: buy inputs and breakdown
if repriced is not None:  # newer price data: re-price, drop results of the old data, re-seed the widgets
    cached.clear_calculators()
    state.set_scenario(repriced)
    st.rerun()
for error in errors:
    st.error(f"Not applied: {error}. The results below are for the last valid inputs.")
if new != scenario:
    state.set_scenario(new)
    scenario = new
inputs.mark_synced(scenario)
restson_view.stale_panel(scenario, key="be")  # another GPU/model/shape than the throughput's: say so, offer one

st.caption(
    f"Self-host throughput: {scenario.self_host.output_tokens_per_s:,.0f} output tokens/s per replica, "
    f"source: **{scenario.self_host.throughput_source}**."
)
_measured = operating.measured_shape(scenario.self_host.throughput_source)
_shape_note = _measured and operating.shape_warning(_measured, scenario.traffic.input_tokens,
                                                    scenario.traffic.output_tokens)
if _shape_note:
    st.warning(_shape_note)
report = cached.evaluate(scenario)
inputs.api_prices_caption(scenario, report.rates)
results_view.good_tokens_section(report.good_tokens, key="be")  # only with self_host.slo_good_fraction
st.divider()
verdict_col, io_col = st.columns([3, 1], gap="large")
with verdict_col:
    widgets.verdict_panel(scenario)
with io_col:
    widgets.scenario_io_panel(scenario)
    brief_view.brief_download(scenario, key="be")

volume = cached.cost_vs_volume(scenario)
per_mtok = cached.usd_per_mtok_vs_utilization(scenario)
heat = cached.savings_heatmap(scenario)


def _chart_with_csv(fig, df, name: str, label: str) -> None:
    """A chart and the download of the data behind it (keys ``be_chart_<name>`` / ``be_csv_<name>``)."""
    st.plotly_chart(fig, key=f"be_chart_{name}")
    # deferred: the CSV is written when the button is clicked, not on every rerun
    st.download_button(label, lambda: df.to_csv(index=False), f"{name}.csv", "text/csv", key=f"be_csv_{name}",
                       on_click="ignore")


chart_cols = st.columns(2)
with chart_cols[0]:
    _chart_with_csv(figures.cost_vs_volume_figure(volume, scenario, report), volume, "cost_vs_volume",
                    "Cost vs volume (CSV)")
with chart_cols[1]:
    _chart_with_csv(figures.usd_per_mtok_figure(per_mtok, scenario, report), per_mtok,
                    "usd_per_mtok_vs_utilization", "$/M tokens vs utilization (CSV)")
_chart_with_csv(figures.savings_heatmap_figure(heat, scenario, report), heat, "savings_heatmap",
                "Savings heatmap (CSV)")
traffic_view.traffic_section(scenario)
uncertainty_view.uncertainty_section(scenario)
