"""Find and stop a vLLM server that an earlier probe left behind (its process was SIGKILLed, its supervisor too).

The GPU lock's status file records the managed server's :meth:`~probes.target.server.VllmServer.identity`
(process group, its leader's pid and start time, and a random token). The lock itself is an ``flock`` that the
OS drops when the holder dies, so a later probe can take a free lock while the GPU is still full. Before it
starts, :func:`reap` looks for that server:

* a process is the leftover's only if its environment carries ``SELFHOST_PROBE_SERVER=<token>`` (every process
  of the group inherits it): a reused pid or pgid never matches, and other people's vLLM servers are never
  touched; without a token (an older status file), the group counts only while its leader has the recorded
  start time (``/proc/PID/stat`` field 22);
* what matches gets SIGTERM (+SIGCONT), a bounded wait, then SIGKILL; if anything is still there (another
  user's process: no permission), :class:`~probes.errors.LeftoverServerError` says which pids to stop by hand.

>>> leftover_pids({"token": "no-such-token-" + "0" * 20, "host": "elsewhere"})
[]
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from probes.errors import LeftoverServerError
from probes.target.server import SERVER_TOKEN_ENV, group_pids, process_start_ticks

__all__ = ["leftover_pids", "reap", "token_pids"]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


def token_pids(token: str) -> list[int]:
    """Live processes whose environment holds ``SELFHOST_PROBE_SERVER=<token>`` (this user's only)."""
    needle = f"{SERVER_TOKEN_ENV}={token}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
        except OSError:
            continue
        if _alive(int(entry.name)) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return sorted(found)


def leftover_pids(identity: Mapping[str, Any]) -> list[int]:
    """The processes of a recorded server that still run on this host (empty when none or another host)."""
    host = identity.get("host")
    if host and host != socket.gethostname():
        return []
    token = identity.get("token")
    if isinstance(token, str) and len(token) >= 16:
        return token_pids(token)
    pgid, ticks = identity.get("pgid"), identity.get("start_ticks")
    if isinstance(pgid, int) and pgid > 1 and isinstance(ticks, int) and process_start_ticks(pgid) == ticks:
        return group_pids(pgid)
    return []


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(identity: Mapping[str, Any], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := leftover_pids(identity)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def reap(identity: Mapping[str, Any], *, grace_s: float = 30.0, kill_wait_s: float = 10.0) -> list[int]:
    """Stop a leftover server (SIGTERM, wait ``grace_s``, SIGKILL, wait ``kill_wait_s``); returns the pids it
    found (empty: nothing was left). Raises LeftoverServerError when some cannot be stopped."""
    found = leftover_pids(identity)
    if not found:
        return []
    _signal(found, signal.SIGTERM)
    _signal(found, signal.SIGCONT)
    left = _wait_gone(identity, grace_s)
    if left:
        _signal(left, signal.SIGKILL)
        left = _wait_gone(identity, kill_wait_s)
    if left:
        raise LeftoverServerError(
            f"a vLLM server left by an earlier probe (process group {identity.get('pgid')}, pids "
            f"{', '.join(map(str, left))}) is still running and could not be stopped: stop it by hand "
            f"(kill -9 {' '.join(map(str, left))}) before probing this GPU again")
    return found
