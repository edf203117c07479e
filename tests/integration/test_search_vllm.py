"""The SLO capacity search on a real vLLM (CPU build): `python -m probes search --endpoint` returns an
operating point, every probed point is stored with its rate, and the server's counters match ours.

Targets are loose and the point budget small: this checks that the search runs end to end and records
what it found, not how fast a CPU is (no assertion on a timing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from probes.results.store import ResultStore

if TYPE_CHECKING:
    from probes.target.server import VllmServer

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_cli_search_returns_an_operating_point(vllm_server: VllmServer, tmp_path: Path) -> None:
    out, db = tmp_path / "search.json", tmp_path / "results.sqlite"
    proc = subprocess.run(
        [sys.executable, "-m", "probes", "search", "--endpoint", vllm_server.base_url, "--vocab-size", "4096",
         "--input-tokens", "32", "--output-tokens", "8", "--warmup", "1",
         "--ttft-p99-ms", "20000", "--tpot-p99-ms", "5000", "--start", "0.5", "--max-points", "3",
         "--min-requests", "4", "--min-point-seconds", "4", "--out", str(out), "--db", str(db)],
        cwd=REPO, capture_output=True, text=True, timeout=170, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(out.read_text())
    assert run["status"] == "complete", run["error"]
    op = run["operating_point"]
    rates = [p["request_rate"] for p in run["points"]]
    assert 1 <= len(rates) == op["points"] <= 3 and rates[0] == 0.5
    assert op["by"] == "request_rate" and op["request_rate"] in rates  # the loose SLO holds at 0.5 req/s
    assert op["ttft_p99_target_ms"] == 20000 and op["tpot_p99_target_ms"] == 5000
    assert op["ttft_p99_ms"] <= 20000 and op["tpot_p99_ms"] <= 5000
    assert op["output_tokens_per_s_per_replica"] > 0 and op["requests_per_s"] > 0 and op["reason"]
    chosen = run["points"][rates.index(op["request_rate"])]
    assert chosen["slo"]["met"] and chosen["failed"] == 0
    for p in run["points"]:
        assert p["concurrency"] is None  # open loop, uncapped
        assert p["completed"] + p["failed"] == p["measured_requests"] >= max(4, p["request_rate"] * 4)
        assert p["server_metrics"]["request_success"] == p["completed"]  # warm-up excluded, as in a sweep
    assert ResultStore(db).get_run(run["run_id"])["operating_point"] == op
    assert f"operating point: {op['request_rate']:.4g} req/s" in proc.stdout
    print(proc.stdout)  # shown with -s / -rP: the table and the search's notes
