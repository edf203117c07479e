"""Fleet page: replicas at mean and peak, autoscaling headroom for a cold start, and the API fallback's share
and cost while scaling or during an outage, for the current scenario. Thin: ``ui.fleet_view`` does the rest."""

import streamlit as st

from ui import fleet_view, state, widgets

st.set_page_config(page_title="Fleet · Self-host or API?", page_icon="🛰️", layout="wide")

scenario = state.get_scenario()
st.title("Fleet")
widgets.show_url_problems()
fleet_view.fleet_section(scenario)
