"""Typed probe settings read from the environment (GuideLLM-style, ``APP__PROBE__*``).

=============================  ==================================================================
``APP__PROBE__ENABLED``        ``1``/``true``/``yes``/``on`` (default) or ``0``/``false``/``no``/``off``:
                               switch probing off for shared deployments
``APP__PROBE__DB``             results database: a SQLite file path (default: ``results.sqlite`` in the
                               user's data dir) or a ``postgresql://user:password@host:5432/dbname`` URL
                               (a shared store for many boxes; the password may also come from
                               ``PGPASSWORD`` or ``~/.pgpass``)
``DATABASE_URL``               used when ``APP__PROBE__DB`` is unset and it is a ``postgresql://`` URL
``APP__PROBE__HOSTNAME``       the host name each stored run records (default: this machine's)
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
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from probes.errors import ProbeDisabledError

__all__ = ["APP_NAME", "ProbeSettings", "load_settings", "require_enabled", "parse_bool", "db_url_from_env",
           "hostname_from_env", "is_postgres_url", "redact_url"]

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


def is_postgres_url(text: str | os.PathLike[str] | None) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL, the shared store; anything else is a SQLite path.

    >>> is_postgres_url("postgresql://u:p@db:5432/probes"), is_postgres_url("/data/results.sqlite")
    (True, False)
    """
    return isinstance(text, str) and text.strip().lower().startswith(("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` query parameter) replaced by ``***``.

    >>> redact_url("postgresql://probe:s3cret@db.lan:5432/probes?password=x&sslmode=require")
    'postgresql://probe:***@db.lan:5432/probes?password=***&sslmode=require'
    >>> redact_url("/home/me/results.sqlite")
    '/home/me/results.sqlite'
    """
    if not is_postgres_url(url):
        return url
    parts = urllib.parse.urlsplit(url.strip())
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostport}"
    query = "&".join(
        f"{k}=***" if k.lower() == "password" else (f"{k}={v}" if sep else k)
        for k, sep, v in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def db_url_from_env(env: Mapping[str, str]) -> str | None:
    """``APP__PROBE__DB``, else ``DATABASE_URL`` when it is a PostgreSQL URL, else None (the default file).

    >>> db_url_from_env({"DATABASE_URL": "mysql://x"}) is None
    True
    """
    own = (env.get("APP__PROBE__DB") or "").strip()
    if own:
        return own
    shared = (env.get("DATABASE_URL") or "").strip()
    return shared if is_postgres_url(shared) else None


def hostname_from_env(env: Mapping[str, str]) -> str:
    """``APP__PROBE__HOSTNAME`` or this machine's host name: what each stored run records as its host.

    >>> hostname_from_env({"APP__PROBE__HOSTNAME": " gpu-box-07 "}), hostname_from_env({}) == socket.gethostname()
    ('gpu-box-07', True)
    """
    return (env.get("APP__PROBE__HOSTNAME") or "").strip() or socket.gethostname()


@dataclass(frozen=True)
class ProbeSettings:
    """Probe configuration; ``db_path`` (a file path or a ``postgresql://`` URL) None means the store's own
    default. ``repr`` shows the URL with its password redacted."""

    enabled: bool = True
    db_path: str | None = None
    host: str = "127.0.0.1"
    vllm_python: str | None = None
    data_dir: str = ""
    hostname: str = ""

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("APP__PROBE__HOST must not be empty")

    def __repr__(self) -> str:
        db = None if self.db_path is None else redact_url(self.db_path)
        return (f"ProbeSettings(enabled={self.enabled!r}, db_path={db!r}, host={self.host!r}, "
                f"vllm_python={self.vllm_python!r}, data_dir={self.data_dir!r}, hostname={self.hostname!r})")


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
        db_path=db_url_from_env(env),
        host=env.get("APP__PROBE__HOST", "127.0.0.1").strip() or "127.0.0.1",
        vllm_python=env.get("VLLM_PYTHON") or None,
        data_dir=env.get("APP__PROBE__DATA_DIR") or _user_data_dir(),
        hostname=hostname_from_env(env),
    )


def require_enabled(settings: ProbeSettings) -> None:
    """Raise ProbeDisabledError when probing is switched off."""
    if not settings.enabled:
        raise ProbeDisabledError("probing is switched off for this deployment (APP__PROBE__ENABLED=0)")
