"""Options page: several named options (GPU kind and count, model and dtype, throughput source, price tier, API
model) over the scenario's traffic, side by side in one table and one chart.

Thin page (keys ``opt_``): ``ui.options_view`` holds the set in session state and the URL (the share link),
the add/edit/remove forms, the comparison (``calculators.options.compare_options``) and the TOML download/upload.
"""

import streamlit as st

from ui import brief_view, options_view, state

st.set_page_config(page_title="Options · Self-host or API?", page_icon="⚖️", layout="wide")

st.title("Options side by side")
scenario = state.get_scenario()
oset = options_view.get_set()
t = scenario.traffic
st.caption(f"Every option serves the same traffic: {t.requests_per_day:,.0f} requests/day, {t.input_tokens:,.0f} in / "
           f"{t.output_tokens:,.0f} out tokens, peak {t.peak_to_mean:g}x the mean (change it on Break-even).")
options_view.show_messages()
options_view.add_form(oset)
options_view.edit_forms(oset)
options_view.comparison(oset)
if oset.options:
    brief_view.brief_download(oset, key="opt")
options_view.files(oset)
if oset.options:
    options_view.share_link(oset)
