"""The Break-even charts are built from spec dicts without plotly's validation (calculators.figures._fast_figure,
for speed): each must equal the same spec built validated, for every example scenario and edge volumes, so a
typo in a property name or a value plotly would rewrite cannot slip through."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.io as pio
import pytest

from calculators import cost, curves, figures
from calculators.scenario import DEFAULT_SCENARIO, load_toml, replace_field

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {p.stem: load_toml(p) for p in sorted((ROOT / "scenarios").glob("*.toml"))}
SCENARIOS |= {f"default at {v:g}/day": replace_field(DEFAULT_SCENARIO, "traffic.requests_per_day", v)
              for v in (0.0, 1.0, 20_000.0, 5e6)}
FIGURES = {
    "cost_vs_volume": (curves.cost_vs_volume, figures.cost_vs_volume_figure),
    "usd_per_mtok": (curves.usd_per_mtok_vs_utilization, figures.usd_per_mtok_figure),
    "savings_heatmap": (curves.savings_heatmap, figures.savings_heatmap_figure),
}


def _json(fig) -> dict:
    return json.loads(pio.to_json(fig, validate=False))


@pytest.mark.parametrize("chart", sorted(FIGURES))
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fast_figure_equals_the_validated_one(chart, name, monkeypatch):
    s = SCENARIOS[name]
    curve, build = FIGURES[chart]
    df, report = curve(s), cost.evaluate(s)
    fast = _json(build(df, s, report))
    monkeypatch.setattr(figures, "FAST_FIGURES", False)
    assert fast == _json(build(df, s, report))
    assert fast["layout"]["template"], "the default template is applied as with a validated figure"


def test_validated_path_rejects_a_bad_property(monkeypatch):
    monkeypatch.setattr(figures, "FAST_FIGURES", False)
    with pytest.raises(ValueError, match="linee"):
        figures._fast_figure({"data": [{"type": "scatter", "x": [1], "y": [1], "linee": {}}]})


def test_break_even_charts_carry_the_lines_and_markers_a_reader_looks_for():
    s = SCENARIOS["rag-assistant-70b"]
    r = cost.evaluate(s)
    vol = figures.cost_vs_volume_figure(curves.cost_vs_volume(s), s, r)
    assert [t.name for t in vol.data] == ["API", "Self-host", "your volume"]
    notes = [a.text for a in vol.layout.annotations]
    assert f"you: {s.traffic.requests_per_day:,.0f}/day" in notes
    assert f"break-even: {r.breakeven.requests_per_day:,.0f}/day" in notes
    assert vol.layout.xaxis.type == "log" and len(vol.layout.shapes) == len(notes)
    heat = figures.savings_heatmap_figure(curves.savings_heatmap(s), s, r)
    scale = heat.data[0].colorscale
    assert scale[0][1] == "rgb(103,0,31)" and scale[-1][1] == "rgb(5,48,97)"  # red loses (low), blue saves (high)
    assert heat.data[0].zmin == -heat.data[0].zmax
