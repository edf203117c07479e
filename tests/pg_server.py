"""A throwaway PostgreSQL server for the store's tests and benchmark: Debian's server binaries, a cluster in a
temp dir, listening on 127.0.0.1 at a free port (and a socket in the same dir), removed afterwards.

* Binaries: ``$PG_BINDIR``, else the folder of ``pg_ctl`` on PATH, else the newest
  ``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql`` package; ``scripts/ensure_postgres.sh`` installs it).
* ``initdb`` refuses to run as root: as root, the cluster belongs to the ``postgres`` account (else ``nobody``)
  and every server command runs through ``setpriv`` as that user. There is no superuser password: the superuser
  logs in only over the cluster's own socket (``trust``, a dir only its owner can enter); TCP logins need
  scram-sha-256 passwords, so a wrong password is refused like on a real server.
* The tests' role ``probe`` has a random password made per start; :meth:`ThrowawayPostgres.url` gives
  ``postgresql://probe:PASSWORD@127.0.0.1:PORT/probes`` (with a ``search_path`` schema per test when asked).
* Removed even when tests fail: :meth:`stop` (the session fixture's finalizer) stops the server (immediate
  mode) and deletes the dir; a watchdog process does the same if the test process dies without it (``kill
  -9``); ``make test`` also traps its exit and removes whatever is left under ``$APP_TEST_PG_TMP``.

Run as a script: ``python tests/pg_server.py`` starts one, prints its URL and waits for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["ThrowawayPostgres", "PostgresUnavailable", "find_bindir", "kill_cluster_dir"]

ROLE = "probe"
DATABASE = "probes"
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The server cannot be started here (no binaries, no unprivileged account, initdb or start failed)."""


def find_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are (see the module docstring); None when there are none."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = shutil.which("pg_ctl")
    if found and Path(found).resolve().with_name("initdb").exists():
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_cluster_dir(root: str | os.PathLike[str]) -> None:
    """Stop (SIGQUIT: immediate shutdown) every server whose data dir is ``root/data`` and delete ``root``."""
    pid_file = Path(root) / "data" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # raises ProcessLookupError once it is gone
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


class ThrowawayPostgres:
    """One temporary cluster (see the module docstring); a context manager."""

    def __init__(self, base_dir: str | os.PathLike[str] | None = None) -> None:
        self.base_dir = base_dir or os.environ.get("APP_TEST_PG_TMP") or None
        self.root: Path | None = None
        self.port = 0
        self.password = secrets.token_urlsafe(18)
        self._as_user: list[str] = []
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._schemas = 0

    def __enter__(self) -> ThrowawayPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, *argv: str) -> None:
        done = subprocess.run([*self._as_user, *argv], capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{Path(argv[0]).name} failed ({done.returncode}): "
                                      f"{(done.stderr or done.stdout).strip()[-800:]}")

    def start(self) -> None:
        bindir = find_bindir()
        if bindir is None or not (bindir / "initdb").exists():
            raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl): install Debian's "
                                      "postgresql package (bash scripts/ensure_postgres.sh)")
        if self.base_dir:
            Path(self.base_dir).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="pgtest-", dir=self.base_dir))
        try:
            if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to an unprivileged account
                account = next((a for a in ("postgres", "nobody") if _user_exists(a)), None)
                if account is None or shutil.which("setpriv") is None:
                    raise PostgresUnavailable("running as root with no 'postgres' or 'nobody' account (or no "
                                              "setpriv) to own a throwaway cluster")
                entry = pwd.getpwnam(account)
                os.chown(self.root, entry.pw_uid, entry.pw_gid)
                mode = self.root.parent.stat().st_mode  # the account must be able to enter the parent dir
                if mode & 0o011 != 0o011:
                    os.chmod(self.root.parent, mode | 0o011)
                self._as_user = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
            data = self.root / "data"
            self._run(str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth-local=trust",
                      "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")
            self._start_watchdog()
            for _attempt in range(3):  # a free port can be taken between the check and the bind
                self.port = _free_port()
                try:
                    self._run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "server.log"),
                              "-w", "-t", "60", "start", "-o",
                              f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                              "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
                    break
                except PostgresUnavailable:
                    if "already in use" not in self.log_tail():
                        raise
            else:
                raise PostgresUnavailable(f"no free port for PostgreSQL: {self.log_tail()}")
            self._setup_role()
        except BaseException:
            self.stop()
            raise

    def _start_watchdog(self) -> None:
        assert self.root is not None
        self._watchdog = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--watch", str(os.getpid()), str(self.root)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def _admin(self, *statements: str) -> None:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(host=str(self.root), port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True, connect_timeout=10) as con:
            for statement in statements:
                con.execute(statement)

    def _setup_role(self) -> None:
        self._admin(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}'",
                    f"CREATE DATABASE {DATABASE} OWNER {ROLE}")

    def url(self, *, password: str | None = None, schema: str | None = None, dbname: str = DATABASE) -> str:
        """The tests' URL (``password`` to try a wrong one; ``schema`` for a private ``search_path``)."""
        query = f"?options=-csearch_path%3D{schema}" if schema else ""
        return f"postgresql://{ROLE}:{password or self.password}@127.0.0.1:{self.port}/{dbname}{query}"

    def fresh_url(self) -> str:
        """A URL whose ``search_path`` is a new, empty schema: a store of its own, in milliseconds."""
        import psycopg  # noqa: PLC0415

        self._schemas += 1
        schema = f"t{os.getpid()}_{self._schemas}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as con:
            con.execute(f"CREATE SCHEMA {schema}")
        return self.url(schema=schema)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError, TypeError):
            return (Path(self.root) / "server.log").read_text(errors="replace")[-800:]  # type: ignore[arg-type]
        return ""

    def stop(self) -> None:
        """Stop the server (immediate), remove its dir, end the watchdog; safe to call twice."""
        if self.root is not None:
            kill_cluster_dir(self.root)
            self.root = None
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait(timeout=10)
            self._watchdog = None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _watch(parent: int, root: str) -> None:
    """Wait until ``parent`` is gone (we are re-parented), then remove the cluster it left."""
    while os.getppid() == parent:
        time.sleep(0.5)
    kill_cluster_dir(root)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--watch":
        _watch(int(sys.argv[2]), sys.argv[3])
    else:
        with ThrowawayPostgres() as pg:
            print(pg.url(), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
