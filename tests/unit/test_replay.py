"""Trace replay logic (probes.load.replay): the open-loop schedule on a scripted clock, the block-prompt builder,
length fitting, expected reuse and lateness. The runner and CLI are in test_replay_run.py; the real vLLM in
tests/integration/test_replay_vllm.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators.traces import TRACE_BLOCK_TOKENS, TraceRequest, iter_requests, read_arrays
from calculators.traffic import summarize
from probes.load import client as loadgen
from probes.load.client import run_load_sync
from probes.load.replay import TRACE_BLOCK_TOKENS as REPLAY_BLOCK_TOKENS
from probes.load.replay import (
    PlannedRequest,
    ReplayPrompts,
    fit_length,
    lateness_summary,
    plan_replay,
    scaled_offsets_s,
    sent_prefix_reuse_fraction,
)
from probes.load.words import WORDS
from probes.load.workload import RequestInput
from probes.plan.replay import trace_reuse_fraction
from tests.unit.test_loadgen import DONE, FakeResponse, FakeSession, token, usage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"
_REAL_SLEEP = asyncio.sleep


class SleepingClock:
    """A scripted ``time``: ``perf_counter`` moves only when the engine sleeps or a test says so; the engine's
    ``asyncio.sleep`` is replaced by :meth:`sleep`, which first lets every ready task run (they see the time
    before the sleep ends) and then moves the clock to the wake-up time."""

    def __init__(self) -> None:
        self.now = 500.0

    def perf_counter(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        wake = self.now + max(0.0, delay)
        for _ in range(20):
            await _REAL_SLEEP(0)
        self.now = max(self.now, wake)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SleepingClock:
    c = SleepingClock()
    monkeypatch.setattr(loadgen, "time", c)
    monkeypatch.setattr(loadgen.asyncio, "sleep", c.sleep)
    return c


def _instant_session() -> FakeSession:
    script = [(0.0, token()), (0.0, token()), (0.0, usage(4, 2)), (0.0, DONE)]
    return FakeSession(lambda payload: FakeResponse(script))


def _req(i: int) -> RequestInput:
    return RequestInput(index=i, prompt_token_ids=(100 + i, 200), output_tokens=2)


# ---------------------------------------------------------------- schedule


def test_time_scale_above_one_is_faster() -> None:
    assert scaled_offsets_s([60.0, 61.0, 120.0], 10.0) == pytest.approx([0.0, 0.1, 6.0])
    assert scaled_offsets_s([0.0, 1.0], 0.5) == [0.0, 2.0]  # half speed
    with pytest.raises(ValueError, match="time_scale"):
        scaled_offsets_s([0.0], 0.0)


def test_each_request_leaves_at_its_scaled_time_on_a_scripted_clock(clock: SleepingClock) -> None:
    trace = [TraceRequest(t, 8, 2) for t in (0.0, 5.0, 20.0, 20.0, 30.0)]
    plan = plan_replay(trace, time_scale=10.0)
    offsets = [p.offset_s for p in plan.requests]
    assert offsets == pytest.approx([0.0, 0.5, 2.0, 2.0, 3.0])
    session = _instant_session()
    out = run_load_sync(base_url="http://127.0.0.1:9", model="m", requests=[_req(i) for i in range(5)],
                        session=session, offsets_s=offsets)
    assert [r.scheduled_s for r in out.results] == pytest.approx(offsets)
    assert [r.start_s for r in out.results] == pytest.approx(offsets)  # never early, never late here
    summary = lateness_summary(out.results)
    assert summary["late_requests"] == 0 and summary["lateness_ms"]["max"] == pytest.approx(0.0, abs=1e-6)
    assert all(r.success for r in out.results) and len(session.calls) == 5


def test_a_client_that_falls_behind_shows_as_lateness(clock: SleepingClock) -> None:
    """Building each prompt costs 0.3 s of (scripted) client time: sends slip behind the trace and say so."""

    class SlowPrompts(Sequence[RequestInput]):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i):  # type: ignore[override]
            if i >= 4:
                raise IndexError(i)
            clock.now += 0.3
            return _req(i)

    out = run_load_sync(base_url="http://127.0.0.1:9", model="m", requests=SlowPrompts(),
                        session=_instant_session(), offsets_s=[0.0, 0.1, 0.2, 1.0])
    late = [r.start_s - r.scheduled_s for r in out.results]
    assert all(x > 0.1 for x in late) and [r.queue_s for r in out.results] == pytest.approx(late)
    summary = lateness_summary(out.results)
    assert summary["late_requests"] == 4 and summary["lateness_ms"]["max"] == pytest.approx(1000 * max(late))


def test_offsets_must_match_the_requests() -> None:
    with pytest.raises(ValueError, match="one finite offset >= 0 per request"):
        run_load_sync(base_url="http://127.0.0.1:9", model="m", requests=[_req(0)], session=_instant_session(),
                      offsets_s=[0.0, 1.0])
    with pytest.raises(ValueError, match="one finite offset"):
        run_load_sync(base_url="http://127.0.0.1:9", model="m", requests=[_req(0)], session=_instant_session(),
                      offsets_s=[-1.0])


# ---------------------------------------------------------------- prompts


def _planned(*rows: tuple[int, tuple[int, ...]], out: int = 3) -> list[PlannedRequest]:
    return [PlannedRequest(i, float(i), n, out, hashes) for i, (n, hashes) in enumerate(rows)]


def test_shared_hash_ids_give_identical_prefixes_and_exact_lengths() -> None:
    planned = _planned((1000, (1, 2)), (1500, (1, 2, 3)), (700, (1, 4)), (300, (1,)), (2000, (5, 2, 3)))
    prompts = ReplayPrompts(planned, vocab_size=4096)
    ids = [p.prompt_token_ids for p in prompts]
    assert [len(x) for x in ids] == [1000, 1500, 700, 300, 2000]
    assert [p.output_tokens for p in prompts] == [3] * 5
    assert ids[0] == ids[1][:1000]  # blocks 1, 2 (cut at 1000) == the start of 1, 2, 3
    assert ids[0][:512] == ids[2][:512] == ids[3][:300] + ids[0][300:512]
    assert ids[2][512:] != ids[0][512:700]  # block 4 is not block 2
    assert ids[4][512:1024] == ids[1][512:1024]  # block 2 is the same tokens wherever it appears
    assert ids[4][:512] != ids[0][:512]  # ... but a prefix shares nothing after a different first block
    assert all(16 <= t < 4096 for x in ids for t in x)  # [reserved, vocab): never an out-of-range id


def test_only_ids_of_the_pool_are_sent() -> None:
    pool = (17, 99, 1234, 4000)
    prompts = ReplayPrompts(_planned((600, (1, 2)), (40, ())), token_pool=pool)
    assert {t for p in prompts for t in p.prompt_token_ids} <= set(pool)


def test_prompts_are_seeded_and_the_salt_gives_other_blocks() -> None:
    planned = _planned((600, (1, 2)), (64, ()))
    a = list(ReplayPrompts(planned, vocab_size=4096, seed=1, salt="run-a"))
    assert a == list(ReplayPrompts(planned, vocab_size=4096, seed=1, salt="run-a"))
    b = list(ReplayPrompts(planned, vocab_size=4096, seed=1, salt="run-b"))
    assert a[0].prompt_token_ids[:512] != b[0].prompt_token_ids[:512]
    assert a[1].prompt_token_ids != b[1].prompt_token_ids


def test_requests_without_hash_ids_are_independent() -> None:
    """Azure: no hash ids, so no two prompts share a first block."""
    trace = list(iter_requests(FIXTURES / "small-azure.csv"))
    prompts = ReplayPrompts(plan_replay(trace).requests, vocab_size=4096)
    heads = {p.prompt_token_ids[:16] for p in prompts}
    assert len(heads) == len(trace)
    assert [len(p.prompt_token_ids) for p in prompts] == [r.input_tokens for r in trace]


def test_shrunken_blocks_keep_the_structure() -> None:
    planned = _planned((40, (1, 2)), (50, (1, 2, 3)))
    prompts = ReplayPrompts(planned, block_tokens=32, vocab_size=4096)
    assert prompts[0].prompt_token_ids == prompts[1].prompt_token_ids[:40]
    assert len(prompts[1].prompt_token_ids) == 50


def test_text_prompts_share_word_prefixes() -> None:
    prompts = ReplayPrompts(_planned((20, (1, 2)), (30, (1, 2, 3)), (10, (9,))), block_tokens=16, text=True)
    words = [p.prompt_text.split() for p in prompts]
    assert [len(w) for w in words] == [20, 30, 10]
    assert words[0] == words[1][:20] and words[2][:10] != words[0][:10]
    assert all(p.prompt_token_ids == () for p in prompts) and set(words[1]) <= set(WORDS)


def test_prompts_are_built_on_access() -> None:
    prompts = ReplayPrompts(_planned((10, ()), (20, ()), (30, ())), vocab_size=100)
    assert len(prompts) == 3 and prompts[-1].input_tokens == 30
    assert [p.input_tokens for p in prompts[1:]] == [20, 30]
    with pytest.raises(IndexError):
        prompts[3]


# ---------------------------------------------------------------- fitting


@pytest.mark.parametrize(("n_in", "n_out", "limit", "policy", "expected"), [
    (100, 50, 512, "clip", (100, 50)),        # fits: unchanged
    (500, 12, 512, "clip", (500, 12)),        # exactly the limit fits
    (501, 12, 512, "clip", (500, 12)),        # input cut, output kept
    (10, 600, 512, "clip", (1, 511)),         # output alone too long: one prompt token left
    (501, 12, 512, "skip", None),
    (10_000, 5, None, "clip", (10_000, 5)),   # limit unknown: nothing cut
])
def test_fit_length(n_in: int, n_out: int, limit: int | None, policy: str,
                    expected: tuple[int, int] | None) -> None:
    assert fit_length(n_in, n_out, limit, policy) == expected


def test_plan_clips_counts_and_never_exceeds_the_limit() -> None:
    trace = list(iter_requests(FIXTURES / "small-mooncake.jsonl"))  # inputs 1000, 1500, 700, 300, 2000
    plan = plan_replay(trace, max_model_len=1024)
    assert all(p.input_tokens + p.output_tokens <= 1024 for p in plan.requests)
    assert [p.clipped for p in plan.requests] == [False, True, False, False, True]
    assert (plan.clipped, plan.clipped_input_tokens, plan.clipped_output_tokens) == (2, 496 + 1026, 0)
    assert [p.input_tokens for p in plan.requests] == [1000, 1004, 700, 300, 974]
    assert [p.hash_ids for p in plan.requests] == [r.hash_ids for r in trace]  # leading blocks kept
    skip = plan_replay(trace, max_model_len=1024, overlong="skip")
    assert skip.skipped == 2 and [p.index for p in skip.requests] == [0, 2, 3]
    assert [p.offset_s for p in skip.requests] == [0.0, 30.0, 61.0]  # the others keep their times


def test_text_prompts_keep_a_margin_and_zero_lengths_are_raised() -> None:
    trace = [TraceRequest(0.0, 500, 100), TraceRequest(1.0, 0, 0)]
    plan = plan_replay(trace, max_model_len=512, margin_tokens=64)
    assert plan.length_limit_tokens == 448 and plan.requests[0].input_tokens == 348
    assert (plan.requests[1].input_tokens, plan.requests[1].output_tokens) == (1, 1) and plan.raised_to_one == 1
    with pytest.raises(ValueError, match="leaves no room"):
        plan_replay(trace, max_model_len=64, margin_tokens=64)


def test_shrinking_scales_input_and_output() -> None:
    plan = plan_replay([TraceRequest(0.0, 12_035, 343)], block_tokens=32)
    assert (plan.requests[0].input_tokens, plan.requests[0].output_tokens) == (753, 22)  # ceil(x * 32 / 512)


# ---------------------------------------------------------------- reuse


def test_trace_reuse_by_hand_on_the_fixture() -> None:
    """small-mooncake.jsonl: request 2 reuses blocks 1, 2 (1,024 tokens), request 3 block 1 (512), request 4
    block 1 capped at its 300 tokens, request 5 starts with an unseen block: 1,836 of 5,500 tokens."""
    trace = list(iter_requests(FIXTURES / "small-mooncake.jsonl"))
    assert trace_reuse_fraction(trace) == pytest.approx(1836 / 5500)
    # the slice's number is calculators.traffic's, the one behind `python -m calculators traffic`
    assert summarize(read_arrays(FIXTURES / "small-mooncake.jsonl")).prefix_reuse_fraction == pytest.approx(
        1836 / 5500)
    assert trace_reuse_fraction(trace[:3]) == pytest.approx((1024 + 512) / 3200)
    # as sent: request 1 sent only 488 tokens of block 2, so request 2 can reuse 512 + 488
    assert sent_prefix_reuse_fraction(plan_replay(trace).requests, 512) == pytest.approx(1812 / 5500)


def test_sent_reuse_equals_the_trace_reuse_for_whole_chained_blocks() -> None:
    trace = [TraceRequest(0.0, 1024, 1, (1, 2)), TraceRequest(1.0, 1536, 1, (1, 2, 3)),
             TraceRequest(2.0, 512, 1, (4,)), TraceRequest(3.0, 1024, 1, (4, 5))]
    plan = plan_replay(trace)
    assert sent_prefix_reuse_fraction(plan.requests, 512) == trace_reuse_fraction(trace) == pytest.approx(
        (1024 + 512) / 4096)
    assert trace_reuse_fraction([TraceRequest(0.0, 5, 1)]) is None and sent_prefix_reuse_fraction([], 512) is None


def test_a_block_after_another_prefix_is_not_expected_to_hit() -> None:
    """vLLM keys a block by its whole prefix: block 2 after block 4 is new, though its tokens were sent after
    block 1. The trace's own definition (per hash id) counts it; the expected reuse of what is sent does not."""
    trace = [TraceRequest(0.0, 1024, 1, (1, 2)), TraceRequest(1.0, 512, 1, (4,)), TraceRequest(2.0, 1024, 1, (4, 2))]
    assert trace_reuse_fraction(trace) == pytest.approx(1024 / 2560)
    assert sent_prefix_reuse_fraction(plan_replay(trace).requests, 512) == pytest.approx(512 / 2560)


def test_block_size_agrees_with_the_trace_readers() -> None:
    assert REPLAY_BLOCK_TOKENS == TRACE_BLOCK_TOKENS == 512


# ---------------------------------------------------------------- property


@st.composite
def _conversations(draw: st.DrawFn) -> tuple[list[PlannedRequest], int]:
    """Requests whose hash ids are drawn from a few chained conversations (a request extends or repeats an
    earlier prefix), with any lengths their blocks allow."""
    block = draw(st.sampled_from([4, 16, 32]))
    chains = draw(st.lists(st.lists(st.integers(0, 10**6), min_size=1, max_size=6, unique=True),
                           min_size=1, max_size=3))
    planned = []
    for i in range(draw(st.integers(1, 8))):
        chain = draw(st.sampled_from(chains))
        k = draw(st.integers(1, len(chain)))
        n = draw(st.integers((k - 1) * block + 1, k * block))
        planned.append(PlannedRequest(i, float(i), n, 1, tuple(chain[:k])))
    return planned, block


@given(_conversations())
def test_prompts_share_exactly_their_common_blocks(case: tuple[list[PlannedRequest], int]) -> None:
    planned, block = case
    prompts = [p.prompt_token_ids for p in ReplayPrompts(planned, block_tokens=block, vocab_size=4096)]
    for a, pa in zip(planned, prompts, strict=True):
        assert len(pa) == a.input_tokens and all(16 <= t < 4096 for t in pa)
        for b, pb in zip(planned, prompts, strict=True):
            common = 0
            while common < min(len(a.hash_ids), len(b.hash_ids)) and a.hash_ids[common] == b.hash_ids[common]:
                common += 1
            shared = min(common * block, len(pa), len(pb))
            assert pa[:shared] == pb[:shared]
            end = min(len(pa), len(pb), (common + 1) * block)
            if common < min(len(a.hash_ids), len(b.hash_ids)) and end - shared >= 3:
                assert pa[shared:end] != pb[shared:end]  # the first different block differs (3+ random ids)
