"""Load generator: scripted clock + fake SSE session (no socket), modelled on vLLM's _ScriptedClock/_FakeSession."""

from __future__ import annotations

import asyncio
import json
import math
import threading

import aiohttp
import numpy as np
import pytest

from probes.load import client as loadgen
from probes.load.client import INTERRUPTED, arrival_offsets_s, run_load_sync
from probes.load.workload import RequestInput


class ScriptedClock:
    """Stands in for the ``time`` module: ``perf_counter`` only moves when the fake stream says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


def sse(obj: object) -> bytes:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()


def token(text: str = "x") -> bytes:
    return sse({"choices": [{"index": 0, "text": text}]})


def usage(prompt: int, completion: int) -> bytes:
    return sse({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})


DONE = sse("[DONE]")


class _Content:
    def __init__(self, response: FakeResponse) -> None:
        self._response = response

    async def iter_any(self):
        for step in self._response.script:
            if isinstance(step, BaseException):
                raise step
            delay_s, data = step
            if self._response.clock is not None:
                self._response.clock.now += delay_s
            await asyncio.sleep(0)  # let other requests interleave
            yield data


class FakeResponse:
    def __init__(self, script, *, status=200, reason="OK", body="", clock=None, hang=False) -> None:
        self.script = script
        self.status = status
        self.reason = reason
        self.body = body
        self.clock = clock
        self.hang = hang
        self.content = _Content(self)

    async def text(self) -> str:
        return self.body

    async def __aenter__(self) -> FakeResponse:
        if self.hang:
            await asyncio.sleep(3600)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class FakeSession:
    """``post`` returns the response that ``respond(payload)`` builds; records calls and peak concurrency."""

    def __init__(self, respond) -> None:
        self.respond = respond
        self.calls: list[dict] = []
        self.in_flight = 0
        self.peak_in_flight = 0

    def post(self, url, *, json, headers, timeout):
        self.calls.append({"url": url, "json": json, "headers": headers, "timeout": timeout})
        session = self
        inner = self.respond(json)

        class _Ctx:
            async def __aenter__(self_inner):
                session.in_flight += 1
                session.peak_in_flight = max(session.peak_in_flight, session.in_flight)
                return await inner.__aenter__()

            async def __aexit__(self_inner, *exc):
                session.in_flight -= 1

        return _Ctx()


def req(index: int, n_prompt: int = 4, n_out: int = 3) -> RequestInput:
    return RequestInput(index=index, prompt_token_ids=tuple(range(100 + index, 100 + index + n_prompt)), output_tokens=n_out)


def run(session, requests, **kwargs):
    return run_load_sync(base_url="http://127.0.0.1:9", model="m", requests=requests, session=session, **kwargs)


@pytest.fixture
def clock(monkeypatch) -> ScriptedClock:
    c = ScriptedClock()
    monkeypatch.setattr(loadgen, "time", c)
    return c


def test_ttft_itl_latency_follow_the_token_chunks(clock):
    script = [(0.5, token()), (0.1, token()), (0.2, token()), (0.05, usage(4, 3)), (0.0, DONE)]
    session = FakeSession(lambda payload: FakeResponse(script, clock=clock))
    out = run(session, [req(0)])
    (r,) = out.results
    assert r.success and r.error == ""
    assert r.ttft_s == pytest.approx(0.5)
    assert r.itl_s == pytest.approx([0.1, 0.2])
    assert r.latency_s == pytest.approx(0.8)  # last token chunk, not the usage chunk (as vLLM)
    assert (r.prompt_tokens, r.output_tokens) == (4, 3)
    assert out.duration_s == pytest.approx(0.85)
    assert r.start_s == pytest.approx(0.0)


def test_sequential_requests_have_start_offsets_and_summed_duration(clock):
    script = [(0.25, token()), (0.25, token()), (0.0, usage(4, 2)), (0.0, DONE)]
    session = FakeSession(lambda payload: FakeResponse(script, clock=clock))
    out = run(session, [req(0), req(1), req(2)], concurrency=1)
    assert [r.start_s for r in out.results] == pytest.approx([0.0, 0.5, 1.0])
    assert out.duration_s == pytest.approx(1.5)


def test_events_split_and_merged_across_network_reads(clock):
    whole = token("a") + token("b") + usage(4, 2) + DONE
    cut = len(token("a")) + 7  # second event split mid-JSON
    script = [(0.3, whole[:cut]), (0.2, whole[cut:])]
    session = FakeSession(lambda payload: FakeResponse(script, clock=clock))
    (r,) = run(session, [req(0)]).results
    assert r.success
    assert r.ttft_s == pytest.approx(0.3)
    assert r.itl_s == pytest.approx([0.2])
    assert r.output_tokens == 2


def test_crlf_events_and_comments_are_understood(clock):
    body = b": ping\r\n\r\n" + token().replace(b"\n\n", b"\r\n\r\n") + DONE
    session = FakeSession(lambda payload: FakeResponse([(0.1, body)], clock=clock))
    (r,) = run(session, [req(0)]).results
    assert r.success and r.output_tokens == 1


def test_without_usage_tokens_are_counted_and_prompt_length_is_the_request(clock):
    script = [(0.1, token()), (0.1, token()), (0.0, DONE)]
    session = FakeSession(lambda payload: FakeResponse(script, clock=clock))
    (r,) = run(session, [req(0, n_prompt=7)]).results
    assert r.success
    assert (r.prompt_tokens, r.output_tokens) == (7, 2)


@pytest.mark.parametrize(
    ("script", "status", "expected"),
    [
        ([], 500, "HTTP 500"),
        ([(0.1, token()), (0.1, token())], 200, "truncated stream"),
        ([(0.1, token()), (0.0, sse({"error": {"message": "engine dead"}}))], 200, "engine dead"),
        ([(0.0, DONE)], 200, "no token received"),
        ([(0.1, token()), aiohttp.ClientPayloadError("Response payload is not completed")], 200, "ClientPayloadError"),
        ([aiohttp.ClientConnectionError("Connection reset by peer")], 200, "Connection reset by peer"),
        ([TimeoutError()], 200, "timeout"),
        ([(0.1, b"data: [1, 2]\n\n")], 200, "malformed stream event"),
        ([(0.1, token()), (0.0, sse({"choices": [], "usage": {"completion_tokens": "many"}})), (0.0, DONE)], 200,
         "malformed usage"),
    ],
    ids=["http-500", "truncated", "error-event", "empty", "payload-error", "reset", "timeout", "non-object-event",
         "bad-usage"],
)
def test_errors_are_data_not_exceptions(clock, script, status, expected):
    session = FakeSession(
        lambda payload: FakeResponse(script, status=status, reason="Internal Server Error", body="boom", clock=clock)
    )
    out = run(session, [req(0), req(1)])
    assert [r.success for r in out.results] == [False, False]
    assert all(expected in r.error for r in out.results), out.results[0].error
    assert "\n" not in out.results[0].error


def test_http_error_keeps_the_server_message(clock):
    session = FakeSession(lambda p: FakeResponse([], status=400, reason="Bad Request", body='{"message":"too long"}'))
    (r,) = run(session, [req(0)]).results
    assert r.error.startswith("HTTP 400 Bad Request") and "too long" in r.error


def test_payload_forces_output_length_and_sends_token_ids(clock):
    script = [(0.1, token()), (0.0, DONE)]
    session = FakeSession(lambda payload: FakeResponse(script, clock=clock))
    run(session, [req(0, n_prompt=3, n_out=9)], api_key="sk-secret", request_timeout_s=12.0)
    call = session.calls[0]
    assert call["url"] == "http://127.0.0.1:9/v1/completions"
    body = call["json"]
    assert body["prompt"] == [100, 101, 102]
    assert body["max_tokens"] == 9 and body["ignore_eos"] is True and body["temperature"] == 0.0
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert call["headers"]["Authorization"] == "Bearer sk-secret"
    assert call["timeout"].total == 12.0


def test_api_key_is_not_in_results(clock):
    session = FakeSession(lambda p: FakeResponse([], status=401, reason="Unauthorized", body="bad key"))
    out = run(session, [req(0)], api_key="sk-secret")
    assert "sk-secret" not in repr(out)


@pytest.mark.parametrize(("concurrency", "expected_peak"), [(1, 1), (3, 3), (None, 8)])
def test_concurrency_cap_bounds_requests_in_flight(clock, concurrency, expected_peak):
    script = [(0.1, token()), (0.1, token()), (0.0, DONE)]
    session = FakeSession(lambda payload: FakeResponse(script, clock=clock))
    out = run(session, [req(i) for i in range(8)], concurrency=concurrency)
    assert session.peak_in_flight == expected_peak
    assert sorted(r.index for r in out.results) == list(range(8))


def test_warmup_runs_first_and_is_excluded(clock):
    script = [(0.1, token()), (0.0, DONE)]
    session = FakeSession(lambda payload: FakeResponse(script, clock=clock))
    seen: list[int] = []
    calls_at_warmup_done: list[int] = []
    out = run(
        session,
        [req(0), req(1)],
        concurrency=1,
        warmup=[req(90), req(91)],
        on_result=lambda r: seen.append(r.index),
        on_warmup_done=lambda: calls_at_warmup_done.append(len(session.calls)),
    )
    assert calls_at_warmup_done == [2]
    first_prompts = [c["json"]["prompt"][0] for c in session.calls]
    assert first_prompts[:2] == [190, 191]
    assert [r.index for r in out.warmup_results] == [90, 91]
    assert [r.index for r in out.results] == [0, 1]
    assert sorted(seen) == [0, 1]
    assert out.duration_s == pytest.approx(0.2)  # 2 x 0.1 s; the warm-up's 0.2 s are not in it


def test_stop_cancels_in_flight_and_drops_unsent():
    stop = threading.Event()
    script = [(0.0, token()), (0.0, DONE)]

    def respond(payload):
        if payload["prompt"][0] == 101:  # the second request hangs and the user presses Stop
            stop.set()
            return FakeResponse(script, hang=True)
        return FakeResponse(script)

    session = FakeSession(respond)
    out = run(session, [req(0), req(1), req(2)], concurrency=1, stop=stop)
    assert out.interrupted
    assert [(r.index, r.success, r.error) for r in out.results] == [(0, True, ""), (1, False, INTERRUPTED)]
    assert len(session.calls) == 2


def test_stop_during_open_loop_wait_stops_scheduling():
    stop = threading.Event()
    session = FakeSession(lambda p: FakeResponse([(0.0, token()), (0.0, DONE)]))
    threading.Timer(0.2, stop.set).start()
    out = run(session, [req(i) for i in range(5)], request_rate=1.0, stop=stop, seed=3)
    assert out.interrupted
    assert len(out.results) < 5 and all(r.success for r in out.results)


def test_invalid_arguments_name_the_field():
    with pytest.raises(ValueError, match="concurrency"):
        run(FakeSession(lambda p: None), [req(0)], concurrency=0)
    with pytest.raises(ValueError, match="request_rate"):
        run(FakeSession(lambda p: None), [req(0)], request_rate=0)
    with pytest.raises(ValueError, match="burstiness"):
        arrival_offsets_s(3, 1.0, burstiness=0)


def _vllm_get_request_delays(n: int, rate: float, burstiness: float, seed: int) -> list[float]:
    """vLLM's get_request (serve.py) delay computation, step by step, after np.random.seed(seed)."""
    np.random.seed(seed)
    delays = []
    for _ in range(n):
        theta = 1.0 / (rate * burstiness)
        delays.append(np.random.gamma(shape=burstiness, scale=theta))
    for i in range(1, n):
        delays[i] += delays[i - 1]
    factor = (n / rate) / delays[-1]
    return [d * factor for d in delays]


@pytest.mark.parametrize(("rate", "burstiness", "seed"), [(2.0, 1.0, 0), (10.0, 0.5, 7), (0.5, 3.0, 42)])
def test_arrival_schedule_is_vllms(rate, burstiness, seed):
    assert arrival_offsets_s(20, rate, burstiness, seed) == pytest.approx(_vllm_get_request_delays(20, rate, burstiness, seed))


def test_arrival_schedule_is_seeded_sorted_and_lands_on_n_over_rate():
    a = arrival_offsets_s(200, 4.0, seed=1)
    assert a == arrival_offsets_s(200, 4.0, seed=1)
    assert a != arrival_offsets_s(200, 4.0, seed=2)
    assert a == sorted(a)
    assert a[-1] == pytest.approx(50.0)
    assert arrival_offsets_s(2, math.inf) == [0.0, 0.0]
