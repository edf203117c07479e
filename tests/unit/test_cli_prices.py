"""``python -m calculators prices`` and ``evaluate`` on genai-prices models, as a user runs them (subprocess).

The issue-15 contract: evaluate on a scenario whose [api] model is any model the price data knows uses that
model's prices with source and date; a batch scenario uses the batch rate; a retired model is flagged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calculators", *args], cwd=ROOT, capture_output=True, text=True,
                          input=stdin, timeout=120)


SCENARIO = """
[traffic]
requests_per_day = 2000
input_tokens = 3000
output_tokens = 400
[api]
{api}
[self_host]
gpu = "h200"
output_tokens_per_s = 2500
"""


@pytest.mark.parametrize(
    ("api", "mode", "rates", "retired"),
    [
        ('model = "gpt-6-sol"', "interactive", (2.0, 10.0), False),
        ('model = "claude-sonnet-5-5"', "interactive", (2.0, 10.0), False),
        ('model = "claude-sonnet-5-5"\nbatch = true', "batch", (1.0, 5.0), False),
        ('model = "gemini-2.5-flash"', "interactive", (0.3, 2.5), True),
    ],
)
def test_evaluate_prices_from_the_database(api, mode, rates, retired):
    out = _run("evaluate", "-", stdin=SCENARIO.format(api=api))
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)["api_rates"]
    assert r["source"] == "genai-prices 0.2.3, bundled data of 2026-11-10" and r["mode"] == mode
    assert (r["input_usd_per_mtok"], r["output_usd_per_mtok"]) == rates
    assert r["retired"] is retired
    if retired:
        assert r["retires"] == "2026-12-01"
        assert any("was shut down on 2026-12-01" in x for x in json.loads(out.stdout)["reasons"])


def test_evaluate_unknown_model_is_one_line_exit_2():
    out = _run("evaluate", "-", stdin=SCENARIO.format(api='model = "gpt-0-nonexistent"'))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error: stdin: api.model: model 'gpt-0-nonexistent' is not in the price data")
    assert len(out.stderr.strip().splitlines()) == 1


def test_every_example_scenario_evaluates():
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        out = _run("evaluate", str(path))
        assert out.returncode == 0, (path, out.stderr)
    batch = json.loads(_run("evaluate", "scenarios/batch-summaries-70b.toml").stdout)["api_rates"]
    assert batch["mode"] == "batch" and batch["long_context_tokens"] == 272000 and batch["long_request_share"] > 0


def test_prices_lists_searches_and_flags():
    out = _run("prices", "--search", "openai gpt-5-mini", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["data"]["label"] == "genai-prices 0.2.3, bundled data of 2026-11-10"
    row = next(m for m in d["models"] if m["provider"] == "openai" and m["model"] == "gpt-5-mini")
    assert (row["input_usd_per_mtok"], row["output_usd_per_mtok"], row["retires"]) == (0.25, 2.0, "2026-12-11")
    text = _run("prices", "--search", "anthropic claude-opus-5-5", "--batch").stdout
    assert "claude-opus-5-5" in text and "in 2  cache read 0.1" in text and "(batch)" in text


def test_prices_bad_usage_exits_2():
    out = _run("prices", "--limit", "-1")
    assert out.returncode == 2 and "--limit" in out.stderr
    out = _run("prices", "--nope")
    assert out.returncode == 2 and "unrecognized arguments" in out.stderr
