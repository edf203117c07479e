"""The shared store (issue 13): the same listing, filters and pages on SQLite and on a real PostgreSQL server;
credentials never shown; a wrong password or a host that does not answer is one line naming the host; two CLIs
pointed at one PostgreSQL URL store runs that one Results page lists.

The PostgreSQL server is the session's throwaway cluster (tests/conftest.py, tests/pg_server.py).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from probes import cli
from probes.errors import StoreConnectionError
from probes.results.store import RUN_SCHEMA, ResultStore, RunFilter
from probes.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ("gpu-a", "gpu-b", "gpu-c")
GPUS = ("NVIDIA H100 80GB HBM3", "NVIDIA L4")
MODELS = ("llama-8b", "qwen-7b")


def _run(i: int) -> dict:
    """Run i: host HOSTS[i % 3], GPU GPUS[i % 2], model MODELS[i // 6 % 2], created on day 1 + i // 4 of Dec."""
    return {"schema": RUN_SCHEMA, "status": "complete", "model": MODELS[i // 6 % 2], "weights": "synthetic",
            "host": HOSTS[i % 3], "gpu": {"name": GPUS[i % 2], "count": 1},
            "created_at": f"2026-12-{1 + i // 4:02d}T10:00:00Z",
            "points": [{"concurrency": 4, "output_tokens_per_s": float(i), "samples": [{"ttft_ms": 1.0}]}]}


@pytest.fixture
def filled(store_url) -> ResultStore:
    store = ResultStore(store_url)
    for i in range(24):
        store.save_run(_run(i))
    return store


def _expected(pred) -> list[int]:
    return [i + 1 for i in reversed(range(24)) if pred(_run(i))]


@pytest.mark.parametrize(("filters", "pred"), [
    (RunFilter(), lambda r: True),
    (RunFilter(hosts=("gpu-b",)), lambda r: r["host"] == "gpu-b"),
    (RunFilter(hosts=("gpu-a", "gpu-c"), gpus=("NVIDIA L4",)),
     lambda r: r["host"] in ("gpu-a", "gpu-c") and r["gpu"]["name"] == "NVIDIA L4"),
    (RunFilter(models=("qwen-7b",)), lambda r: r["model"] == "qwen-7b"),
    (RunFilter(since=dt.date(2026, 12, 3), until=dt.date(2026, 12, 4)),
     lambda r: "2026-12-03" <= r["created_at"][:10] <= "2026-12-04"),
    (RunFilter(hosts=("nowhere",)), lambda r: False),
])
def test_filters_give_the_same_runs_on_both_backends(filled, filters, pred):
    expected = _expected(pred)
    assert [r["id"] for r in filled.list_runs(filters)] == expected
    assert filled.count_runs(filters) == len(expected)


def test_pages_cover_every_run_once_newest_first(filled):
    pages = [filled.list_runs(limit=10, offset=o) for o in (0, 10, 20, 30)]
    assert [len(p) for p in pages] == [10, 10, 4, 0]
    assert [r["id"] for p in pages for r in p] == list(range(24, 0, -1))
    with pytest.raises(ValueError, match="limit and offset must be >= 0"):
        filled.list_runs(limit=5, offset=-1)


def test_facets_list_what_there_is_to_filter_by(filled):
    assert filled.facets() == {"hosts": list(HOSTS), "gpus": sorted(GPUS), "models": list(MODELS)}


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_list_filters_and_pages(filled, store_url):
    code, out, _ = _cli("list", "--db", store_url, "--host", "gpu-a", "--gpu", "NVIDIA H100 80GB HBM3",
                        "--limit", "2")
    ids = _expected(lambda r: r["host"] == "gpu-a" and r["gpu"]["name"].startswith("NVIDIA H100"))
    assert code == 0 and [line.split("  ")[0] for line in out.splitlines()[:2]] == [f"id={i}" for i in ids[:2]]
    assert out.splitlines()[-1] == f"runs 1-2 of {len(ids)} (next page: --offset 2)"
    code, out, _ = _cli("list", "--db", store_url, "--model", "qwen-7b", "--since", "2026-12-06", "--offset", "1")
    assert code == 0 and out.splitlines()[-1] == "runs 2-4 of 4"  # runs 20-23: the newest is skipped
    assert [line.split("  ")[0] for line in out.splitlines()[:-1]] == ["id=23", "id=22", "id=21"]
    code, out, _ = _cli("list", "--db", store_url, "--host", "nowhere")
    assert code == 0 and out == ("no runs match; stored hosts: gpu-a, gpu-b, gpu-c; GPU kinds: NVIDIA H100 80GB "
                                 "HBM3, NVIDIA L4; models: llama-8b, qwen-7b\n")
    code, _, err = _cli("list", "--db", store_url, "--since", "2026-12-05", "--until", "2026-12-01")
    assert code == 2 and err == "error: --since 2026-12-05 is after --until 2026-12-01\n"


def _probes_list(url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m probes list`` as its own process (the quick path that imports only the store)."""
    env = {**os.environ, "APP__PROBE__DB": url}
    return subprocess.run([sys.executable, "-m", "probes", "list", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_python_m_probes_list_as_a_process(filled, store_url):
    done = _probes_list(store_url, "--limit", "3", "--model", "llama-8b")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines[:3]] == ["id=18", "id=17", "id=16"]
    assert lines[3] == "runs 1-3 of 12 (next page: --offset 3)" and len(lines) == 4
    done = _probes_list(store_url, "--since", "yesterday")
    assert done.returncode == 2 and "argument --since: must be a date YYYY-MM-DD, got 'yesterday'" in done.stderr


# --- credentials ------------------------------------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket is closed


@pytest.mark.parametrize("what", ["wrong password", "no server on that port"])
def test_a_store_that_cannot_be_reached_is_one_line_naming_the_host(postgres_server, what):
    secret = "hunter2-" + postgres_server.password[:6]
    url = postgres_server.url(password=secret)
    where = f"127.0.0.1:{postgres_server.port}"
    if what == "no server on that port":
        port = _closed_port()
        url, where = url.replace(f":{postgres_server.port}/", f":{port}/"), f"127.0.0.1:{port}"
    with pytest.raises(StoreConnectionError) as info:
        ResultStore(url)
    message = str(info.value)
    assert message.startswith(f"cannot connect to the results database at {where}: ")
    assert ("login refused for user 'probe'" if what == "wrong password" else "connection refused") in message
    assert "\n" not in message and secret not in message and info.value.__cause__ is None
    # the CLI, in process and as its own process: one line on stderr, exit 1, no traceback, no password
    code, out, err = _cli("list", "--db", url)
    assert (code, out) == (1, "") and err == f"error: {message}\n"
    done = _probes_list(url)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"error: {message}\n")


def test_the_password_is_never_shown(postgres_server, monkeypatch):
    url = postgres_server.fresh_url()
    secret = postgres_server.password
    store = ResultStore(url)
    for text in (repr(store), store.location, str(store.path), repr(store._db)):
        assert secret not in text and "probe:***@127.0.0.1" in text
    monkeypatch.setenv("APP__PROBE__DB", url)
    assert secret not in repr(load_settings()) and load_settings().db_path == url
    monkeypatch.delenv("APP__PROBE__DB")
    monkeypatch.setenv("DATABASE_URL", url)  # the conventional variable works too, when it is PostgreSQL
    assert load_settings().db_path == url and ResultStore().backend == "postgresql"
    monkeypatch.setenv("DATABASE_URL", "mysql://u:p@h/d")
    assert load_settings().db_path is None


# --- two CLIs, one PostgreSQL database, one dashboard -------------------------------------------------------------

def test_two_clis_on_one_postgres_url_store_runs_one_results_page_lists(postgres_server, tmp_path, monkeypatch):
    url = postgres_server.fresh_url()
    ResultStore(url)
    procs = []
    for who in ("box-a", "box-b"):
        files = []
        for i in range(5):
            run = {**_run(i), "host": who, "model": f"{who}-model"}
            path = tmp_path / f"{who}-{i}.json"
            path.write_text(json.dumps(run))
            files.append(path)
        script = ("import sys; from probes import cli; "
                  "sys.exit(max(cli.main(['import', f, '--db', sys.argv[1]]) for f in sys.argv[2:]))")
        procs.append(subprocess.Popen([sys.executable, "-c", script, url, *map(str, files)], cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.count("imported ") == 5 and postgres_server.password not in out + err
    store = ResultStore(url)
    assert store.count_runs() == 10 and store.facets()["hosts"] == ["box-a", "box-b"]

    monkeypatch.setenv("APP__PROBE__DB", url)
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/4_Results.py").run()
    assert not at.exception, at.exception
    listed = [o for o in at.selectbox(key="res_run").options if o.startswith("run ")]  # labels of stored runs
    assert len(listed) == 10 and {o.split(" · ")[1] for o in listed} == {"box-a", "box-b"}
    assert any("probe:***@127.0.0.1" in c.value for c in at.sidebar.caption)
    page_text = " ".join(str(getattr(e, "value", "")) for e in at.main) + str(at.sidebar.caption)
    assert postgres_server.password not in page_text
    at.multiselect(key="res_f_hosts").set_value(["box-b"]).run()
    assert not at.exception, at.exception
    shown = at.selectbox(key="res_run").options
    assert len(shown) == 5 and all(o.startswith("run ") for o in shown)  # references hidden while filtering
    assert all(store.get_run(int(o.split(" · ")[0].removeprefix("run ")))["host"] == "box-b" for o in shown)
    st.cache_data.clear()


def test_the_results_page_with_a_wrong_password_is_one_error_line(postgres_server, tmp_path, monkeypatch):
    url = postgres_server.url(password="not-the-password")
    monkeypatch.setenv("APP__PROBE__DB", url)
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/4_Results.py").run()
    assert not at.exception, at.exception
    (error,) = at.error
    assert f"127.0.0.1:{postgres_server.port}" in error.value and "not-the-password" not in error.value
    assert "login refused" in error.value and "\n" not in error.value
    st.cache_data.clear()


def test_save_runs_stores_all_or_none(store_url):
    store = ResultStore(store_url, hostname="bulk")
    assert store.save_runs([_run(0), {**_run(1), "host": None}]) == [1, 2]
    assert [r["host"] for r in store.list_runs()] == ["bulk", "gpu-a"]
    with pytest.raises(ValueError, match=r"run\.status must be one of"):
        store.save_runs([_run(2), {**_run(3), "status": "nope"}])
    assert store.count_runs() == 2


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://probe:pw-xyz-secret@127.0.0.1:1/db?connect_timeout=x",
     "postgresql://probe:***@127.0.0.1:1/db?connect_timeout=x: connect_timeout must be a whole number of seconds, "
     "got 'x'"),
    ("postgresql://probe:pw-xyz-secret@127.0.0.1:1/db?sslmode=bogus",
     "cannot connect to the results database at 127.0.0.1:1: "),
    ("postgresql://probe:pw-xyz-secret@127.0.0.1:notaport/db", "cannot connect to the results database at "
     "127.0.0.1:notaport: "),
])
def test_malformed_urls_are_one_line_without_the_password(url, message):
    """No server needed: these fail before any login."""
    with pytest.raises(StoreConnectionError) as info:
        ResultStore(url)
    assert str(info.value).startswith(message) and "pw-xyz-secret" not in str(info.value)
    assert "\n" not in str(info.value)


def test_the_results_page_filters_come_from_and_go_to_the_url(filled, store_url, tmp_path, monkeypatch):
    monkeypatch.setenv("APP__PROBE__DB", store_url)
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/4_Results.py")
    at.query_params["res_host"] = "gpu-b"
    at.query_params["res_since"] = "2026-12-03"
    at.run()
    assert not at.exception, at.exception
    expected = _expected(lambda r: r["host"] == "gpu-b" and r["created_at"] >= "2026-12-03")
    ids = [int(o.split(" · ")[0].removeprefix("run ")) for o in at.selectbox(key="res_run").options]
    assert ids == expected and at.multiselect(key="res_f_hosts").value == ["gpu-b"]
    at.multiselect(key="res_f_gpus").set_value(["NVIDIA L4"]).run()
    assert not at.exception, at.exception
    assert (at.query_params["res_gpu"], at.query_params["res_host"]) == ("NVIDIA L4", "gpu-b")  # one value each
    ids = [int(o.split(" · ")[0].removeprefix("run ")) for o in at.selectbox(key="res_run").options]
    assert ids == [i for i in expected if _run(i - 1)["gpu"]["name"] == "NVIDIA L4"]
    st.cache_data.clear()
