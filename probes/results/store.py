"""Results store: every probe run (the run JSON, schema ``selfhost-vs-api/probe-run/1``) behind one interface,
:class:`ResultStore`, on SQLite (the default, one user) or PostgreSQL (a team's shared store).

Where: the constructor's ``path_or_url``, else ``APP__PROBE__DB`` (or ``DATABASE_URL`` when it is a
``postgresql://`` URL), else ``results.sqlite`` in ``platformdirs.user_data_dir("selfhost-vs-api")``. A path
(or ``sqlite:///path``) is a SQLite file; ``postgresql://user:password@host:5432/dbname`` a PostgreSQL database
(psycopg 3). Connections, locking and error messages: :mod:`probes.results.db` (never a password in a message,
``repr`` or ``location``); schema versions and in-place upgrades: :mod:`probes.results.migrations`.

Tables: ``runs`` (one row per run: the summary columns the listing and its filters read, and the run JSON
without its per-request samples) and ``run_samples`` (one row per point with samples). Each run records the
``host`` it ran on: the run's own ``host`` field, else ``APP__PROBE__HOSTNAME`` or this machine's host name for a
run saved here; an imported file keeps the host it names (else none: where it ran is unknown). Non-finite
floats (``inf``, ``nan``) are stored as ``null`` so that exports are strict JSON.

Listing: :meth:`ResultStore.list_runs` (newest first) and :meth:`ResultStore.count_runs` take a
:class:`RunFilter` (hosts, GPU kinds, models, a date range) and ``limit``/``offset`` pages; indexed columns.
:meth:`ResultStore.facets` lists the values there are to filter by.

Imports are untrusted (:mod:`probes.results.schema`): at most 64 MiB, strict JSON, at most 32 levels deep,
every field the pages read checked; each failure is a one-line ``ValueError``; a run is written in one
transaction, after all checks, so nothing is ever half-written. :meth:`ResultStore.import_any` (and
:meth:`ResultStore.import_file`) tells a run JSON and a ``vllm bench serve --save-result`` file apart
(:mod:`probes.results.vllm_bench`), for the CLI and the Results page.

>>> import tempfile, os
>>> store = ResultStore(os.path.join(tempfile.mkdtemp(), "r.sqlite"), hostname="box-1")
>>> rid = store.save_run({"schema": RUN_SCHEMA, "model": "m", "status": "complete", "weights": "synthetic",
...                       "points": [{"concurrency": 1, "output_tokens_per_s": 12.5, "failed": 0, "completed": 4}]})
>>> [(r["id"], r["host"], r["model"], r["points"], r["best_output_tokens_per_s"]) for r in store.list_runs()]
[(1, 'box-1', 'm', 1, 12.5)]
>>> store.get_run(rid)["run_id"], store.count_runs(RunFilter(hosts=("box-2",)))
(1, 0)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import platformdirs

from probes.errors import RunNotFoundError, SchemaTooNewError, StoreConnectionError, StoreError
from probes.results import migrations, rows
from probes.results.db import PostgresDatabase, SqliteDatabase
from probes.results.schema import (
    MAX_IMPORT_BYTES,
    RUN_SCHEMA,
    STATUSES,
    WEIGHTS,
    check_depth,
    check_run,
    check_size,
    parse_json,
)
from probes.results.vllm_bench import vllm_bench_to_run
from probes.settings import db_url_from_env, hostname_from_env, is_postgres_url

__all__ = ["RUN_SCHEMA", "SCHEMA_VERSION", "STATUSES", "WEIGHTS", "MAX_IMPORT_BYTES", "ResultStore", "RunFilter",
           "StoreError", "StoreConnectionError", "SchemaTooNewError", "RunNotFoundError", "default_db_path",
           "default_db_url", "open_store", "vllm_bench_to_run"]

SCHEMA_VERSION = migrations.LATEST_VERSION
APP_NAME = "selfhost-vs-api"
ENV_DB = "APP__PROBE__DB"
_UNSET: Any = object()


def default_db_path() -> Path:
    """``$APP__PROBE__DB`` if set, else ``results.sqlite`` in the user's data dir (the SQLite default)."""
    env = os.environ.get(ENV_DB)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "results.sqlite"


def default_db_url() -> str:
    """Where the store is when nothing is passed: ``APP__PROBE__DB``, a PostgreSQL ``DATABASE_URL``, else the
    default SQLite file."""
    return db_url_from_env(os.environ) or str(default_db_path())


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list: each non-empty tuple keeps runs whose value is one of it; dates (UTC) are inclusive.

    >>> RunFilter(hosts=("a",), since=date(2026, 12, 1)).where()
    ('WHERE host IN (?) AND created_utc >= ?', ['a', '2026-12-01T00:00:00Z'])
    """

    hosts: tuple[str, ...] = ()
    gpus: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None

    def where(self) -> tuple[str, list[Any]]:
        """The SQL ``WHERE`` clause (``?`` placeholders) and its parameters; ``("", [])`` for no filter."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, values in (("host", self.hosts), ("gpu_name", self.gpus), ("model", self.models)):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params += list(values)
        if self.since is not None:
            clauses.append("created_utc >= ?")
            params.append(rows.day_start(self.since))
        if self.until is not None:
            clauses.append("created_utc < ?")
            params.append(rows.day_start(self.until, after=True))
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def open_store(path_or_url: str | os.PathLike[str] | None = None, *, hostname: str | None = None) -> ResultStore:
    """The store at ``path_or_url`` (default :func:`default_db_url`); the one entry point for pages and CLIs."""
    return ResultStore(path_or_url, hostname=hostname)


class ResultStore:
    """Probe runs in one SQLite file or one PostgreSQL database (see the module docstring).

    ``path`` is the SQLite file (a :class:`~pathlib.Path`) or the redacted URL; ``location`` is always text fit
    to show (no password); ``backend`` is ``"sqlite"`` or ``"postgresql"``; ``hostname`` what runs saved here
    record as their host.
    """

    def __init__(self, path_or_url: str | os.PathLike[str] | None = None, *, hostname: str | None = None):
        target = default_db_url() if path_or_url is None else path_or_url
        if is_postgres_url(target):
            self._db: SqliteDatabase | PostgresDatabase = PostgresDatabase(str(target))
            self.path: Path | str = self._db.location
        else:
            text = os.fspath(target)
            text = text.removeprefix("sqlite:///") if text.startswith("sqlite:///") else text
            self.path = Path(text).expanduser()
            self._db = SqliteDatabase(self.path)
        self.backend = self._db.dialect
        self.location = self._db.location
        self.hostname = hostname or hostname_from_env(os.environ)
        with self._db.connect() as con:
            migrations.migrate(con, self._db)

    def __repr__(self) -> str:
        return f"ResultStore({self.location!r})"

    def close(self) -> None:
        """Close the store's PostgreSQL connection (SQLite has none open between calls); it reopens on use."""
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save_run(self, run: Mapping[str, Any], *, host: str | None = _UNSET) -> int:
        """Insert ``run`` (or update it when ``run["run_id"]`` names a stored run); returns the run id.

        The stored JSON carries ``run_id`` and ``host`` (the run's own, else ``host``, by default this store's
        ``hostname``; ``None`` records none); ``run`` itself is not modified (callers that save again later should
        set ``run["run_id"]`` to the returned id so the save updates the same row).
        """
        return self.save_runs([run], host=host)[0]

    def save_runs(self, runs: Iterable[Mapping[str, Any]], *, host: str | None = _UNSET) -> list[int]:
        """:meth:`save_run` for many runs in one connection and one transaction (all checked first; all or
        none stored); returns their ids in order."""
        checked = [self._checked(run, host) for run in runs]
        db = self._db
        with db.connect() as con, db.write(con):
            return [self._write_run(con, data) for data in checked]

    def _checked(self, run: Mapping[str, Any], host: str | None) -> dict[str, Any]:
        if not isinstance(run, Mapping):
            raise ValueError(f"run must be a JSON object (dict), got {type(run).__name__}")
        check_depth(run)  # before anything recursive
        data = rows.finite(run)
        check_run(data)
        data.setdefault("created_at", None)
        data["created_at"] = data["created_at"] or rows.now_iso()
        if not data.get("host"):
            data.pop("host", None)
            chosen = self.hostname if host is _UNSET else host
            if chosen:
                data["host"] = chosen
        return data

    def _write_run(self, con: Any, data: dict[str, Any]) -> int:
        db = self._db
        columns = rows.summary_columns(data, host=data.get("host"))
        rid = data.get("run_id")
        exists = rid is not None and con.execute("SELECT 1 FROM runs WHERE id = ?", (rid,)).fetchone()
        if exists:
            assignments = ", ".join(f"{k} = ?" for k in columns)
            con.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*columns.values(), rid))
            con.execute("DELETE FROM run_samples WHERE run_id = ?", (rid,))
        else:
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            if rid is not None:
                con.execute(f"INSERT INTO runs (id, {names}, run_json) VALUES (?, {marks}, '{{}}')",
                            (rid, *columns.values()))
                db.after_explicit_id(con)
            else:
                rid = db.insert_id(con, f"INSERT INTO runs ({names}, run_json) VALUES ({marks}, '{{}}')",
                                   (*columns.values(),))
        data["run_id"] = rid
        bare, samples = rows.split_samples(data)
        con.execute("UPDATE runs SET run_json = ? WHERE id = ?", (json.dumps(bare, allow_nan=False), rid))
        for index, values in samples:
            con.execute("INSERT INTO run_samples (run_id, point_index, samples_json) VALUES (?, ?, ?)",
                        (rid, index, json.dumps(values, allow_nan=False)))
        return int(rid)

    def list_runs(self, filters: RunFilter | None = None, *, limit: int | None = None,
                  offset: int = 0) -> list[dict[str, Any]]:
        """One summary dict per run, newest (highest id) first: :data:`probes.results.rows.LIST_COLUMNS`.
        ``limit``/``offset`` page through the runs that match ``filters``."""
        where, params = (filters or RunFilter()).where()
        sql = f"SELECT {', '.join(rows.LIST_COLUMNS)} FROM runs {where} ORDER BY id DESC"
        if limit is not None:
            if limit < 0 or offset < 0:
                raise ValueError(f"limit and offset must be >= 0, got {limit} and {offset}")
            sql += " LIMIT ? OFFSET ?"
            params += [int(limit), int(offset)]
        with self._db.connect() as con:
            found = con.execute(sql, params).fetchall()
        return [dict(zip(rows.LIST_COLUMNS, row, strict=True)) for row in found]

    def count_runs(self, filters: RunFilter | None = None) -> int:
        """How many runs match ``filters``."""
        where, params = (filters or RunFilter()).where()
        with self._db.connect() as con:
            return int(con.execute(f"SELECT COUNT(*) FROM runs {where}", params).fetchone()[0])

    def facets(self) -> dict[str, list[str]]:
        """The values there are to filter by: ``{"hosts": [...], "gpus": [...], "models": [...]}``, sorted."""
        out: dict[str, list[str]] = {}
        with self._db.connect() as con:
            for key, column in (("hosts", "host"), ("gpus", "gpu_name"), ("models", "model")):
                found = con.execute(f"SELECT DISTINCT {column} FROM runs WHERE {column} IS NOT NULL "
                                    f"ORDER BY {column}").fetchall()
                out[key] = [str(r[0]) for r in found]
        return out

    def get_run(self, run_id: int) -> dict[str, Any]:
        """The stored run JSON, samples included; :class:`RunNotFoundError` (a ``ValueError``) when there is no
        such run."""
        with self._db.connect() as con:
            row = con.execute("SELECT run_json FROM runs WHERE id = ?", (int(run_id),)).fetchone()
            if row is None:
                raise RunNotFoundError(f"run_id {run_id}: no such run in {self.location}")
            samples = con.execute("SELECT point_index, samples_json FROM run_samples WHERE run_id = ? "
                                  "ORDER BY point_index", (int(run_id),)).fetchall()
        return rows.join_samples(json.loads(row[0]), ((int(i), json.loads(s)) for i, s in samples))

    def get_runs_bare(self, run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The stored run JSONs of ``run_ids`` without their per-request samples, in one query (the Results
        page's shapes and run comparison); ids with no run are left out. At most 1,000 ids."""
        ids = sorted({int(r) for r in run_ids})
        if len(ids) > 1000:
            raise ValueError(f"get_runs_bare takes at most 1,000 run ids, got {len(ids):,}")
        if not ids:
            return {}
        with self._db.connect() as con:
            found = con.execute(f"SELECT id, run_json FROM runs WHERE id IN ({', '.join('?' for _ in ids)})",
                                ids).fetchall()
        return {int(rid): json.loads(text) for rid, text in found}

    def delete_run(self, run_id: int) -> None:
        """Remove one run and its samples; :class:`RunNotFoundError` when there is no such run."""
        with self._db.connect() as con, self._db.write(con):
            con.execute("DELETE FROM run_samples WHERE run_id = ?", (int(run_id),))
            if con.execute("DELETE FROM runs WHERE id = ?", (int(run_id),)).rowcount == 0:
                raise RunNotFoundError(f"run_id {run_id}: no such run in {self.location}")

    def export_json(self, run_id: int) -> str:
        """The run as indented strict JSON (what ``import_json`` reads back)."""
        return json.dumps(self.get_run(run_id), indent=2, allow_nan=False)

    def import_json(self, text: str | bytes) -> int:
        """Store an exported run (or a CLI ``--out`` file) as a NEW run; returns its id. Untrusted text:
        ValueError (one line) on anything :mod:`probes.results.schema` refuses. The run keeps the host it names
        (else it records none)."""
        run = parse_json(text)
        check_run(run)
        return self.save_run({**run, "run_id": None}, host=None)

    def import_vllm_bench(self, data: Mapping[str, Any] | str | os.PathLike[str], *, label: str = "") -> int:
        """Store a ``vllm bench serve --save-result`` result (dict, JSON text or file path) as one run (no host:
        the file does not say where it ran)."""
        return self.save_run(vllm_bench_to_run(data, label=label), host=None)

    def import_any(self, data: str | bytes, *, label: str = "") -> tuple[int, str]:
        """Store a probe run JSON or a ``vllm bench serve --save-result`` file (one object per line allowed);
        returns ``(run_id, kind)`` with kind ``"probe run"`` or ``"vllm bench serve result"``."""
        check_size(len(data))
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8-sig")  # a byte-order mark (Windows editors) is fine
            except UnicodeDecodeError as exc:
                raise ValueError(f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                                 f"{exc.start}); save it as UTF-8") from None
        try:
            whole = parse_json(data)
        except ValueError as exc:
            if not str(exc).startswith("not valid JSON"):
                raise  # too deep, NaN, too big: the file is refused whatever its format
            whole = None  # several objects, one per line (vllm bench --append-result), or garbage
        if isinstance(whole, dict) and str(whole.get("schema", "")).startswith("selfhost-vs-api/probe-run"):
            return self.import_json(data), "probe run"
        if not data.lstrip().startswith("{"):
            raise ValueError("expected a JSON object (a probe run or a vllm bench serve result)")
        return self.import_vllm_bench(whole if isinstance(whole, dict) else data, label=label), \
            "vllm bench serve result"

    def import_file(self, path: str | os.PathLike[str], *, label: str = "") -> tuple[int, str]:
        """:meth:`import_any` on a file, refused by size before it is read."""
        try:
            check_size(os.stat(path).st_size, os.fspath(path))
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
        return self.import_any(data, label=label)


