"""The Probe page's SLO capacity search: its settings (live widgets, keys ``probe_search_``), how they turn
a sweep request into a search request, and the answer panel.

The settings sit above the probe form as live widgets; the form's Start button starts either the sweep or,
when the search is switched on, the search (:func:`apply_search` in the Start callback). The search then
ignores the form's concurrency list and early-stop gain, and reads "Requests per point" as the floor of
each point. The answer is ``run["operating_point"]`` (:mod:`probes.plan.search`).

>>> form = SearchForm(ttft_p99_target_ms=500.0, tpot_p99_target_ms=0.0, by="request_rate", max_points=8)
>>> s = build_search(form)
>>> s.ttft_p99_target_ms, s.tpot_p99_target_ms, s.max_points, s.precision
(500.0, None, 8, 0.1)
>>> build_search(SearchForm())
Traceback (most recent call last):
...
ValueError: SLO search: give a p99 TTFT target, a p99 TPOT target, or both (0 = none)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from probes.job import ProbeRequest
from probes.plan.search import SEARCH_BY, SloSearch, describe_operating_point

__all__ = ["SearchForm", "build_search", "apply_search", "form_from_state", "search_points_frame",
           "search_controls", "operating_point_panel"]

BY_LABELS = {"request_rate": "request rate (open loop)", "concurrency": "concurrency (closed loop)"}


@dataclass(frozen=True)
class SearchForm:
    """The search settings as entered: targets in ms (0 = none), precision in %, seconds of arrivals per
    open-loop point."""

    enabled: bool = False
    ttft_p99_target_ms: float = 0.0
    tpot_p99_target_ms: float = 0.0
    by: str = "request_rate"
    start: float = 1.0
    max_points: int = 10
    precision_pct: float = 10.0
    min_point_seconds: float = 20.0


def _number(name: str, value: Any, *, low: float, inclusive: bool = True) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and (
        value >= low if inclusive else value > low)
    if not ok:
        raise ValueError(f"SLO search: {name} must be a number {'>=' if inclusive else '>'} {low:g}, got {value!r}")
    return float(value)


def build_search(form: SearchForm) -> SloSearch:
    """The :class:`SloSearch` of the form; ValueError naming the field."""
    ttft = _number("TTFT p99 target", form.ttft_p99_target_ms, low=0) or None
    tpot = _number("TPOT p99 target", form.tpot_p99_target_ms, low=0) or None
    if ttft is None and tpot is None:
        raise ValueError("SLO search: give a p99 TTFT target, a p99 TPOT target, or both (0 = none)")
    if form.by not in SEARCH_BY:
        raise ValueError(f"SLO search: search by must be one of {SEARCH_BY}, got {form.by!r}")
    points = form.max_points
    if isinstance(points, bool) or not isinstance(points, int | float) or points != int(points) or points < 1:
        raise ValueError(f"SLO search: max points must be an integer >= 1, got {points!r}")
    start = _number("start", form.start, low=0, inclusive=False)
    try:
        return SloSearch(ttft_p99_target_ms=ttft, tpot_p99_target_ms=tpot, by=form.by, start=start,
                         max_points=int(points),
                         precision=_number("precision", form.precision_pct, low=0, inclusive=False) / 100.0)
    except ValueError as exc:
        raise ValueError(f"SLO search: {exc}") from exc


def apply_search(req: ProbeRequest, form: SearchForm) -> ProbeRequest:
    """``req`` unchanged when the search is off; else the same target and workload with the search as plan.

    >>> import sys
    >>> from ui.probe_view import ProbeForm, build_request
    >>> req = build_request(ProbeForm(vllm_python=sys.executable, goodput_tpot_ms=40.0))
    >>> out = apply_search(req, SearchForm(enabled=True, ttft_p99_target_ms=300.0))
    >>> out.config.search.ttft_p99_target_ms, out.config.goodput_ttft_ms, out.config.goodput_tpot_ms
    (300.0, 300.0, 40.0)
    >>> apply_search(req, SearchForm(enabled=False)) is req
    True
    """
    if not form.enabled:
        return req
    search = build_search(form)
    seconds = _number("seconds per point", form.min_point_seconds, low=0)
    config = dataclasses.replace(
        req.config, search=search, concurrencies=(1,), saturation_gain=0.0, stop_on_errors=False,
        min_point_duration_s=seconds,
        goodput_ttft_ms=req.config.goodput_ttft_ms or search.ttft_p99_target_ms,
        goodput_tpot_ms=req.config.goodput_tpot_ms or search.tpot_p99_target_ms)
    return dataclasses.replace(req, config=config)


def form_from_state(state: Mapping[str, Any]) -> SearchForm:
    """The :class:`SearchForm` from session state (the widgets' keys), defaults where a key is absent."""
    d = SearchForm()
    return SearchForm(enabled=bool(state.get("probe_search_on", d.enabled)),
                      ttft_p99_target_ms=state.get("probe_search_ttft", d.ttft_p99_target_ms),
                      tpot_p99_target_ms=state.get("probe_search_tpot", d.tpot_p99_target_ms),
                      by=state.get("probe_search_by", d.by), start=state.get("probe_search_start", d.start),
                      max_points=state.get("probe_search_points", d.max_points),
                      precision_pct=state.get("probe_search_precision", d.precision_pct),
                      min_point_seconds=state.get("probe_search_seconds", d.min_point_seconds))


def search_points_frame(run: Mapping[str, Any]) -> pd.DataFrame:
    """One row per probed point of a search run, in the order measured.

    >>> run = {"settings": {"search": {"by": "request_rate"}}, "points": [{"request_rate": 2.0,
    ...        "slo": {"met": False, "why": "p99 TTFT 900 ms > target 500 ms"}, "ttft_ms": {"p99": 900.0}}]}
    >>> search_points_frame(run).iloc[0].to_dict()["meets SLO"], list(search_points_frame(run).columns)[:2]
    (False, ['request rate', 'meets SLO'])
    """
    by = ((run.get("settings") or {}).get("search") or {}).get("by", "request_rate")
    rows = []
    for p in run.get("points") or []:
        slo = p.get("slo") or {}
        rows.append({BY_LABELS.get(by, by).split(" (")[0]: p.get(by), "meets SLO": slo.get("met"),
                     "why not": slo.get("why") or "", "TTFT p99 ms": (p.get("ttft_ms") or {}).get("p99"),
                     "TPOT p99 ms": (p.get("tpot_ms") or {}).get("p99"),
                     "output tok/s": p.get("output_tokens_per_s"), "achieved req/s": p.get("requests_per_s"),
                     "completed": p.get("completed"), "failed": p.get("failed")})
    return pd.DataFrame(rows)


# -- Streamlit ------------------------------------------------------------------------------------------

def search_controls(*, disabled: bool = False) -> None:
    """The switch and, when on, the search settings (live widgets: the form's Start reads them)."""
    on = st.toggle("SLO capacity search instead of the concurrency sweep", key="probe_search_on",
                   disabled=disabled,
                   help="Find the highest request rate (or concurrency) whose p99 TTFT and TPOT meet the targets: "
                        "geometric bracketing from the start value, then bisection, with a hard cap on points.")
    if not on:
        return
    c = st.columns(4)
    c[0].number_input("TTFT p99 target ms (0 = none)", min_value=0.0, value=2000.0, key="probe_search_ttft")
    c[1].number_input("TPOT p99 target ms (0 = none)", min_value=0.0, value=100.0, key="probe_search_tpot")
    c[2].selectbox("Search by", list(BY_LABELS), format_func=BY_LABELS.get, key="probe_search_by")
    c[3].number_input("Start at (req/s or concurrency)", min_value=0.01, value=1.0, key="probe_search_start")
    c = st.columns(3)
    c[0].number_input("Max points", min_value=1, max_value=40, value=10, key="probe_search_points")
    c[1].number_input("Precision %", min_value=1.0, max_value=100.0, value=10.0, key="probe_search_precision")
    c[2].number_input("Seconds of arrivals per point (rate)", min_value=0.0, value=20.0, key="probe_search_seconds")
    st.caption("Start below then runs the search: the form's concurrency list and early-stop gain are not "
               "used, and its requests per point is each point's minimum.")


def operating_point_panel(run: Mapping[str, Any] | None) -> None:
    """The search's answer and its probed points, when ``run`` is a search run."""
    op = (run or {}).get("operating_point")
    if not op:
        return
    st.subheader("SLO capacity")
    found = (op.get("request_rate") if op.get("by") == "request_rate" else op.get("concurrency")) is not None
    (st.success if found and op.get("converged") else st.warning)(describe_operating_point(op))
    if found:
        c = st.columns(4)
        value = op.get("request_rate") if op.get("by") == "request_rate" else op.get("concurrency")
        c[0].metric("request rate" if op.get("by") == "request_rate" else "concurrency", f"{value:.4g}")
        tps = op.get("output_tokens_per_s_per_replica")
        c[1].metric("output tok/s per replica", f"{tps:.1f}" if tps is not None else "-")
        c[2].metric("p99 TTFT ms", f"{op['ttft_p99_ms']:.1f}" if op.get("ttft_p99_ms") is not None else "-")
        c[3].metric("p99 TPOT ms", f"{op['tpot_p99_ms']:.2f}" if op.get("tpot_p99_ms") is not None else "-")
    st.dataframe(search_points_frame(run or {}), hide_index=True, key="probe_search_points_table")
