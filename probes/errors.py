"""The probe's exception tree, documented in one place (httpx style).

Everything a probe raises on purpose derives from :class:`ProbeError`; its message is meant for the user
(what failed, the useful tail of the server log, what to try). Per-request failures during a load run are
NOT raised: they are stored on the request's result record (``success=False, error=...``).

::

    ProbeError
    ├── ProbeDisabledError     probing is switched off for this deployment (settings)
    ├── ProbeBusyError         another probe holds this GPU (one probe per GPU at a time)
    │   └── LeftoverServerError  a server an earlier (killed) probe left on this GPU cannot be stopped
    ├── ServerError            the vLLM server we manage
    │   ├── ServerStartError   exited or failed before /health was ready (bad flag, OOM, model not found,
    │   │                      port in use); carries ``log_tail`` and ``returncode``
    │   ├── ServerTimeoutError /health not ready before the deadline, or the server stopped answering
    │   └── ServerDiedError    the process exited while a run was in progress
    ├── EndpointError          an attached OpenAI-compatible endpoint is unreachable or not compatible
    ├── ProbeInterrupted       the user stopped the run (Ctrl-C, Stop button); results so far are kept
    └── StoreError             the results store (SQLite file or PostgreSQL server) failed; the message names
        │                      the file or the host, never a password
        ├── StoreConnectionError  cannot open the file or reach/log in to the server
        ├── SchemaTooNewError  the database was written by a newer app (also a ValueError)
        └── RunNotFoundError   no run with that id (also a ValueError)

>>> issubclass(ServerStartError, ProbeError)
True
"""

from __future__ import annotations

__all__ = [
    "ProbeError",
    "ProbeDisabledError",
    "ProbeBusyError",
    "LeftoverServerError",
    "ServerError",
    "ServerStartError",
    "ServerTimeoutError",
    "ServerDiedError",
    "EndpointError",
    "ProbeInterrupted",
    "StoreError",
    "StoreConnectionError",
    "SchemaTooNewError",
    "RunNotFoundError",
]


class ProbeError(Exception):
    """Base of every error the probe raises on purpose; ``str(e)`` is a message for the user."""


class ProbeDisabledError(ProbeError):
    """Probing is switched off (``APP__PROBE__ENABLED=0``)."""


class ProbeBusyError(ProbeError):
    """Another probe is running on this GPU."""


class LeftoverServerError(ProbeBusyError):
    """A vLLM server left by an earlier probe still runs on this GPU and could not be stopped."""


class ServerError(ProbeError):
    """A problem with the vLLM server process we manage."""

    def __init__(self, message: str, *, log_tail: str = "", returncode: int | None = None):
        super().__init__(message)
        self.log_tail = log_tail
        self.returncode = returncode


class ServerStartError(ServerError):
    """The server exited or failed before it became healthy."""


class ServerTimeoutError(ServerError):
    """The server did not become healthy in time, or stopped answering."""


class ServerDiedError(ServerError):
    """The server process exited during a run."""


class EndpointError(ProbeError):
    """An attached endpoint cannot be used."""


class ProbeInterrupted(ProbeError):
    """The run was stopped by the user; partial results are kept and marked."""


class StoreError(ProbeError):
    """The results store failed; ``str(e)`` names the file or host and never contains a password."""


class StoreConnectionError(StoreError):
    """The store cannot be opened: a file that cannot be created, a server that cannot be reached or that
    refuses the login."""


class SchemaTooNewError(StoreError, ValueError):
    """The database's schema version is newer than this app knows."""


class RunNotFoundError(StoreError, ValueError):
    """No stored run has this id."""
