"""``st.cache_data`` wrappers around the pure calculators, keyed on the frozen ``Scenario`` (hashable).

Every cache has ``max_entries`` (STYLE.md rule 8). Results are treated as copies: never mutated.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from calculators import cost, curves
from calculators.scenario import Scenario

__all__ = ["evaluate", "cost_vs_volume", "usd_per_mtok_vs_utilization", "savings_heatmap"]

_MAX = 64


@st.cache_data(max_entries=_MAX, show_spinner=False)
def evaluate(s: Scenario) -> cost.Report:
    """``calculators.cost.evaluate(s)``, cached."""
    return cost.evaluate(s)


@st.cache_data(max_entries=_MAX, show_spinner=False)
def cost_vs_volume(s: Scenario) -> pd.DataFrame:
    """``calculators.curves.cost_vs_volume(s)``, cached."""
    return curves.cost_vs_volume(s)


@st.cache_data(max_entries=_MAX, show_spinner=False)
def usd_per_mtok_vs_utilization(s: Scenario) -> pd.DataFrame:
    """``calculators.curves.usd_per_mtok_vs_utilization(s)``, cached."""
    return curves.usd_per_mtok_vs_utilization(s)


@st.cache_data(max_entries=_MAX, show_spinner=False)
def savings_heatmap(s: Scenario) -> pd.DataFrame:
    """``calculators.curves.savings_heatmap(s)``, cached."""
    return curves.savings_heatmap(s)
