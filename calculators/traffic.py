"""A trace's traffic shape: the numbers a scenario's ``[traffic]`` needs, computed on whole columns.

For a trace of ``n`` requests arriving at ``t_s`` (seconds after the first; ``D = t_s[-1]``, the span):

* ``requests_per_day = n / D * 86_400`` (mean rate ``n / D``, as issue 10 defines it);
* ``input_tokens`` / ``output_tokens``: means; ``*_p50/p90/p99``: percentiles (numpy's linear method);
* ``peak_to_mean = max_k count_k / window_s / (n / D)``, ``count_k`` the requests in the window
  ``[k * window_s, (k + 1) * window_s)`` counted from the first request (default 60 s). A trace shorter
  than one window gives ``D / window_s < 1``: reported as it is, clamped to the scenario's [1, 100] when
  applied (:func:`apply_to_scenario`);
* ``prefix_reuse_fraction`` (Mooncake; None without hash ids): ``sum_i reused_i / sum_i input_i``, with
  ``reused_i = min(k_i * 512, input_i)`` and ``k_i`` the length of request ``i``'s leading run of hash
  ids each already seen in an earlier request (:func:`prefix_reuse_tokens`). It maps to the scenario's
  ``cached_input_fraction``: the share of prompt tokens a prefix cache (and an API's cached-input price) can
  serve.

A trace whose requests all arrive at one time (one request, or a burst) has no rate: :func:`summarize`
refuses it with a ``TraceError`` that says so.

>>> from calculators.traces import read_arrays
>>> shape = summarize(read_arrays(b'''TIMESTAMP,ContextTokens,GeneratedTokens
... 2023-11-16 18:00:00,100,10
... 2023-11-16 18:00:30,300,30
... 2023-11-16 18:02:00,200,20
... ''', name="tiny.csv"))
>>> shape.requests_per_day, shape.input_tokens, shape.peak_to_mean
(2160.0, 200.0, 1.3333333333333333)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from calculators.scenario import LIMITS, Scenario, Traffic
from calculators.traces import (
    MAX_TRACE_BYTES,
    TRACE_BLOCK_TOKENS,
    Source,
    TraceArrays,
    TraceError,
    read_arrays,
)

__all__ = [
    "DEFAULT_WINDOW_S",
    "HEAVY_TAIL_RATIO",
    "TrafficShape",
    "summarize",
    "summarize_file",
    "prefix_reuse_tokens",
    "peak_window",
    "arrival_rate",
    "length_histogram",
    "heavy_tail_notes",
    "apply_to_scenario",
    "apply_notes",
    "trace_label",
]

DEFAULT_WINDOW_S = 60.0
HEAVY_TAIL_RATIO = 3.0
"""A p99 at least this many times the mean is called a heavy tail (the mean hides it)."""
SECONDS_PER_DAY = 86_400
PERCENTILES = (50, 90, 99)
_FORMATS = {"azure": "Azure", "mooncake": "Mooncake"}


@dataclass(frozen=True)
class TrafficShape:
    """A trace summarised; ``to_dict`` gives the JSON keys of issue 10 (the scenario's names).

    ``requests`` in the trace over ``duration_s`` (first to last arrival); token fields are per request;
    ``peak_window_requests`` arrived in the busiest ``window_s``; ``prefix_reuse_fraction`` is None for a
    trace without hash ids (Azure)."""

    trace_name: str
    format: str
    requests: int
    duration_s: float
    requests_per_day: float
    input_tokens: float
    output_tokens: float
    input_tokens_p50: float
    input_tokens_p90: float
    input_tokens_p99: float
    output_tokens_p50: float
    output_tokens_p90: float
    output_tokens_p99: float
    peak_to_mean: float
    window_s: float
    peak_window_requests: int
    prefix_reuse_fraction: float | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def prefix_reuse_tokens(a: TraceArrays) -> np.ndarray:
    """Per request, the prompt tokens in its leading run of hash ids already seen in an earlier request
    (file order), ``min(k * 512, input_tokens)``; int64, zeros without hash ids.

    Vectorised: an id is "seen before" when the first request holding it (a table indexed by id for dense
    non-negative ids, ``np.minimum.at``; else a stable argsort that groups equal ids in file order) is an
    earlier one; the leading run ends at each request's first unseen position (``np.minimum.reduceat``).

    >>> from calculators.traces import read_arrays
    >>> a = read_arrays(b'{"timestamp": 0, "input_length": 1000, "output_length": 1, "hash_ids": [1, 2]}\\n'
    ...                 b'{"timestamp": 1, "input_length": 1500, "output_length": 1, "hash_ids": [1, 2, 3]}\\n'
    ...                 b'{"timestamp": 2, "input_length": 300, "output_length": 1, "hash_ids": [1]}\\n'
    ...                 b'{"timestamp": 3, "input_length": 2000, "output_length": 1, "hash_ids": [5, 2, 3]}\\n')
    >>> prefix_reuse_tokens(a).tolist()
    [0, 1024, 300, 0]
    """
    n = len(a)
    ids = a.hash_ids
    if ids.size == 0:
        return np.zeros(n, np.int64)
    size = ids.size
    idx = np.int32 if max(size, n) < 2**31 else np.int64  # halves the memory of every index array below
    lengths = np.diff(a.hash_offsets).astype(idx)
    rows = np.repeat(np.arange(n, dtype=idx), lengths)  # the request of each id
    lo, hi = int(ids.min()), int(ids.max())
    if lo >= 0 and hi < 4 * size + 1024:  # dense ids (Mooncake numbers its blocks): a table, no sort
        first = np.full(hi + 1, n, idx)
        np.minimum.at(first, ids, rows)  # the first request holding each id
        seen = first[ids] < rows
        del first, rows
    else:  # sparse ids (64-bit hashes): a stable sort groups equal ids in file order
        order = np.argsort(ids, kind="stable").astype(idx)
        group_start = np.empty(size, bool)
        group_start[0] = True
        sorted_ids = ids[order]
        np.not_equal(sorted_ids[1:], sorted_ids[:-1], out=group_start[1:])
        del sorted_ids
        rows_sorted = rows[order]
        del rows
        first_pos = np.where(group_start, np.arange(size, dtype=idx), 0)
        del group_start
        np.maximum.accumulate(first_pos, out=first_pos)  # sorted position of each group's first occurrence
        seen = np.empty(size, bool)
        seen[order] = rows_sorted != rows_sorted[first_pos]  # an earlier request holds the same id
        del order, first_pos, rows_sorted
    # position of each id inside its request; unseen positions mark where the leading run stops
    starts = a.hash_offsets[:-1].astype(idx)
    stop = np.arange(size, dtype=idx)
    stop -= np.repeat(starts, lengths)
    np.copyto(stop, np.repeat(lengths, lengths), where=seen)
    del seen
    run = np.zeros(n, np.int64)
    nonempty = lengths > 0
    run[nonempty] = np.minimum.reduceat(stop, starts[nonempty])
    return np.minimum(run * TRACE_BLOCK_TOKENS, a.input_tokens)


def peak_window(t_s: np.ndarray, window_s: float) -> int:
    """The largest request count in consecutive windows ``[k w, (k + 1) w)`` from the first request; any
    number of windows in O(n) memory (``t_s`` sorted: window indices are runs).

    >>> peak_window(np.array([0.0, 1, 59.9, 60, 61, 200]), 60.0)
    3
    """
    if t_s.size == 0:
        return 0
    k = np.floor((t_s - t_s[0]) / window_s).astype(np.int64)
    bounds = np.flatnonzero(np.diff(k)) + 1
    return int(np.diff(np.concatenate(([0], bounds, [k.size]))).max())


def _check_window(window_s: float) -> float:
    if not isinstance(window_s, int | float) or isinstance(window_s, bool) or not math.isfinite(window_s) \
            or window_s <= 0:
        raise ValueError(f"window_s must be a positive number of seconds, got {window_s!r}")
    return float(window_s)


def summarize(a: TraceArrays, *, window_s: float = DEFAULT_WINDOW_S) -> TrafficShape:
    """The traffic shape of a trace read by ``read_arrays`` (formulas in the module docstring).

    A zero span (one request, or all at one time) is a TraceError: there is no arrival rate.

    >>> from calculators.traces import read_arrays
    >>> summarize(read_arrays(b'{"timestamp": 5, "input_length": 1, "output_length": 1}\\n', name="one.jsonl"))
    Traceback (most recent call last):
    ...
    calculators.traces.TraceError: one.jsonl: all 1 requests arrive at the same time (a 0 s span): no arrival rate; a trace needs two distinct times
    """
    window_s = _check_window(window_s)
    n = len(a)
    duration_s = float(a.t_s[-1] - a.t_s[0])
    if duration_s <= 0:
        raise TraceError(a.name, f"all {n:,} requests arrive at the same time (a 0 s span): no arrival rate; "
                                 "a trace needs two distinct times")
    mean_rate = n / duration_s
    peak = peak_window(a.t_s, window_s)
    p_in = np.percentile(a.input_tokens, PERCENTILES)
    p_out = np.percentile(a.output_tokens, PERCENTILES)
    total_in = int(a.input_tokens.sum())
    reuse = None
    if a.has_hash_ids:
        reuse = float(prefix_reuse_tokens(a).sum() / total_in) if total_in else 0.0
    return TrafficShape(
        trace_name=a.name,
        format=a.format,
        requests=n,
        duration_s=duration_s,
        requests_per_day=mean_rate * SECONDS_PER_DAY,
        input_tokens=total_in / n,
        output_tokens=float(a.output_tokens.sum()) / n,
        input_tokens_p50=float(p_in[0]),
        input_tokens_p90=float(p_in[1]),
        input_tokens_p99=float(p_in[2]),
        output_tokens_p50=float(p_out[0]),
        output_tokens_p90=float(p_out[1]),
        output_tokens_p99=float(p_out[2]),
        peak_to_mean=peak / window_s / mean_rate,
        window_s=window_s,
        peak_window_requests=peak,
        prefix_reuse_fraction=reuse,
    )


def summarize_file(source: Source, *, window_s: float = DEFAULT_WINDOW_S, name: str | None = None,
                   max_bytes: int = MAX_TRACE_BYTES) -> TrafficShape:
    """``summarize(read_arrays(source))``; the window is checked before the file is read."""
    _check_window(window_s)
    return summarize(read_arrays(source, name=name, max_bytes=max_bytes), window_s=window_s)


def arrival_rate(t_s: np.ndarray, window_s: float = DEFAULT_WINDOW_S, max_points: int = 1_000
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Arrival rate over time for a chart: (bin start in s, requests/s in that bin), at most ``max_points``
    bins of ``max(window_s, span / max_points)`` seconds each (a million requests become <= 1,000 points).

    >>> start, rate = arrival_rate(np.array([0.0, 1, 2, 61, 130]), 60)
    >>> start.tolist(), rate.tolist()
    ([0.0, 60.0, 120.0], [0.05, 0.016666666666666666, 0.016666666666666666])
    """
    window_s = _check_window(window_s)
    if t_s.size == 0:
        return np.zeros(0), np.zeros(0)
    span = float(t_s[-1] - t_s[0])
    width = max(window_s, span / max_points)
    bins = min(int(span // width) + 1, max_points)
    k = np.minimum(((t_s - t_s[0]) // width).astype(np.int64), bins - 1)
    counts = np.bincount(k, minlength=bins)
    return np.arange(bins) * width, counts / width


def length_histogram(tokens: np.ndarray, bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges, counts) of token lengths: ``bins`` equal bins from 0 to the longest.

    >>> edges, counts = length_histogram(np.array([0, 10, 10, 40]), bins=4)
    >>> edges.tolist(), counts.tolist()
    ([0.0, 10.0, 20.0, 30.0, 40.0], [1, 2, 0, 1])
    """
    top = float(tokens.max()) if tokens.size else 1.0
    return np.histogram(tokens, bins=bins, range=(0.0, max(top, 1.0)))[::-1]


def heavy_tail_notes(shape: TrafficShape | Traffic, ratio: float = HEAVY_TAIL_RATIO) -> list[str]:
    """One sentence per length whose p99 is at least ``ratio`` x its mean: the mean hides a heavy tail.
    Takes a shape or a scenario's ``Traffic`` (whose percentiles are None when typed in: no note).

    >>> s = TrafficShape("t", "azure", 2, 1.0, 1.0, 1000.0, 200.0, 500.0, 2000.0, 8000.0, 150.0, 400.0, 500.0,
    ...                  1.0, 60.0, 2, None)
    >>> heavy_tail_notes(s)
    ['Heavy tail: p99 input is 8,000 tokens, 8.0x the mean (1,000); long prompts dominate prefill time and KV-cache memory, so size capacity and latency targets with the percentiles, not the mean.']
    """
    notes = []
    for kind, mean, p99, why in (
        ("input", shape.input_tokens, shape.input_tokens_p99, "long prompts dominate prefill time and KV-cache memory"),
        ("output", shape.output_tokens, shape.output_tokens_p99, "long answers hold KV-cache memory and slots longest"),
    ):
        if p99 is not None and mean > 0 and p99 >= ratio * mean:
            notes.append(f"Heavy tail: p99 {kind} is {p99:,.0f} tokens, {p99 / mean:.1f}x the mean ({mean:,.0f}); "
                         f"{why}, so size capacity and latency targets with the percentiles, not the mean.")
    return notes


def _clamp(dotted: str, value: float) -> float:
    low, high = LIMITS[dotted]
    return float(min(max(value, low if low is not None else value), high if high is not None else value))


def apply_notes(scenario: Scenario, shape: TrafficShape) -> list[str]:
    """What :func:`apply_to_scenario` had to change or could not take from the trace, one sentence each."""
    notes = []
    for dotted, value in (("traffic.peak_to_mean", shape.peak_to_mean),
                          ("traffic.requests_per_day", round(shape.requests_per_day)),
                          ("traffic.output_tokens", round(shape.output_tokens))):
        kept = _clamp(dotted, value)
        if kept != value:
            notes.append(f"{dotted} {value:.4g} from the trace is outside the scenario's limits "
                         f"{LIMITS[dotted]}; set to {kept:g}.")
    if shape.peak_to_mean < 1 and shape.duration_s < shape.window_s:
        notes.append(f"The trace spans {shape.duration_s:.0f} s, less than one {shape.window_s:g} s window: "
                     "its peak-to-mean says nothing about bursts.")
    if shape.prefix_reuse_fraction is None:
        notes.append(f"The {_FORMATS.get(shape.format, shape.format)} trace has no prompt-block hash ids: "
                     f"cached_input_fraction kept at "
                     f"{scenario.traffic.cached_input_fraction:g}.")
    return notes


def apply_to_scenario(scenario: Scenario, shape: TrafficShape) -> Scenario:
    """The scenario with its ``[traffic]`` taken from the trace: rate, means, percentiles, peak-to-mean
    (clamped to the scenario's [1, 100]; :func:`apply_notes` says so), ``cached_input_fraction`` from
    ``prefix_reuse_fraction`` when the trace has hash ids (kept otherwise), and ``trace_name`` (the file's
    base name). Requests/day and the two mean lengths are rounded to whole numbers, as the scenario's
    inputs hold them (half a token in a mean of hundreds); the percentiles are kept as computed.

    >>> from calculators.scenario import DEFAULT_SCENARIO
    >>> s = TrafficShape("prod.csv", "azure", 2, 1.0, 172800.0, 1000.0, 200.0, 500.0, 2000.0, 8000.0,
    ...                  150.0, 400.0, 500.0, 0.5, 60.0, 1, None)
    >>> t = apply_to_scenario(DEFAULT_SCENARIO, s).traffic
    >>> t.requests_per_day, t.peak_to_mean, t.input_tokens_p99, t.cached_input_fraction, t.trace_name
    (172800.0, 1.0, 8000.0, 0.5, 'prod.csv')
    """
    t = scenario.traffic
    traffic = dataclasses.replace(
        t,
        requests_per_day=_clamp("traffic.requests_per_day", round(shape.requests_per_day)),
        input_tokens=float(round(shape.input_tokens)),
        output_tokens=_clamp("traffic.output_tokens", round(shape.output_tokens)),
        peak_to_mean=_clamp("traffic.peak_to_mean", shape.peak_to_mean),
        cached_input_fraction=t.cached_input_fraction if shape.prefix_reuse_fraction is None
        else shape.prefix_reuse_fraction,
        input_tokens_p50=shape.input_tokens_p50,
        input_tokens_p90=shape.input_tokens_p90,
        input_tokens_p99=shape.input_tokens_p99,
        output_tokens_p50=shape.output_tokens_p50,
        output_tokens_p90=shape.output_tokens_p90,
        output_tokens_p99=shape.output_tokens_p99,
        trace_name=trace_label(shape.trace_name),
    )
    return dataclasses.replace(scenario, traffic=traffic)


def trace_label(name: str) -> str:
    """A trace's name as the scenario keeps it: the file's base name, at most 200 characters.

    >>> trace_label("/data/logs/prod-2026-11.jsonl")
    'prod-2026-11.jsonl'
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base if len(base) <= 200 else base[:197] + "..."
