"""Trace replay as a run: probes.plan.replay (the point is scripted here), probes.job's dispatch, and the CLI's
``run --trace`` flags. The real vLLM is in tests/integration/test_replay_vllm.py."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from calculators.traces import iter_requests
from probes import cli, job
from probes.job import ProbeRequest, execute
from probes.load.client import RequestResult
from probes.load.metrics import metrics_to_dict, summarize
from probes.load.replay import TraceReplay
from probes.load.workload import WorkloadSpec
from probes.plan import replay as replay_mod
from probes.plan.measure import MeasuredPoint
from probes.plan.replay import describe_replay, run_replay
from probes.plan.sweep import SweepConfig, new_run
from probes.results.schema import check_run
from tests.unit.test_job import _endpoint, _settings, stand_in  # noqa: F401 - the stand-in server fixture

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"
MOONCAKE = FIXTURES / "small-mooncake.jsonl"
CONFIG = SweepConfig(workload=WorkloadSpec(input_tokens=8, output_tokens=2, num_requests=2), warmup_requests=2)


def _scripted_measure(seen: dict[str, Any], *, failed: int = 0, stop_reason: str | None = None,
                      hit_rate: float | None = 0.3) -> Any:
    """Stands in for measure_point: records what it was given, answers every planned request."""

    def measure(target: Any, load: Any, config: Any, *, index: int, points_total: int, stop: Any,
                on_progress: Any, plan: Any) -> MeasuredPoint:
        seen.update(target=target, load=load, plan=plan, requests=list(plan.requests))
        results = [RequestResult(index=r.index, success=k >= failed, error="" if k >= failed else "HTTP 400 x",
                                 prompt_tokens=r.input_tokens, output_tokens=r.output_tokens,
                                 scheduled_s=o, start_s=o + 0.001 * k, queue_s=0.001 * k)
                   for k, (r, o) in enumerate(zip(plan.requests, plan.offsets_s, strict=True))]
        point = {"concurrency": load.concurrency, "request_rate": None, **metrics_to_dict(summarize(results, 2.0)),
                 "server_metrics": {"prefix_cache_hit_rate": hit_rate, "prefix_cache_hits": 30.0,
                                    "prefix_cache_queries": 100.0}}
        return MeasuredPoint(point, None, len(results), len(plan.warmup), stop_reason, results)

    return measure


def _replay(monkeypatch: pytest.MonkeyPatch, replay: TraceReplay, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(replay_mod, "measure_point", _scripted_measure(seen, **kw))
    run = new_run(model="m", weights="synthetic", server={"mode": "managed"}, config=CONFIG)
    trace = list(iter_requests(replay.path, max_requests=replay.max_requests))
    run_replay(run, CONFIG, replay, trace, trace_format="mooncake", base_url="http://127.0.0.1:9", model="m",
               max_model_len=1024, vocab_size=4096)
    return run, seen


def test_a_replay_is_one_point_with_the_replay_block(monkeypatch: pytest.MonkeyPatch) -> None:
    run, seen = _replay(monkeypatch, TraceReplay(path=str(MOONCAKE), time_scale=2.0))
    assert run["status"] == "complete" and run["error"] is None and len(run["points"]) == 1
    plan = seen["plan"]
    assert list(plan.offsets_s) == [0.0, 0.5, 15.0, 30.5, 60.0] and plan.workers == 1
    assert seen["load"].concurrency is None  # uncapped: the trace's arrivals are the load
    assert [len(r.prompt_token_ids) for r in seen["requests"]] == [1000, 1004, 700, 300, 974]  # 2 clipped to 1024
    # warm-up: the lengths of the first requests, prompts of their own (no trace block is cached by it)
    assert [len(r.prompt_token_ids) for r in plan.warmup] == [1000, 1004]
    assert plan.warmup[0].prompt_token_ids[:512] != seen["requests"][0].prompt_token_ids[:512]
    block = run["replay"]
    assert (block["trace_name"], block["format"], block["trace_requests"], block["sent_requests"]) == (
        "small-mooncake.jsonl", "mooncake", 5, 5)
    assert (block["clipped_requests"], block["clipped_input_tokens"], block["max_model_len"]) == (2, 1522, 1024)
    assert block["prefix_reuse_fraction_trace"] == pytest.approx(1836 / 5500)
    assert block["prefix_reuse_fraction_sent"] == pytest.approx(1812 / 3978)  # hand-worked in test_replay
    assert (block["prefix_cache_hit_rate"], block["prefix_cache_hits"], block["prefix_cache_queries"]) == (
        0.3, 30.0, 100.0)
    assert block["lateness_ms"]["max"] == pytest.approx(4.0) and block["late_requests"] == 0
    assert block["trace_span_s"] == 120.0 and block["replay_span_s"] == 60.0 and block["offered_rate"] == 5 / 60
    assert run["best_point"] is None and run["points"][0]["trace"] == "small-mooncake.jsonl"
    assert run["workload"]["distribution"] == "trace" and run["workload"]["num_requests"] == 5
    assert any("2 requests longer than the limit of 1024 tokens were clipped" in n for n in run["notes"])
    check_run(run)  # the store accepts it
    text = "\n".join(describe_replay(block))
    assert "30.0 % measured" in text and "45.6 % expected from what was sent" in text and "33.4 % in the trace" in text


def test_max_requests_and_a_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    run, seen = _replay(monkeypatch, TraceReplay(path=str(MOONCAKE), max_requests=3, concurrency=2))
    assert len(seen["requests"]) == 3 and seen["load"].concurrency == 2 and run["replay"]["concurrency"] == 2


def test_failed_requests_make_a_partial_run(monkeypatch: pytest.MonkeyPatch) -> None:
    run, _ = _replay(monkeypatch, TraceReplay(path=str(MOONCAKE)), failed=2)
    assert run["status"] == "partial" and run["error"].startswith("2 of 5 replayed requests failed: 2× HTTP 400")


@pytest.mark.parametrize(("reason", "status"), [("interrupted", "interrupted"), ("hung", "partial")])
def test_stop_reasons(monkeypatch: pytest.MonkeyPatch, reason: str, status: str) -> None:
    run, _ = _replay(monkeypatch, TraceReplay(path=str(MOONCAKE)), stop_reason=reason)
    assert run["status"] == status


def test_nothing_fits_and_skip_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(replay_mod, "measure_point", _scripted_measure(seen))
    run = new_run(model="m", weights="synthetic", server={"mode": "managed"}, config=CONFIG)
    trace = list(iter_requests(MOONCAKE))
    run_replay(run, CONFIG, TraceReplay(path=str(MOONCAKE), overlong="skip"), trace, trace_format="mooncake",
               base_url="http://127.0.0.1:9", model="m", max_model_len=200, vocab_size=4096)
    assert run["status"] == "failed" and "nothing to send" in run["error"] and not seen
    assert run["replay"]["skipped_requests"] == 5
    check_run(run)


def test_text_kinds_replay_words(monkeypatch: pytest.MonkeyPatch) -> None:
    from probes.load.backends import get_backend

    seen: dict[str, Any] = {}
    monkeypatch.setattr(replay_mod, "measure_point", _scripted_measure(seen))
    run = new_run(model="m", weights="unknown", server={"mode": "endpoint"}, config=CONFIG)
    run_replay(run, CONFIG, TraceReplay(path=str(MOONCAKE)), list(iter_requests(MOONCAKE)),
               trace_format="mooncake", base_url="http://127.0.0.1:9", model="m", max_model_len=1024,
               backend=get_backend("chat"))
    words = [r.prompt_text.split() for r in seen["requests"]]
    assert [len(w) for w in words] == [950, 940, 700, 300, 910]  # fitted under 1024 - 64 spare tokens
    assert words[0][:512] == words[1][:512] and all(r.prompt_token_ids == () for r in seen["requests"])
    assert any("text prompts" in n for n in run["notes"])


def test_execute_reads_the_trace_first_and_replays_with_the_servers_max_len(
        stand_in: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    got: dict[str, Any] = {}

    def fake_replay(run: dict[str, Any], config: Any, replay: Any, trace: Any, **kw: Any) -> dict[str, Any]:
        got.update(kw, replay=replay, trace=trace)
        run["status"] = "complete"
        return run

    monkeypatch.setattr(job, "run_replay", fake_replay)
    replay = TraceReplay(path=str(MOONCAKE), max_requests=2)
    with _endpoint(stand_in, tmp_path, FAKE_VOCAB="4096") as s:
        execute(ProbeRequest(config=CONFIG, endpoint=s.base_url, trace=replay), settings=_settings(tmp_path))
    assert got["replay"] is replay and len(got["trace"]) == 2 and got["trace_format"] == "mooncake"
    assert got["max_model_len"] == 512  # what the endpoint's /v1/models said


def test_a_bad_trace_fails_before_any_server_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 10, "output_length": 1}\n{"timestamp": 5, "input_length": -1}\n')
    req = ProbeRequest(config=CONFIG, model="m", vllm_python="/nonexistent/python", trace=TraceReplay(path=str(bad)))
    with pytest.raises(ValueError, match="bad.jsonl: line 2"):
        execute(req, settings=_settings(tmp_path))


# ---------------------------------------------------------------- CLI


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLLM_PYTHON", "/fake/python")
    monkeypatch.delenv("APP__PROBE__ENABLED", raising=False)
    return tmp_path


def _main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return cli.main(list(argv), out=out, err=err), out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("extra", "message"), [
    (("--time-scale", "10"), "--time-scale needs --trace FILE"),
    (("--max-requests", "5"), "--max-requests needs --trace FILE"),
    (("--trace", str(MOONCAKE), "--request-rate", "5"), "--request-rate is a sweep flag"),
    (("--trace", str(MOONCAKE), "--input-tokens", "64"), "--input-tokens is a sweep flag"),
    (("--trace", str(MOONCAKE), "--concurrency", "1,4"), "one cap on in-flight requests"),
    (("--trace", "/nonexistent/trace.jsonl"), "no such file"),
])
def test_trace_flags_are_checked(env: Path, extra: tuple[str, ...], message: str) -> None:
    code, _, err = _main("run", "--synthetic", "tiny", "--no-store", *extra)
    assert code == 2 and message in err


def test_a_bad_trace_exits_2_naming_the_line(env: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,10,x\n")
    code, _, err = _main("run", "--synthetic", "tiny", "--no-store", "--trace", str(bad))
    assert code == 2 and "bad.csv: line 2: GeneratedTokens" in err


def test_search_refuses_a_trace(env: Path) -> None:
    code, _, err = _main("search", "--synthetic", "tiny", "--trace", str(MOONCAKE), "--ttft-p99-ms", "100")
    assert code == 2 and "--trace is a flag of `run`" in err


def test_run_trace_builds_the_replay_and_prints_it(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_execute(req: Any, **kw: Any) -> dict[str, Any]:
        seen["req"] = req
        run = new_run(model="tiny", weights="synthetic", server={"mode": "managed"}, config=req.config)
        run_replay(run, req.config, req.trace, list(iter_requests(req.trace.path, max_requests=req.trace.max_requests)), trace_format="mooncake",
                   base_url="http://127.0.0.1:9", model="m", max_model_len=4096, vocab_size=4096)
        return run

    monkeypatch.setattr(replay_mod, "measure_point", _scripted_measure({}))
    monkeypatch.setattr(cli, "execute", fake_execute)
    out_file = env / "run.json"
    code, out, err = _main("run", "--synthetic", "tiny", "--no-store", "--trace", str(MOONCAKE), "--time-scale", "10",
                         "--max-requests", "4", "--concurrency", "8", "--trace-block-tokens", "32",
                         "--trace-overlong", "skip", "--seed", "3", "--max-model-len", "256", "--out", str(out_file))
    assert code == 0, err
    assert seen["req"].trace == TraceReplay(path=str(MOONCAKE), time_scale=10.0, max_requests=4, block_tokens=32,
                                            overlong="skip", concurrency=8, seed=3)
    assert "trace small-mooncake.jsonl: 4 of 4 requests sent at time scale 10" in out
    assert "prefix cache hit rate 30.0 % measured" in out
    assert json.loads(out_file.read_text())["replay"]["block_tokens"] == 32
