"""probes.plan.sweep with a scripted load (no server): early stop, errors, stop, death, best point, run JSON."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from probes.load.client import LoadResult, RequestResult
from probes.load.workload import WorkloadSpec
from probes.plan import measure
from probes.plan.sweep import (
    SweepConfig,
    best_point,
    new_run,
    next_concurrency,
    parse_int_list,
    run_sweep,
    saturated,
)

SPEC = WorkloadSpec(input_tokens=16, output_tokens=4, num_requests=4)


class ScriptedLoad:
    """Stands in for run_load_sync: output tok/s per concurrency from ``tps``, failures from ``fail``."""

    def __init__(self, tps: dict[int, float], fail: dict[int, int] | None = None,
                 on_call: Any = None) -> None:
        self.tps, self.fail, self.on_call = tps, fail or {}, on_call
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kw: Any) -> LoadResult:
        self.calls.append(kw)
        conc = kw["concurrency"]
        reqs = kw["requests"]
        if kw.get("on_warmup_done"):  # as run_load: after the warm-up, before the measured requests
            kw["on_warmup_done"]()
        if self.on_call:
            self.on_call(kw)
        results = []
        n_fail = self.fail.get(conc, 0)
        # a consistent timeline: waves of ``conc`` requests back to back, each wave lasting duration / waves,
        # so the steady window (all of it, here) gives the scripted throughput too
        total_out = sum(r.output_tokens for i, r in enumerate(reqs) if i >= n_fail)
        duration = total_out / self.tps[conc] if total_out else 1.0
        width = conc or len(reqs)  # uncapped: one wave
        wave_s = duration / -(-len(reqs) // width)
        for i, r in enumerate(reqs):
            ok = i >= n_fail
            out = r.output_tokens if ok else 0
            ttft = 0.1 * wave_s
            res = RequestResult(index=r.index, success=ok, error="" if ok else "HTTP 500 Internal Server Error",
                                prompt_tokens=r.input_tokens if ok else 0, output_tokens=out,
                                ttft_s=ttft, itl_s=[(0.9 * wave_s - ttft) / (out - 1)] * (out - 1) if out > 1 else [],
                                latency_s=wave_s, start_s=(i // width) * wave_s,
                                end_s=(i // width + 1) * wave_s)
            results.append(res)
            if kw.get("on_result"):
                kw["on_result"](res)
        return LoadResult(results=results, duration_s=duration, warmup_results=[],
                          interrupted=bool(kw["stop"] and kw["stop"].is_set()))


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: no /metrics scrape, and the watchdog's /health check always answers."""
    monkeypatch.setattr(measure, "_scrape", lambda base_url: None)
    monkeypatch.setattr(measure, "_metrics_sampler", lambda base_url, interval_s: None)
    monkeypatch.setattr(measure._Watchdog, "_healthy", lambda self, http: True)


def _run(load: ScriptedLoad, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> dict[str, Any]:
    monkeypatch.setattr(measure, "run_load_sync", load)
    config = SweepConfig(workload=SPEC, concurrencies=kw.pop("concurrencies", (1, 4, 16)), **kw.pop("config", {}))
    run = new_run(model="m", weights="synthetic", server={"mode": "endpoint"}, config=config)
    saved: list[str] = []
    run = run_sweep(run, config, base_url="http://127.0.0.1:9", model="m", vocab_size=4096,
                    on_point=lambda r: saved.append(r["status"]), **kw)
    run["_saved"] = saved
    return run


def test_full_sweep_completes_with_best_point(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(ScriptedLoad({1: 100.0, 4: 300.0, 16: 700.0}), monkeypatch)
    assert run["status"] == "complete" and run["error"] is None
    assert [p["concurrency"] for p in run["points"]] == [1, 4, 16]
    assert run["points"][1]["output_tokens_per_s"] == pytest.approx(300.0)
    assert run["best_point"]["concurrency"] == 16 and "samples" not in run["best_point"]
    assert len(run["points"][0]["samples"]) == 4 and run["points"][0]["power"] is None
    assert run["_saved"][-1] == "complete" and len(run["_saved"]) >= 3  # partial results saved per point


def test_saturation_stops_early(monkeypatch: pytest.MonkeyPatch) -> None:
    load = ScriptedLoad({1: 100.0, 4: 300.0, 16: 310.0, 64: 320.0})
    run = _run(load, monkeypatch, concurrencies=(1, 4, 16, 64))
    assert [p["concurrency"] for p in run["points"]] == [1, 4, 16]
    assert run["status"] == "complete" and any("stopped early at concurrency 16" in n for n in run["notes"])
    assert len(load.calls) == 3


def test_zero_gain_never_stops_early(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(ScriptedLoad({1: 100.0, 4: 90.0, 16: 80.0}), monkeypatch, config={"saturation_gain": 0.0})
    assert len(run["points"]) == 3


def test_errors_stop_the_sweep_as_partial(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(ScriptedLoad({1: 100.0, 4: 300.0, 16: 700.0}, fail={4: 1}), monkeypatch)
    assert run["status"] == "partial"
    assert run["error"].startswith("1 of 12 requests failed at concurrency 4: 1× HTTP 500")
    assert [p["concurrency"] for p in run["points"]] == [1, 4]
    assert run["best_point"]["concurrency"] == 1  # the point with failures is never the best


def test_all_failed_is_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(ScriptedLoad({1: 100.0}, fail={1: 4}), monkeypatch, concurrencies=(1,))
    assert run["status"] == "failed" and run["best_point"] is None


def test_warmup_runs_in_the_same_call_with_its_own_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    load = ScriptedLoad({1: 100.0, 4: 300.0})
    _run(load, monkeypatch, concurrencies=(1, 4), config={"warmup_requests": 2})
    assert len(load.calls) == 2  # one run_load call (one aiohttp session) per point, warm-up included
    assert [len(c["warmup"]) for c in load.calls] == [2, 4]  # at least the concurrency
    assert [len(c["requests"]) for c in load.calls] == [4, 12]  # SPEC asks 4: a floor, 3 x c at c=4
    firsts = [c[k][0].prompt_token_ids[:8] for c in load.calls for k in ("warmup", "requests")]
    assert len({tuple(f) for f in firsts}) == 4  # warm-up and each point: disjoint first blocks


def test_zero_warmup_sends_none(monkeypatch: pytest.MonkeyPatch) -> None:
    load = ScriptedLoad({1: 100.0, 4: 300.0})
    _run(load, monkeypatch, concurrencies=(1, 4), config={"warmup_requests": 0})
    assert [len(c["warmup"]) for c in load.calls] == [0, 0]


def test_metrics_before_scrape_happens_after_the_warmup(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    monkeypatch.setattr(measure, "_scrape", lambda base_url: events.append("scrape"))
    load = ScriptedLoad({2: 100.0}, on_call=lambda kw: events.append("measured requests"))
    run = _run(load, monkeypatch, concurrencies=(2,), config={"warmup_requests": 1})
    assert events[:2] == ["scrape", "measured requests"]  # on_warmup_done ran first, inside the same call
    assert run["points"][0]["warmup_requests"] == 2 and run["points"][0]["measured_requests"] == 6


@pytest.mark.parametrize(("conc", "floor", "measured"), [(1, 4, 4), (4, 4, 12), (16, 64, 64), (64, 4, 192)])
def test_each_point_measures_at_least_three_waves(monkeypatch: pytest.MonkeyPatch, conc: int, floor: int,
                                                  measured: int) -> None:
    spec = WorkloadSpec(input_tokens=16, output_tokens=4, num_requests=floor)
    load = ScriptedLoad({conc: 100.0})
    monkeypatch.setattr(measure, "run_load_sync", load)
    config = SweepConfig(workload=spec, concurrencies=(conc,))
    run = run_sweep(new_run(model="m", weights="synthetic", server={}, config=config), config,
                    base_url="http://127.0.0.1:9", model="m", vocab_size=4096)
    assert run["points"][0]["completed"] == measured >= 3 * conc
    assert (f"concurrency {conc}: {measured} measured requests" in " ".join(run["notes"])) == (measured > floor)


def test_saturation_compares_with_the_best_earlier_point_not_the_last() -> None:
    config = SweepConfig(workload=SPEC, concurrencies=(1, 2, 4, 8, 16))
    hist = [{"concurrency": c, "output_tokens_per_s": t, "failed": 0, "completed": 4}
            for c, t in ((1, 100.0), (2, 300.0), (4, 290.0), (8, 310.0))]
    # 310 is > 5 % above the last point (290) but < 5 % above the best (300): saturated
    decision = next_concurrency(config, hist)
    assert decision.load is None and "over the best earlier point (300.0)" in (decision.note or "")
    assert next_concurrency(config, hist[:2]).load.concurrency == 4


def test_user_stop_marks_the_run_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    load = ScriptedLoad({1: 100.0, 4: 300.0, 16: 700.0},
                        on_call=lambda kw: (stop.set(), kw["stop"].wait(5)))  # the watchdog relays the stop
    run = _run(load, monkeypatch, stop=stop)
    assert run["status"] == "interrupted" and len(run["points"]) == 1 and run["points"][0]["interrupted"]
    assert any("interrupted by the user" in n for n in run["notes"])


def test_server_death_is_recorded_with_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    alive = {"v": True}
    load = ScriptedLoad({1: 100.0, 4: 300.0, 16: 700.0},
                        on_call=lambda kw: alive.update(v=kw["concurrency"] != 4))
    run = _run(load, monkeypatch, alive=lambda: alive["v"], describe_exit=lambda: "vLLM exited (code -9)")
    assert run["status"] == "partial" and run["error"] == "vLLM exited (code -9)"
    assert [p["concurrency"] for p in run["points"]] == [1, 4]


def test_hang_detected_by_the_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure._Watchdog, "_healthy", lambda self, http: False)

    def hang(kw: dict[str, Any]) -> None:  # blocks like requests to a SIGSTOPped server, until cancelled
        assert kw["stop"].wait(10), "the watchdog never cancelled the point"

    run = _run(ScriptedLoad({1: 100.0}, on_call=hang), monkeypatch, concurrencies=(1,),
               config={"hang_timeout_s": 0.3, "watch_interval_s": 0.05})
    assert run["status"] == "partial" and "stopped answering" in run["error"]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="concurrencies must be a non-empty list"):
        SweepConfig(workload=SPEC, concurrencies=())
    with pytest.raises(ValueError, match="request_rate must be > 0"):
        SweepConfig(workload=SPEC, request_rate=0)
    with pytest.raises(ValueError, match="goodput_ttft_ms must be > 0"):
        SweepConfig(workload=SPEC, goodput_ttft_ms=-1)
    with pytest.raises(ValueError, match="weights must be"):
        new_run(model="m", weights="fake", server={}, config=SweepConfig(workload=SPEC))
    assert SweepConfig(workload=SPEC, request_rate=math.inf).settings_dict()["request_rate"] is None


def test_pure_helpers() -> None:
    assert parse_int_list("16") == (16,)
    with pytest.raises(ValueError, match="concurrency must be"):
        parse_int_list("0,4")
    assert not saturated(0.0, 5.0, 0.05) and saturated(10.0, 10.0, 0.0) is False
    pts = [{"concurrency": 8, "output_tokens_per_s": 99, "failed": 1, "completed": 3},
           {"concurrency": 2, "output_tokens_per_s": 50, "failed": 0, "completed": 0}]
    assert best_point(pts) is None


def test_an_open_loop_point_covers_the_minimum_duration_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    load = ScriptedLoad({4: 100.0})
    run = _run(load, monkeypatch, concurrencies=(4,), config={"request_rate": 5.0, "min_point_duration_s": 10})
    assert len(load.calls[0]["requests"]) == 50 and load.calls[0]["request_rate"] == 5.0
    assert "rate 5 req/s (cap 4): 50 measured requests (at least 10 s of arrivals; 4 requested is a floor)" in (
        run["notes"][0])


def test_uncapped_open_loop_point_sends_without_a_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 8 item 5: ``--concurrency uncapped --request-rate R`` runs open loop with no in-flight cap."""
    load = ScriptedLoad({None: 100.0})
    run = _run(load, monkeypatch, concurrencies=(0,), config={"request_rate": 50.0})
    (call,) = load.calls
    assert call["concurrency"] is None and call["request_rate"] == 50.0
    (point,) = run["points"]
    assert point["concurrency"] is None and point["request_rate"] == 50.0 and run["status"] == "complete"


def test_uncapped_needs_a_request_rate() -> None:
    with pytest.raises(ValueError, match="uncapped"):
        SweepConfig(workload=SPEC, concurrencies=(0,))
