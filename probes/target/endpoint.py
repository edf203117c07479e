"""An already-running OpenAI-compatible endpoint: check it (``/v1/models``) and read its version (``/version``);
:func:`attach_fleet` checks several replicas of one model (:mod:`probes.load.fleet`).

Which prompt ids it accepts is :mod:`probes.target.vocabulary`'s business: it never sends ids to find out
(the bisection that did could kill a vLLM 0.26 server with one request whose id equalled the vocabulary size).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from probes.errors import EndpointError

__all__ = ["EndpointInfo", "attach", "attach_fleet", "get_version", "headers_for"]


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


def attach_fleet(urls: tuple[str, ...] | list[str], *, api_key: str | None = None,
                 timeout_s: float = 10.0) -> tuple[EndpointInfo, ...]:
    """:func:`attach` to every replica; EndpointError when one cannot be used or they do not all serve the same
    model (the message names the odd one out: the replica whose model differs from the most common one)."""
    infos = tuple(attach(u, api_key=api_key, timeout_s=timeout_s) for u in urls)
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.model] = counts.get(info.model, 0) + 1
    common = max(counts, key=lambda m: (counts[m], -[i.model for i in infos].index(m)))
    for info in infos:
        if info.model != common:
            other = next(i for i in infos if i.model == common)
            raise EndpointError(f"replica {info.base_url} serves {info.model!r}, but {other.base_url} serves "
                                f"{common!r}: every replica must serve the same model")
    return infos
