"""The decision brief: one self-contained HTML file a finance partner can read without the app, offline.

``build_brief(scenario, ...) -> str`` puts together, in this order: the verdict, the options table, the
break-even chart (first crossing and sustained break-even), the throughput's operating point and the run it
came from, the uncertainty band and the sensitivity (tornado) chart, every assumption with its source and
date, and the risks that apply (the article's "When NOT to self-host" list, KV-cache headroom, a
single-replica outage, unverified prices, a stale throughput).

Self-contained: the plotly.js bundle is inlined once (the first chart), every later chart reuses it; all CSS
is inline; no font, image, script or stylesheet is fetched (no ``http`` URL in any ``src``/``href``). Every
string that came from a file (scenario name, description, sources) is escaped with ``html.escape``.

The numbers travel twice: as text for the reader and as one JSON block for machines and tests,
``<script type="application/json" id="brief-data">``, whose ``report`` is exactly
``calculators.cost.report_to_dict(evaluate(scenario))`` and whose ``uncertainty`` is exactly
``uncertainty_to_dict(analyse(scenario, ranges, n=samples, seed=seed))`` (what ``python -m calculators
evaluate FILE --band`` prints for the same ranges).

Printing: ``@media print`` lays the first page out as a one-page summary (verdict with the names of the risks
that apply, options, break-even chart) on A4 or Letter, and the evidence (operating point, band, assumptions,
risks in full, every reason) on the following pages; charts are drawn at a fixed 680 px width, zoomed to fit
the printable width.

Plotly figures come from ``calculators.figures`` (pure functions of plain data; plotly, never streamlit).

>>> from calculators.scenario import DEFAULT_SCENARIO
>>> data = brief_data(DEFAULT_SCENARIO, samples=200, now="2026-12-01T00:00:00Z")
>>> data["report"]["verdict"], [r["risk"] for r in data["risks"] if r["applies"]]
('api', ['Single-replica outage'])
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from calculators import catalog, provenance, uncertainty
from calculators.brief_risks import ARTICLE, KV_HEADROOM_MIN, kv_headroom, operating_point_info, risks
from calculators.cost import Report, evaluate, report_to_dict
from calculators.provenance import usd
from calculators.scenario import Scenario

__all__ = ["SCHEMA", "ARTICLE", "KV_HEADROOM_MIN", "brief_data", "build_brief", "focus", "risks", "options_rows",
           "kv_headroom", "operating_point_info", "ownership_html", "headline", "extract_data"]

SCHEMA = 1
CHART_WIDTH_PX = 680  # fits A4 and Letter printable width at 96 px per inch
_DATA_ID = "brief-data"


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _rpd(x: float | None) -> str:
    return "never" if x is None else f"{x:,.0f}"


def headline(verdict: str, savings_usd_per_month: float) -> str:
    """The verdict in one line (the pages' wording).

    >>> headline("api", -300.0)
    'Use the API: self-hosting would cost $300 a month more'
    """
    if verdict == "self_host":
        return f"Self-host: saves {usd(savings_usd_per_month)} a month"
    return f"Use the API: self-hosting would cost {usd(-savings_usd_per_month)} a month more"


def options_rows(s: Scenario, report: Report) -> list[dict[str, Any]]:
    """The options table of a single scenario: the API and the self-hosted fleet, one row each, with
    monthly cost, $/M output tokens, replicas, utilization and where the numbers came from."""
    h, r = s.self_host, report
    gpu = catalog.gpus()[h.gpu].name
    return [
        {"option": f"API: {provenance.priced_model_label(s)}", "usd_per_month": r.api.usd_per_month,
         "usd_per_mtok_output": r.api.usd_per_mtok_output_equiv, "replicas": None, "utilization": None,
         "source": getattr(r.rates, "source", "") or "typed"},
        {"option": f"Self-host: {h.gpus_per_replica}x {gpu} per replica", "usd_per_month": r.self_host.usd_per_month,
         "usd_per_mtok_output": r.self_host.usd_per_mtok_output, "replicas": r.self_host.replicas,
         "utilization": r.self_host.utilization,
         "source": f"{provenance.throughput_kind(h.throughput_source)}: {h.throughput_source}"},
    ]


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        try:
            return v.item()
        except (TypeError, ValueError):
            return v
    return v


def focus(source: Any) -> tuple[Scenario, str | None]:
    """The scenario the brief's break-even, band, operating point and assumptions are about, and its option
    name: the scenario itself, or an options set's cheapest self-host option (its ``[api]`` is the API it
    breaks even against). ValueError for an options set without a self-host option, or anything else."""
    from calculators import options  # noqa: PLC0415

    if isinstance(source, Scenario):
        return source, None
    if not isinstance(source, options.OptionsSet):
        raise ValueError(f"the brief needs a Scenario or an options set, got {type(source).__name__}")
    hosts = [o for o in source.options if o.kind == "self_host"]
    if not hosts:
        raise ValueError("the options set has no self-host option: the brief's break-even needs one")
    best = min(hosts, key=lambda o: evaluate(o.scenario).self_host.usd_per_month)  # first on ties
    return best.scenario, best.name


def _options_records(source: Any, s: Scenario, report: Report) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(source, Scenario):
        return "scenario", options_rows(s, report)
    from calculators.cli_options import comparison_records  # noqa: PLC0415 - the options CLI's own records
    from calculators.options import compare_options  # noqa: PLC0415

    return "options", comparison_records(compare_options(source))


def _all_risks(source: Any, s: Scenario, report: Report, rests: Sequence[provenance.Row],
               op: Mapping[str, Any], name: str | None) -> list[dict[str, Any]]:
    """The focus scenario's risks, then (an options set) every other self-host option's, each marked with its
    option; the ones that apply first."""
    out = [r | {"option": name} for r in risks(s, report, rests, op)]
    if not isinstance(source, Scenario):
        for o in source.options:
            if o.kind == "self_host" and o.name != name:
                out += [r | {"option": o.name} for r in risks(o.scenario, evaluate(o.scenario))]
    return sorted(out, key=lambda x: not x["applies"])


def brief_data(source: Any, *, ranges: Mapping[str, uncertainty.Range] | None = None, samples: int = 2000,
               seed: int = 0, now: str | datetime | None = None) -> dict[str, Any]:
    """Everything the brief shows, as JSON-ready data (the ``brief-data`` block), for a ``Scenario`` or a
    ``calculators.options.OptionsSet``. ``ranges``: the uncertainty ranges (default: ``uncertainty.DEFAULT_PCT``
    around the focus scenario, ``focus``). ``options``: the scenario's two sides, or the options CLI's records
    (``python -m calculators options FILE --json``)."""
    s, name = focus(source)
    report = evaluate(s)
    if ranges is None:
        ranges = uncertainty.ranges_from_pct(s, uncertainty.DEFAULT_PCT)
    u = uncertainty.analyse(s, ranges, n=samples, seed=seed)
    rests = provenance.rests_on(s, report.rates)
    op = operating_point_info(s)
    if isinstance(now, datetime):
        now = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kind, rows = _options_records(source, s, report)
    return {
        "schema": SCHEMA,
        "kind": kind,
        "title": getattr(source, "name", "") or "",
        "focus_option": name,
        "generated_at": now or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "report": report_to_dict(report),
        "uncertainty": uncertainty.uncertainty_to_dict(u),
        "samples": samples,
        "seed": seed,
        "options": rows,
        "operating_point": op,
        "rests_on": [vars(r) for r in rests],
        "risks": _all_risks(source, s, report, rests, op, name),
    }


# --- HTML ------------------------------------------------------------------------------------------------

_CSS = """
:root { --ink: #1b1f24; --muted: #57606a; --line: #d0d7de; --api: #1f77b4; --self: #d62728; --ok: #1a7f37; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--ink); margin: 0; background: #f6f8fa; }
main { max-width: 760px; margin: 0 auto; background: #fff; padding: 24px 40px 40px; }
nav { max-width: 760px; margin: 0 auto; padding: 8px 40px; font-size: 12px; color: var(--muted); }
nav a { color: var(--muted); margin-right: 12px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 22px 0 8px; border-bottom: 1px solid
var(--line); padding-bottom: 3px; } h3 { font-size: 14px; margin: 12px 0 4px; }
.meta, .note { color: var(--muted); font-size: 12px; }
.verdict { font-size: 18px; font-weight: 600; padding: 10px 14px; border-radius: 6px; margin: 10px 0; }
.verdict.self_host { background: #dafbe1; border-left: 5px solid var(--ok); }
.verdict.api { background: #ddf4ff; border-left: 5px solid var(--api); }
.kpis { display: grid; grid-template-columns: repeat(3, 1fr); gap: 6px 16px; margin: 8px 0; }
.kpi .v { font-size: 17px; font-weight: 600; } .kpi .l { font-size: 11px; color: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 12px; margin: 6px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.n { text-align: right; white-space: nowrap; }
ul { margin: 4px 0; padding-left: 20px; } li { margin: 2px 0; }
.applies { color: #9a3412; font-weight: 600; } .clear { color: var(--muted); }
.chart { width: 680px; max-width: 100%; margin: 6px auto; }
section { margin-bottom: 8px; }
@page { size: A4; margin: 12mm; }
@media print {
  body { background: #fff; font-size: 10.5px; }
  .verdict { font-size: 15px; padding: 6px 10px; margin: 6px 0; }
  .kpi .v { font-size: 14px; }
  nav, .noprint { display: none !important; }
  main { max-width: none; padding: 0; }
  h2 { margin-top: 10px; }
  tr, li, .kpis, .verdict { break-inside: avoid; page-break-inside: avoid; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  section.summary-end { break-after: page; page-break-after: always; }
  .chart { break-inside: avoid; page-break-inside: avoid; zoom: 0.72; margin: 2px auto; }
  .chart[data-chart=options] { zoom: 0.55; }
  p.meta { margin: 2px 0; }
  .kpis { grid-template-columns: repeat(5, 1fr); gap: 2px 10px; }
  table { font-size: 9.5px; }
  th, td { padding: 2px 5px; }
  a { color: inherit; text-decoration: none; }
}
"""


def _table(rows: Sequence[Mapping[str, Any]], cols: Sequence[tuple[str, str]],
           fmt: Mapping[str, Any] | None = None) -> str:
    fmt = fmt or {}
    head = "".join(f"<th>{_esc(label)}</th>" for _, label in cols)
    body = []
    for row in rows:
        cells = []
        for key, _ in cols:
            v = row.get(key)
            f = fmt.get(key)
            text = "" if v is None else (f(v) if f else v)
            num = isinstance(v, int | float) and not isinstance(v, bool)
            cells.append(f'<td class="n">{_esc(text)}</td>' if num else f"<td>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _money(v: Any) -> Any:
    return usd(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


def _options_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The options table: a scenario's two sides, or an options set's rows (``compare_options``'s columns,
    the printable ones; every column is in the data block)."""
    pct = {"utilization": lambda v: provenance.pct_text(v) if isinstance(v, float) else v,
           "replicas": lambda v: f"{v:,}" if isinstance(v, int) else v}
    if rows and "monthly_usd" in rows[0]:
        shown = []
        for r in rows:
            src = r.get("throughput_kind") or ("price data" if r.get("kind") == "api" else "")
            if r.get("run_id"):
                src += f" (run {r['run_id']})"
            if r.get("latency_at_slo"):
                src += f" at {r['latency_at_slo']}"
            gpu_price = (r.get("gpu_price_source") or "").split(":")[0]
            prices = "; ".join(x for x in (gpu_price and f"GPU price {gpu_price}",
                                           r.get("api_price_source") and f"API price {r['api_price_source']}") if x)
            shown.append(r | {"where": "; ".join(x for x in (src, prices) if x)})
        cols = [("option", "option"), ("deployment", "deployment"), ("monthly_usd", "$/month"),
                ("usd_per_m_input", "$/M input"), ("usd_per_m_output", "$/M output"), ("replicas", "replicas"),
                ("utilization", "utilization"), ("where", "where the numbers came from")]
        return _table(shown, cols, {"monthly_usd": _money, "usd_per_m_input": _money, "usd_per_m_output": _money,
                                    **pct})
    cols = [("option", "option"), ("usd_per_month", "$/month"), ("usd_per_mtok_output", "$/M output tokens"),
            ("replicas", "replicas"), ("utilization", "utilization"), ("source", "where the numbers came from")]
    return _table(rows, cols, {"usd_per_month": _money, "usd_per_mtok_output": _money, **pct})


def _figures(s: Scenario, report: Report, u: uncertainty.Uncertainty, ranges: Mapping[str, uncertainty.Range],
             samples: int, seed: int, options: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    from calculators import (
        curves,  # noqa: PLC0415
        figures,  # noqa: PLC0415 - plotly is imported only when a brief is built
    )

    figs: dict[str, Any] = {}
    if options is not None:
        fig = figures.options_cost_figure(pd.DataFrame(list(options)))
        top = max((r["monthly_usd"] or 0.0) for r in options)
        fig.update_yaxes(range=[0, top * 1.2 if top > 0 else 1])  # room for the labels above the bars
        figs["options"] = fig
    figs["breakeven"] = figures.cost_vs_volume_figure(curves.cost_vs_volume(s), s, report)
    band = uncertainty.savings_band_vs_volume(s, ranges, n=samples, seed=seed, points=80)
    figs["band"] = figures.savings_band_figure(band, s.traffic.requests_per_day, u.mc.breakeven_p5, u.mc.breakeven_p95)
    cols = ["key", "label", "low", "high", "savings_at_low", "savings_at_high", "swing"]
    tornado = pd.DataFrame([{c: getattr(b, c) for c in cols} for b in u.tornado], columns=cols)
    if len(tornado):
        figs["tornado"] = figures.tornado_figure(tornado, u.base_savings_usd_per_month)
    return figs


def _chart_html(fig: Any, name: str, height: int = 300) -> str:
    """One chart's div and script; the plotly.js bundle is in the page's head, once."""
    import plotly.graph_objects as go  # noqa: PLC0415

    fig = go.Figure(fig)  # a validated copy: a template set by name is expanded (fast figures keep the name)
    # small margins that plotly's automargin grows to fit: the page presets wide ones for speed (figures.MARGIN),
    # which on the brief's short fixed-size charts would leave too little plot
    fig.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_layout(width=CHART_WIDTH_PX, height=max(height, fig.layout.height or 0) if name == "tornado"
                      else height, template="plotly_white")
    div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{name}",
                      config={"displayModeBar": False, "displaylogo": False, "responsive": False})
    return f'<div class="chart" data-chart="{name}">{div}</div>'


def build_brief(source: Any, *, ranges: Mapping[str, uncertainty.Range] | None = None, samples: int = 2000,
                seed: int = 0, now: str | datetime | None = None, title: str | None = None) -> str:
    """The brief of a ``Scenario`` or an options set as one HTML string (see the module docstring). ``title``
    overrides the name."""
    from plotly.offline import get_plotlyjs  # noqa: PLC0415

    data = brief_data(source, ranges=ranges, samples=samples, seed=seed, now=now)
    s, focus_name = focus(source)
    if ranges is None:
        ranges = uncertainty.ranges_from_pct(s, uncertainty.DEFAULT_PCT)
    report = evaluate(s)
    u = uncertainty.analyse(s, ranges, n=samples, seed=seed)
    rep = data["report"]
    api, host, be = rep["api"], rep["self_host"], rep["breakeven"]
    is_options = data["kind"] == "options"
    name = title or getattr(source, "name", "") or "Self-host or API: decision brief"
    description = getattr(source, "description", "")
    figs = {n: _chart_html(f, n, 220 if n == "options" else 300) for n, f in _figures(s, report, u, ranges, samples, seed,
                                                      data["options"] if is_options else None).items()}
    applies = [r for r in data["risks"] if r["applies"]]
    op = data["operating_point"]
    p: list[str] = []
    p.append(f"<section id='verdict'><h1>{_esc(name)}</h1>")
    if description:
        p.append(f"<p class='meta'>{_esc(description)}</p>")
    p.append(f"<p class='meta'>Decision brief generated {_esc(data['generated_at'])}. A month is 730 hours; money "
             "in US dollars.</p>")
    if is_options:
        ranked = sorted(data["options"], key=lambda r: r["monthly_usd"])
        best = ranked[0]
        runner = (f"; next: {ranked[1]['option']} at {usd(ranked[1]['monthly_usd'])}" if len(ranked) > 1 else "")
        line = f"Cheapest of {len(ranked)} options: {best['option']} at {usd(best['monthly_usd'])} a month{runner}"
        kind = "api" if best["kind"] == "api" else "self_host"
        p.append(f"<div class='verdict {kind}' id='options-line'>{_esc(line)}</div>")
        p.append(f"<p class='meta'>The break-even, band, operating point and assumptions below are for the cheapest "
                 f"self-host option, <b>{_esc(focus_name)}</b>, against its API "
                 f"({_esc(provenance.priced_model_label(s))}):</p>")
    p.append(f"<div class='verdict {_esc(rep['verdict'])}' id='verdict-line'>"
             f"{_esc(headline(rep['verdict'], rep['savings_usd_per_month']))}</div>")
    kpis = [("API, $/month", usd(api["usd_per_month"])), ("Self-host, $/month", usd(host["usd_per_month"])),
            ("Savings, $/month", usd(rep["savings_usd_per_month"])), ("Replicas", f"{host['replicas']:,}"),
            ("GPU utilization", provenance.pct_text(host["utilization"])),
            ("Break-even, requests/day", _rpd(be["requests_per_day"])),
            ("Sustained break-even, requests/day", _rpd(be["sustained_requests_per_day"])),
            ("Volume now, requests/day", f"{s.traffic.requests_per_day:,.0f}"),
            ("Savings p5 to p95, $/month", f"{usd(u.mc.savings_p5)} to {usd(u.mc.savings_p95)}")]
    p.append("<div class='kpis'>" + "".join(f"<div class='kpi'><div class='v'>{_esc(v)}</div><div class='l'>"
                                             f"{_esc(label)}</div></div>" for label, v in kpis) + "</div>")
    p.append("<p id='risks-summary'><b>Risks that apply:</b> " + (_esc("; ".join(_risk_name(r) for r in applies))
             or "none of those checked") + " <span class='note'>(details under Risks)</span></p>")
    p.append("</section>")
    p.append("<section id='options'><h2>Options</h2>" + _options_table(data["options"]) + figs.get("options", "")
             + "</section>")
    p.append("<section id='breakeven' class='summary-end'><h2>Break-even</h2>" + figs["breakeven"]
             + f"<p class='note'>First crossing {_rpd(be['requests_per_day'])} requests/day; no dearer at every "
             f"higher volume from {_rpd(be['sustained_requests_per_day'])} requests/day"
             + (f"; the API is cheaper again on {len(be['dearer_ranges']):,} narrow range(s) just after a replica "
                "is added" if be["dearer_ranges"] else "") + ".</p></section>")
    # evidence
    rows = [("kind", op["kind"]), ("source", op["source"]),
            ("output tokens/s per replica", f"{op['output_tokens_per_s']:,.0f}"),
            ("prefill tokens/s per replica", "not given" if op["prefill_tokens_per_s"] is None
             else f"{op['prefill_tokens_per_s']:,.0f}"),
            ("probe run", op["run_id"] or "none named in the source"),
            ("SLO", op["slo"] or "none recorded"),
            ("latency measured there", op.get("latency") or "not recorded"),
            ("concurrency (streams)", "not recorded" if op["concurrency"] is None else f"{op['concurrency']:g}"),
            ("measured on", " / ".join(str(x) for x in (op["gpu"], op["model"], op["dtype"]) if x) or "not recorded"),
            ("request shape measured", "not recorded" if op["input_tokens"] is None or op["output_tokens"] is None
             else f"{op['input_tokens']:,.0f} in / {op['output_tokens']:,.0f} out tokens")]
    gt = rep.get("good_tokens")
    if op["slo_good_fraction"] is not None:
        rows.append(("requests meeting the SLO", provenance.pct_text(op["slo_good_fraction"])))
    p.append("<section id='operating-point'><h2>Operating point (SLO) and its run</h2><table><tbody>" + "".join(
        f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows) + "</tbody></table>")
    if gt:
        p.append("<p class='note'>Cost of good tokens (requests meeting the SLO): "
                 + _esc(", ".join(f"{k.replace('_', ' ')} {v:,.4g}" for k, v in gt.items()
                                  if isinstance(v, int | float) and not isinstance(v, bool))) + "</p>")
    p.append("</section>")
    mc, bnd = u.mc, u.band
    p.append("<section id='band'><h2>How sure: band and sensitivity</h2>"
             "<p class='note'>Ranges are assumptions: "
             + _esc(", ".join(f"{uncertainty.RANGE_KEYS[k][1]} {r.low:,.4g} to {r.high:,.4g}" for k, r in u.ranges.items()))
             + f"; {_esc(u.distribution)}; {samples:,} samples, seed {seed}. Savings p5 {_esc(usd(mc.savings_p5))}, "
             f"p50 {_esc(usd(mc.savings_p50))}, p95 {_esc(usd(mc.savings_p95))} a month; self-hosting no dearer in "
             f"{_esc(provenance.pct_text(mc.share_self_host_cheaper))} of samples; break-even p5 "
             f"{_esc(_rpd(mc.breakeven_p5))} to p95 {_esc(_rpd(mc.breakeven_p95))} requests/day; corner band "
             f"{_esc(usd(bnd.savings_low))} to {_esc(usd(bnd.savings_high))}.</p>"
             + figs["band"] + figs.get("tornado", "") + "</section>")
    p.append("<section id='assumptions'><h2>Assumptions, with source and date</h2>" + _table(
        data["rests_on"], [("field", "input"), ("value", "value"), ("kind", "kind"), ("source", "source"),
                           ("as_of", "as of"), ("stale", "stale")]))
    expl = (rep.get("api_rates") or {}).get("explanation") or []
    if expl:
        p.append("<ul class='note'>" + "".join(f"<li>{_esc(x)}</li>" for x in expl) + "</ul>")
    p.append("</section>")
    if isinstance(rep.get("ownership"), Mapping):  # owning vs renting, when the report carries it
        p.append(ownership_html(rep["ownership"]))
    p.append("<section id='risks'><h2>Risks that apply</h2>")
    p.append("<ul>" + ("".join(f"<li><span class='applies'>{_esc(_risk_name(r))}:</span> {_esc(r['why'])} "
                               f"<span class='note'>({_esc(r['source'])})</span></li>" for r in applies)
                       or "<li>None of the checked risks applies.</li>") + "</ul>")
    clear = [r for r in data["risks"] if not r["applies"]]
    if clear:
        p.append("<h3>Checked, not applying</h3><ul class='note'>" + "".join(
            f"<li>{_esc(_risk_name(r))}: {_esc(r['why'])}</li>" for r in clear) + "</ul>")
    p.append("</section>")
    p.append("<section id='why'><h2>Why: every reason</h2><ul>"
             + "".join(f"<li>{_esc(r)}</li>" for r in rep["reasons"]) + "</ul></section>")
    blob = json.dumps(data, allow_nan=False, default=str).replace("<", "\\u003c").replace(">", "\\u003e") \
        .replace("&", "\\u0026")
    nav = "".join(f"<a href='#{i}'>{t}</a>" for i, t in (
        ("verdict", "Verdict"), ("options", "Options"), ("breakeven", "Break-even"),
        ("operating-point", "Operating point"), ("band", "Band"), ("assumptions", "Assumptions"), ("risks", "Risks"),
        ("why", "Why")))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_esc(name)} \u00b7 decision brief</title><style>{_CSS}</style>"
            f"<script>{get_plotlyjs()}</script></head><body>"
            f"<nav class='noprint'>{nav}</nav><main>{''.join(p)}</main>"
            f"<script type='application/json' id='{_DATA_ID}'>{blob}</script></body></html>")


def ownership_html(block: Mapping[str, Any]) -> str:
    """The report's ``ownership`` block (bought servers: inputs, per-server and fleet breakdown, energy), as a
    two-column table; nested tables are flattened one level ("per server usd per month: capex usd").

    >>> print(ownership_html({"usd_per_gpu_hour": 1.5, "inputs": {"power_kind": "measured"}}))
    <section id='ownership'><h2>Owning the hardware</h2><table><thead><tr><th>item</th><th>value</th></tr></thead><tbody><tr><td>usd per gpu hour</td><td>1.5</td></tr><tr><td>inputs: power kind</td><td>measured</td></tr></tbody></table></section>
    """
    def text(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    rows = []
    for k, v in block.items():
        name = str(k).replace("_", " ")
        if isinstance(v, Mapping):
            rows += [{"item": f"{name}: {str(kk).replace('_', ' ')}", "value": text(vv)} for kk, vv in v.items()]
        elif not isinstance(v, list | tuple):
            rows.append({"item": name, "value": text(v)})
    return ("<section id='ownership'><h2>Owning the hardware</h2>"
            + _table(rows, [("item", "item"), ("value", "value")]) + "</section>")


def _risk_name(r: Mapping[str, Any]) -> str:
    return f"{r['option']}: {r['risk']}" if r.get("option") else r["risk"]


def extract_data(page: str) -> dict[str, Any]:
    """The ``brief-data`` JSON block of a brief (ValueError when there is none)."""
    m = re.search(rf"<script type='application/json' id='{_DATA_ID}'>(.*?)</script>", page, re.S)
    if m is None:
        raise ValueError("no brief-data block in this page")
    return json.loads(m.group(1))
