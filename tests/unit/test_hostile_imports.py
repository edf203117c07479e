"""Hostile imports (issue 8, item 8): every bad file is one line on stderr, exit 2, and nothing is stored.

Through the CLI (``python -m probes import FILE``, in-process) and the Results page upload (AppTest); the
store's own entry points are the same code. Limits are those stated in :mod:`probes.results.schema`.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from probes import cli
from probes.results import schema
from probes.results import store as store_mod
from probes.results.store import RUN_SCHEMA, ResultStore

ROOT = Path(__file__).resolve().parents[2]


def _run(**overrides: Any) -> dict[str, Any]:
    point = {"concurrency": 1, "output_tokens_per_s": 10.0, "requests_per_s": 1.0, "completed": 4, "failed": 0,
             "ttft_ms": {"median": 5.0, "p99": 7.0}, "samples": [{"index": 0, "ttft_ms": 5.0}]}
    run = {"schema": RUN_SCHEMA, "status": "complete", "model": "m", "weights": "real", "points": [point],
           "best_point": point, "notes": ["n"], "gpu": {"name": "H100", "count": 1}}
    run.update(overrides)
    return run


def _point(**overrides: Any) -> dict[str, Any]:
    return {**_run()["points"][0], **overrides}


def _deep(n: int) -> str:
    return '{"schema": "selfhost-vs-api/probe-run/1", "status": "complete", "x": ' + "[" * n + "]" * n + "}"


HOSTILE: dict[str, tuple[str, str]] = {
    "nested 5,000 deep (run)": (_deep(5000), "nested deeper than 32 levels"),
    "nested 5,000 deep (bare)": ("[" * 5000 + "]" * 5000, "nested deeper than 32 levels"),
    "nested 500 deep (parses)": (_deep(500), "nested deeper than 32 levels"),
    "a string where a stat belongs": (json.dumps(_run(points=[_point(ttft_ms={"median": "x"})])),
                                      "run.points[0].ttft_ms.median must be a finite number"),
    "NaN": (json.dumps(_run(points=[_point(output_tokens_per_s=math.nan)])), "NaN is not a JSON number"),
    "Infinity": (json.dumps(_run(cold_start_s=math.inf)), "Infinity is not a JSON number"),
    "missing status": (json.dumps({k: v for k, v in _run().items() if k != "status"}), "run.status must be one of"),
    "missing bench fields": (json.dumps({"model_id": "x", "duration": 1}), "the field 'completed' is missing"),
    "huge points list": (json.dumps(_run(points=[_point()] * 1001)), "over the limit of 1,000"),
    "gpu is a string": (json.dumps(_run(gpu="H100")), "run.gpu must be an object or null"),
    "a note that is a number": (json.dumps(_run(notes=["ok", 3])), "run.notes[1] must be a string"),
    "a point that is a number": (json.dumps(_run(points=[3])), "run.points[0] must be a JSON object"),
    "concurrency as text": (json.dumps(_run(points=[_point(concurrency="4")])), "concurrency must be an integer"),
    "negative count": (json.dumps(_run(points=[_point(completed=-1)])), "completed must be an integer >= 0"),
    "bool as a number": (json.dumps(_run(points=[_point(failed=True)])), "failed must be an integer >= 0"),
    "best point with text": (json.dumps(_run(best_point={"output_tokens_per_s": "fast"})),
                             "run.best_point.output_tokens_per_s"),
    "power with text": (json.dumps(_run(points=[_point(power={"mean_w": "hot"})])), "power.mean_w"),
    "startup tokens as text": (json.dumps(_run(startup={"kv_cache_tokens": "many"})), "run.startup.kv_cache_tokens"),
    "serve args not text": (json.dumps(_run(server={"serve_args": [1]})), "run.server.serve_args[0]"),
    "bench stat as text": (json.dumps({"completed": 1, "duration": 1.0, "output_throughput": 1.0,
                                       "request_throughput": 1.0, "median_ttft_ms": "x"}),
                           "result[0].ttft_ms.median must be a finite number"),
    "bench errors not text": (json.dumps({"completed": 1, "duration": 1.0, "output_throughput": 1.0,
                                          "request_throughput": 1.0, "errors": [1]}), "not a valid vllm bench"),
    "a huge string in the error": (json.dumps(_run(points=[_point(ttft_ms={"median": "y" * 100_000})])),
                                   "got 'yyyy"),
}


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_cli_import_refuses_in_one_line_and_stores_nothing(tmp_path: Path, name: str) -> None:
    text, message = HOSTILE[name]
    path = tmp_path / "hostile.json"
    path.write_text(text)
    db = tmp_path / "r.sqlite"
    code, out, err = _cli("import", str(path), "--db", str(db))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and len(err) < 400, err[:500]
    assert message in err
    assert ResultStore(db).list_runs() == []


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.json"
    with open(path, "wb") as f:  # sparse: 65 MiB on paper, nothing on disk
        f.truncate(schema.MAX_IMPORT_BYTES + 2**20)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read before the size check"))
    code, _, err = _cli("import", str(path), "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and "65.0 MiB, over the 64 MiB import limit" in err and err.count("\n") == 1


def test_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bin.json"
    path.write_bytes(b'{"a": "\xff\xfe"}')
    code, _, err = _cli("import", str(path), "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and "not UTF-8" in err and err.count("\n") == 1


def test_a_valid_run_still_imports_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(_run()))
    db = tmp_path / "r.sqlite"
    assert _cli("import", str(path), "--db", str(db))[0] == 0
    assert ResultStore(db).get_run(1)["points"][0]["ttft_ms"] == {"median": 5.0, "p99": 7.0}


def test_a_failure_inside_the_transaction_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """save_run inserts the row, then writes its JSON: a failure between the two rolls both back."""
    store = ResultStore(tmp_path / "r.sqlite")
    real_dumps = json.dumps

    def failing(obj: Any, **kw: Any) -> str:
        if isinstance(obj, dict) and obj.get("run_id") is not None:  # the run JSON, after the INSERT
            raise sqlite3.OperationalError("disk I/O error")
        return real_dumps(obj, **kw)

    monkeypatch.setattr(store_mod.json, "dumps", failing)
    with pytest.raises(sqlite3.OperationalError):
        store.import_json(json.dumps(_run()))
    monkeypatch.undo()
    assert store.list_runs() == []


def test_save_run_refuses_deep_or_malformed_runs_from_code_too(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper than 32"):
        store.save_run(_run(extra=deep))
    with pytest.raises(ValueError, match=r"run.points\[0\].tpot_ms.p99"):
        store.save_run(_run(points=[_point(tpot_ms={"p99": [1]})]))
    assert store.save_run(_run(cold_start_s=math.nan)) == 1  # our own non-finite floats are stored as null
    assert store.list_runs()[0]["points"] == 1


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "results.sqlite"
    monkeypatch.setenv("APP__PROBE__DB", str(path))
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    st.cache_data.clear()
    yield path
    st.cache_data.clear()


@pytest.mark.parametrize("name", ["nested 5,000 deep (run)", "a string where a stat belongs", "NaN",
                                  "huge points list"])
def test_results_page_upload_refuses_hostile_files(db: Path, name: str) -> None:
    text, message = HOSTILE[name]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/4_Results.py").run()
    at.sidebar.file_uploader(key="res_import").set_value(("hostile.json", text.encode(), "application/json")).run()
    assert not at.exception, at.exception
    assert message in at.error[0].value and "\n" not in at.error[0].value
    assert ResultStore(db).list_runs() == []


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "results").glob("*/probe-*.json")), ids=lambda p: p.name)
def test_our_own_reference_runs_pass_every_check(path: Path) -> None:
    """The checks refuse hostile files, not ours: the bundled H100 runs (with per-request samples) pass."""
    schema.check_run(schema.parse_json(path.read_bytes()))
