"""``python -m calculators evaluate``: run as a subprocess on the examples and on bad files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from calculators import cli_cost
from calculators.cost import evaluate, report_to_dict
from calculators.scenario import DEFAULT_SCENARIO, dumps_toml, load_toml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "scenarios").glob("*.toml"))
KEYS = ("api.usd_per_month", "self_host.usd_per_month", "self_host.replicas", "self_host.utilization",
        "self_host.usd_per_mtok_output", "breakeven.requests_per_day", "breakeven.utilization",
        "savings_usd_per_month", "verdict", "reasons", "scenario", "self_host.breakdown")


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calculators", "evaluate", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_print_the_report(path):
    proc = run(str(path.relative_to(ROOT)))
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    for dotted in KEYS:
        node = d
        for part in dotted.split("."):
            assert part in node, dotted
            node = node[part]
    assert d["verdict"] in ("api", "self_host") and d["reasons"]
    assert proc.stdout.startswith('{\n  "scenario"')  # indent 2
    # the CLI gives the same numbers as the library on the same file
    assert d == json.loads(json.dumps(report_to_dict(evaluate(load_toml(path)))))


def test_stdin_and_null_for_zero_traffic():
    text = dumps_toml(DEFAULT_SCENARIO).replace("requests_per_day = 20000\n", "requests_per_day = 0\n")
    proc = run("-", stdin=text)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["self_host"]["usd_per_mtok_output"] is None and d["api"]["usd_per_month"] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[traffic\nrequests_per_day = 1", "malformed TOML: .*line 1"),
        ("[trafic]\nrequests_per_day = 1", "unknown key 'trafic'; allowed:"),
        (None, "traffic.requests_per_day must be >= 0, got -5"),
        ("", r"section \[traffic\] is required"),
    ],
)
def test_bad_files_exit_2_with_one_line(tmp_path, content, message):
    if content is None:
        content = dumps_toml(DEFAULT_SCENARIO).replace("requests_per_day = 20000\n", "requests_per_day = -5\n")
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")
    proc = run(str(path))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert re.search(message, lines[0]), lines[0]


def test_missing_file_and_no_argument_exit_2():
    proc = run("does-not-exist.toml")
    assert proc.returncode == 2 and "cannot read scenario file" in proc.stderr
    proc = run()
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_help_works():
    proc = run("--help")
    assert proc.returncode == 0 and "scenario" in proc.stdout and "stdin" in proc.stdout


def test_main_in_process(capsys):
    assert cli_cost.main(["evaluate", str(ROOT / "scenarios/support-bot-8b.toml"), "--indent", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and json.loads(out)["verdict"] == "api"
