"""The decision brief (``calculators.brief``): its numbers are ``evaluate``'s and the CLI's for the same file,
every untrusted string is escaped, nothing points off the file, the risks follow the scenario, and
``python -m calculators report`` refuses bad input with one line and exit 2."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from calculators import brief, uncertainty
from calculators.cost import evaluate, report_to_dict
from calculators.scenario import DEFAULT_SCENARIO, load_toml, replace_field
from ui.widgets import usd, verdict_headline

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))  # single scenarios; options files are in options/
OPTIONS = "scenarios/options/three-ways.toml"
NOW = "2026-12-01T00:00:00Z"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calculators", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def json_round(x: object) -> object:
    return json.loads(json.dumps(x, allow_nan=False))


@pytest.fixture(scope="module")
def rag_page() -> str:
    return brief.build_brief(load_toml(ROOT / "scenarios" / "rag-assistant-70b.toml"), samples=500, now=NOW)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_the_brief_holds_exactly_what_evaluate_and_analyse_give(path):
    s = load_toml(path)
    page = brief.build_brief(s, samples=300, now=NOW)
    data = brief.extract_data(page)
    assert data["report"] == json_round(report_to_dict(evaluate(s)))
    u = uncertainty.analyse(s, uncertainty.ranges_from_pct(s, uncertainty.DEFAULT_PCT), n=300, seed=0)
    assert data["uncertainty"] == json_round(uncertainty.uncertainty_to_dict(u))
    r = evaluate(s)
    # what the reader sees is the pages' wording of the same numbers
    for text in (verdict_headline(r.verdict, r.savings_usd_per_month), usd(r.api.usd_per_month),
                 usd(r.self_host.usd_per_month), usd(r.savings_usd_per_month)):
        assert brief._esc(text) in page, text
    if r.breakeven.sustained_requests_per_day is not None:
        assert f"{r.breakeven.sustained_requests_per_day:,.0f}" in page


@pytest.mark.parametrize("name", ["rag-assistant-70b", "support-bot-8b"])
def test_the_report_cli_and_the_evaluate_cli_give_the_same_numbers(tmp_path, name):
    path = f"scenarios/{name}.toml"
    out = tmp_path / "brief.html"
    done = cli("report", path, "--out", str(out), "--ranges", "otps=25,gpu_usd=3..6,rpd=30", "--samples", "400")
    assert done.returncode == 0, done.stderr
    data = brief.extract_data(out.read_text(encoding="utf-8"))
    ev = cli("evaluate", path, "--ranges", "otps=25,gpu_usd=3..6,rpd=30", "--samples", "400")
    assert ev.returncode == 0, ev.stderr
    want = json.loads(ev.stdout)
    assert data["uncertainty"] == want.pop("uncertainty")
    assert data["report"] == want
    assert list(data["uncertainty"]["ranges"]) == ["otps", "gpu_usd", "rpd"]


def test_the_plotly_bundle_is_inlined_once_and_nothing_points_off_the_file(rag_page):
    page = rag_page
    assert page.count("<script>/**\n* plotly.js v") == 1 and page.count("plotly.js v") == 1  # the bundle, once
    assert len(re.findall(r'<div class="chart" data-chart="(\w+)"', page)) == 3
    # outside script bodies (the bundle's own strings name plotly.com and map tiles it never loads here)
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "<script></script>", page, flags=re.S | re.I)
    assert not re.search(r"""\b(src|href|action|poster|data)\s*=\s*["']?\s*(https?:|//|ftp:)""", markup, re.I)
    assert "<link" not in markup.lower() and "@import" not in markup and "url(" not in markup
    assert not re.search(r"<script[^>]+src=", page, re.I)
    assert "<iframe" not in markup.lower() and "<img" not in markup.lower()
    assert "@media print" in page and "@page" in page


def test_untrusted_strings_are_escaped_in_the_markup_and_the_data_block():
    evil = "<script>alert('x')</script>"
    s = dataclasses.replace(DEFAULT_SCENARIO, name=evil, description="</script><img src=x onerror=alert(1)> & co")
    s = replace_field(s, "self_host.throughput_source", "user <b>input</b>")
    page = brief.build_brief(s, samples=100, now=NOW)
    assert evil not in page and "<img" not in page and "<b>input" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    data = brief.extract_data(page)  # the JSON block was not cut short by a "</script>" in the data
    assert data["report"]["scenario"]["name"] == evil
    assert data["report"]["scenario"]["description"].startswith("</script><img")


def test_the_sections_come_in_the_issues_order(rag_page):
    ids = re.findall(r"<section id='([\w-]+)'", rag_page)
    assert ids == ["verdict", "options", "breakeven", "operating-point", "band", "assumptions", "risks", "why"]
    data = brief.extract_data(rag_page)
    summary = re.search(r"<p id='risks-summary'>(.*?)</p>", rag_page).group(1)  # named on page 1 as well
    for r in data["risks"]:
        assert (brief._esc(r["risk"]) in summary) == r["applies"], r["risk"]
    # every input the verdict rests on is there with its source and date
    data = brief.extract_data(rag_page)
    for row in data["rests_on"]:
        assert brief._esc(row["source"]) in rag_page
        if row["as_of"]:
            assert brief._esc(row["as_of"]) in rag_page


def test_the_risks_follow_the_scenario():
    s = DEFAULT_SCENARIO
    for field, value in (("traffic.requests_per_day", 500.0), ("context.has_gpu_expertise", False),
                         ("context.needs_frontier_quality", True), ("self_host.min_replicas", 1),
                         ("self_host.fallback_fraction", 0.0)):
        s = replace_field(s, field, value)
    got = {r["risk"]: r for r in brief.risks(s, evaluate(s))}
    for name in ("Low volume", "Frontier quality", "No GPU expertise", "Single-replica outage"):
        assert got[name]["applies"], name
    assert "500 requests/day" in got["Low volume"]["why"]
    safe = replace_field(replace_field(replace_field(replace_field(s, "traffic.requests_per_day", 5e5),
                                                     "context.has_gpu_expertise", True),
                                       "context.needs_frontier_quality", False), "self_host.min_replicas", 2)
    got = {r["risk"]: r for r in brief.risks(safe, evaluate(safe))}
    for name in ("Low volume", "No GPU expertise", "Single-replica outage"):
        assert not got[name]["applies"], name
    # applying risks come first
    flags = [r["applies"] for r in brief.risks(s, evaluate(s))]
    assert flags == sorted(flags, reverse=True)


def test_kv_headroom_is_a_risk_when_the_cache_holds_fewer_streams_than_the_throughput_assumes():
    rag = load_toml(ROOT / "scenarios" / "rag-assistant-70b.toml")
    src = "measured run 12 at SLO TTFT p90 ≤ 500 ms, c=64 (6,000 in / 400 out tokens)"
    s = replace_field(rag, "self_host.throughput_source", src)
    op = brief.operating_point_info(s)
    assert (op["run_id"], op["concurrency"], op["slo"]) == ("12", 64.0, "TTFT p90 ≤ 500 ms")
    kv = brief.kv_headroom(s, op["concurrency"])
    assert kv["checked"] and kv["streams"] < 64
    got = {r["risk"]: r for r in brief.risks(s, evaluate(s))}
    assert got["KV-cache headroom"]["applies"]
    assert f"{kv['streams']:,} requests of 6,400 tokens" in got["KV-cache headroom"]["why"]
    roomy = replace_field(s, "self_host.throughput_source", src.replace("c=64", "c=8"))
    assert not {r["risk"]: r for r in brief.risks(roomy, evaluate(roomy))}["KV-cache headroom"]["applies"]
    unknown = brief.kv_headroom(DEFAULT_SCENARIO)  # the default records its model: checked, no concurrency
    assert unknown["checked"] and unknown["headroom"] is None
    typed = replace_field(replace_field(DEFAULT_SCENARIO, "self_host.throughput_model", ""),
                          "self_host.throughput_source", "user input")
    assert brief.kv_headroom(typed) == {"checked": False, "why": "the model the throughput is for is not "
                                        "recorded in the scenario"}


def test_an_unverified_gpu_price_is_a_risk():
    from calculators.scenario import apply_gpu

    s = apply_gpu(DEFAULT_SCENARIO, "l40s")  # the catalog marks the L40S spec row as an estimate
    got = {r["risk"]: r for r in brief.risks(s, evaluate(s))}
    assert got["Unverified prices"]["applies"]
    assert "GPU" in got["Unverified prices"]["why"]
    assert got["Stale throughput"]["applies"]  # measured on an H100, priced on an L40S


def test_an_options_file_gives_the_options_clis_rows_and_the_cheapest_self_host_options_numbers(tmp_path):
    from calculators.options import load_options

    out = tmp_path / "brief.html"
    done = cli("report", OPTIONS, "--out", str(out), "--samples", "300")
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    data = brief.extract_data(page)
    listed = cli("options", OPTIONS, "--json")
    assert listed.returncode == 0, listed.stderr
    assert data["options"] == json.loads(listed.stdout)["options"]
    oset = load_options(ROOT / OPTIONS)
    costs = {o.name: evaluate(o.scenario).self_host.usd_per_month for o in oset.options if o.kind == "self_host"}
    focus = min(costs, key=costs.get)
    assert data["kind"] == "options" and data["focus_option"] == focus
    want = next(o.scenario for o in oset.options if o.name == focus)
    assert data["report"] == json_round(report_to_dict(evaluate(want)))
    cheapest = min(data["options"], key=lambda r: r["monthly_usd"])
    assert brief._esc(f"Cheapest of 3 options: {cheapest['option']} at {usd(cheapest['monthly_usd'])}") in page
    assert re.findall(r'<div class="chart" data-chart="(\w+)"', page) == ["options", "breakeven", "band", "tornado"]
    # every self-host option's risks are checked, each marked with its option
    assert {r["option"] for r in data["risks"]} == set(costs)


def test_option_names_are_escaped_and_an_api_only_set_is_refused(tmp_path):
    from calculators.options import options_from_toml

    text = (ROOT / OPTIONS).read_text().replace('name = "L40S 8B"', 'name = "<i>L40S</i> 8B"')
    page = brief.build_brief(options_from_toml(text), samples=100, now=NOW)
    assert "<i>L40S" not in page and "&lt;i&gt;L40S&lt;/i&gt; 8B" in page
    assert brief.extract_data(page)["focus_option"] == "<i>L40S</i> 8B"
    api_only = tmp_path / "api.toml"
    api_only.write_text("[traffic]\nrequests_per_day = 100\ninput_tokens = 10\noutput_tokens = 10\n"
                        "[[option]]\nname = 'A'\nkind = 'api'\n[option.api]\nmodel = 'gpt-6-luna'\n")
    done = cli("report", str(api_only), "--out", str(tmp_path / "b.html"))
    assert done.returncode == 2 and "no self-host option" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "b.html").exists()
    with pytest.raises(ValueError, match="Scenario or an options set"):
        brief.build_brief({"not": "a scenario"})


def test_report_cli_refuses_bad_input_with_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "b.html"
    bad = tmp_path / "bad.toml"
    bad.write_text("[traffic]\nrequests_per_day = -5\ninput_tokens = 1\noutput_tokens = 1\n"
                   "[api]\ninput_usd_per_mtok = 1\ncached_input_usd_per_mtok = 1\noutput_usd_per_mtok = 1\n"
                   "[self_host]\ngpu = 'h100-sxm'\noutput_tokens_per_s = 100\n")
    for args, needle in (([str(bad), "--out", str(out)], "requests_per_day"),
                         (["scenarios/support-bot-8b.toml", "--out", str(tmp_path)], "is a directory"),
                         (["scenarios/support-bot-8b.toml", "--out", str(tmp_path / "no" / "b.html")],
                          "does not exist"),
                         (["scenarios/support-bot-8b.toml", "--out", str(out), "--ranges", "otps=x"], "--ranges"),
                         (["scenarios/support-bot-8b.toml", "--out", str(out), "--samples", "0"], "--samples"),
                         ([str(tmp_path / "missing.toml"), "--out", str(out)], "missing.toml")):
        done = cli("report", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert needle in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_report_cli_replaces_a_file_atomically_and_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "brief.html"
    out.write_text("old")
    done = cli("report", "scenarios/support-bot-8b.toml", "--out", str(out), "--samples", "200")
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["brief.html"]
    assert "wrote" in done.stderr
    out.chmod(0o640)  # a replaced file keeps its mode; a new one gets what open() would give it
    assert cli("report", "scenarios/support-bot-8b.toml", "--out", str(out), "--samples", "200").returncode == 0
    assert out.stat().st_mode & 0o777 == 0o640
    new = tmp_path / "new.html"
    assert cli("report", "scenarios/support-bot-8b.toml", "--out", str(new), "--samples", "200").returncode == 0
    mask = os.umask(0)
    os.umask(mask)
    assert new.stat().st_mode & 0o777 == 0o666 & ~mask


def test_an_ownership_block_in_the_report_gets_its_own_escaped_section(monkeypatch):
    assert "id='ownership'" not in brief.build_brief(DEFAULT_SCENARIO, samples=100, now=NOW)  # rented GPUs
    real = brief.report_to_dict
    block = {"usd_per_gpu_hour": 1.84, "inputs": {"power_kind": "<measured>", "pue": 1.3},
             "per_server_usd_per_month": {"capex_usd": 6250.0, "energy_usd": 812.5}, "notes": ["x"]}
    monkeypatch.setattr(brief, "report_to_dict", lambda r: real(r) | {"ownership": block})
    page = brief.build_brief(DEFAULT_SCENARIO, samples=100, now=NOW)
    assert brief.extract_data(page)["report"]["ownership"] == block
    ids = re.findall(r"<section id='([\w-]+)'", page)
    assert ids.index("ownership") == ids.index("assumptions") + 1
    section = re.search(r"<section id='ownership'>.*?</section>", page).group(0)
    assert "<td>inputs: power kind</td><td>&lt;measured&gt;</td>" in section
    assert "<td>per server usd per month: capex usd</td><td>6,250</td>" in section
    assert "notes" not in section
