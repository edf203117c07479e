"""Run files (issue 9, item 5): the run import's limits extended to a UTF-8 BOM (tolerated) and huge integers
(a 400-digit number was an OverflowError traceback from the import's own field check)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from probes import cli
from probes.results import schema
from probes.results.store import RUN_SCHEMA, ResultStore


def _run_text(completed: str = "4") -> str:
    point = {"concurrency": 1, "output_tokens_per_s": 10.0, "completed": 4, "failed": 0}
    run = {"schema": RUN_SCHEMA, "status": "complete", "model": "m", "weights": "real", "points": [point]}
    return json.dumps(run).replace('"completed": 4', f'"completed": {completed}')


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return cli.main(list(argv), out=out, err=err), out.getvalue(), err.getvalue()


def test_a_run_with_a_utf8_bom_imports(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    run_id, kind = store.import_any(b"\xef\xbb\xbf" + _run_text().encode())
    assert kind == "probe run" and store.get_run(run_id)["points"][0]["completed"] == 4


@pytest.mark.parametrize(("digits", "message"), [
    ("1" + "0" * 399, "a 400-digit integer: numbers in a run fit in 64 bits"),
    ("9" * 5000, "a 5000-digit integer"),  # past Python's own 4,300-digit int() limit
])
def test_huge_integers_in_a_run_file_are_one_line_exit_2(tmp_path: Path, digits: str, message: str) -> None:
    path = tmp_path / "run.json"
    path.write_text(_run_text(digits), encoding="utf-8")
    code, _, err = _cli("import", str(path), "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_huge_integers_from_code_are_value_errors_not_overflow() -> None:
    run = json.loads(_run_text())
    run["cold_start_s"] = 10**400
    with pytest.raises(ValueError, match="run.cold_start_s must be a finite number"):
        schema.check_run(run)
    run = json.loads(_run_text())
    run["points"][0]["completed"] = 10**400
    with pytest.raises(ValueError, match=r"run.points\[0\].completed must be an integer >= 0"):
        schema.check_run(run)


def test_not_utf8_names_the_byte_not_the_codec(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"not UTF-8 text \(byte 0xff at offset 7\); save it as UTF-8"):
        ResultStore(tmp_path / "r.sqlite").import_any(b'{"a": "\xff\xfe"}')
