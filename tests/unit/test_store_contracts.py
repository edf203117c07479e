"""Results store contracts that mutation testing showed unguarded: the type check of point numbers on save and
import, newest-first listing, and ``BEGIN IMMEDIATE`` under writers that really overlap (a barrier, no sleeps).

Only the store's public behaviour is used (``ResultStore``, ``RUN_SCHEMA``).
"""

from __future__ import annotations

import json
import multiprocessing

import pytest

from probes.results.store import RUN_SCHEMA, ResultStore


def _run(**overrides):
    run = {"schema": RUN_SCHEMA, "status": "complete", "model": "m",
           "points": [{"concurrency": 4, "output_tokens_per_s": 100.0, "requests_per_s": 1.0, "completed": 8,
                       "failed": 0, "ttft_ms": {"median": 20.0}}]}
    run.update(overrides)
    return run


@pytest.fixture
def store(tmp_path) -> ResultStore:
    return ResultStore(tmp_path / "results.sqlite")


@pytest.mark.parametrize("key", ["output_tokens_per_s", "requests_per_s", "completed", "failed", "concurrency"])
@pytest.mark.parametrize("bad", ["12", True, [1], {"v": 1}])
def test_point_numbers_must_be_numbers_on_save_and_import(store, key, bad):
    point = {**_run()["points"][0], key: bad}
    with pytest.raises(ValueError, match=rf"run\.points\[0\]\.{key} must be a number or null"):
        store.save_run(_run(points=[point]))
    with pytest.raises(ValueError, match=rf"run\.points\[0\]\.{key}"):
        store.import_json(json.dumps(_run(points=[point])))
    assert store.list_runs() == []  # nothing half-written


@pytest.mark.parametrize("key", ["ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"])
def test_point_statistics_must_be_objects(store, key):
    point = {**_run()["points"][0], key: 12.5}
    with pytest.raises(ValueError, match=rf"run\.points\[0\]\.{key} must be an object of statistics"):
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


def test_writers_that_start_together_never_see_database_locked(tmp_path):
    # With a deferred BEGIN, an update transaction reads first and then needs the write lock; when another
    # writer commits in between, SQLite answers SQLITE_BUSY at once (the busy timeout does not apply to a
    # stale read snapshot). BEGIN IMMEDIATE takes the write lock first. Writers are released together by a
    # barrier, so they overlap on every run of this test, not only when interpreter startup happens to align.
    path = str(tmp_path / "shared.sqlite")
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

