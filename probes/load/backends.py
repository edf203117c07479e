"""Request kinds (backends): how one request is written for an endpoint, and which stream events carry output.

Like vLLM's ``ASYNC_REQUEST_FUNCS`` keyed by endpoint kind: the load engine (:mod:`probes.load.client`)
only schedules and times requests; a :class:`Backend` says which URL path to POST, the JSON body, and
whether a decoded stream event carries generated output (TTFT at the first such event, ITL between them,
E2EL at the last). Every kind streams with ``stream_options: {"include_usage": true}``, so the lengths come
from the final ``usage`` event.

* ``vllm-token-ids``: ``/v1/completions`` with the prompt as token ids and vLLM's ``ignore_eos`` (exact input
  and output lengths; ids must be ones the server accepts, see :mod:`probes.load.workload`). vLLM only.
* ``completions``: ``/v1/completions`` with a text prompt and ``max_tokens``.
* ``chat``: ``/v1/chat/completions`` with the text as one user message (a string) and
  ``max_completion_tokens`` (OpenAI's name; ``max_tokens`` is deprecated there and refused by reasoning
  models).

**vLLM extras.** Hosted APIs reject unknown fields, and some reasoning models any ``temperature`` but 1, so a
text kind sends only standard OpenAI fields unless ``vllm_extras=True``; then it adds ``ignore_eos`` and
``min_tokens`` (the output length is forced, as with token ids), ``temperature: 0`` and
``repetition_penalty: 1`` (as the token-id kind). The caller decides: ``True`` for a managed vLLM and for
an endpoint whose ``GET /version`` answered with a version (:func:`probes.target.endpoint.get_version`;
vLLM does, hosted APIs answer 404; SGLang, which also has ``/version``, accepts these fields too).
Without the extras a server may stop early at an end-of-sequence token: that is counted as an output-length
mismatch (:mod:`probes.load.metrics`), not a failure.

**Output events.** ``vllm-token-ids`` and ``completions``: every event with a non-empty ``choices``, exactly
vLLM's ``async_request_openai_completions`` (a token whose text is empty still counts; the final usage
event has ``choices: []``). ``chat``: vLLM's ``async_request_openai_chat_completions`` counts every event
with ``choices``, including the opening delta that carries only ``role`` (``{"role": "assistant",
"content": ""}``). Hosted APIs send that delta before any token is generated, so counting it would make
TTFT the time to the HTTP headers. Our rule: every event with ``choices`` EXCEPT a delta with ``role``
and no non-empty ``content``, ``reasoning_content``, ``reasoning``, ``refusal`` or ``tool_calls``. Where
that differs from vLLM's client: on a vLLM server the role delta is written in the same engine step as the
first token, just before it, so TTFT differs by that gap (microseconds) and vLLM's client has one more ITL
value per request (that near-zero gap) than ours. A trailing ``{"delta": {}}`` with only ``finish_reason``
(hosted APIs) is counted, as vLLM's client counts it.

>>> from probes.load.workload import RequestInput
>>> b = BACKENDS["vllm-token-ids"]
>>> b.path, b.payload("m", RequestInput(0, (5, 6), 3))["prompt"]
('/v1/completions', [5, 6])
>>> b.is_output({"choices": [{"text": "x"}]}), b.is_output({"choices": [], "usage": {}})
(True, False)
>>> chat = get_backend("chat")
>>> chat.is_output({"choices": [{"delta": {"role": "assistant", "content": ""}}]})
False
>>> chat.is_output({"choices": [{"delta": {"content": "Hi"}}]})
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from probes.load.workload import TEXT_KINDS, TOKEN_ID_KINDS, RequestInput

__all__ = [
    "Backend",
    "BACKENDS",
    "BACKEND_NAMES",
    "AUTO",
    "get_backend",
    "resolve_backend_name",
    "backend_for",
    "vllm_completions_payload",
    "completions_payload",
    "chat_payload",
    "chat_output",
    "completions_output",
]

BACKEND_NAMES: tuple[str, ...] = TOKEN_ID_KINDS + TEXT_KINDS
AUTO = "auto"
_STREAM = {"stream": True, "stream_options": {"include_usage": True}}
_CHAT_OUTPUT_KEYS = ("content", "reasoning_content", "reasoning", "refusal", "tool_calls")


@dataclass(frozen=True)
class Backend:
    """One endpoint kind: URL path, request body builder, and the test for an output-carrying event.

    ``vllm_extras``: whether the body carries vLLM's non-OpenAI fields (see the module docstring).
    """

    name: str
    path: str
    payload: Callable[[str, RequestInput], dict[str, Any]]
    is_output: Callable[[Mapping[str, Any]], bool]
    description: str = ""
    vllm_extras: bool = False


def vllm_completions_payload(model: str, request: RequestInput) -> dict[str, Any]:
    """The JSON body of one streaming completion (token-id prompt, output length forced by ``ignore_eos``).

    >>> vllm_completions_payload("m", RequestInput(0, (5, 6), 3))["max_tokens"]
    3
    """
    return {
        "model": model,
        "prompt": list(request.prompt_token_ids),
        "max_tokens": request.output_tokens,
        "ignore_eos": True,
        "temperature": 0.0,
        "repetition_penalty": 1.0,
        **_STREAM,
    }


def _text(request: RequestInput) -> str:
    if request.prompt_text is None:
        raise ValueError(f"request {request.index} has no prompt_text: text kinds need build_text_requests")
    return request.prompt_text


def _vllm_fields(request: RequestInput) -> dict[str, Any]:
    return {"ignore_eos": True, "min_tokens": request.output_tokens, "temperature": 0.0, "repetition_penalty": 1.0}


def completions_payload(model: str, request: RequestInput, *, vllm_extras: bool = False) -> dict[str, Any]:
    """The body of one streaming text completion; vLLM's length-forcing fields only with ``vllm_extras``.

    >>> r = RequestInput(0, (), 3, prompt_text="time year")
    >>> sorted(completions_payload("m", r))
    ['max_tokens', 'model', 'prompt', 'stream', 'stream_options']
    >>> completions_payload("m", r, vllm_extras=True)["min_tokens"]
    3
    """
    body = {"model": model, "prompt": _text(request), "max_tokens": request.output_tokens, **_STREAM}
    return {**body, **_vllm_fields(request)} if vllm_extras else body


def chat_payload(model: str, request: RequestInput, *, vllm_extras: bool = False) -> dict[str, Any]:
    """The body of one streaming chat completion: the prompt as one user message.

    >>> body = chat_payload("m", RequestInput(0, (), 3, prompt_text="time year"))
    >>> body["messages"], body["max_completion_tokens"], "ignore_eos" in body
    ([{'role': 'user', 'content': 'time year'}], 3, False)
    """
    body = {
        "model": model,
        "messages": [{"role": "user", "content": _text(request)}],
        "max_completion_tokens": request.output_tokens,
        **_STREAM,
    }
    return {**body, **_vllm_fields(request)} if vllm_extras else body


def completions_output(message: Mapping[str, Any]) -> bool:
    """vLLM's rule for completions: an event with a non-empty ``choices`` carries output."""
    return bool(message.get("choices"))


def chat_output(message: Mapping[str, Any]) -> bool:
    """An event with a non-empty ``choices`` carries output unless its delta is the role-only opening one.

    >>> chat_output({"choices": [{"delta": {"role": "assistant", "content": "", "refusal": None}}]})
    False
    >>> chat_output({"choices": [{"delta": {"role": "assistant", "content": "Hi"}}]})
    True
    >>> chat_output({"choices": [{"delta": {"reasoning_content": "hm"}}]}), chat_output({"choices": []})
    (True, False)
    >>> chat_output({"choices": [{"delta": {"content": ""}}]})  # a token with empty text (vLLM)
    True
    """
    choices = message.get("choices")
    if not choices:
        return False
    first = choices[0]
    delta = first.get("delta") if isinstance(first, Mapping) else None
    if isinstance(delta, Mapping) and "role" in delta:
        return any(delta.get(key) for key in _CHAT_OUTPUT_KEYS)
    return True


def get_backend(name: str, *, vllm_extras: bool = False) -> Backend:
    """The request kind called ``name``; ValueError naming the known ones otherwise.

    ``vllm_extras`` applies to the text kinds (``completions``, ``chat``); ``vllm-token-ids`` is vLLM's own
    kind and always sends ``ignore_eos``.

    >>> get_backend("completions", vllm_extras=True).vllm_extras, get_backend("vllm-token-ids").vllm_extras
    (True, True)
    >>> get_backend("responses")
    Traceback (most recent call last):
    ...
    ValueError: unknown request kind 'responses'; known: vllm-token-ids, completions, chat
    """
    if name == "vllm-token-ids":
        return Backend(name, "/v1/completions", vllm_completions_payload, completions_output,
                       "vLLM completions, prompt as token ids, ignore_eos (exact lengths)", vllm_extras=True)
    where = "vLLM fields ignore_eos, min_tokens" if vllm_extras else "standard OpenAI fields only"
    if name == "completions":
        return Backend(name, "/v1/completions", partial(completions_payload, vllm_extras=vllm_extras),
                       completions_output, f"completions, text prompt, {where}", vllm_extras=vllm_extras)
    if name == "chat":
        return Backend(name, "/v1/chat/completions", partial(chat_payload, vllm_extras=vllm_extras), chat_output,
                       f"chat completions, text as one user message, {where}", vllm_extras=vllm_extras)
    raise ValueError(f"unknown request kind {name!r}; known: {', '.join(BACKEND_NAMES)}")


def resolve_backend_name(requested: str, *, vocab_known: bool, is_vllm: bool) -> str:
    """The kind to use for ``--api requested`` (``auto`` or a name) against a target.

    ``auto``: ``vllm-token-ids`` when the target is vLLM and its valid ids are known without sending any
    (a local config.json, ``--vocab-size``, or ids its own ``/tokenize`` returned: exact input lengths);
    else text, which needs no vocabulary so no request can depend on the server's input validation:
    ``completions`` on a vLLM (length still forced by ``ignore_eos``, no chat template needed), ``chat``
    elsewhere (hosted APIs serve current models on chat only).

    >>> resolve_backend_name("auto", vocab_known=True, is_vllm=True)
    'vllm-token-ids'
    >>> resolve_backend_name("auto", vocab_known=False, is_vllm=True)
    'completions'
    >>> resolve_backend_name("auto", vocab_known=True, is_vllm=False)
    'chat'
    >>> resolve_backend_name("chat", vocab_known=True, is_vllm=True)
    'chat'
    """
    if requested == AUTO:
        if is_vllm:
            return "vllm-token-ids" if vocab_known else "completions"
        return "chat"
    get_backend(requested)  # ValueError for an unknown name
    return requested


def backend_for(requested: str, *, vocab_known: bool, is_vllm: bool) -> Backend:
    """The :class:`Backend` for ``--api requested`` against a target: the kind from
    :func:`resolve_backend_name`, with vLLM's fields when the target is vLLM (managed, or an endpoint whose
    ``GET /version`` answers).

    >>> b = backend_for("auto", vocab_known=False, is_vllm=False)
    >>> b.name, b.path, b.vllm_extras
    ('chat', '/v1/chat/completions', False)
    >>> backend_for("chat", vocab_known=False, is_vllm=True).vllm_extras
    True
    """
    name = resolve_backend_name(requested, vocab_known=vocab_known, is_vllm=is_vllm)
    return get_backend(name, vllm_extras=is_vllm)


BACKENDS: dict[str, Backend] = {name: get_backend(name) for name in BACKEND_NAMES}
"""Each kind with its default body (text kinds: standard OpenAI fields only); prefer :func:`get_backend`."""
