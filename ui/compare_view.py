"""Compare runs on the Results page: throughput and latency against concurrency, one line per run, and the
compact runs table (GPU, model, request shape, best tok/s, date, host).

Frames and figures are pure functions (of :func:`probes.results.compare.compare_rows`); :func:`show_compare`
and :func:`show_table` render them with Streamlit (keys ``cmp_``, the Results page's ``res_table``). The
concurrency axis is logarithmic and its ticks are the concurrencies measured (``1, 8, 32, 128``), never
plotly's own ``2, 5, 10`` or ``1e3`` labels; latency is on a log axis with 1-2-5 ticks (it grows tenfold and
more past saturation).

>>> runs = [("store:1", {"gpu": {"name": "NVIDIA L4"}, "points": [{"concurrency": c, "output_tokens_per_s": 10.0 * c,
...          "ttft_ms": {"median": 5.0 * c, "p99": 9.0 * c}} for c in (1, 4)]}),
...         ("store:2", {"gpu": {"name": "NVIDIA L4", "count": 2}, "server": {"serve_args": ["-tp", "2"]},
...          "points": [{"concurrency": 2, "output_tokens_per_s": 60.0, "ttft_ms": {"p99": 4.0}}]})]
>>> df = compare_frame(runs)
>>> fig = throughput_figure(df, per_gpu=True)
>>> [(t.name, t.y.tolist()) for t in fig.data]
[('L4 · model ? · ? · undated · #1', [10.0, 40.0]), ('2× L4 · model ? · ? · undated · #2', [30.0])]
>>> list(fig.layout.xaxis.tickvals)
[1, 2, 4]
>>> [t.y.tolist() for t in latency_figure(df, "ttft_ms", "p99").data]
[[9.0, 36.0], [4.0]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative

from calculators.figures import tick_text, ticks_125
from probes.results.compare import LATENCY_METRICS, PERCENTILES, ROW_KEYS, compare_rows

__all__ = [
    "RUNS_KEY",
    "compare_frame",
    "best_frame",
    "concurrency_ticks",
    "concurrency_axis",
    "throughput_figure",
    "latency_figure",
    "table_frame",
    "TABLE_COLUMNS",
    "show_table",
    "show_compare",
]

RUNS_KEY = "cmp_runs"
_LABELS_KEY = "cmp_labels"  # key -> label of every run ever offered this session (a pick survives a page change)
_COLORS = qualitative.Plotly
TABLE_COLUMNS = ("run", "GPU", "model", "shape", "best tok/s", "date", "host", "status")
_TABLE_WIDTHS_PX = {"run": 52, "GPU": 140, "model": 180, "shape": 80, "best tok/s": 80, "date": 88, "host": 90,
                    "status": 70}


def compare_frame(runs: Sequence[tuple[str, Mapping[str, Any]]], *,
                  hosts: Mapping[str, str | None] | None = None) -> pd.DataFrame:
    """One row per measured point of each run (columns :data:`probes.results.compare.ROW_KEYS`)."""
    return pd.DataFrame(compare_rows(runs, hosts=hosts), columns=list(ROW_KEYS))


def best_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Each run's highest-throughput point: run, GPUs, concurrency, output tok/s, per GPU, TTFT and TPOT p99.

    >>> df = pd.DataFrame({"run": ["a", "a"], "gpus": [2, 2], "concurrency": [1, 8], "output_tokens_per_s":
    ...     [5.0, 30.0], "output_tokens_per_s_per_gpu": [2.5, 15.0], "ttft_ms_p99": [1.0, 4.0], "tpot_ms_p99": [1, 2]})
    >>> best_frame(df).to_dict("records")[0]["at concurrency"]
    8
    """
    if df.empty:
        return pd.DataFrame(columns=["run", "GPUs", "at concurrency", "output tok/s", "per GPU", "TTFT p99 ms",
                                     "TPOT p99 ms"])
    best = df.loc[df.groupby("run", sort=False)["output_tokens_per_s"].idxmax()]
    return pd.DataFrame({
        "run": best["run"], "GPUs": best["gpus"], "at concurrency": best["concurrency"],
        "output tok/s": best["output_tokens_per_s"], "per GPU": best["output_tokens_per_s_per_gpu"],
        "TTFT p99 ms": best["ttft_ms_p99"], "TPOT p99 ms": best["tpot_ms_p99"],
    }).reset_index(drop=True)


def concurrency_ticks(values: Sequence[float], max_ticks: int = 12) -> list[int]:
    """The measured concurrencies to label on a log axis: all of them when there are at most ``max_ticks``,
    else the smallest, the largest and those at least an even log step apart (labels never overlap).

    >>> concurrency_ticks([32, 1, 8, 128, 8])
    [1, 8, 32, 128]
    >>> concurrency_ticks(range(1, 101), max_ticks=5)
    [1, 4, 13, 100]
    """
    found = sorted({int(v) for v in values if isinstance(v, int | float) and math.isfinite(v) and v >= 1})
    if len(found) <= max_ticks:
        return found
    step = math.log(found[-1] / found[0]) / (max_ticks - 1)
    kept = [found[0]]
    for v in found[1:-1]:
        if math.log(v / kept[-1]) >= step * 0.999 and math.log(found[-1] / v) >= step * 0.999:
            kept.append(v)
    return [*kept, found[-1]]


def concurrency_axis(values: Sequence[float], title: str = "concurrency (streams)") -> dict[str, Any]:
    """A plotly x-axis: log scale, ticks at the measured concurrencies (``1,024`` style), a little margin.

    >>> concurrency_axis([1, 8, 128])["ticktext"]
    ['1', '8', '128']
    """
    ticks = concurrency_ticks(values)
    axis: dict[str, Any] = {"type": "log", "title": title, "tickvals": ticks,
                            "ticktext": [f"{t:,}" for t in ticks], "minor": {"showgrid": False}}
    if ticks:
        pad = 0.08 if ticks[-1] > ticks[0] else 0.3
        axis["range"] = [math.log10(ticks[0]) - pad, math.log10(ticks[-1]) + pad]
    return axis


def _runs(df: pd.DataFrame, y: str) -> list[tuple[int, str, pd.DataFrame]]:
    """(colour index, label, that run's points with a ``y`` value, by concurrency) in first-seen order."""
    out = []
    for i, label in enumerate(dict.fromkeys(df["run"])):
        part = df[(df["run"] == label) & df[y].notna()].sort_values("concurrency")
        out.append((i, label, part))
    return out


def _figure(df: pd.DataFrame, y: str, title: str, y_title: str, hover: str) -> go.Figure:
    fig = go.Figure()
    shown = []
    for i, label, part in _runs(df, y):
        if part.empty:
            continue
        shown.append(part)
        fig.add_scatter(x=part["concurrency"], y=part[y], name=label, mode="lines+markers",
                        line={"color": _COLORS[i % len(_COLORS)]}, marker={"size": 8},
                        hovertemplate=f"{label}<br>c=%{{x:,}}: {hover}<extra></extra>")
    xs = [c for part in shown for c in part["concurrency"]]
    fig.update_layout(title={"text": title}, height=400, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      hovermode="closest", xaxis=concurrency_axis(xs), yaxis={"title": y_title},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0.0, "font": {"size": 11}})
    return fig


def throughput_figure(df: pd.DataFrame, *, per_gpu: bool = True) -> go.Figure:
    """Output tok/s (per GPU, or per replica) against concurrency, one line per run; runs without a per-GPU
    value (CPU) are left out of the per-GPU chart."""
    y = "output_tokens_per_s_per_gpu" if per_gpu else "output_tokens_per_s"
    fig = _figure(df, y, "Output throughput vs concurrency" + (" (per GPU)" if per_gpu else " (per replica)"),
                  "output tokens/s per GPU" if per_gpu else "output tokens/s per replica", "%{y:,.0f} tok/s")
    fig.update_yaxes(rangemode="tozero", tickformat=",.0f")
    return fig


def latency_figure(df: pd.DataFrame, metric: str, percentile: str) -> go.Figure:
    """``metric`` (``ttft_ms`` or ``tpot_ms``) at ``percentile`` (``p50``, ``p90``, ``p99``) against
    concurrency, one line per run, on a log axis with 1-2-5 ticks."""
    if metric not in LATENCY_METRICS or percentile not in PERCENTILES:
        raise ValueError(f"metric must be one of {', '.join(LATENCY_METRICS)} and percentile one of "
                         f"{', '.join(PERCENTILES)}, got {metric!r}, {percentile!r}")
    y = f"{metric}_{percentile}"
    name = LATENCY_METRICS[metric]
    fig = _figure(df, y, f"{name} {percentile} vs concurrency", f"{name} {percentile}, ms (log)",
                  f"{name} {percentile} %{{y:,.1f}} ms")
    ticks = ticks_125([float(v) for v in df[y].dropna()])
    fig.update_yaxes(type="log", tickvals=ticks, ticktext=[tick_text(t) for t in ticks])
    return fig


def table_frame(table_rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The Results table (columns :data:`TABLE_COLUMNS`) of :func:`probes.results.compare.table_row` rows; best
    tok/s to a whole token.

    >>> table_frame([{"run": "#1", "best tok/s": 7329.086}])["best tok/s"].tolist()
    [7329.0]
    """
    df = pd.DataFrame(list(table_rows), columns=list(TABLE_COLUMNS))
    df["best tok/s"] = pd.to_numeric(df["best tok/s"], errors="coerce").round(0)
    return df


def show_table(table_rows: Sequence[Mapping[str, Any]], *, key: str = "res_table") -> None:
    """The compact runs table: its columns (:data:`_TABLE_WIDTHS_PX`, 780 px in all) fit the main column of a
    1,280-pixel window with the sidebar open, so nothing needs a horizontal scroll."""
    help_text = {"run": "#id: a stored run; ref: a reference run shipped with the app",
                 "model": "without its organisation (meta-llama/…)",
                 "shape": "input/output tokens per request (~: lengths vary)",
                 "best tok/s": "best output tokens/s of the run (one replica)", "date": "created, UTC"}
    config: dict[str, Any] = {c: st.column_config.TextColumn(c, width=w, help=help_text.get(c))
                              for c, w in _TABLE_WIDTHS_PX.items()}
    config["best tok/s"] = st.column_config.NumberColumn("best tok/s", width=_TABLE_WIDTHS_PX["best tok/s"],
                                                         format="localized", help=help_text["best tok/s"])
    st.dataframe(table_frame(table_rows), hide_index=True, key=key, width="stretch", column_config=config)


def show_compare(options: Mapping[str, str], load: Callable[[Sequence[str]], list[tuple[str, Mapping[str, Any]]]],
                 *, default: Sequence[str] = ()) -> None:
    """The "Compare runs" section: a multiselect of ``options`` (run key -> label; runs picked earlier stay
    offered), preset once per session to ``default``; ``load(keys)`` returns the picked runs that exist."""
    labels: dict[str, str] = st.session_state.setdefault(_LABELS_KEY, {})
    labels.update(options)
    if RUNS_KEY not in st.session_state:
        st.session_state[RUNS_KEY] = [k for k in default if k in options]
    picked = [k for k in st.session_state[RUNS_KEY] if k in labels]
    st.session_state[RUNS_KEY] = picked
    choices = list(dict.fromkeys([*picked, *options]))
    st.multiselect("Runs to compare", choices, key=RUNS_KEY, format_func=lambda k: labels.get(k, k),
                   placeholder="pick two or more runs")
    c = st.columns([1, 1, 1, 3])
    per_gpu = c[0].toggle("Per GPU", value=True, key="cmp_per_gpu",
                          help="divide by the replica's GPUs (tensor parallel size) times its replicas")
    metric = c[1].selectbox("Latency", list(LATENCY_METRICS), key="cmp_metric", format_func=LATENCY_METRICS.get)
    pct = c[2].selectbox("Percentile", list(PERCENTILES), index=2, key="cmp_pct")
    keys = list(st.session_state[RUNS_KEY])
    if not keys:
        st.caption("Pick runs above to draw them side by side.")
        return
    runs = load(keys)
    missing = [labels.get(k, k) for k in keys if k not in {key for key, _ in runs}]
    if missing:
        st.warning("No longer in the store: " + "; ".join(missing))
    df = compare_frame(runs)
    if df.empty:
        st.info("The runs picked have no point measured at a fixed concurrency.")
        return
    if per_gpu and df["output_tokens_per_s_per_gpu"].isna().any():
        st.caption("Runs without a GPU (CPU) have no per-GPU throughput: turn off *Per GPU* to see them.")
    if df[f"{metric}_{pct}"].isna().all():
        st.caption(f"No run picked recorded {LATENCY_METRICS[metric]} {pct}: try another percentile.")
    left, right = st.columns(2)
    left.plotly_chart(throughput_figure(df, per_gpu=per_gpu), key="cmp_chart_tps")
    right.plotly_chart(latency_figure(df, metric, pct), key="cmp_chart_latency")
    best = best_frame(df).round({"output tok/s": 0, "per GPU": 0, "TTFT p99 ms": 1, "TPOT p99 ms": 1})
    num = st.column_config.NumberColumn
    st.dataframe(best, hide_index=True, key="cmp_best", width="stretch", column_config={  # fits 1,280 px
        "run": st.column_config.TextColumn("run", width=300), "GPUs": num("GPUs", width=50),
        "at concurrency": num("at c", width=55, help="the concurrency of the run's best throughput"),
        "output tok/s": num("output tok/s", width=80, format="localized"),
        "per GPU": num("per GPU", width=75, format="localized"),
        "TTFT p99 ms": num("TTFT p99 ms", width=85, format="localized"),
        "TPOT p99 ms": num("TPOT p99 ms", width=85, format="localized")})
