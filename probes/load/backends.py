"""Request kinds (backends): how one request is written for an endpoint, and which stream events carry output.

Like vLLM's ``ASYNC_REQUEST_FUNCS`` keyed by endpoint kind: the load engine (:mod:`probes.load.client`)
only schedules and times requests; a :class:`Backend` says which URL path to POST, the JSON body, and
whether a decoded stream event carries generated output (TTFT at the first such event, ITL between them).

* ``vllm-token-ids``: ``/v1/completions`` with the prompt as token ids and vLLM's ``ignore_eos`` (exact input
  and output lengths; ids must be below the server's vocabulary, see :mod:`probes.target.endpoint`).

>>> from probes.load.workload import RequestInput
>>> b = BACKENDS["vllm-token-ids"]
>>> b.path, b.payload("m", RequestInput(0, (5, 6), 3))["prompt"]
('/v1/completions', [5, 6])
>>> b.is_output({"choices": [{"text": "x"}]}), b.is_output({"choices": [], "usage": {}})
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from probes.load.workload import RequestInput

__all__ = ["Backend", "BACKENDS", "get_backend", "vllm_completions_payload"]


@dataclass(frozen=True)
class Backend:
    """One endpoint kind: URL path, request body builder, and the test for an output-carrying event."""

    name: str
    path: str
    payload: Callable[[str, RequestInput], dict[str, Any]]
    is_output: Callable[[Mapping[str, Any]], bool]
    description: str = ""


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
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def _completions_output(message: Mapping[str, Any]) -> bool:
    return bool(message.get("choices"))


BACKENDS: dict[str, Backend] = {
    "vllm-token-ids": Backend("vllm-token-ids", "/v1/completions", vllm_completions_payload, _completions_output,
                              "vLLM completions, prompt as token ids, ignore_eos (exact lengths)"),
}


def get_backend(name: str) -> Backend:
    """The backend called ``name``; ValueError listing the known ones otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
