"""probes.job (background probe, GPU lock) and probes.settings; the server is the stand-in of test_server."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from probes import job
from probes.errors import ProbeBusyError, ProbeDisabledError
from probes.job import GpuLock, GpuLocks, ProbeJob, ProbeRequest, execute, running_probe
from probes.load.workload import WorkloadSpec
from probes.plan.sweep import SweepConfig, SweepProgress
from probes.settings import ProbeSettings, load_settings, require_enabled
from probes.target.server import VllmInstall, group_pids
from tests.unit.test_server import STAND_IN

CONFIG = SweepConfig(workload=WorkloadSpec(input_tokens=8, output_tokens=2, num_requests=2), concurrencies=(1, 2))


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "fake-python"
    path.write_text(STAND_IN.format(python=sys.executable))
    path.chmod(0o755)
    monkeypatch.setattr(job, "detect_install", lambda python: VllmInstall(python, "0.0.0", cpu_build=True))
    monkeypatch.setenv("FAKE_MODE", "ready")
    return str(path)


def _settings(tmp_path: Path, **kw: Any) -> ProbeSettings:
    return ProbeSettings(data_dir=str(tmp_path / "data"), **kw)


def test_settings_from_env(tmp_path: Path) -> None:
    s = load_settings({"APP__PROBE__DB": "/x.sqlite", "APP__PROBE__HOST": "0.0.0.0", "VLLM_PYTHON": "/v/python",
                       "APP__PROBE__DATA_DIR": str(tmp_path)})
    assert (s.enabled, s.db_path, s.host, s.vllm_python, s.data_dir) == (
        True, "/x.sqlite", "0.0.0.0", "/v/python", str(tmp_path))
    assert load_settings({}).host == "127.0.0.1" and load_settings({}).data_dir
    with pytest.raises(ProbeDisabledError, match="APP__PROBE__ENABLED=0"):
        require_enabled(load_settings({"APP__PROBE__ENABLED": "false"}))


def test_request_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one of model, synthetic or endpoint"):
        ProbeRequest(config=CONFIG)
    with pytest.raises(ValueError, match="exactly one of model, synthetic or endpoint"):
        ProbeRequest(config=CONFIG, model="a", endpoint="http://x")
    assert "sekret" not in repr(ProbeRequest(config=CONFIG, endpoint="http://x", api_key="sekret"))


def test_gpu_lock_is_exclusive_and_visible(tmp_path: Path) -> None:
    assert running_probe(tmp_path, 0) is None
    a = GpuLock(tmp_path, 0)
    a.acquire({"pid": 1, "model": "m"})
    assert running_probe(tmp_path, 0) == {"pid": 1, "model": "m"}
    assert running_probe(tmp_path, 1) is None  # per GPU
    with pytest.raises(ProbeBusyError, match="another probe is running on GPU 0"):
        GpuLock(tmp_path, 0).acquire({})
    a.release()
    assert running_probe(tmp_path, 0) is None
    with GpuLock(tmp_path, 0) as b:  # free again
        b.acquire({"pid": 2})
        assert running_probe(tmp_path, 0) == {"pid": 2}


def test_execute_records_a_start_failure_and_stops_the_server(stand_in: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MODE", "crash")
    saved: list[dict[str, Any]] = []
    run = execute(ProbeRequest(config=CONFIG, model="m", vllm_python=stand_in), settings=_settings(tmp_path),
                  on_point=saved.append)
    assert run["status"] == "failed" and "vLLM rejected a command-line flag" in run["error"]
    assert saved and run["weights"] == "real" and run["server"]["serve_args"] == ["--enforce-eager"]
    assert any("CPU build" in n for n in run["notes"])


def test_execute_is_refused_when_disabled(tmp_path: Path) -> None:
    with pytest.raises(ProbeDisabledError):
        execute(ProbeRequest(config=CONFIG, model="m"), settings=_settings(tmp_path, enabled=False))


def test_job_runs_publishes_progress_and_stop_tears_the_server_down(stand_in: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    entered = threading.Event()

    def fake_sweep(run: dict[str, Any], config: SweepConfig, **kw: Any) -> dict[str, Any]:
        kw["on_progress"](SweepProgress(0, 2, 1, 1, 2))
        kw["on_progress"](SweepProgress(0, 2, 1, 2, 2, phase="point_done", output_tokens_per_s=5.0))
        run["points"].append({"concurrency": 1, "completed": 2, "failed": 0, "output_tokens_per_s": 5.0})
        kw["on_point"](run)
        entered.set()
        assert kw["stop"].wait(10)
        run["status"] = "interrupted"
        return run

    class Store:
        def __init__(self) -> None:
            self.saved: list[str] = []

        def save_run(self, run: dict[str, Any]) -> int:
            self.saved.append(run["status"])
            return 7

    monkeypatch.setattr(job, "run_sweep", fake_sweep)
    store = Store()
    settings = _settings(tmp_path)
    j = ProbeJob(ProbeRequest(config=CONFIG, synthetic="tiny", vllm_python=stand_in), settings=settings,
                 store=store).start()
    assert entered.wait(20)
    status = running_probe(settings.data_dir, 0)
    assert status is not None and status["run_id"] == 7 and status["progress"]["done"] == 2
    assert status["model"] == "tiny" and status["phase"] == "running"
    with pytest.raises(ProbeBusyError):
        ProbeJob(ProbeRequest(config=CONFIG, model="x", vllm_python=stand_in), settings=settings).start()
    assert j.run is not None and j.run["weights"] == "synthetic" and j.running
    server = j._server
    assert server is not None and server.is_running()
    t0 = time.monotonic()
    j.stop(timeout_s=20)
    assert time.monotonic() - t0 < 20 and not j.running
    assert j.phase == "interrupted" and store.saved[-1] == "interrupted"
    assert not server.is_running() and group_pids(server.pid) == []  # type: ignore[arg-type]
    assert running_probe(settings.data_dir, 0) is None


def test_stop_during_startup_is_interrupted_and_clean(stand_in: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MODE", "never")
    stop = threading.Event()
    servers: list[Any] = []
    threading.Timer(1.0, stop.set).start()
    run = execute(ProbeRequest(config=CONFIG, synthetic="tiny", vllm_python=stand_in), settings=_settings(tmp_path),
                  stop=stop, on_server=servers.append)
    assert run["status"] == "interrupted" and "interrupted while vLLM was starting" in run["error"]
    assert not servers[0].is_running() and group_pids(servers[0].pid) == []


def test_a_tensor_parallel_probe_holds_every_gpu_it_uses(tmp_path: Path) -> None:
    tp2 = GpuLocks(tmp_path, (1, 0))
    tp2.acquire({"pid": 1, "model": "70b"})
    assert running_probe(tmp_path, 0)["model"] == "70b" and running_probe(tmp_path, 1)["model"] == "70b"
    with pytest.raises(ProbeBusyError):
        GpuLock(tmp_path, 1).acquire({})
    # all or none: GPU 2 is free but GPU 1 is not, so nothing is left held
    with pytest.raises(ProbeBusyError):
        GpuLocks(tmp_path, (2, 1)).acquire({})
    assert running_probe(tmp_path, 2) is None
    tp2.release()
    assert running_probe(tmp_path, 0) is None and running_probe(tmp_path, 1) is None


def _endpoint(stand_in: str, tmp_path: Path, **env: str) -> Any:
    from probes.target.server import VllmServer

    s = VllmServer(model="m", vllm_python=stand_in, log_path=str(tmp_path / "endpoint.log"),
                   env={"FAKE_MODE": "ready", "FAKE_REQUEST_LOG": str(tmp_path / "requests.jsonl"), **env})
    s.install = VllmInstall(stand_in, "0.0.0", cpu_build=False)
    return s


def _record_sweep_kwargs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the sweep by one that completes at once and records what it was given about the prompts."""
    got: dict[str, Any] = {}

    def fake_sweep(run: dict[str, Any], config: SweepConfig, *, base_url: str, model: str,
                   **kw: Any) -> dict[str, Any]:
        got.update(kw)
        run["status"] = "complete"
        return run

    monkeypatch.setattr(job, "run_sweep", fake_sweep)
    return got


def test_endpoint_vocabulary_is_learned_from_tokenize_and_recorded(stand_in: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No generation request before the sweep: the pool comes from /tokenize and reaches the sweep as is."""
    got = _record_sweep_kwargs(monkeypatch)
    with _endpoint(stand_in, tmp_path, FAKE_TOKENIZE=",".join(map(str, range(200, 260))), FAKE_VOCAB="4096") as s:
        run = execute(ProbeRequest(config=CONFIG, endpoint=s.base_url), settings=_settings(tmp_path))
    assert run["vocabulary"]["source"] == "tokenize" and run["vocabulary"]["pool_size"] == 60
    assert got["token_pool"] == tuple(range(200, 260)) and "vocab_size" not in got  # only ids the server gave
    assert got["backend"].name == "vllm-token-ids" and run["vocabulary"]["backend"] == "vllm-token-ids"
    sent = [json.loads(line)["path"] for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert sent == ["/tokenize"]


def test_endpoint_with_no_known_vocabulary_falls_back_to_text(
        stand_in: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = _record_sweep_kwargs(monkeypatch)
    with _endpoint(stand_in, tmp_path, FAKE_VOCAB="4096") as s:  # no /tokenize route: 404
        run = execute(ProbeRequest(config=CONFIG, endpoint=s.base_url), settings=_settings(tmp_path))
    assert run["vocabulary"]["source"] == "none"
    assert "vocab_size" not in got and "token_pool" not in got  # text prompts: no ids at all
    assert got["backend"].name in ("completions", "chat")
    assert all(json.loads(x)["path"] == "/tokenize" for x in (tmp_path / "requests.jsonl").read_text().splitlines())


def test_sweep_gets_the_pool_or_bound_and_the_backend() -> None:
    from probes.target.vocabulary import Vocabulary

    def names(kw: Any) -> Any:
        return {k: (v.name if k == "backend" else v) for k, v in kw.items()} if isinstance(kw, dict) else kw

    assert names(job.sweep_target_kwargs(Vocabulary("tokenize", None, (20, 30)))) == {
        "backend": "vllm-token-ids", "token_pool": (20, 30)}
    assert names(job.sweep_target_kwargs(Vocabulary("none", None, None))) == {"backend": "completions"}
    assert names(job.sweep_target_kwargs(Vocabulary("config.json", 4096, None), "chat")) == {"backend": "chat"}
    # "auto" (the default of ProbeRequest.backend): ids when known, else text; chat where the target is not vLLM
    assert names(job.sweep_target_kwargs(Vocabulary("config.json", 4096, None), "auto")) == {
        "backend": "vllm-token-ids", "vocab_size": 4096}
    assert names(job.sweep_target_kwargs(Vocabulary("none", None, None), "auto", is_vllm=False)) == {
        "backend": "chat"}
    assert job.sweep_target_kwargs(Vocabulary("config.json", 4096, None), "chat")["backend"].vllm_extras
    assert "pass --vocab-size" in job.sweep_target_kwargs(Vocabulary("none", None, None), "vllm-token-ids")
