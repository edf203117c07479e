"""One probe run on screen: its points table, charts, server metrics and the "use in break-even" button.

Shared by the Probe page (a run that just finished, or the live partial run) and the Results page (stored
and reference runs). Frames and figures are pure functions of the run JSON (built on
:mod:`probes.results.reference`); :func:`show_run` renders them with Streamlit, widget keys prefixed by ``key``.
The Results page's listing helpers (:func:`run_filter`, :func:`stored_rows`, :func:`page_count`) are pure too.

>>> run = {"points": [{"concurrency": 1, "output_tokens_per_s": 10.0, "ttft_ms": {"median": 5.0, "p99": 9.0}},
...                   {"concurrency": 4, "output_tokens_per_s": 30.0, "ttft_ms": {"median": 8.0, "p99": 20.0}}]}
>>> list(points_frame(run)["output tok/s"])
[10.0, 30.0]
>>> [t.name for t in latency_figure(run, "ttft_ms").data]
['TTFT median', 'TTFT p99']
>>> energy_figure(run) is None
True
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from probes.results import reference
from probes.results.store import RunFilter

__all__ = [
    "POINT_COLUMNS",
    "points_frame",
    "server_frame",
    "bench_frame",
    "throughput_figure",
    "latency_figure",
    "energy_figure",
    "point_label",
    "show_charts",
    "show_run",
    "use_point_panel",
    "run_filter",
    "stored_rows",
    "page_count",
    "FILTER_PARAMS",
    "filter_params",
    "filter_state_from_params",
]

# Results-page filter widget key -> URL query key (prefixed: the scenario owns short keys such as ``gpu``)
FILTER_PARAMS = {"res_f_hosts": "res_host", "res_f_gpus": "res_gpu", "res_f_models": "res_model"}

# run-JSON row key -> column heading
POINT_COLUMNS = {
    "concurrency": "concurrency",
    "output_tokens_per_s": "output tok/s",
    "requests_per_s": "requests/s",
    "ttft_ms_median": "TTFT median ms",
    "ttft_ms_p99": "TTFT p99 ms",
    "tpot_ms_median": "TPOT median ms",
    "tpot_ms_p99": "TPOT p99 ms",
    "itl_ms_median": "ITL median ms",
    "e2el_ms_median": "E2E median ms",
    "completed": "completed",
    "failed": "failed",
    "power_w_mean": "GPU power mean W",
    "j_per_output_token": "J per output token",
}
_SERVER_COLUMNS = {
    "concurrency": "concurrency",
    "kv_cache_usage_peak": "KV cache peak",
    "preemptions": "preemptions",
    "requests_running_max": "running max",
    "requests_waiting_max": "waiting max",
    "prefix_cache_hit_rate": "prefix-cache hit rate",
    "kv_cache_size_tokens": "KV cache size (tokens)",
}
_METRIC_NAMES = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "itl_ms": "ITL", "e2el_ms": "E2E latency"}


def points_frame(run: Mapping[str, Any]) -> pd.DataFrame:
    """The per-point table (columns :data:`POINT_COLUMNS`; all-empty power columns are dropped)."""
    df = pd.DataFrame(reference.point_rows(run), columns=list(POINT_COLUMNS)).rename(columns=POINT_COLUMNS)
    return df.drop(columns=[c for c in ("GPU power mean W", "J per output token") if df[c].isna().all()])


def server_frame(run: Mapping[str, Any]) -> pd.DataFrame:
    """vLLM ``/metrics`` per point (empty when the run has none)."""
    return pd.DataFrame(reference.server_rows(run), columns=list(_SERVER_COLUMNS)).rename(columns=_SERVER_COLUMNS)


def bench_frame(run: Mapping[str, Any], bench: Mapping[str, Any]) -> pd.DataFrame:
    """Probe vs ``vllm bench serve`` at the same concurrencies (``diff`` = (probe - bench) / bench)."""
    return pd.DataFrame(reference.bench_rows(run, bench))


def run_filter(hosts: Iterable[str] = (), gpus: Iterable[str] = (), models: Iterable[str] = (),
               dates: Sequence[dt.date] | dt.date | None = ()) -> RunFilter:
    """The store filter of the Results page's widgets; ``dates`` is the date input's value: nothing, one day (from
    that day on) or a (first, last) range, inclusive.

    >>> f = run_filter(hosts=["a"], dates=(dt.date(2026, 12, 1), dt.date(2026, 12, 3)))
    >>> (f.hosts, f.since, f.until)
    (('a',), datetime.date(2026, 12, 1), datetime.date(2026, 12, 3))
    """
    if isinstance(dates, dt.date):
        dates = (dates,)
    days = [d for d in (dates or ()) if isinstance(d, dt.date)]
    return RunFilter(hosts=tuple(hosts), gpus=tuple(gpus), models=tuple(models),
                     since=days[0] if days else None, until=days[1] if len(days) > 1 else None)


def filter_params(f: RunFilter) -> dict[str, list[str]]:
    """The URL query params of a filter (repeated keys for several values; empty lists to remove).

    >>> filter_params(RunFilter(hosts=("a", "b"), since=dt.date(2026, 12, 1)))["res_host"]
    ['a', 'b']
    """
    return {"res_host": list(f.hosts), "res_gpu": list(f.gpus), "res_model": list(f.models),
            "res_since": [f.since.isoformat()] if f.since else [], "res_until": [f.until.isoformat()] if f.until else []}


def filter_state_from_params(params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Session-state values of the filter widgets from URL query params (``key -> all its values``); dates that
    do not parse are ignored (a shared link never breaks the page).

    >>> filter_state_from_params({"res_host": ["a"], "res_since": ["2026-12-01"], "res_until": ["nope"]})
    {'res_f_hosts': ['a'], 'res_f_dates': (datetime.date(2026, 12, 1),)}
    """
    state: dict[str, Any] = {key: list(params[q]) for key, q in FILTER_PARAMS.items() if params.get(q)}
    days = []
    for key in ("res_since", "res_until"):
        try:
            days.append(dt.date.fromisoformat(str((params.get(key) or [""])[0])))
        except ValueError:
            break  # no since: an until alone is not a range the date input can show
    if days:
        state["res_f_dates"] = tuple(days)
    return state


def stored_rows(runs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Results table's rows of stored runs (the store's listing dicts).

    >>> stored_rows([{"id": 3, "host": "box", "model": "m", "gpu": "H100", "weights": "real", "status": "complete",
    ...               "points": 2, "best_output_tokens_per_s": 9.0, "created_at": "2026-12-01T00:00:00Z"}])[0]["run"]
    'store:3'
    """
    return [{"run": f"store:{r['id']}", "source": "stored", "host": r.get("host"), "model": r["model"],
             "gpu": r["gpu"], "weights": r["weights"], "status": r["status"], "points": r["points"],
             "best output tok/s": r["best_output_tokens_per_s"], "created": r["created_at"]} for r in runs]


def page_count(total: int, page_size: int) -> int:
    """Pages needed for ``total`` rows (at least 1, so an empty listing still has page 1).

    >>> page_count(0, 50), page_count(50, 50), page_count(10_001, 50)
    (1, 1, 201)
    """
    return max(1, math.ceil(total / page_size))


def _xy(run: Mapping[str, Any], key: str) -> tuple[list[Any], list[Any]]:
    rows = [r for r in reference.point_rows(run) if r[key] is not None]
    return [r["concurrency"] for r in rows], [r[key] for r in rows]


def _layout(fig: go.Figure, title: str, y_title: str) -> go.Figure:
    from ui.compare_view import concurrency_axis  # noqa: PLC0415 - ticks at the measured concurrencies
    fig.update_layout(title=dict(text=title), xaxis=concurrency_axis([x for t in fig.data for x in t.x or ()]),
                      yaxis=dict(title=y_title), height=340, margin=dict(t=50, b=30),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def throughput_figure(run: Mapping[str, Any], bench: Mapping[str, Any] | None = None) -> go.Figure:
    """Output tok/s vs concurrency (and ``vllm bench serve``'s, dashed, when given)."""
    fig = go.Figure()
    fig.add_scatter(x=_xy(run, "output_tokens_per_s")[0], y=_xy(run, "output_tokens_per_s")[1],
                    name="probe", mode="lines+markers")
    if bench is not None:
        x, y = _xy(bench, "output_tokens_per_s")
        fig.add_scatter(x=x, y=y, name="vllm bench serve", mode="markers", marker=dict(symbol="x", size=11))
    return _layout(fig, "Output throughput vs concurrency", "output tokens/s")


def latency_figure(run: Mapping[str, Any], metric: str) -> go.Figure:
    """Median and p99 of ``metric`` (``ttft_ms``, ``tpot_ms``, ``itl_ms`` or ``e2el_ms``) vs concurrency."""
    if metric not in _METRIC_NAMES:
        raise ValueError(f"metric must be one of {', '.join(_METRIC_NAMES)}, got {metric!r}")
    fig = go.Figure()
    for stat, dash in (("median", "solid"), ("p99", "dash")):
        rows = [(p.get("concurrency"), (p.get(metric) or {}).get(stat)) for p in run.get("points") or []]
        rows = [(c, v) for c, v in rows if isinstance(v, int | float)]
        fig.add_scatter(x=[c for c, _ in rows], y=[v for _, v in rows], name=f"{_METRIC_NAMES[metric]} {stat}",
                        mode="lines+markers", line=dict(dash=dash))
    return _layout(fig, f"{_METRIC_NAMES[metric]} vs concurrency", f"{_METRIC_NAMES[metric]} ms")


def energy_figure(run: Mapping[str, Any]) -> go.Figure | None:
    """GPU energy per output token vs concurrency; None when the run recorded no energy."""
    x, y = _xy(run, "j_per_output_token")
    if not x:
        return None
    fig = go.Figure()
    fig.add_scatter(x=x, y=y, name="J per output token", mode="lines+markers")
    return _layout(fig, "GPU energy per output token", "joules per output token")


def point_label(point: Mapping[str, Any]) -> str:
    """How a point reads in the picker.

    >>> point_label({"concurrency": 8, "output_tokens_per_s": 1114.26, "tpot_ms": {"p99": 6.9}})
    'c=8: 1,114 output tok/s (TPOT p99 6.9 ms)'
    """
    tps = point.get("output_tokens_per_s")
    tpot = (point.get("tpot_ms") or {}).get("p99")
    text = f"c={point.get('concurrency')}: " + (f"{tps:,.0f} output tok/s" if isinstance(tps, int | float) else "no throughput")
    return text + (f" (TPOT p99 {tpot:.1f} ms)" if isinstance(tpot, int | float) else "")


def show_charts(run: Mapping[str, Any], *, key: str, bench: Mapping[str, Any] | None = None) -> None:
    """Throughput and latency (and energy, when recorded) vs concurrency."""
    left, right = st.columns(2)
    left.plotly_chart(throughput_figure(run, bench), key=f"{key}_chart_tps")
    right.plotly_chart(latency_figure(run, "ttft_ms"), key=f"{key}_chart_ttft")
    left, right = st.columns(2)
    left.plotly_chart(latency_figure(run, "tpot_ms"), key=f"{key}_chart_tpot")
    energy = energy_figure(run)
    if energy is not None:
        right.plotly_chart(energy, key=f"{key}_chart_energy")


def use_point_panel(run: Mapping[str, Any], *, key: str, run_name: str) -> None:
    """Pick a point (the best one preselected) and put its throughput into the break-even scenario."""
    points = [p for p in run.get("points") or [] if (p.get("output_tokens_per_s") or 0) > 0]
    if not points:
        st.caption("No point with a throughput to use in the break-even.")
        return
    best = reference.best_index({**run, "points": points})
    gpu_name = (run.get("gpu") or {}).get("name") if isinstance(run.get("gpu"), Mapping) else None
    gpu_id = reference.gpu_catalog_id(gpu_name)
    tp = reference.tensor_parallel_size(run)
    i = st.selectbox("Operating point", range(len(points)), index=best, key=f"{key}_point",
                     format_func=lambda j: point_label(points[j]) + (" — best" if j == best else ""))
    if st.button("Use this operating point in the break-even", key=f"{key}_use"):
        from ui.state import apply_operating_point  # noqa: PLC0415 - only on click

        point = points[int(i)]
        try:
            apply_operating_point(output_tokens_per_s=round(float(point["output_tokens_per_s"]), 1),
                                  source=reference.operating_point_source(run_name, point),
                                  gpu=gpu_id, gpus_per_replica=tp)
        except ValueError as exc:
            st.error(f"Not applied: {exc}")
        else:
            st.success(f"Applied: the Break-even page now uses {point['output_tokens_per_s']:,.0f} output tok/s "
                       f"per replica ({tp} × {gpu_id or 'the scenario GPU'}).")
    if gpu_id is None:
        st.caption(f"GPU {gpu_name or 'not recorded'}: not in the GPU catalog, so the scenario's GPU is kept.")


def show_run(run: Mapping[str, Any], *, key: str, run_name: str, bench: Mapping[str, Any] | None = None,
             use_button: bool = True) -> None:
    """Everything about one run: status, error, notes, points table, charts, server metrics, vLLM bench
    side by side (when ``bench`` is given) and the "use in break-even" panel."""
    status = run.get("status")
    if run.get("error"):
        st.error(f"Run {status}: {run['error']}")
    elif status in ("partial", "interrupted"):
        st.warning(f"Run {status}: the points below are what was measured.")
    gpu = run.get("gpu") or {}
    st.caption(f"{run.get('model')} · {run.get('weights')} weights · vLLM {run.get('vllm_version') or '?'} · "
               f"GPU: {gpu.get('name') or 'none recorded'}"
               + (f" × {gpu.get('count')}" if gpu.get("count", 1) != 1 else "")
               + (f" · cold start {run['cold_start_s']:.0f} s" if run.get("cold_start_s") else "")
               + f" · workload {json.dumps(run.get('workload') or {})}")
    if not run.get("points"):
        st.info("No measured point.")
        return
    st.dataframe(points_frame(run).round(2), hide_index=True, key=f"{key}_points")
    show_charts(run, key=key, bench=bench)
    servers = server_frame(run)
    if not servers.empty:
        st.subheader("Server metrics (vLLM /metrics)")
        st.dataframe(servers, hide_index=True, key=f"{key}_server",
                     column_config={c: st.column_config.NumberColumn(format="percent")
                                    for c in ("KV cache peak", "prefix-cache hit rate")})
    if bench is not None:
        both = bench_frame(run, bench)
        if not both.empty:
            st.subheader("Probe vs vllm bench serve (same server, same workload)")
            st.dataframe(both.round(4), hide_index=True, key=f"{key}_bench",
                         column_config={c: st.column_config.NumberColumn(format="percent")
                                        for c in both.columns if c.endswith(" diff")})
    for note in run.get("notes") or []:
        st.caption(f"Note: {note}")
    if use_button:
        st.subheader("Use in the break-even")
        use_point_panel(run, key=key, run_name=run_name)
