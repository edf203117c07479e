"""Plotly figures of the Break-even page (curve DataFrames of ``calculators.curves``) and of the Capacity page
(memory per GPU, throughput against concurrency).

Pure functions of their data: no streamlit, so they are cheap to test. Log axes get explicit 1-2-5 ticks
(:func:`ticks_125`) and a number format, never plotly's own minor labels ("2", "5" repeated, "10.95223").
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from calculators.cost import Report, usd_per_mtok_output
from calculators.provenance import pct_text
from calculators.scenario import Scenario

__all__ = ["cost_vs_volume_figure", "usd_per_mtok_figure", "savings_heatmap_figure", "ticks_125", "tick_text",
           "memory_figure", "throughput_figure", "CONCURRENCIES", "tornado_figure",
           "savings_band_figure", "options_cost_figure", "savings_color_range"]

_API = "#1f77b4"
_SELF = "#d62728"
_MARK = "#2ca02c"


def ticks_125(values: list[float]) -> list[float]:
    """1-2-5 ticks spanning the positive ``values`` (for a log axis that would otherwise show one label).

    >>> ticks_125([0.3, 47.0])
    [0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
    """
    pos = [v for v in values if v > 0 and math.isfinite(v)]
    if not pos:
        return []
    lo, hi = math.floor(math.log10(min(pos))), math.ceil(math.log10(max(pos)))
    ticks = [round(m * 10.0**e, 12) for e in range(lo, hi + 1) for m in (1, 2, 5)]
    below = [x for x in ticks if x <= min(pos)]
    above = [x for x in ticks if x >= max(pos)]
    first, last = (below[-1] if below else ticks[0]), (above[0] if above else ticks[-1])
    return [x for x in ticks if first <= x <= last]


def tick_text(v: float) -> str:
    """A tick label: separators from 1,000, no exponent.

    >>> [tick_text(v) for v in (0.2, 5.0, 2000.0, 1e6)]
    ['0.2', '5', '2,000', '1,000,000']
    """
    return f"{v:,.0f}" if v >= 1 else f"{v:g}"


def _log_ticks(values: list[float]) -> dict:
    ticks = ticks_125(values)
    return {"tickvals": ticks, "ticktext": [tick_text(t) for t in ticks]}


def _fast_figure(spec: dict) -> go.Figure:
    """A figure from a spec dict built here, without plotly's per-property validation.

    Build time of a Break-even chart, paid on every input change (plotly 7.1, this 2-core VM, median of 15;
    benchmarks/README.md, App speed): 12-16 ms through plotly's figure API (add_scatter, update_layout), 3.4-8.6
    ms as one spec dict validated, 1.3-5.6 ms as the same dict unvalidated. ``_validate`` is
    plotly's own flag (``BaseFigure.__init__``); the specs are checked instead by tests/unit/test_figures.py,
    which builds each one validated and requires the same JSON. A plotly without the flag gets a validated
    figure (TypeError): slower, the same chart.
    """
    try:
        return go.Figure(spec, _validate=not FAST_FIGURES)
    except TypeError:
        return go.Figure(spec)


FAST_FIGURES = True
"""False builds every spec figure validated (the tests compare both)."""


# Margins wide enough for the $ tick labels (left), the axis title and the legend below (bottom), so plotly's
# automargin has nothing to push: a push makes plotly.js draw the chart a second time, which was a third of the
# browser's work on a Break-even input change (CDP profile: plotly.js 162 -> 101 ms a change; benchmarks/
# README.md, App speed). Automargin still grows a margin a longer label needs: nothing is clipped.
MARGIN = {"l": 80, "r": 20, "t": 40, "b": 120}


def _layout_spec(title: str, x: str, y: str, margin: dict | None = None) -> dict:
    """The layout every chart shares, in plotly's own (validated) form."""
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": x}},
        "yaxis": {"title": {"text": y}},
        "height": 440,
        "margin": dict(margin or MARGIN),
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0.0},
        "hovermode": "x unified",
    }


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(**_layout_spec(title, x, y))
    return fig


def _vline_parts(x: float, text: str, color: str, dash: str, log_x: bool,
                 top: bool = True) -> tuple[dict, dict | None]:
    """A labelled vertical line as (shape, annotation or None): the label above the plot or inside its bottom
    edge. Annotations on a log axis take log10 positions; lines do not (no annotation at x <= 0 on a log axis).
    """
    # the shape add_vline would add, without its per-call scan of every axis
    shape = {"type": "line", "x0": x, "x1": x, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain",
             "line": {"color": color, "dash": dash}}
    if not (x > 0 or not log_x):
        return shape, None
    return shape, {"x": math.log10(x) if log_x else x, "y": 1.0 if top else 0.0, "yref": "paper", "text": text,
                   "showarrow": False, "xanchor": "left", "yanchor": "bottom", "bgcolor": "rgba(255,255,255,0.8)",
                   "font": {"color": color, "size": 11}}


def _vline(fig: go.Figure, x: float, text: str, color: str, dash: str, log_x: bool, top: bool = True) -> None:
    """``_vline_parts`` added to a figure."""
    shape, note = _vline_parts(x, text, color, dash, log_x, top)
    fig.add_shape(**shape)
    if note is not None:
        fig.add_annotation(**note)


def _add_vlines(layout: dict, *lines: tuple) -> dict:
    """``layout`` with each ``_vline_parts`` argument tuple's shape and annotation appended."""
    for args in lines:
        shape, note = _vline_parts(*args)
        layout.setdefault("shapes", []).append(shape)
        if note is not None:
            layout.setdefault("annotations", []).append(note)
    return layout


def cost_vs_volume_figure(df: pd.DataFrame, s: Scenario, report: Report) -> go.Figure:
    """Monthly cost of both sides against requests/day; self-host is a step function (whole replicas):
    the curve data holds a point at each replica edge and one just past it, so plain lines draw the steps.

    Break-even volume is a dashed vertical line; the scenario's own volume a dotted one with markers.
    """
    x = df["requests_per_day"].to_numpy()
    self_host = {"type": "scatter", "x": x, "y": df["self_host_usd_per_month"].to_numpy(), "name": "Self-host",
                 "mode": "lines", "line": {"color": _SELF}}
    if "replicas" in df:
        self_host["customdata"] = df[["replicas"]].to_numpy()
        self_host["hovertemplate"] = "$%{y:,.0f} (%{customdata[0]} replicas)"
    rpd = s.traffic.requests_per_day
    data = [
        {"type": "scatter", "x": x, "y": df["api_usd_per_month"].to_numpy(), "name": "API", "mode": "lines",
         "line": {"color": _API}},
        self_host,
        {"type": "scatter", "x": [rpd, rpd], "y": [report.api.usd_per_month, report.self_host.usd_per_month],
         "mode": "markers", "marker": {"color": [_API, _SELF], "size": 10, "line": {"color": _MARK, "width": 2}},
         "name": "your volume", "showlegend": False},
    ]
    layout = _layout_spec("Monthly cost vs volume", "requests per day", "$ per month")
    log_x = bool((df["requests_per_day"] > 0).all())
    if log_x:
        layout["xaxis"]["type"] = "log"
    if bool((df[["api_usd_per_month", "self_host_usd_per_month"]] > 0).all().all()):
        layout["yaxis"].update(type="log", dtick=1)
    lines = [(rpd, f"you: {rpd:,.0f}/day", _MARK, "dot", log_x, False)]
    be = report.breakeven.requests_per_day
    if be is not None:
        lines.append((be, f"break-even: {be:,.0f}/day", "black", "dash", log_x))
    sus = report.breakeven.sustained_requests_per_day
    if sus is not None and be is not None and sus > be:  # the API is cheaper again in places before it
        lines.append((sus, f"no dearer at every volume from: {sus:,.0f}/day", "black", "dashdot", log_x, False))
    return _fast_figure({"data": data, "layout": _add_vlines(layout, *lines)})


def usd_per_mtok_figure(df: pd.DataFrame, s: Scenario, report: Report) -> go.Figure:
    """A replica's GPU $/M output tokens against average utilization, with the API's $/M-equivalent line.

    GPU cost only (ops and fallback are not in this line; they are in the verdict). The scenario's own
    utilization is a dotted line, with a marker on the curve (``cost.usd_per_mtok_output``) when it is > 0.
    """
    u_axis = df["utilization"].to_numpy()
    mine, api = df["self_host_usd_per_mtok_output"].to_numpy(), df["api_usd_per_mtok_output_equiv"].to_numpy()
    data = [
        {"type": "scatter", "x": u_axis, "y": mine, "name": "Self-host (GPU cost)", "mode": "lines",
         "line": {"color": _SELF}},
        {"type": "scatter", "x": u_axis, "y": api, "name": "API (all tokens, per M output)", "mode": "lines",
         "line": {"color": _API, "dash": "dash"}},
    ]
    ys = [*mine.tolist(), *api.tolist()]
    u = report.self_host.utilization
    if u > 0:
        h = s.self_host
        y = usd_per_mtok_output(
            h.gpu_usd_per_hour, report.self_host.effective_output_tokens_per_s, u, h.gpus_per_replica
        )
        ys.append(y)
        data.append({"type": "scatter", "x": [u], "y": [y], "mode": "markers", "name": f"you: {pct_text(u)} used",
                     "marker": {"color": _MARK, "size": 12, "symbol": "diamond"}})
    layout = _layout_spec("$ per M output tokens vs GPU utilization", "average GPU utilization",
                          "$ per M output tokens", margin={**MARGIN, "r": 30, "b": 140})  # a 3-item legend wraps
    be_u = report.breakeven.utilization
    if be_u is not None and 0 < be_u <= 1:
        _add_vlines(layout, (be_u, f"break-even: {be_u:.0%}", "black", "dash", False))
    layout["xaxis"]["tickformat"] = ".0%"
    layout["yaxis"].update(type="log", tickvals=ticks_125(ys), tickformat="$,.3~g")
    return _fast_figure({"data": data, "layout": layout})


def savings_color_range(z: np.ndarray) -> tuple[float, float]:
    """The heatmap's colour range: centred on 0 (white = no saving), as wide as the data's largest |value|, so
    a +$18k saving on a grid that spans ±$20k reads deep blue rather than pale on a fixed ±$100k scale.

    >>> savings_color_range(np.array([[-5000.0, 18000.0], [2000.0, float("nan")]]))
    (-18000.0, 18000.0)
    >>> savings_color_range(np.array([[0.0]]))  # a flat grid still gets a range
    (-1.0, 1.0)
    """
    finite = np.abs(z[np.isfinite(z)])
    m = float(finite.max()) if finite.size else 0.0
    m = m if m > 0 else 1.0
    return -m, m


@functools.cache
def _rdbu() -> tuple:
    """Plotly.py's "RdBu" as the validator expands it (red low, blue high). Named as a string, plotly.js would
    draw its own RdBu, the other way round: savings would read red."""
    return go.Heatmap(colorscale="RdBu").colorscale


def savings_heatmap_figure(df: pd.DataFrame, s: Scenario, report: Report) -> go.Figure:
    """Monthly savings (API minus self-host) over $/GPU-hour × utilization; blue saves, red loses, white is
    break-even; the colour range is symmetric around 0 and set by the data (``savings_color_range``)."""
    grid = df.pivot_table(index="utilization", columns="gpu_usd_per_hour", values="savings_usd_per_month")
    z = grid.to_numpy(dtype=float)
    zmin, zmax = savings_color_range(z)
    data = [
        {"type": "heatmap", "x": grid.columns.to_numpy(), "y": grid.index.to_numpy(), "z": z, "colorscale": _rdbu(),
         "zmin": zmin, "zmax": zmax, "colorbar": {"title": {"text": "$/month saved"}},
         "hovertemplate": "$%{x:.2f}/GPU-h, %{y:.0%} used: %{z:$,.0f}/month<extra></extra>"},
        {"type": "scatter", "x": [s.self_host.gpu_usd_per_hour], "y": [report.self_host.utilization],
         "mode": "markers", "name": "you",
         "marker": {"color": _MARK, "size": 13, "symbol": "x", "line": {"color": "white", "width": 1}}},
    ]
    layout = _layout_spec("Savings over GPU price × utilization", "$ per GPU-hour", "average GPU utilization",
                          margin={"l": 90, "r": 140, "t": 40, "b": 80})  # the colour bar on the right
    layout["yaxis"]["tickformat"] = ".0%"
    layout["hovermode"] = "closest"
    return _fast_figure({"data": data, "layout": layout})


CONCURRENCIES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def memory_figure(parts: list[tuple[str, float]], usable_gib: float, budget_gib: float) -> go.Figure:
    """One GPU's memory as a stacked bar: ``parts`` (name, GiB) in order, the usable memory and the budget as
    dashed lines. The axis ends just past the larger of the stack and the GPU."""
    fig = go.Figure([go.Bar(name=n, x=[max(v, 0.0)], y=["per GPU"], orientation="h",
                            hovertemplate=f"{n}: %{{x:,.2f}} GiB<extra></extra>") for n, v in parts])
    top = max(usable_gib, sum(max(v, 0.0) for _, v in parts))
    fig.add_vline(x=usable_gib, line={"dash": "dash", "color": "black"})
    fig.add_annotation(x=usable_gib, y=1.0, yref="paper", text=f"{usable_gib:,.1f} GiB on the GPU", showarrow=False,
                       xanchor="right", yanchor="bottom", font={"size": 11})
    fig.add_vline(x=budget_gib, line={"dash": "dot", "color": "grey"})
    fig.update_layout(barmode="stack", height=240, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis={"title": "GiB", "range": [0, top * 1.05], "tickformat": ",.0f"},
                      legend={"orientation": "h", "y": -0.45}, showlegend=True)
    return fig


def throughput_figure(df: pd.DataFrame, kv_streams: int | None,
                      operating_point: tuple[int, float] | None = None) -> go.Figure:
    """Output tokens/s per replica (left) and per stream (right) against concurrent streams (1 to 1,024).

    The caller computes the points at ``min(streams, what vLLM runs at once)``: beyond that the extra requests
    wait in vLLM's queue and the curves stay flat. ``df`` columns: ``concurrency``, ``estimate``, ``ceiling`` (replica tok/s), ``per_stream`` (estimate,
    tok/s per stream). ``kv_streams`` (how many requests of the shape the KV cache holds) is a dashed line when
    it falls inside the chart, else said in the title; ``operating_point`` (streams, tok/s) a marker.
    """
    fig = go.Figure()
    fig.add_scatter(x=df["concurrency"], y=df["ceiling"], name="ceiling (roofline)", mode="lines",
                    line={"dash": "dot", "color": "grey"})
    fig.add_scatter(x=df["concurrency"], y=df["estimate"], name="estimate, all streams", mode="lines+markers",
                    line={"color": _SELF})
    fig.add_scatter(x=df["concurrency"], y=df["per_stream"], name="estimate, per stream (right axis)",
                    mode="lines+markers", yaxis="y2", line={"color": _API, "dash": "dash"})
    lo, hi = float(df["concurrency"].min()), float(df["concurrency"].max())
    title = "Output tokens/s vs concurrent streams"
    if kv_streams is not None and kv_streams >= 1:
        if lo <= kv_streams <= hi:
            _vline(fig, kv_streams, f"KV cache full: {kv_streams:,}", "black", "dash", log_x=True)
        elif kv_streams > hi:
            title += f" (the KV cache holds {kv_streams:,} streams: beyond the chart)"
    if operating_point is not None:
        c, tok_s = operating_point
        fig.add_scatter(x=[c], y=[tok_s], mode="markers", name=f"your point: {c:,} streams",
                        marker={"color": _MARK, "size": 13, "symbol": "diamond"})
    left = [*df["estimate"], *df["ceiling"]]
    right = list(df["per_stream"])
    xt = [c for c in CONCURRENCIES if lo <= c <= hi]
    fig.update_layout(
        title=title, height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10}, hovermode="x unified",
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0.0},
        xaxis={"type": "log", "title": "concurrent streams", "tickvals": xt, "ticktext": [f"{c:,}" for c in xt],
               "range": [math.log10(lo) - 0.05, math.log10(hi) + 0.05]},
        yaxis={"type": "log", "title": "output tokens/s (replica)", **_log_ticks(left)},
        yaxis2={"type": "log", "title": "tokens/s per stream", "overlaying": "y", "side": "right",
                "showgrid": False, **_log_ticks(right)},
    )
    return fig


def tornado_figure(df: pd.DataFrame, base_savings_usd_per_month: float) -> go.Figure:
    """Sensitivity (tornado) of monthly savings: one row per input (``df`` from
    ``ui.uncertainty_view.tornado_frame``, largest swing first, drawn at the top), a bar from the base savings
    to the savings with that input at its low and one to its high, the others at base."""
    fig = go.Figure()
    base = base_savings_usd_per_month
    for col, name, color in (("savings_at_low", "input at its low", _API), ("savings_at_high", "input at its high",
                                                                           _SELF)):
        fig.add_bar(
            y=df["label"], x=df[col] - base, base=base, orientation="h", name=name, marker_color=color,
            customdata=df[["low" if col == "savings_at_low" else "high", col]].to_numpy(),
            hovertemplate="%{y}: %{customdata[0]:,.4~g} gives %{customdata[1]:$,.0f}/month<extra></extra>",
        )
    fig.add_vline(x=base, line={"color": "black", "dash": "dot"}, annotation_text="base",
                  annotation_position="top")
    fig = _layout(fig, "Which input moves the monthly savings most", "savings, $/month (API minus self-host)", "")
    fig.update_layout(barmode="overlay", hovermode="closest", height=max(260, 60 + 40 * len(df)))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickformat="$,.0f")
    return fig


def savings_band_figure(df: pd.DataFrame, requests_per_day: float, breakeven_p5: float | None,
                        breakeven_p95: float | None) -> go.Figure:
    """Monthly savings against requests/day as a p5-p95 band with its median (``df`` from
    ``calculators.uncertainty.savings_band_vs_volume``); above 0 self-hosting saves. The break-even band
    (Monte Carlo p5 to p95 of the first crossing; to the axis end when p95 is "never") is shaded."""
    x = df["requests_per_day"]
    fig = go.Figure()
    fig.add_scatter(x=x, y=df["savings_p95"], mode="lines", line={"width": 0}, name="p95", showlegend=False,
                    hovertemplate="p95 $%{y:,.0f}<extra></extra>")
    fig.add_scatter(x=x, y=df["savings_p5"], mode="lines", line={"width": 0}, fill="tonexty",
                    fillcolor="rgba(31,119,180,0.25)", name="p5 to p95", hovertemplate="p5 $%{y:,.0f}<extra></extra>")
    fig.add_scatter(x=x, y=df["savings_p50"], mode="lines", line={"color": _API}, name="median",
                    hovertemplate="median $%{y:,.0f}<extra></extra>")
    fig.add_hline(y=0, line={"color": "black", "width": 1})
    if breakeven_p5 is not None:
        hi = breakeven_p95 if breakeven_p95 is not None else float(x.max())
        fig.add_vrect(x0=breakeven_p5, x1=max(hi, breakeven_p5), fillcolor="rgba(44,160,44,0.15)", line_width=0,
                      annotation_text="break-even p5 to p95", annotation_position="top left")
    fig = _layout(fig, "Savings vs volume, with the uncertainty band", "requests per day",
                  "savings, $/month (API minus self-host)")
    fig.update_xaxes(type="log")
    fig.update_yaxes(tickformat="$,.0f")
    _vline(fig, requests_per_day, f"you: {requests_per_day:,.0f}/day", _MARK, "dot", True, top=False)
    return fig



_OPTION_PARTS = (("gpu_usd_per_month", "GPUs", _SELF), ("ops_usd_per_month", "Ops (people)", "#ff7f0e"),
                 ("fallback_usd_per_month", "API fallback", "#9467bd"), ("api_usd_per_month", "API", _API))


def options_cost_figure(df: pd.DataFrame) -> go.Figure:
    """Monthly cost per option (``calculators.options.compare_options``'s frame), stacked by component: GPUs,
    ops and API fallback for a self-host option, the API bill for an API option."""
    fig = go.Figure()
    for col, label, color in _OPTION_PARTS:
        y = pd.to_numeric(df[col], errors="coerce").fillna(0.0)
        if (y > 0).any():
            fig.add_bar(x=df["option"], y=y, name=label, marker_color=color,
                        hovertemplate="%{x}: $%{y:,.0f}/month<extra>" + label + "</extra>")
    fig.add_scatter(x=df["option"], y=df["monthly_usd"], mode="text", showlegend=False, textposition="top center",
                    text=[f"${v:,.0f}" for v in df["monthly_usd"]], hoverinfo="skip")
    _layout(fig, "Monthly cost per option", "option", "$ per month (730 h)")
    fig.update_layout(barmode="stack", hovermode="closest")
    return fig
