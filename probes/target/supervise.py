"""A tiny supervisor between the probe and vLLM, so that vLLM never outlives the process that started it.

Run by path with the app's own interpreter and the standard library only (``python -I -S supervise.py
PARENT_PID GRACE_S -- VLLM_ARGV...``): :class:`~probes.target.server.VllmServer` starts it as the leader of a
new session, so it, vLLM and everything vLLM starts (engine core, workers) share one process group, the
group the server's ``stop()`` signals.

What it does:

* starts vLLM (same stdio, environment and group) with ``PR_SET_PDEATHSIG = SIGKILL`` set in the child (Linux):
  if the supervisor itself is SIGKILLed, vLLM's main process dies too;
* every :data:`POLL_S` seconds checks ``getppid()``: once the probe (CLI or app) is gone, even by SIGKILL, it
  sends SIGTERM (+SIGCONT) to the group, waits ``GRACE_S``, then SIGKILLs the group (itself included);
* on SIGTERM (the probe's ``stop()`` signals the whole group, so vLLM got it too) it waits ``GRACE_S`` for vLLM
  to exit, then SIGKILLs the group;
* when vLLM's main process exits, it SIGKILLs what is left of the group (an engine core that outlived it) and
  exits with vLLM's status (the same signal when vLLM was killed by one), so ``poll()`` on the supervisor reads
  as ``poll()`` on vLLM.

Why not ``PR_SET_PDEATHSIG`` on vLLM directly from the probe: it fires when the parent THREAD exits (the Probe
page starts servers from a job thread, and ``preexec_fn`` is unsafe in a threaded process), and it does not
reach vLLM's own children. Polling ``getppid()`` here has process semantics and covers the whole group; the
supervisor is single-threaded, so its own ``preexec_fn`` is safe and the thread caveat does not apply to it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

POLL_S = 0.2
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the vLLM child (after fork, before exec): SIGKILL when the supervisor dies (Linux only)."""
    with contextlib.suppress(Exception):
        import ctypes  # noqa: PLC0415 - only in the child, only on Linux

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _others_in_group(pgid: int) -> list[int]:
    me, found = os.getpid(), []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(name))
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: supervise.py PARENT_PID GRACE_S -- ARGV...\n")
        return 2
    parent, grace_s, cmd = int(argv[0]), float(argv[1]), argv[3:]
    if os.getppid() != parent:  # the probe died before we got here: start nothing
        return 1
    pgid = os.getpgrp()
    stop_at: list[float] = []

    def on_term(_signum: int, _frame: object) -> None:
        if not stop_at:
            stop_at.append(time.monotonic() + grace_s)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the probe decides; Ctrl-C reaches it, not us
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        child = subprocess.Popen(cmd, preexec_fn=_die_with_parent if sys.platform == "linux" else None)  # noqa: PLW1509 - single-threaded
    except OSError as exc:
        sys.stderr.write(f"supervisor: cannot start {cmd[0]!r}: {exc}\n")
        return 127
    while True:
        try:
            rc = child.wait(timeout=POLL_S)
            break
        except subprocess.TimeoutExpired:
            pass
        if not stop_at and os.getppid() != parent:
            sys.stderr.write("supervisor: the probe that started vLLM is gone: stopping vLLM\n")
            on_term(signal.SIGTERM, None)
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGTERM)
                os.killpg(pgid, signal.SIGCONT)
        if stop_at and time.monotonic() >= stop_at[0]:
            os.killpg(pgid, signal.SIGKILL)  # the whole group, this process included
    deadline = time.monotonic() + 10.0
    while (left := _others_in_group(pgid)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    sys.stdout.flush()
    if rc < 0:  # mirror a death by signal, so the probe reads the same status as vLLM's
        signal.signal(-rc, signal.SIG_DFL)
        os.kill(os.getpid(), -rc)
        time.sleep(1.0)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
