"""Results store: every probe run (the run JSON, schema ``selfhost-vs-api/probe-run/1``) in SQLite.

Default file: ``platformdirs.user_data_dir("selfhost-vs-api")/results.sqlite``; override with the constructor's
``path`` or env ``APP__PROBE__DB``. Safe with the app and the CLI writing at once: WAL journal, a
``busy_timeout``, one short-lived connection per call (so per thread), writes in ``BEGIN IMMEDIATE``
transactions. The schema version is ``PRAGMA user_version``; a newer file than this code refuses to open.

One row per run: the whole run JSON plus columns for listing (model, gpu, weights, status, point count,
best output tok/s). Non-finite floats (``inf``, ``nan``) are stored as ``null`` so that exports are strict JSON.

Also imports ``vllm bench serve --save-result`` files (one JSON object per line with ``--append-result``):
each object becomes one point of one run, ``weights="unknown"``.

Imports are untrusted (:mod:`probes.results.schema`): at most 64 MiB, strict JSON, at most 32 levels deep,
every field the pages read checked; each failure is a one-line ``ValueError``; a run is written in one
transaction, after all checks, so nothing is ever half-written. :meth:`ResultStore.import_any` (and
:meth:`ResultStore.import_file`) tells the two formats apart once, for the CLI and the Results page.

>>> import tempfile, os
>>> store = ResultStore(os.path.join(tempfile.mkdtemp(), "r.sqlite"))
>>> rid = store.save_run({"schema": RUN_SCHEMA, "model": "m", "status": "complete", "weights": "synthetic",
...                       "points": [{"concurrency": 1, "output_tokens_per_s": 12.5, "failed": 0, "completed": 4}]})
>>> [(r["id"], r["model"], r["points"], r["best_output_tokens_per_s"]) for r in store.list_runs()]
[(1, 'm', 1, 12.5)]
>>> store.get_run(rid)["run_id"]
1
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs

from probes.results.schema import (
    MAX_IMPORT_BYTES,
    RUN_SCHEMA,
    STATUSES,
    WEIGHTS,
    check_depth,
    check_point,
    check_run,
    check_size,
    parse_json,
)

__all__ = ["RUN_SCHEMA", "SCHEMA_VERSION", "STATUSES", "WEIGHTS", "MAX_IMPORT_BYTES", "ResultStore",
           "default_db_path", "vllm_bench_to_run"]

SCHEMA_VERSION = 1
APP_NAME = "selfhost-vs-api"
ENV_DB = "APP__PROBE__DB"
BUSY_TIMEOUT_MS = 30_000

_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    model TEXT,
    gpu TEXT,
    weights TEXT,
    status TEXT,
    points INTEGER NOT NULL DEFAULT 0,
    best_output_tokens_per_s REAL,
    run_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_created_at ON runs (created_at);
"""
_LIST_COLUMNS = ("id", "created_at", "model", "gpu", "weights", "status", "points", "best_output_tokens_per_s")


def default_db_path() -> Path:
    """``$APP__PROBE__DB`` if set, else ``results.sqlite`` in the user's data dir."""
    env = os.environ.get(ENV_DB)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "results.sqlite"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _finite(obj: Any) -> Any:
    """A copy of ``obj`` with non-finite floats replaced by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _gpu_label(gpu: Any) -> str | None:
    if not isinstance(gpu, Mapping) or not gpu.get("name"):
        return None
    count = gpu.get("count") or 1
    return f"{count}× {gpu['name']}" if count != 1 else str(gpu["name"])


def _best_tok_s(run: Mapping[str, Any]) -> float | None:
    best = run.get("best_point")
    if isinstance(best, Mapping) and best.get("output_tokens_per_s") is not None:
        return float(best["output_tokens_per_s"])
    values = [p.get("output_tokens_per_s") for p in run.get("points") or [] if isinstance(p, Mapping)]
    values = [float(v) for v in values if v is not None]
    return max(values) if values else None


class ResultStore:
    """Probe runs in one SQLite file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ValueError(
                    f"{self.path}: results database schema version {version} is newer than this app "
                    f"supports ({SCHEMA_VERSION}); upgrade the app or point APP__PROBE__DB elsewhere"
                )
            if version < SCHEMA_VERSION:
                with self._write(con):
                    if con.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                        for statement in filter(None, (s.strip() for s in _DDL.split(";"))):
                            con.execute(statement)
                        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            con.execute("PRAGMA journal_mode = WAL")
            yield con
        finally:
            con.close()

    @staticmethod
    @contextlib.contextmanager
    def _write(con: sqlite3.Connection) -> Iterator[None]:
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def save_run(self, run: Mapping[str, Any]) -> int:
        """Insert ``run`` (or update it when ``run["run_id"]`` names a stored run); returns the run id.

        The stored JSON carries ``run_id``; ``run`` itself is not modified (callers that save again later
        should set ``run["run_id"]`` to the returned id so the save updates the same row).
        """
        if not isinstance(run, Mapping):
            raise ValueError(f"run must be a JSON object (dict), got {type(run).__name__}")
        check_depth(run)  # before anything recursive
        data = _finite(run)
        check_run(data)
        data.setdefault("created_at", None)
        data["created_at"] = data["created_at"] or _now_iso()
        with self._connect() as con, self._write(con):
            rid = data.get("run_id")
            exists = rid is not None and con.execute("SELECT 1 FROM runs WHERE id = ?", (rid,)).fetchone()
            columns = {
                "created_at": data["created_at"],
                "updated_at": _now_iso(),
                "model": data.get("model"),
                "gpu": _gpu_label(data.get("gpu")),
                "weights": data.get("weights", "unknown"),
                "status": data["status"],
                "points": len(data.get("points") or []),
                "best_output_tokens_per_s": _best_tok_s(data),
            }
            if exists:
                data["run_id"] = rid
                assignments = ", ".join(f"{k} = ?" for k in columns)
                con.execute(
                    f"UPDATE runs SET {assignments}, run_json = ? WHERE id = ?",
                    (*columns.values(), json.dumps(data, allow_nan=False), rid),
                )
                return int(rid)
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            if rid is not None:
                con.execute(
                    f"INSERT INTO runs (id, {names}, run_json) VALUES (?, {marks}, '{{}}')", (rid, *columns.values())
                )
            else:
                rid = con.execute(f"INSERT INTO runs ({names}, run_json) VALUES ({marks}, '{{}}')", (*columns.values(),)).lastrowid
            data["run_id"] = rid
            con.execute("UPDATE runs SET run_json = ? WHERE id = ?", (json.dumps(data, allow_nan=False), rid))
            return int(rid)

    def list_runs(self) -> list[dict[str, Any]]:
        """One summary dict per run, newest first: id, created_at, model, gpu, weights, status, points,
        best_output_tokens_per_s."""
        with self._connect() as con:
            rows = con.execute(f"SELECT {', '.join(_LIST_COLUMNS)} FROM runs ORDER BY id DESC").fetchall()
        return [dict(zip(_LIST_COLUMNS, row, strict=True)) for row in rows]

    def get_run(self, run_id: int) -> dict[str, Any]:
        """The stored run JSON; ``ValueError`` when there is no such run."""
        with self._connect() as con:
            row = con.execute("SELECT run_json FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise ValueError(f"run_id {run_id}: no such run in {self.path}")
        return json.loads(row[0])

    def delete_run(self, run_id: int) -> None:
        """Remove one run; ``ValueError`` when there is no such run."""
        with self._connect() as con, self._write(con):
            if con.execute("DELETE FROM runs WHERE id = ?", (int(run_id),)).rowcount == 0:
                raise ValueError(f"run_id {run_id}: no such run in {self.path}")

    def export_json(self, run_id: int) -> str:
        """The run as indented strict JSON (what ``import_json`` reads back)."""
        return json.dumps(self.get_run(run_id), indent=2, allow_nan=False)

    def import_json(self, text: str | bytes) -> int:
        """Store an exported run (or a CLI ``--out`` file) as a NEW run; returns its id. Untrusted text:
        ValueError (one line) on anything :mod:`probes.results.schema` refuses."""
        run = parse_json(text)
        check_run(run)
        return self.save_run({**run, "run_id": None})

    def import_vllm_bench(self, data: Mapping[str, Any] | str | os.PathLike[str], *, label: str = "") -> int:
        """Store a ``vllm bench serve --save-result`` result (dict, JSON text or file path) as one run."""
        return self.save_run(vllm_bench_to_run(data, label=label))

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


def _load_bench(data: Mapping[str, Any] | str | os.PathLike[str]) -> list[dict[str, Any]]:
    if isinstance(data, Mapping):
        return [dict(data)]
    if isinstance(data, os.PathLike) or (isinstance(data, str) and not data.lstrip().startswith("{")):
        try:
            check_size(os.stat(data).st_size, os.fspath(data))
            text = Path(data).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read vllm bench result file {os.fspath(data)!r}: {exc}") from None
    else:
        text = data
    check_size(len(text))
    try:
        objects = [parse_json(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        try:
            objects = [parse_json(text)]
        except ValueError as exc:
            reason = str(exc)
            reason = ("(invalid JSON): " + reason.removeprefix("not valid JSON: ")
                      if reason.startswith("not valid JSON: ") else ": " + reason)
            raise ValueError(f"not a vllm bench serve result{' ' if reason[0] == '(' else ''}{reason}") from None
    if not objects or not all(isinstance(o, dict) for o in objects):
        raise ValueError("not a vllm bench serve result: expected one JSON object per line")
    return objects


def _stats(result: Mapping[str, Any], metric: str) -> dict[str, float | None]:
    return {stat: result.get(f"{stat}_{metric}_ms") for stat in ("mean", "median", "p90", "p99", "std")}


def _bench_samples(r: Mapping[str, Any]) -> list[dict[str, Any]]:
    ttfts = r.get("ttfts")
    if not isinstance(ttfts, list):
        return []  # saved without --save-detailed
    n = len(ttfts)
    errors = r.get("errors") or [""] * n
    starts = r.get("start_times") or [0.0] * n
    t0 = min(starts) if starts else 0.0
    return [
        {
            "index": i,
            "success": not errors[i],
            "error": errors[i],
            "prompt_tokens": (r.get("input_lens") or [0] * n)[i],
            "output_tokens": (r.get("output_lens") or [0] * n)[i],
            "ttft_ms": ttfts[i] * 1000.0,
            "latency_ms": (r.get("latencies") or [0.0] * n)[i] * 1000.0,
            "itl_ms": [x * 1000.0 for x in (r.get("itls") or [[]] * n)[i]],
            "start_s": starts[i] - t0,
        }
        for i in range(n)
    ]


def _bench_point(r: Mapping[str, Any]) -> dict[str, Any]:
    for key in ("completed", "duration", "output_throughput", "request_throughput"):
        if key not in r:
            raise ValueError(f"not a vllm bench serve result: the field {key!r} is missing")
    rate = r.get("request_rate")
    errors = Counter(e for e in r.get("errors") or [] if e)
    failed = r.get("failed")
    if failed is None and r.get("num_prompts") is not None:
        failed = int(r["num_prompts"]) - int(r["completed"])
    return {
        "concurrency": r.get("max_concurrency"),
        "request_rate": None if rate in (None, "inf") or not math.isfinite(float(rate)) else float(rate),
        "output_tokens_per_s": r["output_throughput"],
        "requests_per_s": r["request_throughput"],
        "total_tokens_per_s": r.get("total_token_throughput"),
        "goodput_requests_per_s": r.get("request_goodput"),
        "ttft_ms": _stats(r, "ttft"),
        "tpot_ms": _stats(r, "tpot"),
        "itl_ms": _stats(r, "itl"),
        "e2el_ms": _stats(r, "e2el"),
        "completed": r["completed"],
        "failed": failed,
        "duration_s": r["duration"],
        "total_input_tokens": r.get("total_input_tokens"),
        "total_output_tokens": r.get("total_output_tokens"),
        "errors": [f"{n}× {msg.strip().splitlines()[-1]}" for msg, n in errors.most_common(10)],
        "server_metrics": None,
        "power": None,
        "samples": _bench_samples(r),
    }


def vllm_bench_to_run(data: Mapping[str, Any] | str | os.PathLike[str], *, label: str = "") -> dict[str, Any]:
    """A run JSON from a ``vllm bench serve --save-result`` file: one point per JSON object (line).

    A file of the right shape with wrong types inside (``"completed": null``, ``"errors": [1]``) is a
    ``ValueError`` that says so, never a ``TypeError`` from deep inside.
    """
    results = _load_bench(data)
    try:
        points = [_bench_point(r) for r in results]
        for i, p in enumerate(points):
            check_point(p, f"result[{i}]")
        completed = sum(int(p["completed"]) for p in points) or 1
    except (TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"not a valid vllm bench serve result: {type(exc).__name__}: {exc}") from exc
    first = results[0]
    ok = [p for p in points if not p["failed"] and p["completed"]]
    best = max(ok, key=lambda p: p["output_tokens_per_s"] or 0.0) if ok else None
    label = label or first.get("label") or ""
    return {
        "schema": RUN_SCHEMA,
        "run_id": None,
        "created_at": _now_iso(),
        "status": "complete",
        "error": None,
        "gpu": None,
        "model": first.get("model_id") or "unknown",
        "weights": "unknown",
        "vllm_version": None,
        "cold_start_s": None,
        "server": {"mode": "endpoint", "base_url": None, "argv": [], "serve_args": []},
        "workload": {
            "input_tokens": round(sum(p["total_input_tokens"] or 0 for p in points) / completed),
            "output_tokens": round(sum(p["total_output_tokens"] or 0 for p in points) / completed),
            "num_requests": first.get("num_prompts"),
        },
        "settings": {
            "concurrency": [p["concurrency"] for p in points],
            "request_rate": points[0]["request_rate"],
            "burstiness": first.get("burstiness"),
            "backend": first.get("backend"),
            "label": label,
        },
        "points": points,
        "best_point": {k: v for k, v in best.items() if k != "samples"} if best else None,
        "notes": [
            f"imported from `vllm bench serve --save-result` ({first.get('date', 'undated')}"
            f"{', label ' + label if label else ''}); GPU, weights and vLLM version were not recorded there",
        ],
    }
