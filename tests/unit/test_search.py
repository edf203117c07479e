"""probes.plan.search against a synthetic latency model (no server), and the search through run_sweep."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from probes.load.workload import WorkloadSpec
from probes.plan import sweep
from probes.plan.measure import Load, MeasuredPoint
from probes.plan.search import (
    Probe,
    SloSearch,
    can_be_operating_point,
    keeps_up,
    next_step,
    operating_point,
    point_verdict,
)
from probes.plan.sweep import SweepConfig, new_run, run_sweep

OUT_TOKENS = 128


def model_point(value: float, *, capacity: float, by: str = "request_rate", requests: int = 50,
                failed: int = 0, client_bound: bool = False, slow_client: float = 1.0) -> dict[str, Any]:
    """A server that queues like M/M/1: p99 TTFT = 50 ms / (1 - load/capacity), unbounded at capacity."""
    u = value / capacity
    ttft = 50.0 / (1.0 - u) if u < 1 else 1e9
    tpot = 10.0 / (1.0 - 0.5 * min(u, 1.0))
    e2el_ms = ttft + tpot * (OUT_TOKENS - 1)
    rate = value if by == "request_rate" else None
    duration = ((requests / value if rate else requests / capacity) + e2el_ms / 1000) * slow_client
    return {"concurrency": None if rate else int(value), "request_rate": rate, "completed": requests - failed,
            "failed": failed, "duration_s": duration, "requests_per_s": (requests - failed) / duration,
            "output_tokens_per_s": (requests - failed) * OUT_TOKENS / duration,
            "ttft_ms": {"p99": ttft}, "tpot_ms": {"p99": tpot}, "e2el_ms": {"p99": e2el_ms},
            "errors": ["1× HTTP 500"] if failed else [], "client_bound": client_bound}


def search_with(search: SloSearch, measure: Any) -> tuple[list[Probe], Any, list[tuple[float, dict[str, Any]]]]:
    """The pure loop: ask next_step, 'measure' with the fake, judge, repeat."""
    probes: list[Probe] = []
    measured: list[tuple[float, dict[str, Any]]] = []
    step = next_step(search, probes)
    while step.next_value is not None:
        point = measure(step.next_value)
        measured.append((step.next_value, point))
        probes.append(point_verdict(search, point, step.next_value))
        step = next_step(search, probes)
    return probes, step, measured


def ttft_at(target_ms: float, capacity: float) -> float:
    """The rate where the model's p99 TTFT equals the target: 50 / (1 - r/C) = T."""
    return capacity * (1.0 - 50.0 / target_ms)


@pytest.mark.parametrize("capacity", [0.3, 3.7, 41.0, 1900.0])
def test_rate_search_brackets_the_true_capacity_from_below_1_to_above_1000(capacity: float) -> None:
    search = SloSearch(ttft_p99_target_ms=200.0, precision=0.05, max_points=20, min_value=0.01)
    probes, step, measured = search_with(search, lambda r: model_point(r, capacity=capacity))
    truth = ttft_at(200.0, capacity)
    assert step.converged and step.lower <= truth <= step.upper
    assert step.upper <= step.lower * 1.05 + 1e-12
    assert len(probes) <= 20
    op = operating_point(search, measured, step)
    assert op["request_rate"] == step.lower and op["converged"] and op["points"] == len(probes)
    assert op["ttft_p99_ms"] <= 200.0 and op["ttft_p99_target_ms"] == 200.0 and op["tpot_p99_target_ms"] is None
    assert op["output_tokens_per_s_per_replica"] == pytest.approx(measured[[v for v, _ in measured].index(
        step.lower)][1]["output_tokens_per_s"])


def test_slo_never_met_even_at_the_lowest_rate() -> None:
    search = SloSearch(ttft_p99_target_ms=10.0, min_value=0.1)  # the model's floor is 50 ms
    probes, step, measured = search_with(search, lambda r: model_point(r, capacity=100.0))
    assert not any(p.ok for p in probes) and min(v for v, _ in measured) == 0.1
    assert not step.converged and step.reason.startswith("the SLO is not met even at the lowest request rate (0.1)")
    op = operating_point(search, measured, step)
    assert op["request_rate"] is None and op["output_tokens_per_s_per_replica"] is None and not op["converged"]
    assert len(probes) == 3  # 1, 0.25, 0.1: the range is walked down geometrically, not point by point


def test_slo_always_met_up_to_the_cap() -> None:
    search = SloSearch(ttft_p99_target_ms=500.0, max_value=1000.0, max_points=20)
    probes, step, measured = search_with(search, lambda r: model_point(r, capacity=1e9))
    assert all(p.ok for p in probes) and max(v for v, _ in measured) == 1000.0
    assert not step.converged and "met up to the highest value allowed (1000 req/s)" in step.reason
    assert operating_point(search, measured, step)["request_rate"] == 1000.0


def test_the_point_cap_is_hard() -> None:
    search = SloSearch(ttft_p99_target_ms=200.0, precision=0.001, max_points=5)
    probes, step, _ = search_with(search, lambda r: model_point(r, capacity=41.0))
    assert len(probes) == 5 and not step.converged
    assert step.reason.startswith("stopped at the cap of 5 points: the capacity is between")


@pytest.mark.parametrize("seed", range(8))
def test_noisy_points_still_end_with_a_passing_lower_and_a_failing_upper_bound(seed: int) -> None:
    rng = random.Random(seed)
    search = SloSearch(ttft_p99_target_ms=200.0, precision=0.05, max_points=10)

    def noisy(r: float) -> dict[str, Any]:  # +-40 % on latency: near the threshold the verdict flips
        point = model_point(r, capacity=41.0)
        point["ttft_ms"] = {"p99": point["ttft_ms"]["p99"] * rng.uniform(0.6, 1.4)}
        return point

    probes, step, measured = search_with(search, noisy)
    assert len(probes) <= 10
    verdict = {p.value: p.ok for p in probes}
    if step.lower is not None:
        assert verdict[step.lower] and (step.upper is None or step.lower < step.upper)
    if step.upper is not None:
        assert not verdict[step.upper] and step.upper == min(v for v, ok in verdict.items() if not ok)


def test_a_pass_above_a_failure_never_raises_the_answer() -> None:
    search = SloSearch(ttft_p99_target_ms=200.0, precision=0.1)
    history = [Probe(1, True, ""), Probe(4, True, ""), Probe(16, True, ""), Probe(64, False, "x"),
               Probe(8, False, "noise"), Probe(5.5, True, "")]
    step = next_step(search, history)
    assert step.lower == 5.5 and step.upper == 8 and step.next_value == pytest.approx(math.sqrt(5.5 * 8))
    history.append(Probe(step.next_value, True, ""))
    history.append(Probe(7.3, True, ""))
    step = next_step(search, history)
    assert step.converged and step.upper == 8 and step.lower == 7.3
    assert "not monotone (passed at 16 above the failure at 8)" in step.reason


def test_points_with_errors_fail_the_slo() -> None:
    search = SloSearch(ttft_p99_target_ms=200.0, precision=0.05)
    probes, step, _ = search_with(search, lambda r: model_point(r, capacity=1e6, failed=1 if r > 10 else 0))
    assert step.converged and step.lower <= 10 < step.upper
    assert any(p.why == "1 of 50 requests failed (1× HTTP 500)" for p in probes)


def test_a_client_bound_point_is_never_the_operating_point() -> None:
    assert not can_be_operating_point({"client_bound": True, "completed": 5})
    assert can_be_operating_point({"completed": 5}) and can_be_operating_point({"client_bound": False})
    search = SloSearch(ttft_p99_target_ms=200.0, precision=0.05)
    probes, step, measured = search_with(
        search, lambda r: model_point(r, capacity=41.0, client_bound=r >= 8))
    op = operating_point(search, measured, step)
    assert op["request_rate"] < 8 and step.upper <= 8
    assert any("CPU-bound" in p.why for p in probes)


def test_a_rate_the_client_cannot_follow_fails() -> None:
    search = SloSearch(ttft_p99_target_ms=1e6)
    slow = model_point(16.0, capacity=1e6, slow_client=2.0)
    assert not keeps_up(slow, 16.0, 0.1)
    assert point_verdict(search, slow, 16.0).why.startswith("throughput did not follow the offered rate (16 req/s")
    assert point_verdict(search, model_point(16.0, capacity=1e6), 16.0).ok
    # a closed-loop (concurrency) search has no offered rate to follow
    conc = SloSearch(ttft_p99_target_ms=1e6, by="concurrency")
    assert point_verdict(conc, model_point(16.0, capacity=1e6, by="concurrency", slow_client=2.0), 16).ok


def test_concurrency_search_probes_integers_and_ends_at_adjacent_ones() -> None:
    search = SloSearch(tpot_p99_target_ms=16.0, by="concurrency", precision=0.01, max_points=15)  # TPOT 16 ms at c = 75
    probes, step, _ = search_with(search, lambda c: model_point(c, capacity=100.0, by="concurrency"))
    assert all(p.value == int(p.value) for p in probes)
    assert step.converged and step.upper - step.lower == 1 and step.lower == 75


def test_search_validation() -> None:
    with pytest.raises(ValueError, match="needs a p99 TTFT target"):
        SloSearch()
    with pytest.raises(ValueError, match="by must be one of"):
        SloSearch(ttft_p99_target_ms=1, by="tokens")
    with pytest.raises(ValueError, match="growth must be"):
        SloSearch(ttft_p99_target_ms=1, growth=1.0)
    with pytest.raises(ValueError, match="min_value <= start <= max_value"):
        SloSearch(ttft_p99_target_ms=1, start=0.01)
    with pytest.raises(ValueError, match="starts at an integer"):
        SloSearch(ttft_p99_target_ms=1, by="concurrency", start=1.5)
    with pytest.raises(ValueError, match="max_points must be"):
        SloSearch(ttft_p99_target_ms=1, max_points=0)


# -- the search through run_sweep: each probed point is stored with its rate, the answer on the run ----------

class FakeMeasure:
    """Stands in for measure_point: points from the latency model; every request fails at values of at
    least ``all_fail_from`` (HTTP 400, or 429 as a rate-limited hosted API answers)."""

    def __init__(self, capacity: float, *, all_fail_from: float = math.inf) -> None:
        self.capacity, self.all_fail_from = capacity, all_fail_from
        self.loads: list[Load] = []

    def __call__(self, target: Any, load: Load, config: SweepConfig, **kw: Any) -> MeasuredPoint:
        self.loads.append(load)
        value = load.request_rate if math.isfinite(load.request_rate) else float(load.concurrency or 0)
        by = "request_rate" if math.isfinite(load.request_rate) else "concurrency"
        all_fail = value >= self.all_fail_from
        point = model_point(value, capacity=self.capacity, by=by, failed=50 if all_fail else 0)
        if all_fail:
            point["errors"] = ["50× HTTP 400 Bad Request: prompt too long"]
        return MeasuredPoint(point, None, 50, 2)


def _search_run(monkeypatch: pytest.MonkeyPatch, fake: FakeMeasure, search: SloSearch) -> dict[str, Any]:
    monkeypatch.setattr(sweep, "measure_point", fake)
    config = SweepConfig(workload=WorkloadSpec(input_tokens=16, output_tokens=OUT_TOKENS, num_requests=8),
                         search=search)
    run = new_run(model="m", weights="synthetic", server={}, config=config)
    return run_sweep(run, config, base_url="http://127.0.0.1:9", model="m", vocab_size=4096)


def test_run_sweep_with_a_search_stores_every_point_and_the_operating_point(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMeasure(capacity=41.0)
    run = _search_run(monkeypatch, fake, SloSearch(ttft_p99_target_ms=200.0, tpot_p99_target_ms=50.0,
                                                   max_concurrency=256))
    assert run["status"] == "complete" and run["error"] is None
    assert [p["request_rate"] for p in run["points"]] == [ld.request_rate for ld in fake.loads]
    assert all(ld.concurrency == 256 for ld in fake.loads)  # the cap of an open-loop search
    op = run["operating_point"]
    assert op["converged"] and op["points"] == len(run["points"]) <= 12
    assert op["lower"] <= ttft_at(200.0, 41.0) <= op["upper"] and op["concurrency"] == 256
    assert {p["slo"]["met"] for p in run["points"]} == {True, False}
    assert run["settings"]["search"]["ttft_p99_target_ms"] == 200.0
    assert any(n.startswith("SLO search: bracketed:") for n in run["notes"])


def test_run_sweep_search_stops_when_every_request_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMeasure(capacity=41.0, all_fail_from=0.0)
    run = _search_run(monkeypatch, fake, SloSearch(ttft_p99_target_ms=200.0))
    assert len(fake.loads) == 1 and run["status"] == "failed"
    assert run["error"].startswith("every request failed at 1 req/s, so the search stopped: 50× HTTP 400")
    assert run["operating_point"]["request_rate"] is None and not run["operating_point"]["converged"]


def test_run_sweep_search_by_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMeasure(capacity=100.0)
    run = _search_run(monkeypatch, fake, SloSearch(tpot_p99_target_ms=16.0, by="concurrency", precision=0.01, max_points=15))
    assert all(math.isinf(ld.request_rate) for ld in fake.loads)
    assert run["operating_point"]["concurrency"] == 75 and run["operating_point"]["request_rate"] is None


def test_run_sweep_search_goes_on_when_a_higher_rate_fails_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMeasure(capacity=1e6, all_fail_from=10.0)  # e.g. HTTP 429 above 10 req/s
    run = _search_run(monkeypatch, fake, SloSearch(ttft_p99_target_ms=200.0, precision=0.05))
    op = run["operating_point"]
    assert run["status"] == "complete" and run["error"] is None and op["converged"]
    assert op["lower"] < 10.0 <= op["upper"] <= op["lower"] * 1.05
