"""probes.cli: arguments, exit codes, output, store round trip (the probe itself is scripted here;
tests/integration runs it against a real vLLM)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from probes import cli
from probes.job import GpuLock
from probes.observe.gpu import GpuInfo, GpuSnapshot
from probes.plan.sweep import RUN_SCHEMA, SweepProgress

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _point(conc: int, tps: float, failed: int = 0) -> dict[str, Any]:
    stats = {"mean": 1.0, "median": 1.0, "p90": 2.0, "p99": 3.0, "std": 0.5}
    return {"concurrency": conc, "request_rate": None, "completed": 4, "failed": failed, "duration_s": 1.0,
            "total_input_tokens": 64, "total_output_tokens": 16, "requests_per_s": 4.0,
            "output_tokens_per_s": tps, "total_tokens_per_s": tps * 5, "goodput_requests_per_s": None,
            "ttft_ms": stats, "tpot_ms": stats, "itl_ms": stats, "e2el_ms": stats, "errors": [],
            "server_metrics": None, "power": {"j_per_output_token": 0.25}, "interrupted": False,
            "samples": [{"index": 0, "success": True}]}


def _run(status: str = "complete", error: str | None = None) -> dict[str, Any]:
    return {"schema": RUN_SCHEMA, "run_id": None, "created_at": "2026-11-28T00:00:00Z", "status": status,
            "error": error, "gpu": None, "model": "tiny", "weights": "synthetic", "vllm_version": "0.32.0",
            "cold_start_s": 12.5, "server": {"mode": "managed"}, "workload": {}, "settings": {},
            "points": [_point(1, 100.0), _point(4, 250.0)], "best_point": _point(4, 250.0), "notes": ["n1"]}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLLM_PYTHON", "/fake/python")
    monkeypatch.delenv("APP__PROBE__ENABLED", raising=False)
    monkeypatch.delenv("APP__PROBE__DB", raising=False)
    return tmp_path


def _main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


RUN = ("run", "--synthetic", "tiny", "--concurrency", "1,4", "--input-tokens", "64", "--output-tokens", "4")


def test_serve_args_pass_vllm_flags_through() -> None:
    ns = cli.build_parser().parse_args([
        "run", "--model", "m", "--max-model-len", "4096", "--gpu-memory-utilization", "0.92", "--max-num-seqs", "64",
        "--tensor-parallel-size", "2", "--quantization", "fp8", "--kv-cache-dtype", "fp8",
        "--no-enable-prefix-caching", "--enforce-eager", "--vllm-arg=--block-size 16", "--vllm-arg=--swap-space=4"])
    assert cli.serve_args_from(ns, synthetic=False) == [
        "--max-model-len", "4096", "--gpu-memory-utilization", "0.92", "--max-num-seqs", "64",
        "--tensor-parallel-size", "2", "--quantization", "fp8", "--kv-cache-dtype", "fp8",
        "--no-enable-prefix-caching", "--enforce-eager", "--block-size", "16", "--swap-space=4"]
    ns = cli.build_parser().parse_args(["run", "--synthetic", "x", "--load-format", "auto"])
    assert cli.serve_args_from(ns, synthetic=True) == ["--load-format", "auto"]


@pytest.mark.parametrize("argv", [
    ["run"], ["run", "--model", "a", "--endpoint", "http://x"], ["run", "--model", "a", "--requests", "0"]])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2


def test_disabled_probing_is_refused(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP__PROBE__ENABLED", "0")
    code, _, err = _main(*RUN)
    assert code == 2 and "switched off" in err


def test_missing_vllm_python_is_a_clear_error(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_PYTHON")
    code, _, err = _main(*RUN)
    assert code == 2 and "--vllm-python (or env VLLM_PYTHON) is required" in err


def test_lengths_must_fit_max_model_len(env: Path) -> None:
    code, _, err = _main(*RUN, "--max-model-len", "32")
    assert code == 2 and "must fit --max-model-len (32)" in err


@pytest.mark.parametrize(("status", "code"), [("complete", 0), ("partial", 1), ("failed", 1), ("interrupted", 130)])
def test_run_writes_out_stores_prints_and_exits_by_status(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                          status: str, code: int) -> None:
    seen: dict[str, Any] = {}

    def fake_execute(req: Any, **kw: Any) -> dict[str, Any]:
        seen["req"] = req
        kw["on_progress"](SweepProgress(0, 2, 1, 4, 4, phase="point_done", output_tokens_per_s=100.0))
        run = _run(status, None if status == "complete" else "boom\nlog tail")
        kw["on_point"](run)
        return run

    monkeypatch.setattr(cli, "execute", fake_execute)
    out_file, db = env / "run.json", env / "r.sqlite"
    got, out, err = _main(*RUN, "--out", str(out_file), "--db", str(db), "--max-model-len", "512")
    assert got == code
    assert seen["req"].serve_args == ("--max-model-len", "512", "--load-format", "dummy")
    assert seen["req"].config.concurrencies == (1, 4) and seen["req"].synthetic == "tiny"
    run = json.loads(out_file.read_text())
    assert run["status"] == status and run["run_id"] >= 1
    from probes.results.store import ResultStore

    assert ResultStore(db).get_run(run["run_id"])["status"] == status
    assert f"status {status}" in out and "250.0" in out
    assert "concurrency 1: 4/4 requests, 0 failed, 100.0 output tok/s" in err
    if code:
        assert f"probe {status}:" in err
        assert "log tail" not in out  # the table shows the first line of the error only


def test_json_output_omits_samples(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "execute", lambda req, **kw: _run())
    code, out, _ = _main(*RUN, "--json", "--no-store")
    data = json.loads(out)
    assert code == 0 and "samples" not in data["points"][0] and data["points"][1]["output_tokens_per_s"] == 250.0


def test_a_busy_gpu_is_refused_with_who_holds_it(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "execute", lambda req, **kw: pytest.fail("must not run"))
    with GpuLock(env / "data", 0) as lock:
        lock.acquire({"pid": 4242, "host": "box", "model": "other", "started_at": "then"})
        code, _, err = _main(*RUN, "--no-store")
    assert code == 1 and "another probe is running on GPU 0 (pid 4242 on box" in err


def test_gpu_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.gpu_mod, "inspect", lambda: GpuSnapshot(False, "no NVIDIA GPU visible: test"))
    assert _main("gpu")[:2] == (0, "no NVIDIA GPU visible: test\n")
    snap = GpuSnapshot(True, "", "550.1", "12.4", (
        GpuInfo(0, "H100", memory_total_mib=81559, memory_used_mib=512, processes=((7, "python3", 300),)),
        GpuInfo(1, error="NVML could not open this GPU")))
    monkeypatch.setattr(cli.gpu_mod, "inspect", lambda: snap)
    code, out, _ = _main("gpu")
    assert code == 0 and "[0] H100  mem 512/81559 MiB" in out and "pid 7 python3 300 MiB" in out
    assert "[1] NVML could not open this GPU" in out
    assert json.loads(_main("gpu", "--json")[1])["gpus"][0]["name"] == "H100"


def test_import_list_export_round_trip(tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite")
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(_run()))
    assert _main("import", str(run_file), "--db", db)[:2] == (0, f"imported {run_file} as run 1\n")
    assert _main("import", str(FIXTURES / "vllm_bench_result_cpu.json"), "--db", db, "--label", "b")[0] == 0
    code, out, _ = _main("list", "--db", db)
    assert code == 0 and out.count("id=") == 2
    exported = json.loads(_main("export", "1", "--db", db)[1])
    assert exported["points"][1]["output_tokens_per_s"] == 250.0
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    code, _, err = _main("import", str(bad), "--db", db)
    assert code == 2 and "invalid JSON" in err
    # right shape, wrong types inside: a clear message and exit 2, never a traceback or a stored bad run
    for i, content in enumerate(['{"completed": null, "duration": 1, "output_throughput": 1, "request_throughput": 1}',
                                 '{"schema": "selfhost-vs-api/probe-run/1", "status": "complete", "points": [1]}',
                                 '[1, 2]']):
        bad = tmp_path / f"bad{i}.json"
        bad.write_text(content)
        code, _, err = _main("import", str(bad), "--db", db)
        assert code == 2 and err.startswith("error: ") and "Traceback" not in err, err
    assert _main("list", "--db", db)[1].count("id=") == 2
    assert _main("list", "--db", str(tmp_path / "empty.sqlite"))[1] == "no runs stored\n"


def test_progress_bar_on_a_terminal_and_in_a_log() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = cli.ProgressBar(tty, width=10)
    bar(SweepProgress(0, 2, 4, 5, 10, 1))
    assert tty.getvalue() == "\rpoint 1/2 concurrency 4 [#####.....] 5/10 (1 failed)"
    log = io.StringIO()
    bar = cli.ProgressBar(log)
    bar(SweepProgress(0, 2, 4, 5, 10))
    bar(SweepProgress(0, 2, 4, 0, 10, phase="warmup"))
    assert log.getvalue() == "point 1/2 concurrency 4: warming up\n"  # no per-request noise in logs
