"""Home page: the verdict for the current scenario, on one screen.

Streamlit file-based multipage app: this file is the home page, ``pages/`` holds the others. The scenario
is shared through ``ui.state`` (session state, mirrored in the URL so that a link reproduces it).
Run with ``make run`` (or ``streamlit run app.py``).
"""

import streamlit as st

from ui import state, widgets

st.set_page_config(page_title="Self-host or API?", page_icon="⚖️", layout="wide")

scenario = state.get_scenario()

st.title("Self-host or API?")
st.caption(
    "At this traffic, is serving an open-weight model yourself with vLLM cheaper than paying an API? "
    "Numbers for the current scenario; change its inputs on the Break-even page."
)
widgets.show_url_problems()

left, right = st.columns([2, 1], gap="large")
with left:
    if scenario.name:
        st.subheader(scenario.name)
    if scenario.description:
        st.caption(scenario.description)
    widgets.verdict_panel(scenario)
with right:
    st.page_link("pages/1_Break_even.py", label="Break-even: all inputs and charts", icon="📈")
    st.subheader("Scenario")
    widgets.scenario_io_panel(scenario)
    st.caption(
        f"Self-host throughput: {scenario.self_host.output_tokens_per_s:,.0f} output tokens/s per replica "
        f"({scenario.self_host.throughput_source})."
    )
