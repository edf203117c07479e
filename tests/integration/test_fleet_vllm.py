"""A served fleet: two real CPU vLLM replicas of the tiny model, probed through ``--endpoint A B``.

Replica 0 is the shared server of the pool; replica 1 is started here (same model, same flags, one after the
other: the 2-core box pins both model threads to core 0, so the load stays tiny and the tests assert
correctness, never speed). The second test kills replica 1 mid-run: its requests fail as data, replica 0
carries on, the run ends (bounded timeouts) and says which replica failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from probes.job import ProbeRequest, execute
from probes.load.workload import WorkloadSpec
from probes.plan.sweep import SweepConfig, SweepProgress
from probes.settings import load_settings
from probes.target.server import VllmServer
from tests.integration.conftest import SERVE_ARGS

if TYPE_CHECKING:
    from tests.integration.conftest import ServerPool

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def second_replica(vllm_python: str, tiny_model: Path, test_tag: str,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """Replica 1: the tiny model again, on a port of its own; stopped (idempotently) at the end."""
    server = VllmServer(model=str(tiny_model), serve_args=SERVE_ARGS, vllm_python=vllm_python,
                        served_model_name="tiny", startup_timeout_s=240, env={"PROBE_TEST_TAG": test_tag},
                        log_path=str(tmp_path_factory.mktemp("replica1") / "server.log"))
    server.__enter__()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(600)
def test_cli_probe_against_two_replicas_reports_both(vllm_pool: ServerPool, second_replica: VllmServer,
                                                     tmp_path: Path) -> None:
    first = vllm_pool.get()
    out = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "probes", "run", "--endpoint", first.base_url + "/v1", second_replica.base_url,
         "--concurrency", "2", "--input-tokens", "32", "--output-tokens", "8", "--requests", "8", "--warmup", "2",
         "--no-store", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(out.read_text())
    fleet = run["fleet"]
    assert [r["url"] for r in fleet["replicas"]] == [first.base_url, second_replica.base_url]
    assert all(r["health_before"]["ok"] and r["health_after"]["ok"] for r in fleet["replicas"])
    assert run["vocabulary"]["backend"] == "vllm-token-ids"  # same model: the replicas agree on the ids
    point = run["points"][0]
    block = point["fleet"]
    replicas = block["replicas"]
    assert block["balance"] == "round-robin" and len(replicas) == 2
    assert [r["completed"] for r in replicas] == [4, 4]  # 8 requests, alternating, none failed
    assert sum(r["completed"] for r in replicas) == point["completed"] == 8
    assert block["imbalance_requests"] == 1.0 and block["failed_replicas"] == []
    assert sum(r["output_tokens_per_s"] for r in replicas) == pytest.approx(point["output_tokens_per_s"])
    for r in replicas:  # each replica's own /metrics saw exactly the requests the client sent it
        assert r["server_metrics"]["request_success"] == r["completed"]
        assert r["ttft_ms"]["median"] > 0
    assert sorted(s["replica"] for s in point["samples"]) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert "fleet: 2 replicas, balance round-robin" in proc.stdout
    assert "imbalance requests 1.00x" in proc.stdout


@pytest.mark.timeout(600)
def test_a_replica_killed_mid_run_fails_as_data_and_the_other_carries_on(
        vllm_pool: ServerPool, second_replica: VllmServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path))
    first = vllm_pool.get()
    assert second_replica.is_running()
    config = SweepConfig(workload=WorkloadSpec(input_tokens=32, output_tokens=32, num_requests=16),
                         concurrencies=(2,), warmup_requests=0, request_timeout_s=60.0, hang_timeout_s=60.0)
    killer: list[threading.Thread] = []

    def on_progress(p: SweepProgress) -> None:  # in the event loop: kill from a thread, never block it
        if p.phase == "load" and p.done >= 3 and not killer:
            killer.append(threading.Thread(target=second_replica.stop, daemon=True))
            killer[0].start()

    req = ProbeRequest(config=config, endpoint=f"{first.base_url},{second_replica.base_url}",
                       balance="least-inflight")
    run = execute(req, settings=load_settings(), on_progress=on_progress)
    killer[0].join(timeout=60)
    assert not second_replica.is_running()
    block = run["points"][0]["fleet"]
    r0, r1 = block["replicas"]
    assert r0["completed"] > 0 and r0["failed"] == 0
    assert r1["failed"] > 0 and 1 in block["failed_replicas"]
    assert r0["completed"] + r1["completed"] + r0["failed"] + r1["failed"] == 16
    assert run["fleet"]["replicas"][1]["health_after"]["ok"] is False
    assert run["fleet"]["replicas"][0]["health_after"]["ok"] is True
    assert any(n.startswith(f"replica 1 ({second_replica.base_url}) failed") for n in run["notes"])
