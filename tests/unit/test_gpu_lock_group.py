"""The probe's multi-GPU lock group: real ``flock`` files in a temp dir, held and fought over by real processes.

A probe of TP x PP x DP GPUs takes one lock per GPU, in index order, all or none; another probe wanting any GPU of
the group is refused with a message naming the holder; the OS frees a killed holder's locks. The managed server gets
``CUDA_VISIBLE_DEVICES`` set to exactly the locked GPUs (checked on the stand-in server's own environment).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from probes import cli, job
from probes.errors import ProbeBusyError
from probes.job import GpuLocks, ProbeRequest, execute, running_probe
from probes.load.workload import WorkloadSpec
from probes.plan.sweep import SweepConfig
from probes.settings import ProbeSettings
from probes.target.server import VllmInstall
from tests.unit.test_server import STAND_IN

ROOT = Path(__file__).parents[2]
CONFIG = SweepConfig(workload=WorkloadSpec(input_tokens=8, output_tokens=2, num_requests=2), concurrencies=(1,))

HOLDER = textwrap.dedent("""\
    import os, sys, time
    from probes.job import GpuLocks
    lock = GpuLocks(sys.argv[1], [int(x) for x in sys.argv[2].split(",")])
    lock.acquire({"pid": os.getpid(), "host": "holder-host", "model": "holder-model", "started_at": "then"})
    print("held", flush=True)
    time.sleep(600)
""")

REQUESTER = textwrap.dedent("""\
    import sys
    from probes.errors import ProbeBusyError
    from probes.job import GpuLocks
    try:
        GpuLocks(sys.argv[1], [int(x) for x in sys.argv[2].split(",")]).acquire({"pid": 0})
    except ProbeBusyError as exc:
        print(exc)
        sys.exit(3)
    print("acquired")
""")


@pytest.fixture
def holder(tmp_path: Path):
    """Start a process holding the GPU locks it is given; yields (start, kill). Every child is killed at the end."""
    procs: list[subprocess.Popen[str]] = []

    def start(indices: str) -> subprocess.Popen[str]:
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), indices], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "held", p.stderr.read() if p.stderr else ""
        return p

    def kill(p: subprocess.Popen[str]) -> None:
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=30)  # reaps it and closes its pipes

    yield start, kill
    for p in procs:
        if p.poll() is None:
            kill(p)


def test_a_child_holding_gpu_1_blocks_the_group_and_its_death_frees_it(tmp_path: Path, holder: Any) -> None:
    start, kill = holder
    child = start("1")
    group = GpuLocks(tmp_path, (0, 1))
    with pytest.raises(ProbeBusyError) as exc:
        group.acquire({"pid": os.getpid()})
    msg = str(exc.value)
    assert f"GPU 1 (pid {child.pid} on holder-host" in msg and "model holder-model" in msg
    assert "needs GPUs 0,1, all or none" in msg
    assert running_probe(tmp_path, 0) is None  # GPU 0 was taken first, then given back
    assert running_probe(tmp_path, 1)["pid"] == child.pid
    kill(child)  # SIGKILL: no cleanup code runs; the OS drops the flock
    group.acquire({"pid": os.getpid(), "model": "group"})
    try:
        assert running_probe(tmp_path, 0)["model"] == "group" and running_probe(tmp_path, 1)["model"] == "group"
    finally:
        group.release()
    assert running_probe(tmp_path, 0) is None and running_probe(tmp_path, 1) is None


def test_another_process_asking_for_an_overlapping_group_takes_nothing(tmp_path: Path, holder: Any) -> None:
    start, _kill = holder
    child = start("0,1")
    assert running_probe(tmp_path, 0)["pid"] == child.pid and running_probe(tmp_path, 1)["pid"] == child.pid
    out = subprocess.run([sys.executable, "-c", REQUESTER, str(tmp_path), "1,2"], cwd=ROOT, text=True,
                         capture_output=True, timeout=120)
    assert out.returncode == 3, out.stderr
    assert f"GPU 1 (pid {child.pid}" in out.stdout and "needs GPUs 1,2" in out.stdout
    assert running_probe(tmp_path, 2) is None
    free = subprocess.run([sys.executable, "-c", REQUESTER, str(tmp_path), "2,3"], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    assert free.returncode == 0 and free.stdout.strip() == "acquired"  # a disjoint group is not blocked


def test_probe_run_is_refused_naming_the_holder_of_a_gpu_of_its_group(tmp_path: Path, holder: Any) -> None:
    start, _kill = holder
    child = start("1")
    env = {**os.environ, "APP__PROBE__DATA_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-m", "probes", "run", "--synthetic", "tiny", "--vllm-python",
                          sys.executable, "--tensor-parallel-size", "2", "--no-store"], cwd=ROOT, env=env,
                         text=True, capture_output=True, timeout=300)
    assert out.returncode == 1
    assert f"another probe is running on GPU 1 (pid {child.pid}" in out.stderr and "GPUs 0,1" in out.stderr


# -- which GPUs, and what the server is told -----------------------------------------------------------------------

@pytest.mark.parametrize(("env", "args", "expected"), [
    ("", (2, None, 2, None), ([0, 1, 2, 3], "0,1,2,3")),
    ("4,5,6", (2, None, None, None), ([4, 5], "4,5")),
    ("4,5,6", (1, None, 2, "1,3"), ([1, 3], "1,3")),
    ("GPU-aaaa,GPU-bbbb", (2, None, None, None), ([0, 1], None)),  # UUIDs: left as they are, locked by position
    (None, (None, 2, None, None), ([0, 1], "0,1")),
])
def test_gpu_indices_of_a_group(monkeypatch: pytest.MonkeyPatch, env: str | None, args: tuple,
                                expected: tuple) -> None:
    if env is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
    assert cli._gpu_indices(*args) == expected


@pytest.mark.parametrize(("env", "args", "message"), [
    ("0", (2, None, None, None), "TP x PP x DP needs 2 GPUs, but CUDA_VISIBLE_DEVICES=0 lists 1"),
    ("", (2, None, None, "0"), "--gpu-ids 0: TP x PP x DP needs 2 distinct GPU indices"),
    ("", (2, None, None, "1,1"), "needs 2 distinct GPU indices"),
    ("", (1, None, None, "x"), "--gpu-ids must be comma-separated GPU indices"),
])
def test_gpu_indices_refuse_what_cannot_hold_the_group(monkeypatch: pytest.MonkeyPatch, env: str, args: tuple,
                                                       message: str) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
    with pytest.raises(ValueError, match=None) as exc:
        cli._gpu_indices(*args)
    assert message in str(exc.value)


def test_run_flags_reach_vllm_and_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ns = cli.build_parser().parse_args(["run", "--synthetic", "tiny", "--tensor-parallel-size", "2",
                                        "--pipeline-parallel-size", "1", "--data-parallel-size", "2",
                                        "--gpu-ids", "4,5,6,7"])
    req = cli._request(ns, cli._config(ns), None)
    assert req.gpu_indices == (4, 5, 6, 7) and req.visible_devices == "4,5,6,7"
    args = list(req.serve_args)
    assert args[args.index("--data-parallel-size") + 1] == "2" and args[args.index("--tensor-parallel-size") + 1] == "2"
    endpoint = cli.build_parser().parse_args(["run", "--endpoint", "http://127.0.0.1:1", "--gpu-ids", "0"])
    with pytest.raises(ValueError, match="--gpu-ids is for a managed server"):
        cli._request(endpoint, cli._config(endpoint), None)


def test_the_managed_server_sees_only_the_locked_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = tmp_path / "fake-python"  # the stand-in server, printing its CUDA_VISIBLE_DEVICES at start
    stand_in.write_text(STAND_IN.format(python=sys.executable).replace(
        'print("stand-in starting", args, flush=True)',
        'print("stand-in starting", args, "CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", "-"), '
        'flush=True)'))
    stand_in.chmod(0o755)
    monkeypatch.setattr(job, "detect_install", lambda python: VllmInstall(python, "0.0.0", cpu_build=True))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    monkeypatch.setenv("FAKE_MODE", "ready")

    def fake_sweep(run: dict[str, Any], config: SweepConfig, **_kw: Any) -> dict[str, Any]:
        run["status"] = "complete"
        return run

    monkeypatch.setattr(job, "run_sweep", fake_sweep)
    log = tmp_path / "server.log"
    req = ProbeRequest(config=CONFIG, synthetic="tiny", vllm_python=str(stand_in), log_path=str(log),
                       serve_args=("--tensor-parallel-size", "2"), gpu_indices=(3, 5), visible_devices="3,5",
                       vocab_size=100)
    run = execute(req, settings=ProbeSettings(data_dir=str(tmp_path / "data")))
    assert run["status"] == "complete", run.get("error")
    assert "CUDA_VISIBLE_DEVICES=3,5" in log.read_text() and run["server"]["cuda_visible_devices"] == "3,5"
    inherit = ProbeRequest(config=CONFIG, synthetic="tiny", vllm_python=str(stand_in), log_path=str(log),
                           vocab_size=100)
    log.write_text("")
    execute(inherit, settings=ProbeSettings(data_dir=str(tmp_path / "data")))
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7" in log.read_text()  # None: the caller's value, untouched
    json.dumps(run)  # the run stays JSON


def test_probe_run_with_a_gpu_group_it_cannot_have_exits_2_with_one_line(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["run", "--synthetic", "tiny", "--vllm-python", sys.executable, "--tensor-parallel-size", "2",
                   "--no-store"], out=out, err=err)
    assert rc == 2 and err.getvalue() == ("error: TP x PP x DP needs 2 GPUs, but CUDA_VISIBLE_DEVICES=0 lists 1: "
                                          "widen it or pass --gpu-ids\n")
    assert running_probe(tmp_path, 0) is None  # refused before any lock was taken


def test_a_data_parallel_startup_says_what_all_ranks_hold() -> None:
    log = ROOT / "benchmarks" / "results" / "cpu-dp2-vllm0.32-2026-12-01" / "managed-dp2.startup.txt"
    run: dict[str, Any] = {"notes": []}
    job._record_startup(run, str(log), job._data_parallel_size(["--data-parallel-size", "2"]))
    # the real CPU vLLM 0.32 log: each of the two EngineCore_DP ranks logged 1,048,576 tokens
    assert run["startup"]["kv_cache_tokens"] == 1_048_576 and run["startup"]["data_parallel_size"] == 2
    assert run["notes"][-1].endswith("the 2 ranks hold 2,097,152 tokens together")


def test_a_group_naming_a_gpu_this_box_lacks_exits_2_before_any_lock(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from probes.observe.gpu import GpuInfo, GpuSnapshot

    monkeypatch.setattr(cli.gpu_mod, "inspect", lambda: GpuSnapshot(True, gpus=(GpuInfo(0, "NVIDIA H200"),)))
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    err = io.StringIO()
    rc = cli.main(["run", "--synthetic", "tiny", "--vllm-python", sys.executable, "--tensor-parallel-size", "2",
                   "--no-store"], out=io.StringIO(), err=err)
    assert rc == 2 and err.getvalue() == ("error: GPU 1 does not exist here: NVML sees 1 GPU(s) (indices 0..0); "
                                          "this probe needs GPUs 0,1\n")
    assert running_probe(tmp_path, 0) is None
