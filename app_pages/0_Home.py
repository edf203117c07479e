"""Home page: the verdict for the current scenario, on one screen.

``app.py`` registers this page (title "Home", the root URL) with ``st.navigation``. The scenario is shared
through ``ui.state`` (session state, mirrored in the URL so that a link reproduces it).
"""

import streamlit as st

from calculators import catalog, provenance
from ui import brief_view, cached, restson_view, state, widgets

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
        st.caption(restson_view.description_text(scenario))
    restson_view.stale_panel(scenario, key="home")
    report = cached.evaluate(scenario)
    h = scenario.self_host
    gpu_name = getattr(catalog.gpus().get(h.gpu), "name", h.gpu)
    st.markdown(f"Self-hosting on {h.gpus_per_replica}x {gpu_name} per replica, compared with the API model "
                f"**{provenance.priced_model_label(scenario)}**.")
    widgets.verdict_panel(scenario)
    st.markdown("\n".join(f"- {line}" for line in restson_view.per_token_lines(report)))
with right:
    st.page_link("app_pages/1_Break_even.py", label="Break-even: all inputs and charts", icon="📈")
    st.subheader("Scenario")
    widgets.scenario_io_panel(scenario)
    brief_view.brief_download(scenario, key="home")
st.subheader("What this verdict rests on")
restson_view.rests_on_table(scenario, report)
st.caption("Kinds: assumption (typed by you, or our default), catalog (a price or spec table with its source "
           "and date; unverified where the row is estimated), estimate (roofline / closed-loop model, "
           "calibrated on real vLLM runs), measured (a probe run or a published benchmark).")
