"""What the verdict rests on, on the pages: the stale-throughput warning with its re-estimate button, the
"rests on" table, the per-token lines a finance reader sees, and the scenario description kept honest.

The rules are ``calculators.provenance`` (pure); this module only draws them. Keys: ``<key>_reestimate``
(button), ``home_rests_on`` (table).
"""

from __future__ import annotations

import dataclasses
import re

import pandas as pd
import streamlit as st

from calculators import catalog, provenance
from calculators.cost import Report
from calculators.scenario import Scenario
from ui import state

__all__ = ["stale_panel", "deployment_note", "rests_on_table", "per_token_lines", "description_text"]

_DONE_KEY = "restson_reestimated"  # the success line shown after the rerun a re-estimate causes


def _labelled(source: str) -> str:
    """The throughput's source with its kind in front, unless it already starts with it."""
    kind = provenance.throughput_kind(source)
    return source if source.lower().startswith(kind) else f"{kind}: {source}"


def stale_panel(s: Scenario, *, key: str, model: str | None = None, dtype: str | None = None) -> bool:
    """A loud ``st.warning`` when the scenario's throughput was measured or estimated elsewhere (another GPU,
    model, dtype or request shape: ``provenance.stale_reasons``), with a button that replaces it by the
    closed-loop estimate for the scenario (labelled "estimate"). Returns whether it was stale."""
    done = st.session_state.pop(_DONE_KEY, None)
    if done:
        st.success(done)
    reasons = provenance.stale_reasons(s, model=model, dtype=dtype)
    if not reasons:
        return False
    h = s.self_host
    gpu = catalog.gpus().get(h.gpu)
    st.warning(
        f"**Stale throughput:** {h.output_tokens_per_s:,.0f} output tok/s per replica "
        f"({_labelled(h.throughput_source)}) does not fit this "
        f"scenario. " + "; ".join(f"{r}." for r in reasons)
        + " The verdict still uses it: re-estimate it, or measure this set-up (Probe page).",
        icon="⚠️",
    )
    label = f"Re-estimate for {gpu.name if gpu else h.gpu} at this request shape (closed-loop estimate)"
    if st.button(label, key=f"{key}_reestimate"):
        try:
            new = provenance.reestimate(s, model=model, dtype=dtype)
        except ValueError as e:
            st.error(f"Not re-estimated: {e}")
        else:
            state.set_scenario(new)
            st.session_state[_DONE_KEY] = (
                f"Re-estimated: {new.self_host.output_tokens_per_s:,.0f} output tok/s per replica, "
                f"labelled {new.self_host.throughput_source!r}.")
            st.rerun()
    return True


def deployment_note(s: Scenario, *, gpu: str, model: str, dtype: str) -> list[str]:
    """On the Capacity page: a caption when the break-even's throughput was measured or estimated for another
    GPU, model, dtype or request shape than the deployment shown there (where the model and dtype are known).
    Returns the reasons (empty: nothing shown)."""
    here = dataclasses.replace(s, self_host=dataclasses.replace(s.self_host, gpu=gpu))
    reasons = provenance.stale_reasons(here, model=model, dtype=dtype)
    if reasons:
        st.caption(f"The break-even now uses {s.self_host.output_tokens_per_s:,.0f} output tok/s "
                   f"({_labelled(s.self_host.throughput_source)}), which does not fit this deployment: "
                   + "; ".join(reasons).replace("the scenario uses", "this page uses") + ".")
    return reasons


def rests_on_table(s: Scenario, report: Report | None = None, *, key: str = "home_rests_on") -> pd.DataFrame:
    """The "rests on" table for ``s`` (one row per input: value, kind, source, as of, stale); returns it."""
    rows = provenance.rests_on(s, getattr(report, "rates", None))
    df = pd.DataFrame([{"input": r.field, "value": r.value, "kind": r.kind, "as of": r.as_of,
                        "stale": r.stale or "", "source": r.source} for r in rows])  # long text last
    st.dataframe(df, hide_index=True, key=key, column_config={
        "source": st.column_config.TextColumn(width="large"),
        "stale": st.column_config.TextColumn(help="why this input no longer fits the scenario")})
    return df


def per_token_lines(r: Report) -> list[str]:
    """$/M output tokens on both sides, each saying what it includes (shares never read "0%" when small)."""
    h, a = r.self_host, r.api
    if h.usd_per_mtok_output is None:
        return ["No traffic: no per-token cost."]
    extra = f", API fallback ${h.fallback_usd_per_month:,.0f}/month" if h.fallback_usd_per_month else ""
    return [
        f"Self-host: **${h.usd_per_mtok_output:,.2f} per M output tokens**, all in: GPUs "
        f"${h.gpu_usd_per_month:,.0f}/month for {h.replicas:,} replica{'s' if h.replicas != 1 else ''} "
        f"(paid while idle: busy {provenance.pct_text(h.utilization)} of the time on average), ops "
        f"${h.ops_usd_per_month:,.0f}/month{extra}, over all output tokens.",
        f"API: **${a.usd_per_mtok_output_equiv:,.2f} per M output tokens** equivalent: each request's input, "
        "cached input and output charges, over its output tokens (no ops, no idle: pay per use).",
    ]


_VERSUS = re.compile(r"\b(versus|vs\.?)\s+([A-Za-z0-9][\w.:/-]*\w)")


def description_text(s: Scenario) -> str:
    """The scenario's description, with a "versus <model>" that no longer names the API model priced
    replaced by the one that is (descriptions are written once; the inputs change).

    >>> from calculators.scenario import DEFAULT_SCENARIO, apply_api_model
    >>> description_text(apply_api_model(DEFAULT_SCENARIO, "claude-sonnet-5-5"))[-40:]
    ' H100 versus claude-sonnet-5-5 (edited).'
    """
    priced = provenance.priced_model_label(s)

    def fix(m: re.Match) -> str:
        named = m.group(2)
        if named in (s.api.model, priced):
            return m.group(0)
        return f"{m.group(1)} {priced} (edited)"

    return _VERSUS.sub(fix, s.description)
