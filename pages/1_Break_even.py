"""Break-even page: the scenario's inputs, grouped, and the three charts behind the verdict.

Thin page: widgets (keys ``be_``) → ``Scenario`` (validated by ``replace_field``) → cached calculators
→ Plotly. A rejected value shows ``st.error`` naming the field and the last good scenario stays.
"""

import streamlit as st

from ui import cached, charts, inputs, state, widgets

st.set_page_config(page_title="Break-even · Self-host or API?", page_icon="📈", layout="wide")

scenario = state.get_scenario()
st.title("Break-even")
widgets.show_url_problems()
for note in inputs.seed_widgets(scenario):
    st.warning(note)

with st.sidebar:
    with st.expander("Traffic", expanded=True):
        inputs.number_inputs(inputs.TRAFFIC)
    with st.expander("API", expanded=True):
        inputs.api_model_select()
        inputs.number_inputs(inputs.API_PRICES)
    with st.expander("Self-host", expanded=True):
        inputs.gpu_select()
        inputs.number_inputs(inputs.SELF_HOST)
    with st.expander("Ops and context", expanded=True):
        inputs.number_inputs(inputs.OPS)
        inputs.context_checkboxes()

new, errors = inputs.read_widgets(scenario)
for error in errors:
    st.error(f"Not applied: {error}. The results below are for the last valid inputs.")
if new != scenario:
    state.set_scenario(new)
    scenario = new
inputs.mark_synced(scenario)

st.caption(
    f"Self-host throughput: {scenario.self_host.output_tokens_per_s:,.0f} output tokens/s per replica, "
    f"source: **{scenario.self_host.throughput_source}**."
)
st.divider()
report = cached.evaluate(scenario)
verdict_col, io_col = st.columns([3, 1], gap="large")
with verdict_col:
    widgets.verdict_panel(scenario)
with io_col:
    widgets.scenario_io_panel(scenario)

volume = cached.cost_vs_volume(scenario)
per_mtok = cached.usd_per_mtok_vs_utilization(scenario)
heat = cached.savings_heatmap(scenario)
chart_cols = st.columns(2)
with chart_cols[0]:
    st.plotly_chart(charts.cost_vs_volume_figure(volume, scenario, report), key="be_chart_volume")
    st.download_button(
        "Cost vs volume (CSV)",
        volume.to_csv(index=False),
        "cost_vs_volume.csv",
        "text/csv",
        key="be_csv_volume",
        on_click="ignore",
    )
with chart_cols[1]:
    st.plotly_chart(charts.usd_per_mtok_figure(per_mtok, scenario, report), key="be_chart_per_mtok")
    st.download_button(
        "$/M tokens vs utilization (CSV)",
        per_mtok.to_csv(index=False),
        "usd_per_mtok_vs_utilization.csv",
        "text/csv",
        key="be_csv_per_mtok",
        on_click="ignore",
    )
st.plotly_chart(charts.savings_heatmap_figure(heat, scenario, report), key="be_chart_heatmap")
st.download_button(
    "Savings heatmap (CSV)",
    heat.to_csv(index=False),
    "savings_heatmap.csv",
    "text/csv",
    key="be_csv_heatmap",
    on_click="ignore",
)
