"""End to end on a real vLLM (CPU build): the CLI run, and a sweep checked against vLLM's own /metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from probes.load.workload import WorkloadSpec
from probes.observe import gpu as gpu_mod
from probes.plan.sweep import SweepConfig, new_run, run_sweep
from probes.results.store import ResultStore
from probes.target.server import VllmServer

if TYPE_CHECKING:
    from tests.integration.conftest import ServerPool

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


def _counters(base_url: str) -> dict[str, float]:
    """vLLM's own request/token counters, summed over label sets (independent of probes.observe.promscrape)."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    wanted = {"vllm:request_success": 0.0, "vllm:prompt_tokens": 0.0, "vllm:generation_tokens": 0.0}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.removesuffix("_total") in wanted and s.name.endswith("_total"):
                wanted[s.name.removesuffix("_total")] += s.value
    return wanted


@pytest.mark.timeout(240)
def test_sweep_agrees_with_server_counters(vllm_server: VllmServer) -> None:
    """A sweep on the shared server: requests and tokens equal the deltas of vLLM's /metrics counters."""
    spec = WorkloadSpec(input_tokens=300, output_tokens=12, num_requests=6, seed=3)  # > 2 KV blocks of 128
    config = SweepConfig(workload=spec, concurrencies=(2, 3), warmup_requests=0, saturation_gain=0.0)
    run = new_run(model="tiny", weights="synthetic", server={"mode": "managed"}, config=config)
    before = _counters(vllm_server.base_url)
    run_sweep(run, config, base_url=vllm_server.base_url, model=vllm_server.model_name, vocab_size=4096,
              alive=vllm_server.is_running)
    after = _counters(vllm_server.base_url)
    assert run["status"] == "complete", run["error"]
    completed = sum(p["completed"] for p in run["points"])
    assert completed == 6 + 9  # 6 requested; at least 3 x concurrency per point
    assert after["vllm:request_success"] - before["vllm:request_success"] == completed
    assert after["vllm:prompt_tokens"] - before["vllm:prompt_tokens"] == sum(
        p["total_input_tokens"] for p in run["points"]) == 15 * 300
    assert after["vllm:generation_tokens"] - before["vllm:generation_tokens"] == sum(
        p["total_output_tokens"] for p in run["points"]) == 15 * 12
    # distinct salts per point: the second point's prompts never hit the first point's cached blocks
    assert run["points"][1]["server_metrics"]["prefix_cache_hits"] == 0


@pytest.mark.timeout(300)
def test_cli_run_synthetic_end_to_end(vllm_python: str, vllm_pool: ServerPool, tmp_path: Path,
                                      tag_env: dict[str, str], fresh_tag: str,
                                      leftovers: Callable[[str], list[int]]) -> None:
    """`python -m probes run --synthetic tiny --concurrency 1,4`: starts vLLM, measures, stores, prints, cleans up."""
    vllm_pool.release()  # one vLLM at a time on 2 cores
    out, db = tmp_path / "run.json", tmp_path / "results.sqlite"
    proc = subprocess.run(
        [sys.executable, "-m", "probes", "run", "--synthetic", "tiny", "--concurrency", "1,4",
         "--input-tokens", "64", "--output-tokens", "16", "--requests", "8", "--warmup", "1",
         "--max-model-len", "512", "--saturation-gain", "0", "--vllm-python", vllm_python,
         "--out", str(out), "--db", str(db), "--startup-timeout", "240"],
        cwd=REPO, env=tag_env, capture_output=True, text=True, timeout=280, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not leftovers(fresh_tag), "a vLLM process was left running"
    run = json.loads(out.read_text())
    assert run["status"] == "complete" and run["weights"] == "synthetic" and run["model"] == "tiny"
    assert run["vllm_version"] and run["cold_start_s"] > 0
    snap = gpu_mod.inspect()  # the gpu block is what NVML sees here; no GPU: None, and a note says why
    assert run["gpu"] == gpu_mod.gpu_summary(snap, [0]) and (snap.available or snap.reason in run["notes"])
    assert [p["concurrency"] for p in run["points"]] == [1, 4]
    for p in run["points"]:
        n = max(8, 3 * p["concurrency"])  # --requests is a floor; a point runs at least 3 waves
        assert p["completed"] == n and p["failed"] == 0
        assert p["output_tokens_per_s"] > 0 and p["requests_per_s"] > 0
        assert p["ttft_ms"]["median"] > 0
        for key in ("ttft_ms", "tpot_ms", "itl_ms"):
            assert p[key]["p99"] >= p[key]["median"] >= 0
        assert p["e2el_ms"]["median"] >= p["ttft_ms"]["median"]
        assert p["total_input_tokens"] == n * 64 and p["total_output_tokens"] == n * 16
        # our counts agree with the server's own counters over the point (warm-up excluded)
        sm = p["server_metrics"]
        assert sm["request_success"] == p["completed"]
        assert sm["prompt_tokens"] == p["total_input_tokens"]
        assert sm["generation_tokens"] == p["total_output_tokens"]
        assert len(p["samples"]) == n
    stored = ResultStore(db).get_run(run["run_id"])
    assert stored["status"] == "complete" and len(stored["points"]) == 2
    assert "out tok/s" in proc.stdout and "status complete" in proc.stdout
    assert "vLLM ready after" in proc.stderr


@pytest.mark.timeout(120)
def test_cli_attaches_to_a_running_endpoint(vllm_server: VllmServer, tmp_path: Path) -> None:
    """`--endpoint URL`: no server of our own; model and vLLM version come from the endpoint."""
    out = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "probes", "run", "--endpoint", vllm_server.base_url + "/v1", "--concurrency", "2",
         "--input-tokens", "32", "--output-tokens", "8", "--requests", "4", "--warmup", "0", "--no-store",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=100, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(out.read_text())
    assert (run["model"], run["weights"], run["vllm_version"], run["server"]["mode"]) == (
        "tiny", "unknown", "0.32.0", "endpoint")
    assert run["points"][0]["completed"] == 6 and run["cold_start_s"] is None  # 3 x concurrency 2


@pytest.mark.timeout(240)
def test_shared_prefix_mode_exercises_the_prefix_cache(vllm_server: VllmServer) -> None:
    """`--shared-prefix`: N system prompts reused across requests -> vLLM reports prefix-cache hits
    (prefix caching is on by default in V1), while the unique-prompt sweep above reports none."""
    spec = WorkloadSpec(input_tokens=320, output_tokens=4, num_requests=6, seed=5, shared_prefix_count=1,
                        shared_prefix_tokens=256)  # two full 128-token CPU KV blocks shared
    config = SweepConfig(workload=spec, concurrencies=(1,), warmup_requests=0, saturation_gain=0.0)
    run = new_run(model="tiny", weights="synthetic", server={"mode": "managed"}, config=config)
    run_sweep(run, config, base_url=vllm_server.base_url, model=vllm_server.model_name, vocab_size=4096,
              alive=vllm_server.is_running)
    assert run["status"] == "complete", run["error"]
    sm = run["points"][0]["server_metrics"]
    # requests 2..6 reuse the 256 shared tokens the first one cached: at least 5 x 256 hits
    assert sm["prefix_cache_hits"] >= 5 * 256
    assert 0 < sm["prefix_cache_hit_rate"] < 1
