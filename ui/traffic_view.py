"""Traffic from a trace, on the Break-even page: an upload that fills the scenario's ``[traffic]``, the
trace's arrival rate and length histograms, and a warning when the mean hides a heavy tail.

The summary is computed once per file (``st.cache_data`` keyed by the SHA-256 of its bytes, a few entries
kept) in the upload's callback, which applies it to the scenario; later reruns draw the charts from the
cached, binned data (at most 1,000 rate points and 60 bars a histogram, whatever the trace's length). A
bad file leaves the scenario as it was and shows the reader's one-line error (file and line).

Keys are the page's (``be_trace_*``). The figure builders are pure (no streamlit) and tested directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from calculators.scenario import Scenario
from calculators.traces import MAX_TRACE_UPLOAD_BYTES, TraceError, read_arrays
from calculators.traffic import (
    TrafficShape,
    apply_notes,
    apply_to_scenario,
    arrival_rate,
    heavy_tail_notes,
    length_histogram,
    summarize,
    trace_label,
)
from ui import state

__all__ = [
    "UPLOAD_KEY",
    "TraceView",
    "compute_view",
    "arrival_rate_figure",
    "length_histogram_figure",
    "trace_uploader",
    "traffic_section",
]

UPLOAD_KEY = "be_trace_upload"
_RESULT_KEY = "be_trace_result"  # {"digest", "name", "error", "notes"} of the file in the uploader


@dataclass(frozen=True)
class TraceView:
    """What the page draws for one trace: its shape and the binned chart data."""

    shape: TrafficShape
    rate: pd.DataFrame  # minute (bin start, minutes after the first request), requests_per_s
    input_hist: pd.DataFrame  # tokens_low, tokens_high, requests
    output_hist: pd.DataFrame


def _hist_frame(tokens) -> pd.DataFrame:
    edges, counts = length_histogram(tokens)
    return pd.DataFrame({"tokens_low": edges[:-1], "tokens_high": edges[1:], "requests": counts})


def compute_view(data: bytes, name: str) -> TraceView:
    """Read, summarise and bin an uploaded trace (TraceError on a bad file)."""
    arrays = read_arrays(data, name=name, max_bytes=MAX_TRACE_UPLOAD_BYTES)
    shape = summarize(arrays)
    start, rate = arrival_rate(arrays.t_s, shape.window_s)
    return TraceView(
        shape,
        pd.DataFrame({"minute": start / 60.0, "requests_per_s": rate}),
        _hist_frame(arrays.input_tokens),
        _hist_frame(arrays.output_tokens),
    )


@st.cache_data(max_entries=4, show_spinner="Reading the trace…")
def _cached_view(digest: str, name: str, _upload: Any) -> TraceView:
    """``compute_view`` of the upload's bytes, keyed by their SHA-256 and the name: a rerun neither hashes
    nor copies the bytes (``_upload``, an ``UploadedFile``, is read only on a miss)."""
    return compute_view(_upload.getvalue(), name)


def arrival_rate_figure(view: TraceView) -> go.Figure:
    """Requests/s per bin over the trace, with the mean rate and the peak window's rate as lines."""
    s = view.shape
    width_s = (view.rate["minute"].iloc[1] - view.rate["minute"].iloc[0]) * 60 if len(view.rate) > 1 else s.window_s
    fig = go.Figure()
    fig.add_scatter(x=view.rate["minute"], y=view.rate["requests_per_s"], mode="lines", line_shape="hv",
                    name=f"requests/s per {width_s:,.0f} s", line={"color": "#1f77b4"})
    mean = s.requests_per_day / 86_400
    fig.add_hline(y=mean, line_dash="dot", line_color="#2ca02c", annotation_text=f"mean {mean:,.2f}/s")
    peak = s.peak_window_requests / s.window_s
    fig.add_hline(y=peak, line_dash="dash", line_color="#d62728",
                  annotation_text=f"peak {s.window_s:g} s window {peak:,.2f}/s ({s.peak_to_mean:.2f}× mean)")
    fig.update_layout(title="Arrival rate over time", xaxis_title="minutes after the first request",
                      yaxis_title="requests per second", height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      showlegend=False)
    return fig


def length_histogram_figure(hist: pd.DataFrame, kind: str, mean: float, p99: float) -> go.Figure:
    """Requests per length bin (log count axis, so the tail shows), with the mean and p99 marked."""
    fig = go.Figure()
    fig.add_bar(x=(hist["tokens_low"] + hist["tokens_high"]) / 2, y=hist["requests"],
                width=hist["tokens_high"] - hist["tokens_low"], marker_color="#7f7f7f", name=kind)
    fig.add_vline(x=mean, line_dash="dot", line_color="#2ca02c", annotation_text=f"mean {mean:,.0f}")
    fig.add_vline(x=p99, line_dash="dash", line_color="#d62728", annotation_text=f"p99 {p99:,.0f}",
                  annotation_position="top left")
    fig.update_layout(title=f"{kind.capitalize()} tokens per request", xaxis_title=f"{kind} tokens",
                      yaxis_title="requests", yaxis_type="log", height=320, bargap=0,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=False)
    return fig


def _on_upload() -> None:
    f = st.session_state.get(UPLOAD_KEY)
    if f is None:
        st.session_state.pop(_RESULT_KEY, None)
        return
    data = f.getvalue()
    result = {"digest": hashlib.sha256(data).hexdigest(), "name": f.name, "error": None, "notes": []}
    try:
        view = _cached_view(result["digest"], f.name, f)
        scenario = state.get_scenario()
        state.set_scenario(apply_to_scenario(scenario, view.shape))
        result["notes"] = apply_notes(scenario, view.shape)
    except ValueError as e:  # TraceError names the file and line; a scenario limit names the field
        result["error"] = f"{f.name} was not used: {e}"
    st.session_state[_RESULT_KEY] = result


def trace_uploader() -> None:
    """The upload (in the Traffic inputs): a trace fills requests/day, lengths, peak and cached share."""
    st.file_uploader(
        "…or fill from a trace (Azure CSV, Mooncake JSONL)",
        type=["csv", "jsonl", "json"],
        key=UPLOAD_KEY,
        on_change=_on_upload,
        max_upload_size=MAX_TRACE_UPLOAD_BYTES // 2**20,
        help="Arrival times and token counts of real requests: an Azure LLM inference CSV "
        "(TIMESTAMP,ContextTokens,GeneratedTokens) or a Mooncake JSONL (timestamp in ms, input_length, "
        "output_length, hash_ids). The file stays in this session; only its summary enters the scenario.",
    )
    result = st.session_state.get(_RESULT_KEY)
    if result and result["error"]:
        st.error(result["error"])


def _view() -> TraceView | None:
    """The uploaded trace's view, if the uploader holds a file that was read without error."""
    result = st.session_state.get(_RESULT_KEY)
    f = st.session_state.get(UPLOAD_KEY)
    if not result or result["error"] or f is None or f.name != result["name"]:
        return None
    try:
        return _cached_view(result["digest"], result["name"], f)
    except TraceError:
        return None


def traffic_section(scenario: Scenario) -> None:
    """Charts of the uploaded trace and the heavy-tail warning of the scenario's traffic (also when the
    traffic came from a trace in a link or a scenario file, without the trace itself)."""
    t = scenario.traffic
    if not t.trace_name:
        return  # typed-in traffic (or another scenario loaded since the upload)
    view = _view()
    if view is not None and trace_label(view.shape.trace_name) != t.trace_name:
        view = None  # the uploader holds another trace than the scenario's
    st.subheader(f"Traffic from trace {t.trace_name}")
    if t.input_tokens_p50 is not None:
        st.caption(
            f"Input tokens p50 / p90 / p99: {t.input_tokens_p50:,.0f} / {t.input_tokens_p90:,.0f} / "
            f"{t.input_tokens_p99:,.0f} (mean {t.input_tokens:,.0f}); output tokens: {t.output_tokens_p50:,.0f} / "
            f"{t.output_tokens_p90:,.0f} / {t.output_tokens_p99:,.0f} (mean {t.output_tokens:,.0f})."
        )
    for note in heavy_tail_notes(t):
        st.warning(note)
    result = st.session_state.get(_RESULT_KEY) or {}
    if view is not None:
        for note in result.get("notes", []):
            st.info(note)
        s = view.shape
        c = st.columns(4)
        c[0].metric("Requests in trace", f"{s.requests:,}", help=f"over {s.duration_s / 60:,.1f} minutes")
        c[1].metric("Requests per day", f"{s.requests_per_day:,.0f}", help="mean rate × 86,400")
        c[2].metric("Peak-to-mean", f"{s.peak_to_mean:.2f}", help=f"busiest {s.window_s:g} s window ÷ mean rate")
        c[3].metric("Prefix reuse", "n/a" if s.prefix_reuse_fraction is None else f"{s.prefix_reuse_fraction:.1%}",
                    help="share of prompt tokens in a leading run of 512-token blocks seen earlier in the trace "
                         "(Mooncake hash ids); becomes the cached share of input")
        st.plotly_chart(arrival_rate_figure(view), key="be_trace_rate")
        cols = st.columns(2)
        with cols[0]:
            st.plotly_chart(length_histogram_figure(view.input_hist, "input", s.input_tokens, s.input_tokens_p99),
                            key="be_trace_input_hist")
        with cols[1]:
            st.plotly_chart(length_histogram_figure(view.output_hist, "output", s.output_tokens,
                                                    s.output_tokens_p99), key="be_trace_output_hist")
    else:
        st.caption("Upload the trace again to see its arrival rate and length histograms.")
