"""Trace replay: a production trace's requests as the probe's load, with their times, lengths and shared prefixes.

The trace is read by :mod:`calculators.traces` (Azure CSV or Mooncake JSONL; a request is ``t_s``,
``input_tokens``, ``output_tokens`` and, for Mooncake, ``hash_ids``). This module turns a slice of it into
what the load engine (:func:`probes.load.client.run_load` with ``offsets_s``) sends; it reads no file and
sends nothing itself.

**Schedule.** Request ``i`` is sent ``offset_i = (t_i - t_first) / time_scale`` seconds after the run
starts: ``time_scale`` 10 replays ten times FASTER (one trace minute in 6 s), 0.5 at half speed. Open loop:
each request leaves at its time whatever is in flight (a concurrency cap is optional). The engine sleeps on
``time.perf_counter``; each request's lateness (actual send minus scheduled send, ``queue_s``) is kept, so
a client that cannot keep up shows in :func:`lateness_summary` instead of silently stretching the trace.

**Prompts** (:class:`ReplayPrompts`): every hash id is one fixed block of ``block_tokens`` random symbols,
the SplitMix64 stream seeded by a SHA-256 of ``(seed, salt, hash_id)`` (vectorised: under 10 µs a block, no
cache), and a request's prompt is its blocks in order, the last one cut so the prompt has exactly its
``input_tokens``: requests that share a leading run of hash ids share that prompt prefix
token for token, as in production. A request without hash ids (Azure; or the tail of a Mooncake prompt longer
than its blocks) gets random symbols of its own (seeded by ``(seed, salt, index)``). Symbols become token
ids drawn ONLY from a known-valid id table (``[16, vocab_size)`` or the server's own ``/tokenize`` ids, see
:mod:`probes.target.vocabulary`; never an out-of-range id), or for the text request kinds words of
:data:`probes.load.words.WORDS` (about one token each: text lengths and block boundaries are approximate,
the shared text prefixes are exact). Prompts are built when the engine reaches them, so memory holds only
the requests in flight, not the whole trace's prompts.

**Shrunken replay** (``block_tokens`` below 512, for small-context test servers): each hash block becomes
``block_tokens`` tokens and every input AND output length is scaled by ``block_tokens / 512`` (rounded up):
the same arrivals and the same share of shared prefix tokens at a fraction of the tokens. 512 (the traces'
own block size) replays the lengths as they are.

**Too long for the server** (:func:`fit_length`): with the server's max model length known (vLLM's
``/v1/models`` says it), a request with ``input + output > limit`` is never sent as is (the server would
reject it). ``clip`` (default): the output is kept (cut only to leave one prompt token) and the input is
cut to fit, which keeps its leading blocks, so its prefix sharing and its arrival stay in the load;
``skip``: it is left out. Both are counted on the run. Text prompts keep :data:`TEXT_MARGIN_TOKENS` spare
for a chat template and words that split into two tokens. Limit unknown (a hosted API): nothing is cut.

**Expected reuse** (:func:`sent_prefix_reuse_fraction`): the share of the sent prompt tokens that lie in a
leading run of blocks an earlier sent request already sent in full, after the same blocks (a block an earlier request sent only
partly counts for those tokens and ends the run): what a prefix cache of unbounded size, with every request
finishing before the next arrives, would hit, at the replay's block granularity. The trace's own ``prefix_reuse_fraction`` (issue 10: per hash id, over
the trace's lengths, 512-token blocks) is :mod:`calculators.traffic`'s (:func:`probes.plan.replay.trace_reuse_fraction`).

>>> from types import SimpleNamespace as R
>>> trace = [R(t_s=10.0, input_tokens=640, output_tokens=128, hash_ids=(7, 8)),
...          R(t_s=12.0, input_tokens=768, output_tokens=128, hash_ids=(7, 9))]
>>> plan = plan_replay(trace, time_scale=2.0, block_tokens=4)  # a shrunken replay: 4 tokens a block
>>> [(p.offset_s, p.input_tokens, p.output_tokens) for p in plan.requests]
[(0.0, 5, 1), (1.0, 6, 1)]
>>> prompts = ReplayPrompts(plan.requests, block_tokens=4, vocab_size=100)
>>> a, b = prompts[0].prompt_token_ids, prompts[1].prompt_token_ids
>>> len(a), len(b), a[:4] == b[:4], a[4:] == b[4:5]
(5, 6, True, False)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload

import numpy as np

from probes.load.client import RequestResult
from probes.load.words import WORDS
from probes.load.workload import RequestInput, _id_table, _stable_int

__all__ = [
    "TRACE_BLOCK_TOKENS",
    "TEXT_MARGIN_TOKENS",
    "OVERLONG_POLICIES",
    "LATE_THRESHOLD_MS",
    "TraceLike",
    "TraceReplay",
    "PlannedRequest",
    "ReplayPlan",
    "scaled_offsets_s",
    "shrink_tokens",
    "fit_length",
    "plan_replay",
    "ReplayPrompts",
    "sent_prefix_reuse_fraction",
    "lateness_summary",
]

TRACE_BLOCK_TOKENS = 512  # tokens per hash id in the Mooncake format (calculators.traces.TRACE_BLOCK_TOKENS)
TEXT_MARGIN_TOKENS = 64  # text prompts: spare tokens under the max model length (chat template, split words)
OVERLONG_POLICIES = ("clip", "skip")
LATE_THRESHOLD_MS = 50.0  # a request sent more than this after its scheduled time counts as late
# SplitMix64 (Steele et al. 2014): a block's symbols are the stream seeded by its 64-bit key
_GOLDEN, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


class TraceLike(Protocol):
    """One trace request as :mod:`calculators.traces` yields it (``TraceRequest``)."""

    @property
    def t_s(self) -> float: ...
    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def hash_ids(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class TraceReplay:
    """What to replay and how (see the module docstring).

    ``time_scale`` > 1 is faster (offsets are divided by it); ``max_requests``: the first N requests of the
    trace (None: all); ``block_tokens``: tokens per hash block (512 = the trace's lengths as they are);
    ``overlong``: ``clip`` or ``skip`` requests longer than the server's limit; ``concurrency``: a cap on
    requests in flight (None: uncapped, the trace's arrivals are the load); ``seed``: block contents.
    """

    path: str
    time_scale: float = 1.0
    max_requests: int | None = None
    block_tokens: int = TRACE_BLOCK_TOKENS
    overlong: str = "clip"
    concurrency: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.time_scale, int | float) and math.isfinite(self.time_scale) and self.time_scale > 0):
            raise ValueError(f"time_scale must be a finite number > 0 (10 = ten times faster), got {self.time_scale!r}")
        for name in ("max_requests", "concurrency"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        if isinstance(self.block_tokens, bool) or not isinstance(self.block_tokens, int) or not (
                1 <= self.block_tokens <= TRACE_BLOCK_TOKENS):
            raise ValueError(f"block_tokens must be an integer in 1..{TRACE_BLOCK_TOKENS}, got {self.block_tokens!r}")
        if self.overlong not in OVERLONG_POLICIES:
            raise ValueError(f"overlong must be one of {OVERLONG_POLICIES}, got {self.overlong!r}")


@dataclass(frozen=True)
class PlannedRequest:
    """One request as it will be sent: ``index`` in the trace slice, send offset (s), lengths after shrinking
    and fitting, its hash ids, and whether it was clipped."""

    index: int
    offset_s: float
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()
    clipped: bool = False


@dataclass(frozen=True)
class ReplayPlan:
    """The requests to send and what fitting them to the server did.

    ``trace_requests``: requests read from the trace (the slice); ``skipped``/``clipped``: requests left out
    or cut for the length limit (``clipped_input_tokens``/``clipped_output_tokens``: tokens cut);
    ``length_limit_tokens``: the limit used (max model length minus the text margin), None when unknown;
    ``trace_span_s``: last minus first arrival in the trace; ``replay_span_s``: the same after scaling;
    ``raised_to_one``: requests with a 0-token input or output in the trace, sent with 1 (a request needs both).
    """

    requests: tuple[PlannedRequest, ...]
    trace_requests: int
    skipped: int = 0
    clipped: int = 0
    clipped_input_tokens: int = 0
    clipped_output_tokens: int = 0
    length_limit_tokens: int | None = None
    trace_span_s: float = 0.0
    replay_span_s: float = 0.0
    raised_to_one: int = 0

    @property
    def mean_rate(self) -> float:
        """Requests sent per second of the replay's arrival span (inf when they all arrive at once).

        >>> ReplayPlan((), 0).mean_rate
        inf
        """
        return len(self.requests) / self.replay_span_s if self.replay_span_s > 0 else math.inf


def scaled_offsets_s(times_s: Sequence[float], time_scale: float) -> list[float]:
    """Send offsets: ``(t - t_first) / time_scale`` (``time_scale`` 10 = ten times faster).

    >>> scaled_offsets_s([100.0, 101.0, 130.0], 10.0)
    [0.0, 0.1, 3.0]
    >>> scaled_offsets_s([], 2.0)
    []
    """
    if not time_scale > 0:
        raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
    if not times_s:
        return []
    first = min(times_s)
    return [(t - first) / time_scale for t in times_s]


def shrink_tokens(n: int, block_tokens: int) -> int:
    """A trace length in a replay of ``block_tokens`` tokens a block: ``ceil(n * block_tokens / 512)``, >= 1.

    >>> shrink_tokens(1000, 512), shrink_tokens(1000, 32), shrink_tokens(1, 32)
    (1000, 63, 1)
    """
    if block_tokens == TRACE_BLOCK_TOKENS:
        return max(1, n)
    return max(1, -(-n * block_tokens // TRACE_BLOCK_TOKENS))


def fit_length(input_tokens: int, output_tokens: int, limit_tokens: int | None,
               overlong: str = "clip") -> tuple[int, int] | None:
    """``(input, output)`` that fit ``input + output <= limit_tokens``; None when ``overlong="skip"`` and they
    do not. Clipping keeps the output (cut only to leave one prompt token) and cuts the input's tail, so the
    prompt's leading blocks stay. ``limit_tokens`` None: unchanged.

    >>> fit_length(300, 100, 512), fit_length(600, 100, 512), fit_length(100, 600, 512)
    ((300, 100), (412, 100), (1, 511))
    >>> fit_length(600, 100, 512, "skip") is None, fit_length(600, 100, None)
    (True, (600, 100))
    """
    if overlong not in OVERLONG_POLICIES:
        raise ValueError(f"overlong must be one of {OVERLONG_POLICIES}, got {overlong!r}")
    if limit_tokens is None or input_tokens + output_tokens <= limit_tokens:
        return input_tokens, output_tokens
    if limit_tokens < 2:
        raise ValueError(f"the length limit must leave room for 1 prompt and 1 output token, got {limit_tokens}")
    if overlong == "skip":
        return None
    output = min(output_tokens, limit_tokens - 1)
    return min(input_tokens, limit_tokens - output), output


def plan_replay(trace: Sequence[TraceLike], *, time_scale: float = 1.0, block_tokens: int = TRACE_BLOCK_TOKENS,
                max_model_len: int | None = None, margin_tokens: int = 0, overlong: str = "clip") -> ReplayPlan:
    """The requests of ``trace`` (already sliced) as they will be sent, sorted by arrival (stable).

    Lengths are shrunk (:func:`shrink_tokens`) and then fitted (:func:`fit_length`) to
    ``max_model_len - margin_tokens`` when the max model length is known.

    >>> from types import SimpleNamespace as R
    >>> p = plan_replay([R(t_s=0.0, input_tokens=500, output_tokens=50, hash_ids=()),
    ...                  R(t_s=4.0, input_tokens=100, output_tokens=50, hash_ids=())],
    ...                 time_scale=4.0, max_model_len=512)
    >>> [(r.offset_s, r.input_tokens, r.output_tokens, r.clipped) for r in p.requests], p.clipped_input_tokens
    ([(0.0, 462, 50, True), (1.0, 100, 50, False)], 38)
    """
    limit = None if max_model_len is None else max_model_len - margin_tokens
    if limit is not None and limit < 2:
        raise ValueError(f"max model length {max_model_len} leaves no room for a request "
                         f"(margin {margin_tokens} tokens)")
    order = sorted(range(len(trace)), key=lambda i: trace[i].t_s)
    offsets = scaled_offsets_s([trace[i].t_s for i in order], time_scale)
    planned: list[PlannedRequest] = []
    skipped = clipped = cut_in = cut_out = raised = 0
    for i, offset in zip(order, offsets, strict=True):
        r = trace[i]
        raised += int(r.input_tokens) < 1 or int(r.output_tokens) < 1
        n_in = shrink_tokens(int(r.input_tokens), block_tokens)
        n_out = shrink_tokens(int(r.output_tokens), block_tokens)
        fitted = fit_length(n_in, n_out, limit, overlong)
        if fitted is None:
            skipped += 1
            continue
        was_clipped = fitted != (n_in, n_out)
        if was_clipped:
            clipped += 1
            cut_in += n_in - fitted[0]
            cut_out += n_out - fitted[1]
        planned.append(PlannedRequest(i, offset, fitted[0], fitted[1], tuple(int(h) for h in r.hash_ids),
                                      was_clipped))
    trace_span = (max(r.t_s for r in trace) - min(r.t_s for r in trace)) if trace else 0.0
    replay_span = planned[-1].offset_s - planned[0].offset_s if planned else 0.0
    return ReplayPlan(tuple(planned), len(trace), skipped, clipped, cut_in, cut_out, limit, float(trace_span),
                      float(replay_span), raised)


class ReplayPrompts(Sequence[RequestInput]):
    """The prompts of planned requests, built on access (see the module docstring).

    Token ids: exactly one of ``vocab_size`` (ids in ``[16, vocab_size)``) or ``token_pool`` (ids known valid;
    only those are used). ``text=True``: words instead, and neither is needed. ``salt`` changes every block
    and tail (one per run, so a second replay against the same server does not hit the first one's cache).

    >>> planned = [PlannedRequest(0, 0.0, 6, 2, (1, 2)), PlannedRequest(1, 0.5, 3, 2, (1,))]
    >>> p = ReplayPrompts(planned, block_tokens=4, token_pool=[21, 22, 23])
    >>> p[1].prompt_token_ids == p[0].prompt_token_ids[:3], set(p[0].prompt_token_ids) <= {21, 22, 23}
    (True, True)
    >>> t = ReplayPrompts(planned, block_tokens=4, text=True)
    >>> len(t[0].prompt_text.split()), t[0].prompt_text.split()[:3] == t[1].prompt_text.split()
    (6, True)
    """

    def __init__(self, planned: Sequence[PlannedRequest], *, block_tokens: int = TRACE_BLOCK_TOKENS,
                 vocab_size: int | None = None, token_pool: Sequence[int] | None = None, text: bool = False,
                 seed: int = 0, salt: str = "", reserved_ids: int = 16) -> None:
        if block_tokens < 1:
            raise ValueError(f"block_tokens must be >= 1, got {block_tokens}")
        self.planned = tuple(planned)
        self.block_tokens, self.seed, self.salt, self.text = block_tokens, seed, salt, text
        self._table: np.ndarray | None = None
        if text:
            self._usable = len(WORDS)
        else:
            self._table = _id_table(vocab_size, token_pool, reserved_ids)
            self._usable = len(self._table)

    def _stream(self, keys: Sequence[int], length: int) -> np.ndarray:
        """``length`` symbols of each key's SplitMix64 stream (rows): ``mix(key + (j + 1) * golden) % usable``."""
        state = np.asarray(keys, dtype=np.uint64)[:, None] + (np.arange(1, length + 1, dtype=np.uint64) * _GOLDEN)
        state ^= state >> np.uint64(30)
        state *= _MIX1
        state ^= state >> np.uint64(27)
        state *= _MIX2
        state ^= state >> np.uint64(31)
        return (state % np.uint64(self._usable)).astype(np.int64)

    def symbols(self, position: int) -> np.ndarray:
        """The prompt of ``planned[position]`` as symbols in ``[0, usable)``: its blocks, then its own tail."""
        p = self.planned[position]
        need = -(-p.input_tokens // self.block_tokens)
        hashes = p.hash_ids[:need]
        parts = []
        if hashes:
            keys = [_stable_int("trace-block", self.seed, self.salt, h) for h in hashes]
            parts.append(self._stream(keys, self.block_tokens).reshape(-1))
        have = len(hashes) * self.block_tokens
        if have < p.input_tokens:  # no hash ids (Azure), or a prompt longer than its blocks: its own tokens
            key = _stable_int("trace-request", self.seed, self.salt, p.index)
            parts.append(self._stream([key], p.input_tokens - have).reshape(-1))
        return np.concatenate(parts)[: p.input_tokens] if parts else np.zeros(0, dtype=np.int64)

    def _build(self, position: int) -> RequestInput:
        p = self.planned[position]
        sym = self.symbols(position)
        if self.text:
            return RequestInput(index=p.index, prompt_token_ids=(), output_tokens=p.output_tokens,
                                prompt_text=" ".join(WORDS[k] for k in sym.tolist()))
        assert self._table is not None
        return RequestInput(index=p.index, prompt_token_ids=tuple(self._table[sym].tolist()),
                            output_tokens=p.output_tokens)

    def __len__(self) -> int:
        return len(self.planned)

    @overload
    def __getitem__(self, i: int) -> RequestInput: ...
    @overload
    def __getitem__(self, i: slice) -> list[RequestInput]: ...

    def __getitem__(self, i: int | slice) -> RequestInput | list[RequestInput]:
        if isinstance(i, slice):
            return [self._build(k) for k in range(len(self))[i]]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self._build(i % len(self))

    def __iter__(self) -> Iterator[RequestInput]:
        return (self._build(k) for k in range(len(self)))


def sent_prefix_reuse_fraction(planned: Iterable[PlannedRequest], block_tokens: int) -> float | None:
    """Expected prefix reuse of what is SENT (module docstring): per request, the tokens of its leading blocks
    that an earlier request sent after the same blocks (a block is keyed by its whole prefix of hash ids, as
    vLLM chains each block's hash to its parent's; block ``j`` holds ``min(block_tokens, input - j *
    block_tokens)`` tokens here; a block sent earlier only in part counts for those tokens and ends the run),
    over all sent input tokens. On the public Mooncake trace a hash id always follows the same one, so keying
    by prefix or by id gives the same number.

    >>> sent_prefix_reuse_fraction([PlannedRequest(0, 0, 6, 1, (1, 2)), PlannedRequest(1, 0, 6, 1, (1, 2))], 4)
    0.5
    >>> round(sent_prefix_reuse_fraction([PlannedRequest(0, 0, 6, 1, (1, 2)), PlannedRequest(1, 0, 8, 1, (1, 2))], 4), 4)
    0.4286
    >>> sent_prefix_reuse_fraction([PlannedRequest(0, 0, 8, 1, (1, 2)), PlannedRequest(1, 0, 8, 1, (3, 2))], 4)
    0.0
    """
    prefix_ids: dict[tuple[int, int], int] = {}  # (parent prefix id, hash id) -> prefix id
    covered: dict[int, int] = {}  # prefix id -> tokens of its last block sent so far
    reused = total = 0
    for p in planned:
        n = p.input_tokens
        parent, keys = -1, []
        for j, h in enumerate(p.hash_ids[: -(-n // block_tokens)]):
            parent = prefix_ids.setdefault((parent, h), len(prefix_ids))
            keys.append((parent, min(block_tokens, n - j * block_tokens)))
        for key, size in keys:
            have = covered.get(key, 0)
            reused += min(have, size)
            if have < size:
                break
        for key, size in keys:
            covered[key] = max(covered.get(key, 0), size)
        total += n
    return reused / total if total else None


def lateness_summary(results: Sequence[RequestResult], threshold_ms: float = LATE_THRESHOLD_MS) -> dict[str, Any]:
    """How far behind schedule the sends were: ``lateness = start_s - scheduled_s`` per sent request (the
    engine's ``queue_s``; with a concurrency cap it also holds the wait for a slot). Returns
    ``lateness_ms`` (median, p90, p99, max), ``late_requests`` (over ``threshold_ms``) and the threshold.

    >>> rs = [RequestResult(index=i, queue_s=q) for i, q in enumerate([0.0, 0.001, 0.2])]
    >>> s = lateness_summary(rs)
    >>> s["late_requests"], s["lateness_ms"]["max"], s["late_threshold_ms"]
    (1, 200.0, 50.0)
    """
    values = np.asarray([max(0.0, r.queue_s) * 1000.0 for r in results] or [0.0])
    return {
        "lateness_ms": {"median": float(np.median(values)), "p90": float(np.percentile(values, 90)),
                        "p99": float(np.percentile(values, 99)), "max": float(values.max())},
        "late_requests": int(sum(1 for r in results if r.queue_s * 1000.0 > threshold_ms)),
        "late_threshold_ms": threshold_ms,
    }
