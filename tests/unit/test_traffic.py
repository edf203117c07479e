"""Traffic shape of a trace: hand-worked goldens, a slow reference for prefix reuse, edge cases, the scenario."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators.scenario import DEFAULT_SCENARIO, Scenario
from calculators.traces import TraceError, iter_requests, read_arrays
from calculators.traffic import (
    apply_notes,
    apply_to_scenario,
    arrival_rate,
    heavy_tail_notes,
    peak_window,
    prefix_reuse_tokens,
    summarize,
    summarize_file,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "traces"
MOONCAKE = Path("/work/shared/traces/mooncake-fast25-conversation.jsonl")


def test_small_azure_by_hand():
    # 4 requests at 0, 0.5, 10, 100 s; inputs 100..400, outputs 10..40
    s = summarize_file(FIXTURES / "small-azure.csv")
    assert s.requests == 4 and s.duration_s == 100.0
    assert s.requests_per_day == pytest.approx(4 / 100 * 86_400)  # 3,456
    assert (s.input_tokens, s.output_tokens) == (250.0, 25.0)
    # linear percentiles of 100,200,300,400: rank p/100 * 3
    assert (s.input_tokens_p50, s.input_tokens_p90, s.input_tokens_p99) == pytest.approx((250, 370, 397))
    assert (s.output_tokens_p50, s.output_tokens_p90, s.output_tokens_p99) == pytest.approx((25, 37, 39.7))
    # windows [0,60): 3 requests, [60,120): 1 -> peak 3/60 per s over a mean of 4/100 per s
    assert s.peak_window_requests == 3
    assert s.peak_to_mean == pytest.approx((3 / 60) / (4 / 100))  # 1.25
    assert s.prefix_reuse_fraction is None and s.format == "azure"


def test_small_mooncake_by_hand():
    # ids [1,2] | [1,2,3] | [1,4] | [1] | [5,2,3]; inputs 1000,1500,700,300,2000 at 0,1,30,61,120 s
    # leading runs already seen: 0 | 2 -> 1024 | 1 -> 512 | 1 -> min(512, 300) = 300 | 0 (5 is new)
    a = read_arrays(FIXTURES / "small-mooncake.jsonl")
    assert prefix_reuse_tokens(a).tolist() == [0, 1024, 512, 300, 0]
    s = summarize(a)
    assert s.prefix_reuse_fraction == pytest.approx((1024 + 512 + 300) / 5500)
    assert s.requests_per_day == pytest.approx(5 / 120 * 86_400)  # 3,600
    assert s.peak_to_mean == pytest.approx((3 / 60) / (5 / 120))  # 1.2
    assert (s.input_tokens, s.output_tokens) == (1100.0, 30.0)


def test_window_is_settable():
    a = read_arrays(FIXTURES / "small-mooncake.jsonl")
    s = summarize(a, window_s=10)  # [0,10): 2 requests -> 2/10 over 5/120
    assert s.window_s == 10 and s.peak_window_requests == 2
    assert s.peak_to_mean == pytest.approx(0.2 / (5 / 120))
    for bad in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="window_s must be a positive number"):
            summarize(a, window_s=bad)


def test_zero_span_is_refused_with_a_clear_error():
    one = b'{"timestamp": 7, "input_length": 10, "output_length": 1}\n'
    with pytest.raises(TraceError, match=r"one.jsonl: all 1 requests arrive at the same time \(a 0 s span\)"):
        summarize(read_arrays(one, name="one.jsonl"))
    with pytest.raises(TraceError, match="all 3 requests arrive at the same time"):
        summarize(read_arrays(one * 3, name="burst.jsonl"))


def test_unsorted_timestamps_are_refused_by_the_reader_naming_the_line():
    data = (FIXTURES / "small-azure.csv").read_bytes() + b"2023-11-16 18:00:05.0,1,1\n"
    with pytest.raises(TraceError, match="line 6: timestamp goes back in time"):
        summarize_file(data, name="unsorted.csv")


def test_a_trace_shorter_than_a_window_is_reported_and_clamped_with_a_note():
    s = summarize(read_arrays(FIXTURES / "small-azure.csv"), window_s=600)  # 100 s span < 600 s window
    assert s.peak_to_mean == pytest.approx((4 / 600) / (4 / 100))  # 1/6: reported as computed
    out = apply_to_scenario(DEFAULT_SCENARIO, s)
    assert out.traffic.peak_to_mean == 1.0
    notes = apply_notes(DEFAULT_SCENARIO, s)
    assert any("traffic.peak_to_mean 0.1667 from the trace is outside" in n for n in notes)
    assert any("less than one 600 s window" in n for n in notes)


def _reference_reuse(rows) -> list[int]:
    """The definition, one request at a time."""
    seen: set[int] = set()
    out = []
    for r in rows:
        k = 0
        for h in r.hash_ids:
            if h not in seen:
                break
            k += 1
        out.append(min(k * 512, r.input_tokens))
        seen.update(r.hash_ids)
    return out


@pytest.mark.skipif(not MOONCAKE.exists(), reason="shared traces not on this machine")
def test_prefix_reuse_matches_the_definition_on_the_public_mooncake_trace():
    a = read_arrays(MOONCAKE)
    expected = _reference_reuse(iter_requests(MOONCAKE))
    assert prefix_reuse_tokens(a).tolist() == expected
    assert summarize(a).prefix_reuse_fraction == pytest.approx(sum(expected) / int(a.input_tokens.sum()))
    assert 0.3 < summarize(a).prefix_reuse_fraction < 0.45  # a large share repeats (the README's point)


@st.composite
def _traces(draw) -> bytes:
    n = draw(st.integers(1, 25))
    lines = []
    t = 0
    for _ in range(n):
        t += draw(st.integers(0, 90_000))
        ids = draw(st.lists(st.integers(-3, 12), max_size=6))  # small alphabet: many repeats, some in-row
        lines.append(json.dumps({"timestamp": t, "input_length": draw(st.integers(0, 4000)),
                                 "output_length": draw(st.integers(0, 50)), "hash_ids": ids}))
    return ("\n".join(lines) + "\n").encode()


@given(_traces(), st.sampled_from([1.0, 7.5, 60.0]))
def test_fuzz_vectorised_summary_matches_a_loop(data: bytes, window_s: float):
    a = read_arrays(data)
    rows = list(iter_requests(data))
    assert prefix_reuse_tokens(a).tolist() == _reference_reuse(rows)
    t = [r.t_s for r in rows]
    windows: dict[int, int] = {}
    for x in t:
        windows[int(x // window_s)] = windows.get(int(x // window_s), 0) + 1
    assert peak_window(a.t_s, window_s) == max(windows.values())
    if t[-1] > 0:
        s = summarize(a, window_s=window_s)
        assert s.peak_to_mean == pytest.approx(max(windows.values()) / window_s / (len(t) / t[-1]))
        assert 0 <= (s.prefix_reuse_fraction or 0) <= 1
    start, rate = arrival_rate(a.t_s, window_s, max_points=5)
    assert len(start) <= 5 and rate.sum() * (start[1] - start[0] if len(start) > 1 else window_s) == \
        pytest.approx(len(t))


def test_arrival_rate_of_a_million_requests_is_at_most_max_points():
    t = np.sort(np.random.default_rng(1).uniform(0, 86_400, 1_000_000))
    start, rate = arrival_rate(t, 60, max_points=1000)
    assert len(start) == len(rate) <= 1000
    assert rate.sum() * (start[1] - start[0]) == pytest.approx(1_000_000)


def test_apply_to_scenario_takes_the_shape_and_round_trips_as_a_scenario():
    s = summarize_file(FIXTURES / "small-mooncake.jsonl")
    out = apply_to_scenario(DEFAULT_SCENARIO, s)
    t = out.traffic
    assert isinstance(out, Scenario) and out.api == DEFAULT_SCENARIO.api
    assert (t.requests_per_day, t.input_tokens, t.output_tokens) == (3600.0, 1100.0, 30.0)
    assert t.cached_input_fraction == s.prefix_reuse_fraction and t.peak_to_mean == pytest.approx(1.2)
    assert (t.input_tokens_p50, t.output_tokens_p99) == (s.input_tokens_p50, s.output_tokens_p99)
    assert t.trace_name == "small-mooncake.jsonl"
    assert apply_notes(DEFAULT_SCENARIO, s) == []
    azure = summarize_file(FIXTURES / "small-azure.csv")
    kept = apply_to_scenario(DEFAULT_SCENARIO, azure).traffic.cached_input_fraction
    assert kept == DEFAULT_SCENARIO.traffic.cached_input_fraction
    assert "no prompt-block hash ids: cached_input_fraction kept at 0.5" in apply_notes(DEFAULT_SCENARIO, azure)[0]


def test_means_are_rounded_to_whole_numbers_and_a_zero_output_mean_is_clamped_with_a_note():
    data = b'{"timestamp": 0, "input_length": 10, "output_length": 0}\n' \
           b'{"timestamp": 7000, "input_length": 11, "output_length": 0}\n'
    s = summarize(read_arrays(data, name="x.jsonl"))
    assert (s.requests_per_day, s.input_tokens, s.output_tokens) == (pytest.approx(2 / 7 * 86_400), 10.5, 0.0)
    t = apply_to_scenario(DEFAULT_SCENARIO, s).traffic
    assert (t.requests_per_day, t.input_tokens, t.output_tokens) == (24_686.0, 10.0, 0.01)
    assert any("traffic.output_tokens 0 from the trace is outside" in n for n in apply_notes(DEFAULT_SCENARIO, s))


def test_heavy_tail_notes_also_read_a_scenarios_traffic():
    s = summarize_file(FIXTURES / "small-azure.csv")
    typed_in = DEFAULT_SCENARIO.traffic
    assert heavy_tail_notes(typed_in) == []  # no percentiles: nothing to say
    from_trace = apply_to_scenario(DEFAULT_SCENARIO, s).traffic
    assert heavy_tail_notes(from_trace, ratio=1.5) == heavy_tail_notes(s, ratio=1.5) != []


def test_heavy_tail_is_named_only_when_p99_is_far_above_the_mean():
    flat = summarize_file(FIXTURES / "small-azure.csv")  # p99 397 vs mean 250
    assert heavy_tail_notes(flat) == []
    lines = [f'{{"timestamp": {i * 1000}, "input_length": {100 if i < 98 else 20_000}, "output_length": 5}}'
             for i in range(100)]
    tail = summarize(read_arrays(("\n".join(lines)).encode()))
    notes = heavy_tail_notes(tail)
    assert len(notes) == 1 and notes[0].startswith("Heavy tail: p99 input is 20,000 tokens")


def test_json_keys_are_the_issues_names():
    keys = set(summarize_file(FIXTURES / "small-mooncake.jsonl").to_dict())
    assert {"requests_per_day", "input_tokens", "output_tokens", "peak_to_mean", "prefix_reuse_fraction",
            "input_tokens_p50", "input_tokens_p90", "input_tokens_p99", "output_tokens_p50", "output_tokens_p90",
            "output_tokens_p99", "trace_name"} <= keys


@pytest.mark.parametrize(("scale", "shift", "sorts"), [(1, 0, False), (1, 1000, False), (7919, 0, True),
                                                    (1, 2**40, True), (1, -(2**40), True)],
                         ids=["dense", "dense-offset", "sparse", "huge", "negative"])
def test_prefix_reuse_is_the_same_for_dense_and_sparse_ids(monkeypatch, scale: int, shift: int, sorts: bool):
    rows = [(0, 1000, [1, 2]), (1, 1500, [1, 2, 3]), (30, 700, [1, 4]), (61, 300, [1]), (120, 2000, [5, 2, 3]),
            (130, 900, [2, 2])]
    data = "".join(json.dumps({"timestamp": t * 1000, "input_length": n, "output_length": 1,
                               "hash_ids": [h * scale + shift for h in ids]}) + "\n" for t, n, ids in rows)
    a = read_arrays(data.encode())
    calls = []
    argsort = np.argsort
    monkeypatch.setattr(np, "argsort", lambda *args, **kw: calls.append(1) or argsort(*args, **kw))
    assert prefix_reuse_tokens(a).tolist() == [0, 1024, 512, 300, 0, 900]
    assert bool(calls) is sorts  # which of the two paths ran
