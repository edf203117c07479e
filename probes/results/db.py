"""Connections of the results store: one SQLite file, or a PostgreSQL server through psycopg 3.

Both backends offer the same small surface to :mod:`probes.results.store` and :mod:`probes.results.migrations`:
``connect()`` (a context manager yielding a :class:`Connection`), ``write(con)`` (one write transaction, one
writer at a time), ``table_exists``, ``insert_id`` and ``after_explicit_id``. SQL is written once with ``?``
placeholders; the PostgreSQL backend turns them into ``%s``.

* **SQLite** (the default, one user): one short-lived connection per call (so per thread), WAL journal, a
  ``busy_timeout``, writes in ``BEGIN IMMEDIATE`` transactions (the write lock first, so a read-then-write
  never meets ``database is locked``).
* **PostgreSQL** (a team's shared store, ``postgresql://user:password@host:5432/dbname``): one connection per
  store object, opened on first use, ``connect_timeout`` 5 s unless the URL sets one; each write transaction first takes one transaction-level
  advisory lock, the same one-writer rule as SQLite (writes are a few per probe run; reads never wait).

Errors: a driver error becomes a :class:`~probes.errors.StoreError`, a failed connect a
:class:`~probes.errors.StoreConnectionError`; both are one line naming the file or ``host:port`` and never the
password (the URL is kept private; :attr:`PostgresDatabase.location` is redacted).

>>> db = PostgresDatabase("postgresql://probe:s3cret@127.0.0.1:1/probes?connect_timeout=2")
>>> db.location, db.where
('postgresql://probe:***@127.0.0.1:1/probes?connect_timeout=2', '127.0.0.1:1')
>>> "s3cret" in repr(db)
False
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from probes.errors import StoreConnectionError, StoreError
from probes.settings import redact_url

__all__ = ["Connection", "SqliteDatabase", "PostgresDatabase", "BUSY_TIMEOUT_MS", "CONNECT_TIMEOUT_S",
           "WRITE_LOCK_KEY"]

BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 5
WRITE_LOCK_KEY = 0x5E1F_7E57  # pg_advisory_xact_lock key: one writer at a time on a shared store


def _one_line(text: str, secret: str | None = None) -> str:
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    if secret:
        line = line.replace(secret, "***")
    return line


class Connection:
    """One open connection: ``execute`` (``?`` placeholders) returns a cursor; driver errors become StoreError."""

    def __init__(self, raw: Any, *, dialect: str, where: str, driver_errors: tuple[type[BaseException], ...],
                 secret: str | None = None) -> None:
        self.raw, self.dialect, self.where = raw, dialect, where
        self._errors, self._secret = driver_errors, secret

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        try:
            return self.raw.execute(sql, tuple(params))
        except self._errors as exc:
            raise StoreError(f"results database {self.where}: {_one_line(str(exc), self._secret)}") from exc


class SqliteDatabase:
    """One SQLite file (see the module docstring)."""

    dialect = "sqlite"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.location = self.where = str(self.path)

    def __repr__(self) -> str:
        return f"SqliteDatabase({self.location!r})"

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            raw = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreConnectionError(f"cannot open the results database {self.path}: {exc}") from None
        con = Connection(raw, dialect=self.dialect, where=self.where, driver_errors=(sqlite3.Error,))
        try:
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._wal(con)
            yield con
        finally:
            raw.close()

    @staticmethod
    def _wal(con: Connection) -> None:
        """Switch the file to WAL once. The switch needs the file to itself and SQLite answers "database is
        locked" at once, busy timeout or not, while another process has it open (two processes opening a new
        or old rollback-journal file together): retry until the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                if con.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                    return
                con.execute("PRAGMA journal_mode = WAL")
            except StoreError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextlib.contextmanager
    def write(self, con: Connection) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` on any exception."""
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            con.raw.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    @staticmethod
    def table_exists(con: Connection, name: str) -> bool:
        return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() \
            is not None

    @staticmethod
    def insert_id(con: Connection, sql: str, params: Sequence[Any]) -> int:
        """Run an ``INSERT`` and return the new row's id."""
        return int(con.execute(sql, params).lastrowid)

    @staticmethod
    def after_explicit_id(con: Connection) -> None:
        """Nothing to do: AUTOINCREMENT already continues after the largest id."""

    def close(self) -> None:
        """Nothing to close: each call has its own short-lived connection."""


class PostgresDatabase:
    """A PostgreSQL database given by URL (see the module docstring). The URL (with its password) is private."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self._url = url.strip()
        self.location = redact_url(self._url)
        self._secret: str | None = None
        self._raw: Any = None
        self._lock = threading.RLock()
        try:
            from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 - psycopg only for a PostgreSQL store

            info = conninfo_to_dict(self._url)
        except ImportError as exc:
            raise StoreConnectionError(f"a PostgreSQL results store needs psycopg ({exc}): install "
                                       "requirements.txt") from None
        except Exception as exc:  # noqa: BLE001 - psycopg.ProgrammingError: a malformed URL
            raise StoreConnectionError(f"not a valid PostgreSQL URL: {self.location} "
                                       f"({_one_line(str(exc), self._password_in(self._url))})") from None
        self._secret = str(info["password"]) if info.get("password") else None
        host = str(info.get("host") or "local socket")
        self.where = f"{host}:{info.get('port') or 5432}"
        try:
            self._timeout = int(info.get("connect_timeout") or CONNECT_TIMEOUT_S)
        except ValueError:
            raise StoreConnectionError(f"{self.location}: connect_timeout must be a whole number of seconds, got "
                                       f"{info.get('connect_timeout')!r}") from None
        self._dbname, self._user = info.get("dbname"), info.get("user")

    @staticmethod
    def _password_in(url: str) -> str | None:
        userinfo = url.split("://", 1)[-1].rpartition("@")[0]
        return userinfo.split(":", 1)[1] if ":" in userinfo else None

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.location!r})"

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """This store's one connection, opened on first use and reused (a TCP connect and a SCRAM login cost
        tens of ms; a page or a CLI command makes a few calls); one caller at a time (a lock); reopened when
        it broke (the server restarted)."""
        import psycopg  # noqa: PLC0415

        with self._lock:
            raw = self._raw
            if raw is None or raw.closed or raw.broken:
                try:
                    raw = self._raw = psycopg.connect(self._url, autocommit=True, connect_timeout=self._timeout)
                except psycopg.Error as exc:
                    raise StoreConnectionError(self._connect_message(exc)) from None
            yield Connection(raw, dialect=self.dialect, where=self.where, driver_errors=(psycopg.Error,),
                             secret=self._secret)

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            if self._raw is not None and not self._raw.closed:
                self._raw.close()
            self._raw = None

    def __del__(self) -> None:
        raw = getattr(self, "_raw", None)
        if raw is not None and not raw.closed:
            raw.close()

    def _connect_message(self, exc: BaseException) -> str:
        """One line naming the host, port, database and user, and why; never the password."""
        text = _one_line(str(exc), self._secret)
        low = text.lower()
        if "password authentication failed" in low or "no password supplied" in low:
            reason = f"login refused for user {self._user!r} (wrong or missing password)"
        elif "connection refused" in low:
            reason = "connection refused (is PostgreSQL running there and listening on that port?)"
        elif "timeout expired" in low or "timed out" in low:
            reason = f"no answer within {self._timeout} s (host down or a firewall in the way?)"
        elif any(k in low for k in ("could not translate host name", "name or service not known",
                                    "failed to resolve host")):
            reason = "unknown host name"
        elif "does not exist" in low and "database" in low:
            reason = f"database {self._dbname!r} does not exist"
        else:
            reason = text.removeprefix("connection failed: ")
        return f"cannot connect to the results database at {self.where}: {reason}"

    @contextlib.contextmanager
    def write(self, con: Connection) -> Iterator[None]:
        """One transaction holding the store's advisory write lock (released at commit or rollback)."""
        with con.raw.transaction():
            con.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK_KEY,))
            yield

    @staticmethod
    def table_exists(con: Connection, name: str) -> bool:
        return con.execute("SELECT to_regclass(?)", (name,)).fetchone()[0] is not None

    @staticmethod
    def insert_id(con: Connection, sql: str, params: Sequence[Any]) -> int:
        return int(con.execute(sql + " RETURNING id", params).fetchone()[0])

    @staticmethod
    def after_explicit_id(con: Connection) -> None:
        """An insert with an explicit id does not move the identity sequence: move it past the largest id."""
        con.execute("SELECT setval(pg_get_serial_sequence('runs', 'id'), (SELECT MAX(id) FROM runs))")
