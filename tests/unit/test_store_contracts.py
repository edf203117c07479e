"""Results store contracts that mutation testing showed unguarded: the type check of point numbers on save and
import, newest-first listing, and ``BEGIN IMMEDIATE`` under writers that really overlap (a barrier, no sleeps).

Only the store's public behaviour is used (``ResultStore``, ``RUN_SCHEMA``).
"""

from __future__ import annotations

import json
import multiprocessing
import re
from pathlib import Path

import pytest

from probes.results.store import RUN_SCHEMA, ResultStore, vllm_bench_to_run


def _run(**overrides):
    run = {"schema": RUN_SCHEMA, "status": "complete", "model": "m",
           "points": [{"concurrency": 4, "output_tokens_per_s": 100.0, "requests_per_s": 1.0, "completed": 8,
                       "failed": 0, "ttft_ms": {"median": 20.0}}]}
    run.update(overrides)
    return run


@pytest.fixture
def store(store_url) -> ResultStore:  # both backends: tests/conftest.py
    return ResultStore(store_url)


@pytest.mark.parametrize("key", ["output_tokens_per_s", "requests_per_s", "completed", "failed", "concurrency"])
@pytest.mark.parametrize("bad", ["12", True, [1], {"v": 1}])
def test_point_numbers_must_be_numbers_on_save_and_import(store, key, bad):
    point = {**_run()["points"][0], key: bad}
    kind = {"completed": "an integer >= 0", "failed": "an integer >= 0", "concurrency": "an integer >= 1"}.get(
        key, "a finite number")  # the import schema (probes/results/schema.py) names what it expects
    with pytest.raises(ValueError, match=rf"run\.points\[0\]\.{key} must be {kind} or null, got "):
        store.save_run(_run(points=[point]))
    with pytest.raises(ValueError, match=rf"run\.points\[0\]\.{key}"):
        store.import_json(json.dumps(_run(points=[point])))
    assert store.list_runs() == []  # nothing half-written


@pytest.mark.parametrize("key", ["ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"])
def test_point_statistics_must_be_objects(store, key):
    point = {**_run()["points"][0], key: 12.5}
    with pytest.raises(ValueError, match=rf"run\.points\[0\]\.{key} must be an object or null, got 12\.5"):
        store.import_json(json.dumps(_run(points=[point])))
    with pytest.raises(ValueError, match=r"run\.points\[1\] must be a JSON object"):
        store.save_run(_run(points=[_run()["points"][0], "x"]))


def test_null_and_int_point_numbers_are_accepted(store):
    point = {"concurrency": 1, "output_tokens_per_s": None, "requests_per_s": 2, "completed": 3, "failed": None}
    rid = store.save_run(_run(points=[point]))
    assert store.get_run(rid)["points"] == [point]


def test_list_runs_is_newest_first_whatever_the_created_at(store):
    # an imported run keeps its (older) created_at; the listing still shows the last stored run first
    ids = [store.save_run(_run(model=f"m{i}", created_at=f"2026-11-2{9 - i}T00:00:00Z")) for i in range(3)]
    assert ids == [1, 2, 3]
    assert [(r["id"], r["model"]) for r in store.list_runs()] == [(3, "m2"), (2, "m1"), (1, "m0")]
    store.delete_run(2)
    assert [r["id"] for r in store.list_runs()] == [3, 1]


WRITERS = 4
ROUNDS = 30
SAMPLES = [{"index": i, "ttft_ms": 20.0, "itl_ms": [6.5] * 64} for i in range(256)]  # a real run's bulk


def _writer(path: str, who: int, barrier) -> None:
    """Insert a run, then update it in place (a read, then a write, in one transaction), ROUNDS times."""
    store = ResultStore(path)
    barrier.wait(timeout=120)  # every writer is up and holds an open store before anyone writes
    for i in range(ROUNDS):
        run = _run(model=f"w{who}-{i}", status="partial")
        run["points"] = [{**run["points"][0], "samples": SAMPLES}]  # serialising it widens the read-write gap
        run["run_id"] = store.save_run(run)
        store.save_run({**run, "status": "complete"})


def test_writers_that_start_together_never_see_database_locked(store_url):
    # With a deferred BEGIN, an update transaction reads first and then needs the write lock; when another
    # writer commits in between, SQLite answers SQLITE_BUSY at once (the busy timeout does not apply to a
    # stale read snapshot). BEGIN IMMEDIATE takes the write lock first. Writers are released together by a
    # barrier, so they overlap on every run of this test, not only when interpreter startup happens to align.
    path = store_url  # on PostgreSQL: the advisory write lock plays BEGIN IMMEDIATE's part
    ResultStore(path)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    procs = [ctx.Process(target=_writer, args=(path, who, barrier)) for who in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * WRITERS, "a writer failed (see its traceback above)"
    runs = ResultStore(path).list_runs()
    assert len(runs) == WRITERS * ROUNDS
    assert {r["model"] for r in runs} == {f"w{w}-{i}" for w in range(WRITERS) for i in range(ROUNDS)}
    assert all(r["status"] == "complete" for r in runs)



# --- the import of `vllm bench serve --save-result` files: the whole run JSON, field by field ------------------

BENCH_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vllm_bench_result_cpu.json"


def _stats(v, metric):
    return {stat: v.get(f"{stat}_{metric}_ms") for stat in ("mean", "median", "p90", "p99", "std")}


def test_an_imported_bench_result_is_exactly_this_run_json():
    v = json.loads(BENCH_FIXTURE.read_text())
    run = vllm_bench_to_run(v)
    t0 = min(v["start_times"])
    samples = [{"index": i, "success": True, "error": "", "prompt_tokens": v["input_lens"][i],
                "output_tokens": v["output_lens"][i], "ttft_ms": v["ttfts"][i] * 1000.0,
                "latency_ms": v["latencies"][i] * 1000.0, "itl_ms": [x * 1000.0 for x in v["itls"][i]],
                "start_s": v["start_times"][i] - t0} for i in range(16)]
    point = {"concurrency": 4, "request_rate": None, "output_tokens_per_s": v["output_throughput"],
             "requests_per_s": v["request_throughput"], "total_tokens_per_s": v["total_token_throughput"],
             "goodput_requests_per_s": v["request_goodput"], "ttft_ms": _stats(v, "ttft"),
             "tpot_ms": _stats(v, "tpot"), "itl_ms": _stats(v, "itl"), "e2el_ms": _stats(v, "e2el"),
             "completed": 16, "failed": 0, "duration_s": v["duration"], "total_input_tokens": 512,
             "total_output_tokens": 256, "errors": [], "server_metrics": None, "power": None, "samples": samples}
    assert run["created_at"].endswith("Z") and len(run["created_at"]) == len("2026-12-01T00:00:00Z")
    assert {k: val for k, val in run.items() if k != "created_at"} == {
        "schema": RUN_SCHEMA, "run_id": None, "status": "complete", "error": None, "gpu": None, "model": "tiny",
        "weights": "unknown", "vllm_version": None, "cold_start_s": None,
        "server": {"mode": "endpoint", "base_url": None, "argv": [], "serve_args": []},
        "workload": {"input_tokens": 32, "output_tokens": 16, "num_requests": 16},  # 512 / 16, 256 / 16
        "settings": {"concurrency": [4], "request_rate": None, "burstiness": 1.0, "backend": "vllm",
                     "label": "cpu-tiny"},
        "points": [point],
        "best_point": {k: val for k, val in point.items() if k != "samples"},
        "notes": ["imported from `vllm bench serve --save-result` (20261127-235623, label cpu-tiny); GPU, "
                  "weights and vLLM version were not recorded there"],
    }


def test_a_bench_result_with_failures_counts_and_names_them():
    v = json.loads(BENCH_FIXTURE.read_text())
    errors = [""] * 13 + ["Traceback ...\n  File x\nTimeoutError: read timed out", "boom\n  at y\nHTTP 500",
                          "boom\n  at y\nHTTP 500"]
    v |= {"errors": errors, "failed": None, "num_prompts": 19, "completed": 13, "request_rate": 2.5,
          "label": None}
    del v["burstiness"], v["date"]
    run = vllm_bench_to_run(v, label="mine")
    (p,) = run["points"]
    assert p["failed"] == 19 - 13 and p["request_rate"] == 2.5 and run["settings"]["request_rate"] == 2.5
    assert p["errors"] == ["2× HTTP 500", "1× TimeoutError: read timed out"]  # last line, most frequent first
    assert [s["success"] for s in p["samples"]] == [True] * 13 + [False] * 3
    assert p["samples"][15]["error"] == "boom\n  at y\nHTTP 500"
    assert run["best_point"] is None  # the only point had failures
    assert run["settings"]["label"] == "mine" and run["settings"]["burstiness"] is None
    assert run["notes"][0].startswith("imported from `vllm bench serve --save-result` (undated, label mine)")
    assert run["workload"] == {"input_tokens": round(512 / 13), "output_tokens": round(256 / 13),
                               "num_requests": 19}


def test_a_bench_result_without_details_has_no_samples_and_failed_from_num_prompts():
    v = {k: val for k, val in json.loads(BENCH_FIXTURE.read_text()).items()
         if k not in ("ttfts", "itls", "latencies", "start_times", "input_lens", "output_lens", "errors",
                      "failed", "label")}
    run = vllm_bench_to_run(v)
    (p,) = run["points"]
    assert p["samples"] == [] and p["errors"] == [] and p["failed"] == 0
    assert run["notes"][0] == ("imported from `vllm bench serve --save-result` (20261127-235623); GPU, weights "
                               "and vLLM version were not recorded there")
    v2 = {k: val for k, val in v.items() if k not in ("num_prompts",)}
    assert vllm_bench_to_run(v2)["points"][0]["failed"] is None


def test_bench_samples_start_at_zero_and_default_missing_lists():
    v = json.loads(BENCH_FIXTURE.read_text())
    for key in ("input_lens", "output_lens", "latencies", "itls", "start_times"):
        v[key] = None
    (p,) = vllm_bench_to_run(v)["points"]
    assert [(s["prompt_tokens"], s["output_tokens"], s["latency_ms"], s["itl_ms"], s["start_s"])
            for s in p["samples"]] == [(0, 0, 0.0, [], 0.0)] * 16
    v = json.loads(BENCH_FIXTURE.read_text())
    v["start_times"] = [10.0 + i for i in range(16)]
    assert [s["start_s"] for s in vllm_bench_to_run(v)["points"][0]["samples"]] == [float(i) for i in range(16)]


def test_appended_bench_lines_pick_the_best_point_without_failures(tmp_path):
    v = json.loads(BENCH_FIXTURE.read_text())
    lines = [{**v, "max_concurrency": 1, "output_throughput": 100.0},
             {**v, "max_concurrency": 8, "output_throughput": 900.0, "failed": 1},
             {**v, "max_concurrency": 4, "output_throughput": 500.0},
             {**v, "max_concurrency": 16, "output_throughput": 400.0}]
    path = tmp_path / "appended.jsonl"
    path.write_text("\n\n".join(json.dumps(x) for x in lines) + "\n")
    for source in (path, str(path), path.read_text()):
        run = vllm_bench_to_run(source)
        assert [p["concurrency"] for p in run["points"]] == [1, 8, 4, 16]
        assert run["settings"]["concurrency"] == [1, 8, 4, 16]
        assert run["best_point"]["concurrency"] == 4
    store = ResultStore(tmp_path / "r.sqlite")
    rid = store.import_vllm_bench(path)
    assert store.get_run(rid)["settings"]["label"] == "cpu-tiny"  # the file's own label when none is given
    assert store.list_runs()[0]["best_output_tokens_per_s"] == 500.0


@pytest.mark.parametrize(("data", "message"), [
    ("{}\n[1]", "expected one JSON object per line"),
    ("{\"completed\": 1", "invalid JSON"),
    ("[1, 2]", "cannot read vllm bench result file '[1, 2]'"),
    ({"completed": 1, "duration": 1.0, "output_throughput": 1.0}, "'request_throughput' is missing"),
    ({"completed": None, "duration": 1.0, "output_throughput": 1.0, "request_throughput": 1.0},
     "not a valid vllm bench serve result: TypeError"),
])
def test_other_files_are_value_errors_that_say_why(data, message):
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        vllm_bench_to_run(data)
    assert str(info.value).startswith(("not a vllm bench serve result", "not a valid vllm bench serve result",
                                       "cannot read"))


def test_the_one_object_per_line_message_exactly():
    with pytest.raises(ValueError) as info:
        vllm_bench_to_run("{}\n[1]")
    assert str(info.value) == "not a vllm bench serve result: expected one JSON object per line"


def test_json_text_with_leading_whitespace_is_text_not_a_path():
    v = json.loads(BENCH_FIXTURE.read_text())
    assert vllm_bench_to_run("\n  " + json.dumps(v))["model"] == "tiny"


def test_missing_optional_fields_take_their_defaults():
    v = json.loads(BENCH_FIXTURE.read_text())
    del v["errors"], v["request_rate"]
    (p,) = vllm_bench_to_run(v)["points"]
    assert p["request_rate"] is None
    assert all(s["success"] and s["error"] == "" for s in p["samples"])
    v["ttfts"] = []  # a detailed file of zero requests
    assert vllm_bench_to_run(v)["points"][0]["samples"] == []


def test_import_vllm_bench_passes_the_label_on(store):
    rid = store.import_vllm_bench(BENCH_FIXTURE, label="cpu-run-7")
    run = store.get_run(rid)
    assert run["settings"]["label"] == "cpu-run-7" and "label cpu-run-7)" in run["notes"][0]


def test_export_is_indented_strict_json_and_delete_names_the_run(store):
    rid = store.save_run(_run(cold_start_s=float("inf")))
    text = store.export_json(rid)
    assert text == json.dumps(store.get_run(rid), indent=2, allow_nan=False)
    assert json.loads(text)["cold_start_s"] is None
    with pytest.raises(ValueError, match=f"run_id 99: no such run in {re.escape(str(store.path))}"):
        store.delete_run(99)
    with pytest.raises(ValueError, match=f"run_id 99: no such run in {re.escape(str(store.path))}"):
        store.get_run(99)


# --- save_run's checks and columns, exactly ---------------------------------------------------------------------

@pytest.mark.parametrize(("run", "message"), [
    (["not", "a", "dict"], "run must be a JSON object (dict), got list"),
    (_run(schema="other/1"), "run.schema must be 'selfhost-vs-api/probe-run/1', got 'other/1'"),
    (_run(status="done"), "run.status must be one of ('complete', 'partial', 'failed', 'interrupted'), "
                          "got 'done'"),
    (_run(weights="fp8"), "run.weights must be one of ('synthetic', 'real', 'unknown'), got 'fp8'"),
    (_run(points={}), "run.points must be a list of point objects"),
    (_run(points=[7]), "run.points[0] must be a JSON object, got 7"),
    (_run(run_id=True), "run.run_id must be None or an integer >= 1, got True"),
    (_run(run_id=0), "run.run_id must be None or an integer >= 1, got 0"),
])
def test_invalid_runs_get_exactly_this_message(store, run, message):
    with pytest.raises(ValueError) as info:
        store.save_run(run)
    assert str(info.value) == message


def test_optional_keys_take_their_defaults_in_the_listing(tmp_path):
    store = ResultStore(tmp_path / "nested" / "dirs" / "r.sqlite", hostname="gpu-box-7")  # parents are created
    run = {"schema": RUN_SCHEMA, "status": "failed"}  # no points, no weights, no gpu
    rid = store.save_run(run)
    (row,) = store.list_runs()
    assert (row["weights"], row["points"], row["gpu"], row["gpu_name"], row["best_output_tokens_per_s"]) == (
        "unknown", 0, None, None, None)
    assert store.get_run(rid) == {**run, "created_at": row["created_at"], "run_id": rid, "host": "gpu-box-7"}
    assert row["host"] == "gpu-box-7"


@pytest.mark.parametrize(("gpu", "label"), [
    ({"name": "NVIDIA H100 80GB HBM3"}, "NVIDIA H100 80GB HBM3"),
    ({"name": "NVIDIA H100 80GB HBM3", "count": 1}, "NVIDIA H100 80GB HBM3"),
    ({"name": "NVIDIA H100 80GB HBM3", "count": 4}, "4× NVIDIA H100 80GB HBM3"),
    ({"name": ""}, None), ({"count": 2}, None),
])
def test_the_gpu_column(store, gpu, label):
    store.save_run(_run(gpu=gpu))
    assert store.list_runs()[0]["gpu"] == label


def test_a_gpu_that_is_not_an_object_is_refused(store):
    with pytest.raises(ValueError, match="run.gpu must be an object or null, got 'H100'"):
        store.save_run(_run(gpu="H100"))
    assert store.list_runs() == []


def test_a_run_id_that_is_not_stored_yet_is_inserted_under_that_id(store):
    assert store.save_run(_run(run_id=42)) == 42
    assert store.get_run(42)["run_id"] == 42 and [r["id"] for r in store.list_runs()] == [42]


def test_an_update_stores_exactly_the_run_given(store):
    run = _run(created_at="2026-12-01T00:00:00Z", host="box-9")
    run["run_id"] = store.save_run(run)
    updated = {**run, "status": "partial", "notes": ["second save"]}
    assert store.save_run(updated) == run["run_id"]
    assert store.get_run(run["run_id"]) == updated
