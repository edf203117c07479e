"""``python -m probes search``: arguments, the config it builds, output and exit codes (probe scripted)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from probes import cli
from probes.plan.sweep import RUN_SCHEMA, SweepProgress

SEARCH = ("search", "--synthetic", "tiny", "--input-tokens", "64", "--output-tokens", "8", "--ttft-p99-ms", "500")


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


def _point(rate: float, met: bool) -> dict[str, Any]:
    stats = {"mean": 1.0, "median": 1.0, "p90": 2.0, "p99": 3.0, "std": 0.5}
    return {"concurrency": None, "request_rate": rate, "completed": 16, "failed": 0, "duration_s": 4.0,
            "total_input_tokens": 64, "total_output_tokens": 128, "requests_per_s": rate * 0.97,
            "output_tokens_per_s": rate * 8, "total_tokens_per_s": 0.0, "goodput_requests_per_s": None,
            "ttft_ms": stats, "tpot_ms": stats, "itl_ms": stats, "e2el_ms": stats, "errors": [],
            "server_metrics": None, "power": None, "interrupted": False, "samples": [],
            "slo": {"met": met, "why": "" if met else "p99 TTFT 900 ms > target 500 ms"}}


def _run() -> dict[str, Any]:
    op = {"by": "request_rate", "request_rate": 4.0, "concurrency": None, "output_tokens_per_s_per_replica": 32.0,
          "requests_per_s": 3.88, "ttft_p99_ms": 3.0, "tpot_p99_ms": 3.0, "ttft_p99_target_ms": 500.0,
          "tpot_p99_target_ms": None, "lower": 4.0, "upper": 4.3, "points": 3, "converged": True,
          "reason": "bracketed: 4 req/s meet the SLO, 4.3 do not"}
    return {"schema": RUN_SCHEMA, "run_id": None, "created_at": "2026-12-01T00:00:00Z", "status": "complete",
            "error": None, "gpu": None, "model": "tiny", "weights": "synthetic", "vllm_version": "0.32.0",
            "cold_start_s": 1.0, "server": {"mode": "managed"}, "workload": {}, "settings": {},
            "points": [_point(1.0, True), _point(4.0, True), _point(4.3, False)], "best_point": None,
            "notes": [], "operating_point": op}


def test_search_builds_a_search_config_from_the_run_options(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_execute(req: Any, **kw: Any) -> dict[str, Any]:
        seen["req"] = req
        kw["on_progress"](SweepProgress(1, 12, 0, 16, 16, phase="point_done", output_tokens_per_s=32.0,
                                        request_rate=4.0))
        return _run()

    monkeypatch.setattr(cli, "execute", fake_execute)
    code, out, err = _main(*SEARCH, "--tpot-p99-ms", "40", "--max-points", "6", "--max-concurrency", "64",
                           "--max-model-len", "512", "--no-store")
    assert code == 0
    config = seen["req"].config
    assert seen["req"].synthetic == "tiny" and seen["req"].serve_args == ("--max-model-len", "512",
                                                                          "--load-format", "dummy")
    s = config.search
    assert (s.by, s.ttft_p99_target_ms, s.tpot_p99_target_ms, s.max_points, s.max_concurrency) == (
        "request_rate", 500.0, 40.0, 6, 64)
    assert config.workload.num_requests == 16 and config.min_point_duration_s == 20.0
    assert not config.stop_on_errors and config.goodput_ttft_ms == 500.0 and math.isinf(config.request_rate)
    assert "point 2/12 rate 4 req/s: 16/16 requests, 0 failed, 32.0 output tok/s" in err
    assert "operating point: 4 req/s, 32 output tok/s per replica (3.88 req/s achieved)" in out
    assert "req/s in" in out.splitlines()[3] and "4.30" in out  # a rate column for open-loop points


def test_search_by_concurrency_and_json(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(cli, "execute", lambda req, **kw: seen.update(req=req) or _run())
    code, out, _ = _main(*SEARCH, "--by", "concurrency", "--start", "2", "--json", "--no-store")
    assert code == 0 and seen["req"].config.search.by == "concurrency" and seen["req"].config.search.start == 2
    assert json.loads(out)["operating_point"]["request_rate"] == 4.0


@pytest.mark.parametrize(("extra", "message"), [
    ((), "needs a p99 TTFT target"),
    (("--concurrency", "1,4"), "--concurrency is a flag of `run`"),
    (("--requests", "8"), "--requests is a flag of `run`: a search chooses the load itself (use --min-requests)"),
    (("--request-rate", "3"), "--request-rate is a flag of `run`"),
    (("--by", "concurrency", "--start", "1.5"), "starts at an integer"),
])
def test_search_argument_errors_exit_2(env: Path, monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...],
                                       message: str) -> None:
    monkeypatch.setattr(cli, "execute", lambda req, **kw: pytest.fail("must not run"))
    argv = [a for a in SEARCH if a not in ("--ttft-p99-ms", "500")] if not extra else list(SEARCH)
    code, _, err = _main(*argv, *extra)
    assert code == 2 and message in err, err


def test_search_shares_the_target_options_of_run() -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["search", "--model", "a", "--endpoint", "http://x", "--ttft-p99-ms", "1"])
    ns = cli.build_parser().parse_args(["search", "--endpoint", "http://h:8000", "--api-key-env", "K",
                                        "--tpot-p99-ms", "30"])
    assert ns.endpoint == "http://h:8000" and ns.api_key_env == "K" and ns.tpot_p99_ms == 30.0
