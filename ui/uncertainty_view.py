"""The Break-even page's "Uncertainty" expander: +/- % ranges on the inputs, the band they give on monthly
savings and break-even volume, and the tornado chart (``calculators.uncertainty``).

Where the ranges live: **page state, mirrored in the URL** (``unc=otps=20,gpu_usd=15``; ``unc=none``: nothing
varies; no ``unc``: the assumed defaults ``uncertainty.DEFAULT_PCT``), not in the ``Scenario``. They are an
analysis of a scenario, not part of it: a scenario TOML stays a point estimate, its round trips stay exact,
and the same text is the CLI's ``--ranges`` (``python -m calculators evaluate FILE --ranges "..."``), which
prints the same numbers. Widgets are keyed ``be_unc_<key>``; the applied % are in ``be_unc_pct``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from calculators import figures, uncertainty
from calculators.scenario import Scenario
from ui.widgets import requests_per_day_text, usd

__all__ = ["URL_KEY", "PCT_KEY", "SAMPLES", "SEED", "uncertainty_section", "tornado_frame", "share_text"]

URL_KEY = "unc"
PCT_KEY = "be_unc_pct"
SAMPLES = 2000
SEED = 0
BAND_POINTS = 80


@st.cache_data(max_entries=64, show_spinner=False)
def _band(s: Scenario, pct_items: tuple[tuple[str, float], ...]) -> pd.DataFrame:
    ranges = uncertainty.ranges_from_pct(s, dict(pct_items))
    return uncertainty.savings_band_vs_volume(s, ranges, n=SAMPLES, seed=SEED, points=BAND_POINTS)


@st.cache_data(max_entries=64, show_spinner=False)
def _analyse(s: Scenario, pct_items: tuple[tuple[str, float], ...]) -> uncertainty.Uncertainty:
    ranges = uncertainty.ranges_from_pct(s, dict(pct_items))
    return uncertainty.analyse(s, ranges, n=SAMPLES, seed=SEED)


def tornado_frame(u: uncertainty.Uncertainty) -> pd.DataFrame:
    """One row per input, largest swing first: key, label, low, high, savings at each, swing."""
    cols = ["key", "label", "low", "high", "savings_at_low", "savings_at_high", "swing"]
    return pd.DataFrame([{c: getattr(b, c) for c in cols} for b in u.tornado], columns=cols)


def share_text(x: float) -> str:
    """A share for a finance reader: never "0%" for "<1%".

    >>> [share_text(v) for v in (0.0, 0.004, 0.5, 0.996, 1.0)]
    ['0%', '<1%', '50%', '>99%', '100%']
    """
    if 0 < x < 0.01:
        return "<1%"
    if 0.99 < x < 1:
        return ">99%"
    return f"{x:.0%}"


def _applied_pct() -> dict[str, float]:
    """The applied +/- %; seeded once per session from the URL (bad items warned, their defaults kept)."""
    if PCT_KEY not in st.session_state:
        pct = dict(uncertainty.DEFAULT_PCT)
        spec = st.query_params.get(URL_KEY)
        if spec is not None:
            pct = dict.fromkeys(uncertainty.RANGE_KEYS, 0.0)  # the link names exactly what varies
            for item in spec.split(","):
                try:
                    pct.update(uncertainty.parse_pct(item))
                except ValueError as e:
                    st.warning(f"The link's uncertainty ranges: {e}; not applied.")
        st.session_state[PCT_KEY] = pct
    return st.session_state[PCT_KEY]


def _write_url(pct: dict[str, float]) -> None:
    text = uncertainty.format_ranges(pct) or "none"
    if pct == uncertainty.DEFAULT_PCT:
        if URL_KEY in st.query_params:
            del st.query_params[URL_KEY]
    elif st.query_params.get(URL_KEY) != text:
        st.query_params[URL_KEY] = text


def uncertainty_section(s: Scenario) -> None:
    """The expander: the +/- % form, the band on savings and break-even, and the tornado chart."""
    pct = _applied_pct()  # outside the expander: a bad link's warning shows even while it is closed
    # Lazy: the band, Monte Carlo and tornado (half of a rerun's time) run only while the expander is open;
    # opening it reruns the page (key ``be_unc_open``; AppTest opens it with session_state["be_unc_open"] = True).
    expander = st.expander("Uncertainty", expanded=False, key="be_unc_open", on_change="rerun")
    if not expander.open:
        _write_url(pct)
        return
    with expander:
        st.caption(
            "Ranges are **assumptions** (± % around this scenario's values), not measurements: defaults say "
            "throughput ±20% (run-to-run and workload), GPU price ±15% (providers and tiers), volume ±30% "
            "(a forecast). Each input is drawn from a triangular distribution (low, scenario value, high), "
            f"independently; {SAMPLES:,} samples, seed {SEED}. API prices vary as one multiplier on all rates.")
        keys = [k for k in uncertainty.RANGE_KEYS if k != "ptps" or s.self_host.prefill_tokens_per_s is not None]
        with st.form("be_unc_form"):
            cols = st.columns(3)
            for i, k in enumerate(keys):
                cols[i % 3].number_input(f"{uncertainty.RANGE_KEYS[k][1]}, ± %", min_value=0.0,
                                         max_value=uncertainty.MAX_PCT,
                                         step=5.0, value=float(pct.get(k, 0.0)), key=f"be_unc_{k}")
            if st.form_submit_button("Apply ranges"):
                pct = {k: float(st.session_state[f"be_unc_{k}"]) if k in keys else pct.get(k, 0.0)
                       for k in uncertainty.RANGE_KEYS}
                st.session_state[PCT_KEY] = pct
        _write_url(pct)
        items = tuple((k, pct[k]) for k in keys if pct.get(k))
        u = _analyse(s, items)
        if not u.ranges:
            st.info("No input varies: give a ± % above to see a band.")
            return
        mc, band = u.mc, u.band
        c = st.columns(4)
        c[0].metric("Savings p5, $/month", usd(mc.savings_p5))
        c[1].metric("Savings p50, $/month", usd(mc.savings_p50))
        c[2].metric("Savings p95, $/month", usd(mc.savings_p95))
        c[3].metric("Self-hosting no dearer in", share_text(mc.share_self_host_cheaper), help="share of samples")
        st.markdown(
            f"- Savings at the {band.corners:,} low/high corners of the ranges: {usd(band.savings_low)} to "
            f"{usd(band.savings_high)}/month (scenario: {usd(u.base_savings_usd_per_month)}).\n"
            f"- Break-even volume (first crossing), requests/day: p5 {requests_per_day_text(mc.breakeven_p5)}, "
            f"p50 {requests_per_day_text(mc.breakeven_p50)}, p95 {requests_per_day_text(mc.breakeven_p95)}; "
            f"over the corners {requests_per_day_text(band.breakeven_low)} to "
            f"{requests_per_day_text(band.breakeven_high)} (scenario: "
            f"{requests_per_day_text(u.base_breakeven_requests_per_day)}). Never breaks even in "
            f"{share_text(mc.share_never_breaks_even)} of samples.")
        band_df = _band(s, items)
        st.plotly_chart(figures.savings_band_figure(band_df, s.traffic.requests_per_day, mc.breakeven_p5,
                                                   mc.breakeven_p95), key="be_chart_savings_band")
        df = tornado_frame(u)
        st.plotly_chart(figures.tornado_figure(df, u.base_savings_usd_per_month), key="be_chart_tornado")
        money = {c: st.column_config.NumberColumn(c.replace("_", " ") + ", $/month", format="dollar")
                 for c in ("savings_at_low", "savings_at_high", "swing")}
        st.dataframe(df, key="be_unc_tornado", hide_index=True, column_config={
            "key": st.column_config.TextColumn("key", help="the range's key in the link and in --ranges"),
            "label": "input", "low": st.column_config.NumberColumn("low", format="%.4g"),
            "high": st.column_config.NumberColumn("high", format="%.4g"), **money})
        flat = [b.label.split(" (")[0] for b in u.tornado if b.swing == 0 and b.key in ("otps", "ptps", "peak")]
        if flat:
            st.caption(f"{', '.join(flat)}: no swing. Capacity inputs move the cost only when they change the "
                       "number of replicas (whole replicas, at least the minimum); within these ranges they do not.")
        spec = uncertainty.format_ranges(dict(items)) or "none"
        st.caption(f'Same numbers headless: `python -m calculators evaluate SCENARIO.toml --ranges "{spec}"`.')
