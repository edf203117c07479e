"""The "Download the decision brief (HTML)" button (``calculators.brief``), on the Break-even, home and Options
pages (the Options page's brief is the options set's).

The brief inlines the plotly.js bundle (about 4.8 MB), so it is built only on demand: a first button
prepares it for the current scenario and uncertainty ranges, then the download button serves it. The built
brief is cached by (scenario, ranges) in a bounded ``st.cache_data``; once the scenario changes, the download
goes away and the prepare button comes back, so ordinary reruns never build or send a brief.

The ranges are the Break-even page's applied ones (``ui.uncertainty_view.PCT_KEY``, seeded from the link's
``unc``), so the brief's band is the page's band; the same numbers come headless from
``python -m calculators report FILE.toml --out brief.html --ranges "..."``. Keys: ``<key>_brief_prepare``,
``<key>_brief_download``; ``<key>_brief_for`` holds what was prepared.
"""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from calculators import brief, uncertainty
from calculators.scenario import Scenario
from ui import uncertainty_view

__all__ = ["brief_download", "build_cached", "applied_pct_items", "file_name"]


@st.cache_data(max_entries=8, show_spinner=False)
def build_cached(source: Any, pct_items: tuple[tuple[str, float], ...]) -> str:
    """``calculators.brief.build_brief`` for a scenario or an options set and these +/- % (the uncertainty
    expander's, around the brief's focus scenario), cached."""
    ranges = uncertainty.ranges_from_pct(brief.focus(source)[0], dict(pct_items))
    return brief.build_brief(source, ranges=ranges, samples=uncertainty_view.SAMPLES, seed=uncertainty_view.SEED)


def applied_pct_items(s: Scenario) -> tuple[tuple[str, float], ...]:
    """The +/- % the Break-even page applies (session, else the link's ``unc``, else the defaults), as the
    uncertainty expander passes them to its own cache."""
    pct = st.session_state.get(uncertainty_view.PCT_KEY)
    if pct is None:
        pct = dict(uncertainty.DEFAULT_PCT)
        spec = st.query_params.get(uncertainty_view.URL_KEY)
        if spec is not None:
            pct = dict.fromkeys(uncertainty.RANGE_KEYS, 0.0)
            for item in spec.split(","):
                try:
                    pct.update(uncertainty.parse_pct(item))
                except ValueError:
                    continue  # the expander warns about it on the Break-even page
    keys = [k for k in uncertainty.RANGE_KEYS if k != "ptps" or s.self_host.prefill_tokens_per_s is not None]
    return tuple((k, float(pct[k])) for k in keys if pct.get(k))


def file_name(s: Any) -> str:
    """``<scenario name as a slug>-brief.html`` ("decision-brief.html" without a name).

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> import dataclasses
    >>> file_name(dataclasses.replace(DEFAULT_SCENARIO, name="RAG assistant, Llama 3.3 70B"))
    'rag-assistant-llama-3-3-70b-brief.html'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", s.name.lower()).strip("-")[:60]
    return f"{slug}-brief.html" if slug else "decision-brief.html"


def brief_download(source: Any, *, key: str) -> None:
    """Prepare, then download, the decision brief of a scenario or an options set (see the module docstring).
    An options set without a self-host option gets a caption instead (the brief's break-even needs one)."""
    try:
        s = brief.focus(source)[0]
    except ValueError as e:
        st.caption(f"Decision brief: {e}.")
        return
    items = applied_pct_items(s)
    want = (source, items)
    if st.session_state.get(f"{key}_brief_for") != want:
        if st.button("Prepare the decision brief (HTML)", key=f"{key}_brief_prepare",
                     help="One self-contained HTML file for a finance partner: verdict, options, break-even, "
                     "operating point, band, assumptions with sources, risks; opens offline, prints on A4."):
            st.session_state[f"{key}_brief_for"] = want
        else:
            return
    try:
        with st.spinner("Building the brief..."):
            page = build_cached(source, items)
    except ValueError as e:
        build_cached.clear()
        st.session_state.pop(f"{key}_brief_for", None)
        st.error(f"The brief could not be built: {e}")
        return
    st.download_button("Download the decision brief (HTML)", page, file_name(source), "text/html",
                       key=f"{key}_brief_download", on_click="ignore", type="primary")
