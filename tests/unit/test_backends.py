"""Request kinds: each kind's body (standard OpenAI fields unless the target is vLLM), its output-event rule
on scripted streams (scripted clock, fake session), the per-request output-length check, a real aiohttp
SSE server receiving exactly the body the kind builds, and the --api flag."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from probes.cli import build_parser
from probes.job import ProbeRequest
from probes.load import client as loadgen
from probes.load.backends import (
    AUTO,
    BACKEND_NAMES,
    BACKENDS,
    backend_for,
    chat_output,
    completions_output,
    get_backend,
    resolve_backend_name,
)
from probes.load.client import RequestResult, send_request
from probes.load.metrics import metrics_to_dict, request_samples, summarize
from probes.load.workload import TEXT_KINDS, TOKEN_ID_KINDS, RequestInput, WorkloadSpec, requests_for
from probes.plan.sweep import SweepConfig

TEXT = RequestInput(index=0, prompt_token_ids=(), output_tokens=3, prompt_text="time year people way")
IDS = RequestInput(index=0, prompt_token_ids=(100, 101), output_tokens=3)
STREAM_FIELDS = {"stream": True, "stream_options": {"include_usage": True}}
VLLM_FIELDS = {"ignore_eos", "min_tokens", "temperature", "repetition_penalty"}


# --- registry and bodies ---------------------------------------------------------------------------------


def test_registry_holds_every_kind_with_its_path():
    assert set(BACKENDS) == set(BACKEND_NAMES) == set(TOKEN_ID_KINDS + TEXT_KINDS)
    assert {n: b.path for n, b in BACKENDS.items()} == {
        "vllm-token-ids": "/v1/completions", "completions": "/v1/completions", "chat": "/v1/chat/completions"}
    assert not BACKENDS["chat"].vllm_extras and not BACKENDS["completions"].vllm_extras  # safe by default
    with pytest.raises(ValueError, match="unknown request kind 'responses'; known: vllm-token-ids, completions, chat"):
        get_backend("responses")


def test_hosted_bodies_carry_only_standard_openai_fields():
    comp = get_backend("completions", vllm_extras=False).payload("gpt-x", TEXT)
    assert comp == {"model": "gpt-x", "prompt": "time year people way", "max_tokens": 3, **STREAM_FIELDS}
    chat = get_backend("chat", vllm_extras=False).payload("gpt-x", TEXT)
    assert chat == {"model": "gpt-x", "messages": [{"role": "user", "content": "time year people way"}],
                    "max_completion_tokens": 3, **STREAM_FIELDS}


@pytest.mark.parametrize("name", TEXT_KINDS)
def test_vllm_bodies_force_the_output_length(name):
    plain = get_backend(name, vllm_extras=False).payload("m", TEXT)
    body = get_backend(name, vllm_extras=True).payload("m", TEXT)
    assert set(body) - set(plain) == VLLM_FIELDS
    assert body["ignore_eos"] is True and body["min_tokens"] == 3 == TEXT.output_tokens
    assert {k: body[k] for k in plain} == plain
    json.dumps(body)  # JSON-ready


def test_token_id_kind_is_vllm_only_and_unchanged_by_the_flag():
    for extras in (False, True):
        body = get_backend("vllm-token-ids", vllm_extras=extras).payload("m", IDS)
        assert body["prompt"] == [100, 101] and body["ignore_eos"] is True and body["max_tokens"] == 3


@pytest.mark.parametrize("name", TEXT_KINDS)
def test_a_text_kind_refuses_a_token_id_request(name):
    with pytest.raises(ValueError, match="no prompt_text"):
        get_backend(name).payload("m", IDS)


def test_auto_kind_per_target():
    assert resolve_backend_name(AUTO, vocab_known=True, is_vllm=True) == "vllm-token-ids"
    assert resolve_backend_name(AUTO, vocab_known=False, is_vllm=True) == "completions"
    assert resolve_backend_name(AUTO, vocab_known=True, is_vllm=False) == "chat"
    assert resolve_backend_name(AUTO, vocab_known=False, is_vllm=False) == "chat"
    assert resolve_backend_name("vllm-token-ids", vocab_known=False, is_vllm=True) == "vllm-token-ids"
    with pytest.raises(ValueError, match="known: vllm-token-ids"):
        resolve_backend_name("responses", vocab_known=True, is_vllm=True)


@pytest.mark.parametrize(
    ("requested", "vocab_known", "is_vllm", "expected"),
    [
        (AUTO, True, True, ("vllm-token-ids", True)),
        (AUTO, False, True, ("completions", True)),
        (AUTO, False, False, ("chat", False)),
        ("completions", False, False, ("completions", False)),  # a hosted API: standard fields only
        ("chat", True, True, ("chat", True)),
    ],
)
def test_backend_for_a_target(requested, vocab_known, is_vllm, expected):
    b = backend_for(requested, vocab_known=vocab_known, is_vllm=is_vllm)
    assert (b.name, b.vllm_extras) == expected


# --- output events on scripted streams --------------------------------------------------------------------


class ScriptedClock:
    def __init__(self) -> None:
        self.now = 500.0

    def perf_counter(self) -> float:
        return self.now


def sse(obj: object) -> bytes:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()


def delta(**fields: Any) -> bytes:
    finish = fields.pop("finish_reason", None)
    return sse({"choices": [{"index": 0, "delta": fields, "finish_reason": finish}]})


def text(t: str) -> bytes:
    return sse({"choices": [{"index": 0, "text": t, "finish_reason": None}]})


def usage(prompt: int, completion: int) -> bytes:
    return sse({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})


DONE = sse("[DONE]")


class FakeResponse:
    """Streams ``script`` = [(seconds before this read, bytes), ...], moving the clock before each read."""

    status, reason = 200, "OK"

    def __init__(self, script: list[tuple[float, bytes]], clock: ScriptedClock) -> None:
        self.script, self.clock = script, clock
        self.content = self

    async def iter_any(self):
        for delay_s, data in self.script:
            self.clock.now += delay_s
            yield data

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class FakeSession:
    def __init__(self, script: list[tuple[float, bytes]], clock: ScriptedClock) -> None:
        self.script, self.clock, self.bodies = script, clock, []

    def post(self, url: str, *, json: dict, headers: dict, timeout: Any) -> FakeResponse:
        self.bodies.append((url, json))
        return FakeResponse(self.script, self.clock)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ScriptedClock:
    c = ScriptedClock()
    monkeypatch.setattr(loadgen, "time", c)
    return c


def measure(clock: ScriptedClock, name: str, script: list[tuple[float, bytes]], request: RequestInput = TEXT,
            vllm_extras: bool = False) -> RequestResult:
    backend = get_backend(name, vllm_extras=vllm_extras)
    session = FakeSession(script, clock)
    result = asyncio.run(send_request(session, "http://h" + backend.path, "m", request, headers={},
                                      run_start_s=clock.now, request_timeout_s=60.0, backend=backend))
    assert session.bodies == [("http://h" + backend.path, backend.payload("m", request))]
    return result


def test_chat_ttft_is_the_first_content_not_the_role_delta_a_hosted_api_sends_first(clock):
    script = [(0.2, delta(role="assistant", content="", refusal=None)), (0.3, delta(content="Hel")),
              (0.1, delta(content="lo")), (0.1, delta(content="!")), (0.05, delta(finish_reason="stop")),
              (0.01, usage(12, 3)), (0.0, DONE)]
    r = measure(clock, "chat", script)
    assert r.success, r.error
    assert r.ttft_s == pytest.approx(0.5)  # not 0.2, the role delta
    assert r.itl_s == pytest.approx([0.1, 0.1, 0.05])  # the finish-only delta counts, as in vLLM's client
    assert r.latency_s == pytest.approx(0.75)  # not the usage event
    assert (r.prompt_tokens, r.output_tokens, r.requested_output_tokens) == (12, 3, 3)


def test_chat_on_vllm_role_delta_and_first_token_in_one_read(clock):
    # vLLM writes the role delta and the first token in the same engine step; vLLM's client would count
    # both (3 ITL values for 3 tokens), ours counts tokens only (2 ITL values, as for completions)
    script = [(0.4, delta(role="assistant", content="") + delta(content="a")), (0.02, delta(content="b")),
              (0.03, delta(content="", finish_reason="length")), (0.0, usage(9, 3) + DONE)]
    r = measure(clock, "chat", script, vllm_extras=True)
    assert r.success and r.ttft_s == pytest.approx(0.4)
    assert r.itl_s == pytest.approx([0.02, 0.03])  # a token with empty text still counts
    assert r.output_tokens == 3


def test_chat_reasoning_content_is_output(clock):
    script = [(0.1, delta(role="assistant", content="")), (0.2, delta(reasoning_content="hmm")),
              (0.1, delta(content="ok")), (0.0, usage(4, 2)), (0.0, DONE)]
    r = measure(clock, "chat", script)
    assert r.ttft_s == pytest.approx(0.3) and r.itl_s == pytest.approx([0.1])


def test_chat_stream_with_only_the_role_delta_fails(clock):
    r = measure(clock, "chat", [(0.1, delta(role="assistant", content="")), (0.0, usage(4, 0)), (0.0, DONE)])
    assert not r.success and r.error == "no token received (empty stream)"


@pytest.mark.parametrize(("name", "request_"), [("completions", TEXT), ("vllm-token-ids", IDS)])
def test_completions_kinds_follow_vllm_every_choices_event_counts(clock, name, request_):
    script = [(0.3, text("")), (0.1, text("x")), (0.2, text("y")), (0.05, usage(2, 3)), (0.0, DONE)]
    r = measure(clock, name, script, request=request_)
    assert r.success and r.ttft_s == pytest.approx(0.3)  # an empty-text token is still the first token
    assert r.itl_s == pytest.approx([0.1, 0.2]) and r.latency_s == pytest.approx(0.6)


def test_event_rules_agree_with_vllm_except_the_role_delta():
    events = [
        {"choices": [{"text": ""}]}, {"choices": [], "usage": {}}, {"choices": [{"delta": {}}]},
        {"choices": [{"delta": {"content": ""}}]}, {"choices": [{"delta": {"tool_calls": [{"index": 0}]}}]},
        {"choices": [{"delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"delta": {"role": "assistant"}}]},
    ]
    assert [completions_output(e) for e in events] == [True, False, True, True, True, True, True]  # vLLM's rule
    assert [chat_output(e) for e in events] == [True, False, True, True, True, False, False]


# --- output-length check ------------------------------------------------------------------------------------


def test_a_server_that_stops_early_is_a_counted_mismatch_not_a_failure(clock):
    request = RequestInput(index=0, prompt_token_ids=(), output_tokens=5, prompt_text="time year")
    short = measure(clock, "chat", [(0.1, delta(content="a")), (0.1, delta(content="b")), (0.0, usage(2, 2)),
                                    (0.0, DONE)], request=request)
    assert short.success and (short.output_tokens, short.requested_output_tokens) == (2, 5)
    exact = RequestResult(index=1, success=True, output_tokens=4, requested_output_tokens=4, latency_s=0.1)
    m = summarize([short, exact, RequestResult(index=2, error="HTTP 500", requested_output_tokens=4)], 1.0)
    assert (m.completed, m.failed, m.output_length_mismatches, m.output_length_min_ratio) == (2, 1, 1, 0.4)
    d = metrics_to_dict(m)
    assert (d["output_length_mismatches"], d["output_length_min_ratio"]) == (1, 0.4)
    assert [s["requested_output_tokens"] for s in request_samples([short, exact])] == [5, 4]


def test_without_usage_the_counted_events_are_the_output_length(clock):
    r = measure(clock, "completions", [(0.1, text("a")), (0.1, text("b")), (0.0, DONE)])
    assert r.success and (r.output_tokens, r.prompt_tokens) == (2, 4)  # prompt: the text's word count
    assert summarize([r], 1.0).output_length_mismatches == 1  # 2 of 3 asked


def test_no_request_knows_its_length_gives_no_ratio():
    m = summarize([RequestResult(index=0, success=True, output_tokens=3, latency_s=0.1)], 1.0)
    assert (m.output_length_mismatches, m.output_length_min_ratio) == (0, None)


# --- a real aiohttp SSE server receives exactly the kind's body ---------------------------------------------


async def _serve_and_send(backend_name: str, vllm_extras: bool) -> tuple[list[dict], list[str], RequestResult]:
    bodies: list[dict] = []
    auths: list[str] = []
    chunks = [delta(role="assistant", content=""), delta(content="a"), delta(content="b"), delta(content="c"),
              usage(7, 3), DONE] if backend_name == "chat" else [text("a"), text("b"), text("c"), usage(7, 3), DONE]

    async def handler(request: web.Request) -> web.StreamResponse:
        bodies.append(await request.json())
        auths.append(request.headers.get("Authorization", ""))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response

    backend = get_backend(backend_name, vllm_extras=vllm_extras)
    app = web.Application()
    app.router.add_post(backend.path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            result = await send_request(session, f"http://127.0.0.1:{port}{backend.path}", "m", TEXT,
                                        headers={"Authorization": "Bearer sk-test"}, run_start_s=0.0,
                                        request_timeout_s=30.0, backend=backend)
    finally:
        await runner.cleanup()
    return bodies, auths, result


@pytest.mark.parametrize(("name", "extras"), [("completions", False), ("chat", False), ("chat", True)])
def test_real_sse_server_receives_the_kinds_body(name, extras):
    bodies, auths, result = asyncio.run(_serve_and_send(name, extras))
    assert bodies == [get_backend(name, vllm_extras=extras).payload("m", TEXT)]
    assert auths == ["Bearer sk-test"]
    assert result.success, result.error
    assert (result.output_tokens, result.prompt_tokens, len(result.itl_s)) == (3, 7, 2)


# --- the planner's entry point and the CLI flag --------------------------------------------------------------


def test_every_kind_sends_the_requests_requests_for_builds(clock):
    spec = WorkloadSpec(input_tokens=5, output_tokens=2, num_requests=2)
    for name in BACKEND_NAMES:
        (request, _) = requests_for(spec, backend=name, vocab_size=100)
        get_backend(name).payload("m", request)  # no ValueError: the prompt form fits the kind


def test_api_flag_reaches_the_probe_request():
    parser = build_parser()
    assert parser.parse_args(["run", "--endpoint", "http://127.0.0.1:1"]).api == AUTO
    ns = parser.parse_args(["run", "--endpoint", "https://api.example.com", "--api", "chat"])
    assert ns.api == "chat"
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--endpoint", "http://x", "--api", "responses"])
    config = SweepConfig(workload=WorkloadSpec(input_tokens=4, output_tokens=2, num_requests=1), concurrencies=(1,))
    assert ProbeRequest(config=config, endpoint="http://x").backend == AUTO
    assert ProbeRequest(config=config, endpoint="http://x", backend="completions").backend == "completions"
    with pytest.raises(ValueError, match="unknown request kind"):
        ProbeRequest(config=config, endpoint="http://x", backend="responses")
