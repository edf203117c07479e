"""Typed probe settings read from the environment (GuideLLM-style, ``APP__PROBE__*``).

=============================  ==================================================================
``APP__PROBE__ENABLED``        ``1``/``true``/``yes``/``on`` (default) or ``0``/``false``/``no``/``off``:
                               switch probing off for shared deployments
``APP__PROBE__DB``             results database file (default: the user's data dir)
``APP__PROBE__HOST``           interface a managed vLLM binds (default ``127.0.0.1``)
``APP__PROBE__DATA_DIR``       where lock files and synthetic models go (default: the user's data dir)
``VLLM_PYTHON``                interpreter of the environment where vLLM is installed
=============================  ==================================================================

>>> load_settings({"APP__PROBE__ENABLED": "off"}).enabled
False
>>> load_settings({"APP__PROBE__ENABLED": "maybe"})
Traceback (most recent call last):
...
ValueError: APP__PROBE__ENABLED must be one of 1/true/yes/on or 0/false/no/off, got 'maybe'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from probes.errors import ProbeDisabledError

__all__ = ["APP_NAME", "ProbeSettings", "load_settings", "require_enabled", "parse_bool"]

APP_NAME = "selfhost-vs-api"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_bool(name: str, value: str) -> bool:
    """Parse an on/off environment value; ValueError naming the variable otherwise."""
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"{name} must be one of 1/true/yes/on or 0/false/no/off, got {value!r}")


@dataclass(frozen=True)
class ProbeSettings:
    """Probe configuration; ``db_path`` None means the store's own default."""

    enabled: bool = True
    db_path: str | None = None
    host: str = "127.0.0.1"
    vllm_python: str | None = None
    data_dir: str = ""

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("APP__PROBE__HOST must not be empty")


def _user_data_dir() -> str:
    """platformdirs' user data dir; the XDG default where platformdirs is absent (a bare GPU box)."""
    try:
        import platformdirs  # noqa: PLC0415
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        return os.path.join(base, APP_NAME)
    return platformdirs.user_data_dir(APP_NAME, appauthor=False)


def load_settings(environ: Mapping[str, str] | None = None) -> ProbeSettings:
    """Build :class:`ProbeSettings` from ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    enabled_raw = env.get("APP__PROBE__ENABLED", "")
    return ProbeSettings(
        enabled=parse_bool("APP__PROBE__ENABLED", enabled_raw) if enabled_raw.strip() else True,
        db_path=env.get("APP__PROBE__DB") or None,
        host=env.get("APP__PROBE__HOST", "127.0.0.1").strip() or "127.0.0.1",
        vllm_python=env.get("VLLM_PYTHON") or None,
        data_dir=env.get("APP__PROBE__DATA_DIR") or _user_data_dir(),
    )


def require_enabled(settings: ProbeSettings) -> None:
    """Raise ProbeDisabledError when probing is switched off."""
    if not settings.enabled:
        raise ProbeDisabledError("probing is switched off for this deployment (APP__PROBE__ENABLED=0)")
