"""AppTest of the Results page's comparison and compact table, on a real SQLite store: two runs picked are two
lines in both charts; a toy CPU run is never preselected for a GPU scenario; the table has the compact columns."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from probes.results.store import RUN_SCHEMA, ResultStore
from ui import compare_view

ROOT = Path(__file__).resolve().parents[2]
PAGE = "app_pages/4_Results.py"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "results.sqlite"
    monkeypatch.setenv("APP__PROBE__DB", str(path))
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    st.cache_data.clear()
    yield path
    st.cache_data.clear()


def _run(gpu: dict | None, model: str, concurrency: tuple[int, ...], tok_s_per_stream: float,
         serve_args: tuple[str, ...] = ()) -> dict:
    points = [{"concurrency": c, "output_tokens_per_s": tok_s_per_stream * c, "completed": 8, "failed": 0,
               "ttft_ms": {"median": 20.0 * c, "p90": 25.0 * c, "p99": 30.0 * c},
               "tpot_ms": {"median": 8.0, "p90": 9.0, "p99": 10.0}} for c in concurrency]
    return {"schema": RUN_SCHEMA, "status": "complete", "weights": "synthetic", "model": model, "gpu": gpu,
            "created_at": "2026-12-01T12:00:00Z", "server": {"serve_args": list(serve_args)},
            "workload": {"input_tokens": 1024, "output_tokens": 128, "distribution": "fixed"}, "points": points}


@pytest.fixture
def runs(db: Path) -> dict[str, int]:
    """A toy CPU run, an H100 run and a TP-2 H100 run in the store (no bundled reference runs)."""
    store = ResultStore(db, hostname="box-1")
    return {
        "cpu": store.save_run(_run(None, "tiny", (1, 2), 5.0)),
        "h100": store.save_run(_run({"name": "NVIDIA H100 80GB HBM3", "count": 1}, "org/Model-8B", (1, 8, 32), 150.0)),
        "tp2": store.save_run(_run({"name": "NVIDIA H100 80GB HBM3", "count": 2}, "org/Model-70B", (1, 4, 16), 40.0,
                                   serve_args=("-tp", "2"))),
    }


def _page(gpu: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if gpu is not None:
        at.query_params["gpu"] = gpu
    with mock.patch("probes.results.reference.discover", return_value=()):
        at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _values(data: list | dict) -> list:
    """A figure's array as sent to the browser: a list, or plotly's base64 typed array ``{dtype, bdata}``."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"])).tolist()
    return list(data)


def _charts(at: AppTest) -> dict[str, dict]:
    """The comparison's charts, title -> plotly figure as the browser gets it (each trace's x and y decoded)."""
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id.split("-")[-1].startswith("cmp_")]
    for f in figs:
        for t in f["data"]:
            t["x"], t["y"] = _values(t["x"]), _values(t["y"])
    return {f["layout"]["title"]["text"]: f for f in figs}


def test_two_runs_picked_are_two_lines_in_both_charts(runs: dict[str, int]):
    at = _page(gpu="l40s")  # no run on an L40S: nothing preselected
    assert at.multiselect(key="cmp_runs").value == []
    assert _charts(at) == {}
    picked = [f"store:{runs['h100']}", f"store:{runs['tp2']}"]
    at.multiselect(key="cmp_runs").set_value(picked).run()
    assert not at.exception, at.exception
    charts = _charts(at)
    tps = charts["Output throughput vs concurrency (per GPU)"]
    lat = charts["TTFT p99 vs concurrency"]
    names = [f"H100 80GB HBM3 · Model-8B · 1,024/128 · 2026-12-01 · #{runs['h100']}",
             f"2× H100 80GB HBM3 · Model-70B · 1,024/128 · 2026-12-01 · #{runs['tp2']}"]
    assert [t["name"] for t in tps["data"]] == names
    assert [t["name"] for t in lat["data"]] == names
    assert [t["y"] for t in tps["data"]] == [[150.0, 1200.0, 4800.0], [20.0, 80.0, 320.0]]  # TP 2: per GPU halved
    assert [t["x"] for t in tps["data"]] == [[1, 8, 32], [1, 4, 16]]
    assert tps["layout"]["xaxis"]["tickvals"] == [1, 4, 8, 16, 32]  # the measured concurrencies
    assert [t["y"] for t in lat["data"]] == [[30.0, 240.0, 960.0], [30.0, 120.0, 480.0]]

    at.toggle(key="cmp_per_gpu").set_value(False).run()
    at.selectbox(key="cmp_metric").set_value("tpot_ms").run()
    at.selectbox(key="cmp_pct").set_value("p50").run()
    assert not at.exception, at.exception
    charts = _charts(at)
    assert [t["y"] for t in charts["Output throughput vs concurrency (per replica)"]["data"]] == [
        [150.0, 1200.0, 4800.0], [40.0, 160.0, 640.0]]
    assert [t["y"] for t in charts["TPOT p50 vs concurrency"]["data"]] == [[8.0] * 3, [8.0] * 3]


def test_a_toy_cpu_run_is_never_preselected_for_a_gpu_scenario(runs: dict[str, int]):
    at = _page()  # the default scenario runs on an H100 SXM
    assert at.session_state["scenario"].self_host.gpu == "h100-sxm"
    picked = at.multiselect(key="cmp_runs").value
    assert f"store:{runs['cpu']}" not in picked
    assert picked == [f"store:{runs['tp2']}", f"store:{runs['h100']}"]  # both H100 runs, newest first
    assert len(_charts(at)["Output throughput vs concurrency (per GPU)"]["data"]) == 2


def test_a_cpu_run_picked_by_hand_is_drawn_per_replica(runs: dict[str, int]):
    at = _page(gpu="l40s")
    at.multiselect(key="cmp_runs").set_value([f"store:{runs['cpu']}", f"store:{runs['h100']}"]).run()
    assert len(_charts(at)["Output throughput vs concurrency (per GPU)"]["data"]) == 1
    assert any("no per-GPU throughput" in c.value for c in at.caption)
    at.toggle(key="cmp_per_gpu").set_value(False).run()
    assert len(_charts(at)["Output throughput vs concurrency (per replica)"]["data"]) == 2


def test_the_table_has_gpu_model_shape_and_best_throughput(runs: dict[str, int]):
    at = _page()
    table = next(d.value for d in at.dataframe if "shape" in d.value.columns)
    assert tuple(table.columns) == compare_view.TABLE_COLUMNS
    rows = {r["run"]: r for r in table.to_dict("records")}
    assert rows[f"#{runs['cpu']}"]["GPU"] == "CPU"
    assert rows[f"#{runs['tp2']}"]["GPU"] == "2× H100 80GB HBM3"
    assert rows[f"#{runs['h100']}"]["shape"] == "1,024/128"
    assert rows[f"#{runs['h100']}"]["best tok/s"] == 4800.0
    assert rows[f"#{runs['h100']}"]["host"] == "box-1" and rows[f"#{runs['h100']}"]["date"] == "2026-12-01"


def test_a_pick_survives_a_filter_that_hides_it(runs: dict[str, int]):
    at = _page(gpu="l40s")
    at.multiselect(key="cmp_runs").set_value([f"store:{runs['h100']}", f"store:{runs['tp2']}"]).run()
    at.multiselect(key="res_f_models").set_value(["tiny"]).run()  # the listing now shows the CPU run only
    assert not at.exception, at.exception
    assert at.multiselect(key="cmp_runs").value == [f"store:{runs['h100']}", f"store:{runs['tp2']}"]
    assert len(_charts(at)["Output throughput vs concurrency (per GPU)"]["data"]) == 2


def test_a_percentile_no_run_recorded_is_said(db: Path):
    run = _run({"name": "NVIDIA L4"}, "m", (1, 2), 10.0)
    for p in run["points"]:
        del p["ttft_ms"]["p90"]
    rid = ResultStore(db).save_run(run)
    at = _page(gpu="l40s")
    at.multiselect(key="cmp_runs").set_value([f"store:{rid}"]).run()
    at.selectbox(key="cmp_pct").set_value("p90").run()
    assert not at.exception, at.exception
    assert any("No run picked recorded TTFT p90" in c.value for c in at.caption)
    assert _charts(at)["TTFT p90 vs concurrency"]["data"] == []
