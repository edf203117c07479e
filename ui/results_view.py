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

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from calculators import cost, goodcost, operating
from calculators.scenario import apply_gpu, replace_field
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
    "rates_caption",
    "describe_operating_point",
    "slo_panel",
    "good_tokens_frame",
    "good_tokens_section",
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


def _apply(*, output_tokens_per_s: float, prefill_tokens_per_s: float | None, source: str, gpu_id: str | None,
           tp: int, good_fraction: float | None = None, run: Mapping[str, Any] | None = None,
           latency: str = "") -> bool:
    """Put the rates (and the SLO's good fraction, None without an SLO) into the break-even scenario, with the
    run's context (GPU, model, dtype, request shape: ``calculators.provenance.run_context``) so that a later
    change of GPU or shape marks the throughput stale; an error message instead when a value is rejected (the
    scenario is then unchanged). ``latency``: the latency measured at the point (``operating.latency_text``),
    kept as ``self_host.throughput_latency`` for the Options table and the brief."""
    from calculators.provenance import ThroughputContext, run_context  # noqa: PLC0415 - only on click
    from ui.state import apply_operating_point, get_scenario, set_scenario  # noqa: PLC0415 - only on click

    before = get_scenario()
    try:
        s = apply_operating_point(output_tokens_per_s=round(output_tokens_per_s, 1),
                                  prefill_tokens_per_s=None if prefill_tokens_per_s is None
                                  else round(prefill_tokens_per_s, 1),
                                  source=source, gpu=gpu_id, gpus_per_replica=tp,
                                  context=dataclasses.replace(
                                      ThroughputContext(gpu=gpu_id or "") if run is None else run_context(run, gpu_id),
                                      latency=latency))
        set_scenario(replace_field(s, "self_host.slo_good_fraction",
                                   None if good_fraction is None else round(good_fraction, 4)))
    except ValueError as exc:
        set_scenario(before)
        st.error(f"Not applied: {exc}")
        return False
    return True


def good_tokens_frame(g: goodcost.GoodTokenCost, measured_hit_rate: float | None = None) -> pd.DataFrame:
    """The cost of good tokens beside the API's prices: output, input, cached input ($ per million tokens).

    >>> g = goodcost.good_token_costs(self_host_usd_per_month=7300.0, requests_per_month=1e6, input_tokens=1000,
    ...     output_tokens=500, good_fraction=0.8, prefill_share=0.25, api_input_usd_per_mtok=3.0,
    ...     api_output_usd_per_mtok=15.0, api_cached_input_usd_per_mtok=0.3, cached_input_fraction=0.5)
    >>> good_tokens_frame(g, 0.0)["self-host (good tokens, idle included)"].tolist()
    ['$13.69/M', '$2.28/M', 'prefix-cache hit rate measured <0.1% (scenario assumes 50% cached)']
    """
    def usd(v: float | None) -> str:
        return "n/a (no good tokens)" if v is None else f"${v:,.2f}/M"

    def pct(v: float) -> str:
        return "<0.1%" if 0 <= v < 0.001 else f"{v:.1%}"

    hit = ("not measured" if measured_hit_rate is None else f"measured {pct(measured_hit_rate)}")
    return pd.DataFrame({
        "tokens": ["output", "input", "cached input"],
        "self-host (good tokens, idle included)": [
            usd(g.usd_per_m_output), usd(g.usd_per_m_input),
            f"prefix-cache hit rate {hit} (scenario assumes {g.cached_input_fraction:.0%} cached)"],
        "API": [f"${g.api_usd_per_m_output:,.2f}/M", f"${g.api_usd_per_m_input:,.2f}/M",
                f"${g.api_usd_per_m_cached_input:,.2f}/M"],
    })


def good_tokens_section(g: goodcost.GoodTokenCost | None, *, key: str, measured_hit_rate: float | None = None) -> None:
    """The compact cost-of-good-tokens table (nothing when the scenario has no SLO good fraction)."""
    if g is None:
        return
    all_in = g.usd_per_m_good_output_all_in
    st.markdown(f"**Cost of good tokens** — {g.good_fraction:.1%} of requests meet the SLO; the whole monthly bill "
                f"(every replica all month, idle included, plus ops and fallback) over good tokens only: "
                + ("no good tokens." if all_in is None else f"**${all_in:,.2f} per million good output tokens** "
                   f"all-in; split by replica time ({g.prefill_share:.0%} prefill):"))
    st.dataframe(good_tokens_frame(g, measured_hit_rate), hide_index=True, key=f"{key}_good_tokens")


def _shape_warning(measured: tuple[float, float]) -> None:
    """Warn when the break-even scenario's request shape is not the one measured."""
    from ui.state import get_scenario  # noqa: PLC0415 - the scenario lives in the session

    t = get_scenario().traffic
    warning = operating.shape_warning(measured, t.input_tokens, t.output_tokens)
    if warning:
        st.warning(warning)


def rates_caption(rates: Mapping[str, Any]) -> str:
    """What a point's rates become in the break-even (measured rates, then the split the cost model uses).

    >>> rates_caption({"output_tokens_per_s": 900.0, "input_tokens_per_s": 1800.0, "requests_per_s": 3.5,
    ...     "mean_input_tokens": 512.0, "mean_output_tokens": 256.0, "prefill_time_share": 0.1,
    ...     "decode_tokens_per_s": 1000.0, "prefill_tokens_per_s": 18000.0})
    'Measured 900 output tok/s + 1,800 input tok/s (3.5 req/s of 512 in / 256 out tokens). The break-even gets \
1,000 output tok/s + 18,000 prefill tok/s: a request spends 10% of its life before its first token, so at this \
shape it gives back the measured req/s.'
    """
    head = (f"Measured {rates['output_tokens_per_s']:,.0f} output tok/s + {rates['input_tokens_per_s']:,.0f} input "
            f"tok/s ({rates['requests_per_s']:,.3g} req/s of {rates['mean_input_tokens']:,.0f} in / "
            f"{rates['mean_output_tokens']:,.0f} out tokens).")
    if rates.get("prefill_tokens_per_s") is None:
        return head + " No mean TTFT/E2EL to split prefill from decode: the break-even counts output tokens only."
    return (head + f" The break-even gets {rates['decode_tokens_per_s']:,.0f} output tok/s + "
            f"{rates['prefill_tokens_per_s']:,.0f} prefill tok/s: a request spends "
            f"{rates['prefill_time_share']:.0%} of its life before its first token, so at this shape it gives back "
            "the measured req/s.")


def _gpu(run: Mapping[str, Any]) -> tuple[str | None, str | None, int]:
    gpu_name = (run.get("gpu") or {}).get("name") if isinstance(run.get("gpu"), Mapping) else None
    return gpu_name, reference.gpu_catalog_id(gpu_name), reference.tensor_parallel_size(run)


def use_point_panel(run: Mapping[str, Any], *, key: str, run_name: str) -> None:
    """Pick a point (the best one preselected) and put its rates into the break-even scenario: the output
    rate AND the prefill rate at the measured request shape (``calculators.operating.point_rates``)."""
    points = [p for p in run.get("points") or [] if (p.get("output_tokens_per_s") or 0) > 0]
    if not points:
        st.caption("No point with a throughput to use in the break-even.")
        return
    best = reference.best_index({**run, "points": points})
    gpu_name, gpu_id, tp = _gpu(run)
    i = st.selectbox("Operating point", range(len(points)), index=best, key=f"{key}_point",
                     format_func=lambda j: point_label(points[j]) + (" — best" if j == best else ""))
    point = points[int(i)]
    rates = operating.point_rates(point, operating.measured_prefix_cache_hit_rate(run))
    st.caption(rates_caption(rates))
    clicked = st.button("Use this operating point in the break-even", key=f"{key}_use")
    if clicked and _apply(output_tokens_per_s=float(rates["decode_tokens_per_s"] or 0.0),
                          prefill_tokens_per_s=rates["prefill_tokens_per_s"],
                          source=reference.operating_point_source(run_name, point), gpu_id=gpu_id, tp=tp, run=run,
                          latency=operating.point_latency_text(point)):
        st.success(f"Applied: the Break-even page now uses {point['output_tokens_per_s']:,.0f} measured output "
                   f"tok/s per replica ({tp} × {gpu_id or 'the scenario GPU'}), prefill included.")
        _shape_warning((float(rates["mean_input_tokens"] or 0.0), float(rates["mean_output_tokens"] or 0.0)))
    if gpu_id is None:
        st.caption(f"GPU {gpu_name or 'not recorded'}: not in the GPU catalog, so the scenario's GPU is kept.")


def describe_operating_point(op: operating.OperatingPoint) -> str:
    """One line for the SLO panel.

    >>> op = operating.OperatingPoint("interpolated", "concurrency", 33.75, 3525.8, 7051.7, 13.77, 4135.3,
    ...     47846.5, 0.147, 512.0, 256.0, operating.SloTarget(ttft_ms=500, tpot_ms=50),
    ...     latency_ms={"ttft_ms": 500.0, "tpot_ms": 8.66})
    >>> describe_operating_point(op)
    'Interpolated at c≈33.8: 3,526 output tok/s + 7,052 input tok/s per replica (13.8 req/s); TTFT p90 500 ms, \
TPOT p90 8.66 ms.'
    """
    head = {"measured": "Measured point", "interpolated": "Interpolated", "not_binding":
            "Best measured point (SLO not binding in measured range)", "extrapolated": "EXTRAPOLATED"}[op.status]
    approx = "≈" if op.status in ("interpolated", "extrapolated") else "="
    where = f"{op.load:.3g} req/s" if op.load_axis == "request_rate" else f"c{approx}{op.load:.3g}"
    lat = ", ".join(f"{'TTFT' if m == 'ttft_ms' else 'TPOT'} {op.slo.percentile} {v:,.3g} ms"
                    for m, v in op.latency_ms.items())
    return (f"{head} at {where}: {op.output_tokens_per_s:,.0f} output tok/s + {op.input_tokens_per_s:,.0f} input "
            f"tok/s per replica ({op.requests_per_s:,.3g} req/s)" + (f"; {lat}." if lat else "."))


def slo_panel(run: Mapping[str, Any], *, key: str, run_id: Any) -> operating.OperatingPoint | None:
    """SLO targets and a percentile -> the run's operating point under them (``calculators.operating``), and a
    button that puts it into the break-even with both rates and "measured run <id> at SLO ..." as its source.
    Widget keys ``<key>_slo_*``; returns the operating point (None when none meets the SLO)."""
    c = st.columns([1, 1, 1, 1])
    ttft = c[0].number_input("TTFT target (ms, 0 = none)", min_value=0.0, max_value=1e7, value=500.0,
                             step=50.0, key=f"{key}_slo_ttft")
    tpot = c[1].number_input("TPOT target (ms, 0 = none)", min_value=0.0, max_value=1e6, value=50.0,
                             step=5.0, key=f"{key}_slo_tpot")
    pct = c[2].selectbox("Percentile", list(operating.PERCENTILES), index=1, key=f"{key}_slo_pct")
    extra = c[3].checkbox("Extrapolate past the measured range", value=False, key=f"{key}_slo_extra",
                          help="Only when every measured point meets the SLO: continue the last two points' "
                               "lines to the target (at most twice the top load). Marked EXTRAPOLATED.")
    try:
        slo = operating.SloTarget(ttft_ms=ttft or None, tpot_ms=tpot or None, percentile=pct)
        op = operating.find_operating_point(run, slo, run_id=run_id, extrapolate=extra)
    except ValueError as exc:  # SloNotMet included
        st.warning(f"No operating point: {exc}")
        return None
    (st.warning if op.extrapolated or not op.binding else st.info)(describe_operating_point(op))
    for note in op.notes:
        st.caption(note)
    rates = {k: getattr(op, k) for k in ("output_tokens_per_s", "input_tokens_per_s", "requests_per_s",
                                         "mean_input_tokens", "mean_output_tokens", "prefill_time_share",
                                         "decode_tokens_per_s", "prefill_tokens_per_s")}
    st.caption(rates_caption(rates))
    good, good_from = goodcost.good_fraction_at(run, op)
    hit = operating.measured_prefix_cache_hit_rate(run)
    st.caption(f"Requests meeting the SLO there: {good:.1%} ({good_from})." if good is not None else
               f"Requests meeting the SLO there: unknown ({good_from}); the cost of good tokens needs it.")
    _, gpu_id, tp = _gpu(run)
    source = operating.source_text(op)
    if good is not None:
        _preview_good_tokens(op, good, source, key=key, measured_hit_rate=hit, gpu_id=gpu_id, tp=tp)
    clicked = st.button("Use the SLO operating point in the break-even", key=f"{key}_slo_use")
    if clicked and _apply(output_tokens_per_s=op.decode_tokens_per_s, prefill_tokens_per_s=op.prefill_tokens_per_s,
                          source=source, gpu_id=gpu_id, tp=tp, good_fraction=good, run=run,
                          latency=operating.latency_text(op.latency_ms, op.slo.percentile)):
        st.success(f"Applied: the Break-even page now uses {source}.")
        _shape_warning((op.mean_input_tokens, op.mean_output_tokens))
    return op


def _preview_good_tokens(op: operating.OperatingPoint, good: float, source: str, *, key: str,
                         measured_hit_rate: float | None, gpu_id: str | None, tp: int) -> None:
    """The cost of good tokens for the current scenario with this operating point in it, as the button would
    apply it (the run's GPU and its catalog price when it is in the catalog); nothing is applied."""
    from ui.state import get_scenario  # noqa: PLC0415

    s = get_scenario()
    try:
        if gpu_id is not None and gpu_id != s.self_host.gpu:
            s = apply_gpu(s, gpu_id)
        for dotted, value in (("self_host.gpus_per_replica", tp), ("self_host.output_tokens_per_s", round(op.decode_tokens_per_s, 1)),
                              ("self_host.prefill_tokens_per_s", None if op.prefill_tokens_per_s is None
                               else round(op.prefill_tokens_per_s, 1)),
                              ("self_host.slo_good_fraction", round(good, 4)), ("self_host.throughput_source", source)):
            s = replace_field(s, dotted, value)
    except ValueError as exc:
        st.caption(f"Cost of good tokens not shown: {exc}")
        return
    with st.expander("Cost of good tokens at the scenario's traffic, with this operating point"):
        good_tokens_section(cost.evaluate(s).good_tokens, key=f"{key}_slo", measured_hit_rate=measured_hit_rate)


def show_run(run: Mapping[str, Any], *, key: str, run_name: str, bench: Mapping[str, Any] | None = None,
             use_button: bool = True, run_id: Any = None) -> None:
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
        st.subheader("Operating point under a latency SLO")
        slo_panel(run, key=key, run_id=run.get("run_id") if run_id is None else run_id)
        st.subheader("Use in the break-even")
        use_point_panel(run, key=key, run_name=run_name)
