"""The Fleet plan section (``app_pages/6_Fleet.py``): replicas at mean and peak, the autoscaling headroom that
absorbs one cold start, and the share and cost of traffic the API fallback takes while scaling or during an
outage, for the current scenario (``calculators.fleet``), with demand against ready capacity over the day.

Inputs (keys ``fleet_``): where the cold start comes from (a bundled probe run's measured ``cold_start_s``,
the seed article's 120 s, or typed), the scale-up utilization trigger, replicas down in the outage case, and
an optional trace for the demand's shape (read once per file, keyed by its SHA-256; a bad file is named in an
error and the synthetic day is used). The plan is cached (bounded) on its inputs; the figure builder is pure.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from calculators import fleet
from calculators.scenario import Scenario
from calculators.traces import MAX_TRACE_UPLOAD_BYTES, TraceError, read_arrays
from ui.widgets import usd

__all__ = [
    "COLD_KEY",
    "COLD_SOURCE_KEY",
    "UTILIZATION_KEY",
    "DOWN_KEY",
    "TRACE_KEY",
    "ARTICLE",
    "TYPED",
    "cold_start_choices",
    "compute_plan",
    "timeline_figure",
    "fleet_section",
]

COLD_SOURCE_KEY = "fleet_cold_source"
COLD_KEY = "fleet_cold_start_s"
UTILIZATION_KEY = "fleet_utilization"
DOWN_KEY = "fleet_replicas_down"
TRACE_KEY = "fleet_trace"
ARTICLE = "article"
TYPED = "typed"


@st.cache_data(ttl=600, max_entries=1, show_spinner=False)
def cold_start_choices() -> dict[str, tuple[str, float | None]]:
    """choice -> (label, seconds): the bundled reference runs that measured a cold start, the article's
    figure, and "typed" (None: the number input's value)."""
    from probes.results import reference  # noqa: PLC0415 - the UI layer reads bundled runs

    out: dict[str, tuple[str, float | None]] = {}
    for ref in reference.discover():
        try:
            run = reference.load_run(ref.path)
            seconds = fleet.cold_start_from_run(run, ref.name)
        except ValueError:
            continue
        out[f"ref:{ref.key}"] = (f"measured: {ref.name} · {reference.reference_label(run)} · {seconds:,.0f} s",
                                 seconds)
    out[ARTICLE] = (f"the article: 60-120 s (upper end, {fleet.ARTICLE_COLD_START_S:g} s)",
                    fleet.ARTICLE_COLD_START_S)
    out[TYPED] = ("typed", None)
    return out


def compute_plan(scenario: Scenario, cold_start_s: float, utilization: float, replicas_down: int,
                 trace: bytes | None = None, trace_name: str = "") -> fleet.FleetPlan:
    """``fleet.plan_from_scenario`` with the trace's arrival times read from its bytes (TraceError if bad)."""
    t_s = None
    if trace is not None:
        t_s = read_arrays(trace, name=trace_name, max_bytes=MAX_TRACE_UPLOAD_BYTES).t_s
    return fleet.plan_from_scenario(scenario, cold_start_s=cold_start_s, trace_t_s=t_s, trace_name=trace_name,
                                    scale_up_utilization=utilization, replicas_down=replicas_down)


@st.cache_data(max_entries=16, show_spinner=False)
def _cached_plan(scenario: Scenario, cold_start_s: float, utilization: float, replicas_down: int,
                 digest: str | None, trace_name: str, _trace: Any) -> fleet.FleetPlan:
    """``compute_plan`` keyed by the trace's SHA-256 (``_trace``, the upload, is read only on a miss)."""
    data = None if _trace is None else _trace.getvalue()
    return compute_plan(scenario, cold_start_s, utilization, replicas_down, data, trace_name)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last+1) of each run of True in ``mask``."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def timeline_figure(p: fleet.FleetPlan, synthetic: bool) -> go.Figure:
    """Demand and ready capacity (requests/s) over the day in hours, the fallback filled in red, and the
    intervals where a launched replica is still starting (the scale-up lag) shaded."""
    tl = p.timeline
    step_h = (float(tl.t_s[1] - tl.t_s[0]) if tl.t_s.size > 1 else fleet.DEFAULT_STEP_S) / 3600
    hours = tl.t_s / 3600
    fig = go.Figure()
    top = float(max(tl.demand.max(initial=0), tl.capacity.max(initial=0))) * 1.05 or 1.0
    for a, b in _runs(tl.scaling)[:200]:  # one rectangle per scale-up (bounded: a noisy trace may flap)
        fig.add_vrect(x0=hours[a], x1=hours[b - 1] + step_h, fillcolor="#ff7f0e", opacity=0.15, line_width=0)
    fig.add_scatter(x=hours, y=tl.capacity, mode="lines", line_shape="hv", name="ready capacity",
                    line={"color": "#2ca02c"})
    fig.add_scatter(x=hours, y=tl.demand, mode="lines", line_shape="hv", name="demand", line={"color": "#1f77b4"})
    if tl.fallback.any():
        fig.add_scatter(x=hours, y=np.minimum(tl.demand, tl.capacity), mode="lines", line_shape="hv",
                        line={"width": 0}, showlegend=False, hoverinfo="skip")
        fig.add_scatter(x=hours, y=tl.demand, mode="lines", line_shape="hv", fill="tonexty", name="to the API",
                        line={"width": 0}, fillcolor="rgba(214,39,40,0.45)")
    fig.add_scatter(x=[None], y=[None], mode="markers", marker={"color": "rgba(255,127,14,0.4)", "symbol": "square",
                    "size": 12}, name=f"replica starting ({p.cold_start_s:,.0f} s cold start)")
    what = "synthetic day (no trace; shape stated below)" if synthetic else "trace, scaled to the scenario's volume"
    fig.update_layout(title=f"Demand vs autoscaled capacity: {what}", xaxis_title="hours",
                      yaxis_title="requests per second", yaxis_range=[0, top], height=380,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.2})
    return fig


def _pct(x: float) -> str:
    return "0%" if x == 0 else f"{x:.3%}" if x < 0.01 else f"{x:.1%}"


def _default_choice(choices: dict[str, tuple[str, float | None]]) -> str:
    """The slowest measured cold start (conservative), else the article's figure."""
    measured = {k: v for k, (_, v) in choices.items() if k.startswith("ref:") and v is not None}
    return max(measured, key=lambda k: measured[k]) if measured else ARTICLE


def _inputs() -> tuple[float, float, int, Any]:
    choices = cold_start_choices()
    if st.session_state.get(COLD_SOURCE_KEY) not in choices:
        st.session_state[COLD_SOURCE_KEY] = _default_choice(choices)
    c = st.columns([3, 1, 1, 1])
    source = c[0].selectbox("Cold start from", list(choices), key=COLD_SOURCE_KEY,
                            format_func=lambda k: choices[k][0],
                            help="Server launch to a healthy /health, as a probe run measured it (cold_start_s); "
                                 "the default is the slowest measured one (conservative)")
    seconds = choices[source][1]
    if seconds is None:
        seconds = c[1].number_input("Cold start, s", min_value=0.0, max_value=7 * 86400.0, step=10.0,
                                    value=fleet.ARTICLE_COLD_START_S, key=COLD_KEY)
    else:
        c[1].metric("Cold start", f"{seconds:,.0f} s")
    utilization = c[2].slider("Scale up at utilization", 0.05, 1.0, fleet.DEFAULT_SCALE_UP_UTILIZATION, 0.05,
                              key=UTILIZATION_KEY, help="the autoscaler adds replicas when demand passes this "
                              "share of the ready replicas' capacity (queue depth as a proxy)")
    down = c[3].number_input("Replicas down (outage)", min_value=0, max_value=1000, value=1, step=1, key=DOWN_KEY)
    upload = st.file_uploader("Demand over time from a trace (Azure CSV, Mooncake JSONL); without one, a synthetic "
                              "day", type=["csv", "jsonl", "json"], key=TRACE_KEY,
                              max_upload_size=MAX_TRACE_UPLOAD_BYTES // 2**20)
    return float(seconds), float(utilization), int(down), upload


def fleet_section(scenario: Scenario) -> None:
    """The section: inputs, the plan's numbers, the timeline chart and the assumptions."""
    st.subheader("Fleet plan")
    st.caption("Replicas behind a load balancer, autoscaled on queue depth, with an API fallback (the seed "
               "article's deployment). One replica's capacity is the scenario's operating point.")
    cold, utilization, down, upload = _inputs()
    digest = name = None
    if upload is not None:
        digest, name = hashlib.sha256(upload.getvalue()).hexdigest(), upload.name
    try:
        p = _cached_plan(scenario, cold, utilization, down, digest, name or "", upload)
    except TraceError as e:
        st.error(f"{name} was not used: {e}")
        p, upload = _cached_plan(scenario, cold, utilization, down, None, "", None), None
    except ValueError as e:
        st.error(f"No fleet plan: {e}")
        return
    m = st.columns(4)
    m[0].metric("Replicas at mean / peak", f"{p.replicas_mean} / {p.replicas_peak}",
                help=f"{p.replica_req_per_s:,.3f} requests/s per replica; mean {p.mean_req_per_s:,.3f}, "
                     f"peak {p.peak_req_per_s:,.3f} requests/s")
    m[1].metric("Headroom for a cold start", f"{p.headroom_replicas} replica(s)",
                help=f"demand can grow {p.rise_req_per_s:,.3f} requests/s within {p.cold_start_s:,.0f} s; "
                     f"{p.replicas_peak_with_headroom} replicas at peak with it; scale up at ≤ "
                     f"{p.headroom_utilization:.0%} utilization to absorb it")
    m[2].metric("Fallback while scaling", _pct(p.scaling_fallback_share),
                help=f"share of requests over ready capacity while replicas start (trigger {utilization:.0%}); "
                     f"{_pct(p.headroom_fallback_share)} with the headroom kept")
    m[3].metric("Fallback cost, $/month", usd(p.scaling_fallback_usd_per_month),
                help="the scaling fallback's requests at the API's price per request")
    o = st.columns(4)
    o[0].metric(f"Fallback, {p.replicas_down} of {p.replicas_peak} down", _pct(p.outage_fallback_share),
                help="share of the day's requests over the remaining replicas' capacity, outage all day")
    o[1].metric("…of peak traffic", _pct(p.outage_fallback_share_at_peak))
    o[2].metric("Outage cost, $ per day down", usd(p.outage_usd_per_day))
    o[3].metric("Autoscaled fleet, mean replicas", f"{p.mean_ready_replicas:,.2f}",
                help="average ready replicas over the day at the trigger (the cost model pays for the peak count)")
    st.plotly_chart(timeline_figure(p, synthetic=upload is None), key="fleet_chart_timeline")
    st.markdown("**Assumptions**\n" + "\n".join(f"- {a}" for a in p.assumptions))
