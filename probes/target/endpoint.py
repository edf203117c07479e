"""An already-running OpenAI-compatible endpoint: check it (``/v1/models``), its version, its vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from probes.errors import EndpointError

__all__ = ["EndpointInfo", "attach", "endpoint_vocab_size", "get_version", "headers_for"]


@dataclass(frozen=True)
class EndpointInfo:
    """An OpenAI-compatible endpoint: the model it serves and, for vLLM, its version."""

    base_url: str
    model: str
    models: tuple[str, ...]
    vllm_version: str | None
    max_model_len: int | None = None


def headers_for(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def get_version(base_url: str, api_key: str | None) -> str | None:
    try:
        r = requests.get(f"{base_url}/version", headers=headers_for(api_key), timeout=5.0)
        return str(r.json().get("version")) if r.status_code == 200 else None
    except (requests.RequestException, ValueError, AttributeError):
        return None


def attach(base_url: str, *, api_key: str | None = None, timeout_s: float = 10.0) -> EndpointInfo:
    """Check an already-running OpenAI-compatible endpoint; raises EndpointError when it cannot be used."""
    url = base_url.rstrip("/")
    if url.endswith("/v1"):
        url = url[:-3]
    if not url.startswith(("http://", "https://")):
        raise EndpointError(f"endpoint {base_url!r} must start with http:// or https://")
    try:
        r = requests.get(f"{url}/v1/models", headers=headers_for(api_key), timeout=timeout_s)
    except requests.RequestException as exc:
        raise EndpointError(f"endpoint {url} is unreachable: {type(exc).__name__}") from exc
    if r.status_code in (401, 403):
        raise EndpointError(f"endpoint {url} refused the request (HTTP {r.status_code}): check the API key")
    if r.status_code != 200:
        raise EndpointError(f"endpoint {url}/v1/models answered HTTP {r.status_code}: not OpenAI-compatible?")
    try:
        data = r.json()["data"]
        models = tuple(str(m["id"]) for m in data)
    except (ValueError, KeyError, TypeError) as exc:
        raise EndpointError(f"endpoint {url}/v1/models did not return an OpenAI model list") from exc
    if not models:
        raise EndpointError(f"endpoint {url} serves no model")
    max_len = data[0].get("max_model_len") if isinstance(data[0], dict) else None
    return EndpointInfo(base_url=url, model=models[0], models=models, vllm_version=get_version(url, api_key),
                        max_model_len=int(max_len) if isinstance(max_len, int) else None)


def endpoint_vocab_size(base_url: str, model: str, *, api_key: str | None = None, low: int = 16,
                        high: int = 1 << 20, timeout_s: float = 60.0) -> int | None:
    """The number of token ids a server accepts in a prompt, by binary search with 1-token completions.

    A valid id answers 200 (one token generated); an id past the vocabulary answers 400 ("out of
    vocabulary"). About log2(high) cheap requests. None when the server does not behave that way (the
    caller then falls back to a safe default).
    """
    url = f"{base_url.rstrip('/')}/v1/completions"
    headers = headers_for(api_key)

    def accepted(token_id: int) -> bool | None:
        body = {"model": model, "prompt": [token_id], "max_tokens": 1, "temperature": 0}
        try:
            r = requests.post(url, json=body, headers=headers, timeout=timeout_s)
        except requests.RequestException:
            return None
        if r.status_code == 200:
            return True
        return False if r.status_code == 400 else None

    if accepted(low) is not True or accepted(high - 1) is not False:
        return None
    ok, bad = low, high - 1
    while bad - ok > 1:
        mid = (ok + bad) // 2
        got = accepted(mid)
        if got is None:
            return None
        ok, bad = (mid, bad) if got else (ok, mid)
    return bad
