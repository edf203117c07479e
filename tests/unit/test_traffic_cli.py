"""``python -m calculators traffic``: run as a subprocess on the fixtures, the public samples and bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from calculators.traffic import summarize_file

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "traces"
MOONCAKE = Path("/work/shared/traces/mooncake-fast25-conversation.jsonl")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calculators", "traffic", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_json_is_the_summary():
    path = FIXTURES / "small-mooncake.jsonl"
    proc = run(str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d == summarize_file(path).to_dict()
    assert d["requests_per_day"] == pytest.approx(3600) and d["prefix_reuse_fraction"] == pytest.approx(1836 / 5500)


def test_window_option_changes_the_peak():
    proc = run(str(FIXTURES / "small-mooncake.jsonl"), "--json", "--window-s", "10")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["window_s"] == 10 and d["peak_window_requests"] == 2


@pytest.mark.skipif(not MOONCAKE.exists(), reason="shared traces not on this machine")
def test_text_report_of_the_public_trace_names_the_heavy_tail():
    proc = run(str(MOONCAKE))
    assert proc.returncode == 0, proc.stderr
    assert "12,031 requests" in proc.stdout and "prefix_reuse_fraction 37.4%" in proc.stdout
    assert "Heavy tail: p99 input" in proc.stdout


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        (b"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,1,1\n2023-11-16 18:00:01,x,1\n", (),
         "bad.trace: line 3: ContextTokens must be a whole number of tokens, got 'x'"),
        (b"hello\n", (), "bad.trace: line 1: not a trace"),
        (b'{"timestamp": 0, "input_length": 1, "output_length": 1}\n', (),
         "bad.trace: all 1 requests arrive at the same time"),
    ],
)
def test_bad_files_exit_2_with_one_line(tmp_path: Path, content: bytes, args: tuple[str, ...], expected: str):
    path = tmp_path / "bad.trace"
    path.write_bytes(content)
    proc = run(str(path), *args)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path}/{expected}"), proc.stderr


def test_missing_file_and_bad_usage_exit_2():
    proc = run("/nonexistent/trace.csv")
    assert proc.returncode == 2 and proc.stderr.strip() == "error: /nonexistent/trace.csv: cannot read: " \
        "No such file or directory"
    proc = run()
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    for bad in ("-5", "0", "nan", "inf", "abc"):
        proc = run(str(FIXTURES / "small-azure.csv"), "--window-s", bad)
        assert proc.returncode == 2 and proc.stderr.strip() == ("python -m calculators traffic: error: argument "
                                                                f"--window-s: must be a positive number of seconds, "
                                                                f"got {bad!r} (see --help)")
