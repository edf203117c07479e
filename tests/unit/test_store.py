"""Results store on both backends (a real SQLite file in tmp_path and a real PostgreSQL server, the ``store_url``
fixture of tests/conftest.py): concurrent writers, schema version, JSON round trips and the import of a real
`vllm bench serve --save-result` file (captured from the CPU build 0.32.0)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from probes.results.store import RUN_SCHEMA, SCHEMA_VERSION, ResultStore, default_db_path, vllm_bench_to_run

ROOT = Path(__file__).resolve().parents[2]
BENCH_FIXTURE = ROOT / "tests" / "fixtures" / "vllm_bench_result_cpu.json"


def make_run(**overrides):
    run = {
        "schema": RUN_SCHEMA,
        "run_id": None,
        "created_at": "2026-11-27T12:00:00Z",
        "status": "complete",
        "error": None,
        "gpu": {"name": "NVIDIA H100 80GB HBM3", "count": 2, "driver_version": "580", "cuda_version": "13.0",
                "memory_total_mib": 81559},
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "weights": "synthetic",
        "vllm_version": "0.26.0",
        "cold_start_s": 100.5,
        "server": {"mode": "managed", "base_url": "http://127.0.0.1:8000", "argv": ["python", "-m", "x"],
                   "serve_args": ["--max-model-len", "4096"]},
        "workload": {"input_tokens": 512, "output_tokens": 256, "num_requests": 64},
        "settings": {"concurrency": [1, 32], "request_rate": None},
        "points": [
            {"concurrency": 1, "output_tokens_per_s": 153.0, "completed": 64, "failed": 0,
             "ttft_ms": {"median": 20.0, "p99": 30.0}, "samples": [{"index": 0, "ttft_ms": 19.0, "itl_ms": [6.4]}]},
            {"concurrency": 32, "output_tokens_per_s": 3525.0, "completed": 64, "failed": 0,
             "ttft_ms": {"median": 80.0, "p99": 200.0}, "samples": []},
        ],
        "best_point": {"concurrency": 32, "output_tokens_per_s": 3525.0},
        "notes": ["synthetic weights"],
    }
    run.update(overrides)
    return run


@pytest.fixture
def store(store_url) -> ResultStore:
    return ResultStore(store_url, hostname="box-1")


@pytest.fixture
def sqlite_store(tmp_path) -> ResultStore:
    return ResultStore(tmp_path / "results.sqlite", hostname="box-1")


def test_save_get_list_delete(store):
    rid = store.save_run(make_run())
    assert rid == 1
    got = store.get_run(rid)
    assert got["run_id"] == 1 and got["points"][0]["samples"][0]["itl_ms"] == [6.4]
    (row,) = store.list_runs()
    assert row == {"id": 1, "created_at": "2026-11-27T12:00:00Z", "host": "box-1",
                   "model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "2× NVIDIA H100 80GB HBM3",
                   "gpu_name": "NVIDIA H100 80GB HBM3", "weights": "synthetic", "status": "complete", "points": 2,
                   "best_output_tokens_per_s": 3525.0}
    assert got == {**make_run(), "run_id": 1, "host": "box-1"}  # samples come back from their own table
    store.delete_run(rid)
    assert store.list_runs() == []
    with pytest.raises(ValueError, match="run_id 1"):
        store.get_run(1)
    with pytest.raises(ValueError, match="run_id 1"):
        store.delete_run(1)


def test_saving_again_with_run_id_updates_the_same_row(store):
    run = make_run(status="partial", points=[])
    run["run_id"] = store.save_run(run)
    run["points"] = make_run()["points"]
    run["status"] = "complete"
    assert store.save_run(run) == run["run_id"]
    (row,) = store.list_runs()
    assert (row["status"], row["points"]) == ("complete", 2)
    assert store.save_run(make_run()) == 2  # without run_id: a new run


def test_wal_busy_timeout_and_schema_version_on_disk(sqlite_store):
    store = sqlite_store
    con = sqlite3.connect(store.path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        con.close()
    ResultStore(store.path)  # reopening an existing file keeps it
    assert store.list_runs() == []


def test_a_newer_schema_refuses_to_open(tmp_path):
    path = tmp_path / "future.sqlite"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(ValueError, match="newer than this app"):
        ResultStore(path)


def test_env_overrides_the_default_path(tmp_path, monkeypatch):
    monkeypatch.setenv("APP__PROBE__DB", str(tmp_path / "env.sqlite"))
    assert default_db_path() == tmp_path / "env.sqlite"
    assert ResultStore().path == tmp_path / "env.sqlite"
    monkeypatch.delenv("APP__PROBE__DB")
    assert default_db_path().name == "results.sqlite" and "selfhost-vs-api" in str(default_db_path())


def test_export_import_round_trip_is_a_new_equal_run(store, tmp_path):
    rid = store.save_run(make_run())
    text = store.export_json(rid)
    other = ResultStore(tmp_path / "other.sqlite", hostname="elsewhere")
    other.save_run(make_run(model="x"))
    new_id = other.import_json(text)
    assert new_id == 2
    assert {**other.get_run(new_id), "run_id": rid} == store.get_run(rid)
    assert other.list_runs()[0]["host"] == "box-1"  # an imported run keeps the host it ran on


def test_an_imported_run_without_a_host_records_none(store):
    rid = store.import_json(json.dumps(make_run()))
    assert "host" not in store.get_run(rid) and store.list_runs()[0]["host"] is None
    assert store.get_run(store.import_vllm_bench(BENCH_FIXTURE)).get("host") is None


def test_non_finite_numbers_are_stored_as_null(store):
    rid = store.save_run(make_run(settings={"request_rate": float("inf")}, cold_start_s=float("nan")))
    text = store.export_json(rid)
    assert "Infinity" not in text and "NaN" not in text
    assert store.get_run(rid)["settings"]["request_rate"] is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"schema": "other/1"}, "schema"), ({"status": "done"}, "status"), ({"weights": "fp8"}, "weights"),
     ({"points": {}}, "points"), ({"run_id": 0}, "run_id")],
)
def test_invalid_runs_name_the_field(store, overrides, field):
    with pytest.raises(ValueError, match=field):
        store.save_run(make_run(**overrides))


def test_import_json_rejects_garbage(store):
    with pytest.raises(ValueError, match="not valid JSON"):
        store.import_json("{nope")
    with pytest.raises(ValueError, match="schema"):
        store.import_json('{"model": "m"}')


def test_import_a_real_vllm_bench_serve_result(store):
    rid = store.import_vllm_bench(BENCH_FIXTURE, label="cpu")
    run = store.get_run(rid)
    v = json.loads(BENCH_FIXTURE.read_text())
    (point,) = run["points"]
    assert run["model"] == "tiny" and run["weights"] == "unknown" and run["status"] == "complete"
    assert point["concurrency"] == 4 and point["request_rate"] is None
    assert point["output_tokens_per_s"] == v["output_throughput"]
    assert point["ttft_ms"]["p99"] == v["p99_ttft_ms"] and point["tpot_ms"]["median"] == v["median_tpot_ms"]
    assert point["itl_ms"]["p90"] == v["p90_itl_ms"] and point["e2el_ms"]["mean"] == v["mean_e2el_ms"]
    assert (point["completed"], point["failed"]) == (16, 0)
    assert len(point["samples"]) == 16 and point["samples"][0]["start_s"] >= 0.0
    assert point["samples"][3]["itl_ms"][0] == pytest.approx(v["itls"][3][0] * 1000)
    assert run["best_point"]["output_tokens_per_s"] == v["output_throughput"]
    assert "label cpu" in run["notes"][0]
    assert store.list_runs()[0]["best_output_tokens_per_s"] == v["output_throughput"]


def test_import_vllm_bench_appended_lines_become_points(tmp_path, store):
    v = json.loads(BENCH_FIXTURE.read_text())
    lines = [json.dumps({**v, "max_concurrency": c, "output_throughput": 100.0 * c}) for c in (1, 4)]
    path = tmp_path / "appended.json"
    path.write_text("\n".join(lines))
    run = store.get_run(store.import_vllm_bench(str(path)))
    assert [p["concurrency"] for p in run["points"]] == [1, 4]
    assert run["best_point"]["concurrency"] == 4
    # a dict and JSON text work too; p90 absent in default files (only p99 requested) becomes None
    plain = {k: val for k, val in v.items() if not k.startswith("p90_")}
    assert vllm_bench_to_run(plain)["points"][0]["ttft_ms"]["p90"] is None
    assert vllm_bench_to_run(json.dumps(v))["model"] == "tiny"


def test_import_vllm_bench_rejects_other_files(store, tmp_path):
    with pytest.raises(ValueError, match="output_throughput|completed"):
        store.import_vllm_bench({"date": "x"})
    with pytest.raises(ValueError, match="cannot read"):
        store.import_vllm_bench(tmp_path / "missing.json")


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from probes.results.store import ResultStore, RUN_SCHEMA
    store = ResultStore({path!r})
    for i in range({n}):
        rid = store.save_run({{"schema": RUN_SCHEMA, "status": "partial", "model": "w{who}-" + str(i),
                              "points": [{{"output_tokens_per_s": float(i), "samples": [{{"x": "y" * 2000}}] * 20}}]}})
        store.save_run({{"schema": RUN_SCHEMA, "run_id": rid, "status": "complete", "model": "w{who}-" + str(i),
                        "points": []}})
        store.list_runs()
    """
)


def test_two_processes_and_this_one_write_at_once(store_url):
    path = store_url
    ResultStore(path)
    n = 40
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER.format(root=str(ROOT), path=str(path), n=n, who=who)],
                         stderr=subprocess.PIPE, text=True)
        for who in (1, 2)
    ]
    store = ResultStore(path)
    for i in range(n):
        store.save_run(make_run(model=f"w0-{i}"))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    runs = store.list_runs()
    assert len(runs) == 3 * n
    assert len({r["id"] for r in runs}) == 3 * n
    models = {r["model"] for r in runs}
    assert models == {f"w{who}-{i}" for who in range(3) for i in range(n)}
    assert all(r["status"] == "complete" for r in runs)
    assert all(store.get_run(r["id"])["model"] == r["model"] for r in runs)
