"""The committed reference GPU runs (benchmarks/results/): complete metadata, our numbers agree with
`vllm bench serve` on the same server, and the roofline is never below what was measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.compare_gpu_runs import compare

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
FOLDERS = sorted(p for p in RESULTS.iterdir() if p.is_dir() and any(p.glob("probe-*.json")))
PROBES = sorted(RESULTS.glob("*/probe-*.json"))


def test_there_are_reference_runs():
    assert len(PROBES) >= 2


@pytest.mark.parametrize("path", PROBES, ids=lambda p: p.stem)
def test_reference_run_metadata(path):
    run = json.loads(path.read_text())
    assert run["schema"] == "selfhost-vs-api/probe-run/1"
    assert run["status"] == "complete"
    assert run["weights"] == "synthetic"
    assert run["vllm_version"] == "0.26.0"
    assert run["gpu"]["name"] in ("NVIDIA H100 80GB HBM3", "NVIDIA H200") and run["gpu"]["driver_version"]
    assert run["created_at"][:10] in ("2026-11-28", "2026-12-01")
    assert "--load-format" in run["server"]["serve_args"]
    assert run["cold_start_s"] > 0
    for p in run["points"]:
        assert p["failed"] == 0 and p["completed"] > 0
        # the server's own counters agree with what our client counted
        sm = p["server_metrics"]
        assert sm["request_success"] == p["completed"]
        assert sm["generation_tokens"] == p["total_output_tokens"]
        assert sm["prompt_tokens"] == p["total_input_tokens"]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_ours_agrees_with_vllm_bench_and_stays_under_the_roofline(folder):
    rows = compare(folder)
    assert rows
    for r in rows:
        # throughput and mean E2EL within 5 % of vllm bench serve, point by point
        assert r["ours_tps"] == pytest.approx(r["vllm_tps"], rel=0.05)
        assert r["ours_e2el_mean"] == pytest.approx(r["vllm_e2el_mean"], rel=0.05)
        if r["concurrency"] <= 32:
            # median TPOT within 5 %, mean TTFT within 10 %. Not at c=128 (3 waves of 128): how one E2EL splits
            # into TTFT and TPOT there moves with where each wave's prefills land, run to run, for vLLM's own
            # client too (H200, 2026-12-01: its median TTFT 298-401 ms over identical runs; at c=128 ours read
            # mean TTFT 766 vs 954 ms and TPOT 12.0 vs 11.6 ms at equal E2EL and +2.6 % tok/s): benchmarks/README.md
            assert r["ours_tpot"] == pytest.approx(r["vllm_tpot"], rel=0.05)
            assert r["ours_ttft_mean"] == pytest.approx(r["vllm_ttft_mean"], rel=0.10)
        assert r["ours_tps"] < r["roofline_tps"]
        assert 0.3 < r["mbu"] < 1.0
