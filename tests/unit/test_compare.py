"""The comparison of runs (``probes.results.compare``, ``ui.compare_view``): per-GPU normalisation, labels, the
default choice (never a toy CPU run for a GPU scenario), request shapes, concurrency ticks, the figures, and the
store's ``get_runs_bare`` on a real SQLite file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from probes.results import compare, reference
from probes.results.store import RUN_SCHEMA, ResultStore
from ui import compare_view

ROOT = Path(__file__).resolve().parents[2]
H100_8B = ROOT / "benchmarks" / "results" / "h100-vllm0.26-2026-11-28" / "probe-llama-3.1-8b-bf16.json"
H200_8B = ROOT / "benchmarks" / "results" / "h200-vllm0.26-2026-12-01" / "probe-llama-3.1-8b-bf16.json"


def _run(gpu: dict | None, *, serve_args: list[str] | None = None, model: str = "org/Model-8B",
         concurrency: tuple[int, ...] = (1, 4, 16), created: str = "2026-12-01T10:00:00Z", **extra) -> dict:
    points = [{"concurrency": c, "output_tokens_per_s": 100.0 * c, "completed": 8, "failed": 0,
               "ttft_ms": {"median": 10.0 * c, "p90": 12.0 * c, "p99": 15.0 * c},
               "tpot_ms": {"median": 5.0 + c, "p90": 6.0 + c, "p99": 7.0 + c}} for c in concurrency]
    return {"schema": RUN_SCHEMA, "status": "complete", "weights": "synthetic", "model": model, "gpu": gpu,
            "created_at": created, "server": {"serve_args": serve_args or []},
            "workload": {"input_tokens": 512, "output_tokens": 256, "distribution": "fixed"}, "points": points,
            **extra}


H100 = {"name": "NVIDIA H100 80GB HBM3", "count": 1}


# -- normalisation --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("gpu", "serve_args", "extra", "gpus"), [
    (H100, [], {}, 1),
    ({"name": "NVIDIA H100 80GB HBM3", "count": 2}, ["--tensor-parallel-size", "2"], {}, 2),
    ({"name": "NVIDIA H100 80GB HBM3", "count": 8}, ["-tp=4"], {}, 4),  # a TP-4 replica on an 8-GPU box
    ({"name": "NVIDIA L4", "count": 2}, ["-tp", "2"], {"fleet": {"replicas": [{}, {}, {}]}}, 6),
])
def test_per_gpu_throughput_divides_by_the_replicas_gpus(gpu, serve_args, extra, gpus):
    rows = compare.compare_rows([("store:1", _run(gpu, serve_args=serve_args, **extra))])
    assert [r["gpus"] for r in rows] == [gpus] * 3
    for r in rows:
        assert r["output_tokens_per_s_per_gpu"] == pytest.approx(r["output_tokens_per_s"] / gpus)
        assert r["output_tokens_per_s"] == 100.0 * r["concurrency"]


@pytest.mark.parametrize("gpu", [None, {}, {"name": "cpu"}, {"name": ""}])
def test_a_cpu_run_has_no_per_gpu_throughput(gpu):
    rows = compare.compare_rows([("store:1", _run(gpu))])
    assert rows and all(r["output_tokens_per_s_per_gpu"] is None and r["gpus"] is None for r in rows)
    assert all(r["gpu"] == "CPU" for r in rows)


def test_latency_percentiles_come_from_each_point():
    (row, *_) = compare.compare_rows([("store:1", _run(H100, concurrency=(4,)))])
    assert (row["ttft_ms_p50"], row["ttft_ms_p90"], row["ttft_ms_p99"]) == (40.0, 48.0, 60.0)
    assert (row["tpot_ms_p50"], row["tpot_ms_p90"], row["tpot_ms_p99"]) == (9.0, 10.0, 11.0)


def test_points_a_concurrency_axis_cannot_place_are_left_out():
    run = _run(H100, concurrency=(1, 2))
    run["points"] += [{"concurrency": None, "output_tokens_per_s": 50.0}, {"concurrency": 0, "output_tokens_per_s": 5},
                      {"concurrency": 8, "output_tokens_per_s": None}, {"concurrency": True, "output_tokens_per_s": 1}]
    assert [r["concurrency"] for r in compare.compare_rows([("store:1", run)])] == [1, 2]


def test_the_bundled_reference_runs_are_one_gpu_each():
    if not (H100_8B.exists() and H200_8B.exists()):
        pytest.skip("the bundled reference runs are not in this checkout")
    runs = [("ref:a/h100", reference.load_run(H100_8B)), ("ref:b/h200", reference.load_run(H200_8B))]
    df = compare_view.compare_frame(runs)
    assert set(df["run"]) == {
        "H100 80GB HBM3 · Llama-3.1-8B-Instruct · 512/256 · 2026-11-28 · ref",
        "H200 · Llama-3.1-8B-Instruct · 512/256 · 2026-12-01 · ref"}
    assert (df["output_tokens_per_s_per_gpu"] == df["output_tokens_per_s"]).all()
    h100 = df[df["key"] == "ref:a/h100"]
    assert list(h100["concurrency"]) == [p["concurrency"] for p in runs[0][1]["points"]]


# -- labels, shapes, table ------------------------------------------------------------------------------------
def test_labels_name_gpu_model_shape_date_and_id_and_differ_per_run():
    a = compare.run_info("store:3", _run({"name": "NVIDIA A100-SXM4-80GB", "count": 2}, serve_args=["-tp", "2"],
                                         model="meta-llama/Llama-3.3-70B-Instruct", created="2026-11-27T23:30:00-02:00"))
    assert a.label == "2× A100-SXM4-80GB · Llama-3.3-70B-Instruct · 512/256 · 2026-11-28 · #3"  # the UTC date
    b = compare.run_info("store:4", _run(None, model="tiny"))
    assert b.label == "CPU · tiny · 512/256 · 2026-12-01 · #4"
    assert compare.run_info("ref:camp/x", {}).label == "CPU · model ? · ? · undated · ref"


def test_equal_labels_get_the_runs_name_in_the_comparison():
    twin = _run(H100)
    rows = compare.compare_rows([("ref:c1/first", twin), ("ref:c2/second", twin), ("store:5", twin)])
    assert sorted({r["run"] for r in rows}) == [
        "H100 80GB HBM3 · Model-8B · 512/256 · 2026-12-01 · #5",
        "H100 80GB HBM3 · Model-8B · 512/256 · 2026-12-01 · ref (first)",
        "H100 80GB HBM3 · Model-8B · 512/256 · 2026-12-01 · ref (second)"]


@pytest.mark.parametrize(("workload", "text"), [
    ({"input_tokens": 6000, "output_tokens": 300}, "6,000/300"),
    ({"input_tokens": 512, "output_tokens": 256, "distribution": "uniform", "output_spread": 0.5}, "~512/256"),
    ({"input_tokens": 512, "output_tokens": 256, "distribution": "uniform", "input_spread": 0.0}, "512/256"),
    ({"input_tokens": "512", "output_tokens": 256}, "?"),  # untrusted imports: never a crash
    ({"input_tokens": math.inf, "output_tokens": 256}, "?"),
    ({}, "?"),
])
def test_shape_text(workload, text):
    assert compare.shape_text(workload) == text


def test_table_rows_have_the_compact_columns():
    info = compare.run_info("store:9", _run(H100), host="gpu-box-1")
    row = compare.table_row(info, best_output_tokens_per_s=1600.0, status="partial")
    assert tuple(row) == compare_view.TABLE_COLUMNS
    assert row == {"run": "#9", "GPU": "H100 80GB HBM3", "model": "Model-8B", "shape": "512/256",
                   "best tok/s": 1600.0, "date": "2026-12-01", "host": "gpu-box-1", "status": "partial"}


# -- the default choice ---------------------------------------------------------------------------------------
def test_cpu_runs_are_never_preselected_for_a_gpu_scenario():
    infos = [compare.run_info(f"store:{i}", _run(gpu)) for i, gpu in
             enumerate([None, {"name": "cpu"}, H100, {"name": "NVIDIA L40S"}, H100], start=1)]
    for gpu_id in ("h100-sxm", "l40s", "a100-80gb"):
        picked = compare.preselect(infos, gpu_id=gpu_id)
        assert not {"store:1", "store:2"} & set(picked)
    assert compare.preselect(infos, gpu_id="h100-sxm") == ["store:3", "store:5"]
    assert compare.preselect(infos, gpu_id="a100-80gb") == []
    assert compare.preselect(infos, gpu_id=None) == [] and compare.preselect(infos, gpu_id="cpu") == []


def test_preselection_prefers_the_scenarios_model_and_is_bounded():
    infos = [compare.run_info(f"store:{i}", _run(H100, model=m)) for i, m in enumerate("aabbbbbb", start=1)]
    assert compare.preselect(infos, gpu_id="h100-sxm", model="a") == ["store:1", "store:2"]
    assert compare.preselect(infos, gpu_id="h100-sxm", model="zzz") == [f"store:{i}" for i in range(1, 5)]
    assert len(compare.preselect(infos, gpu_id="h100-sxm", limit=2)) == 2


# -- axis ticks and figures -----------------------------------------------------------------------------------
def test_concurrency_ticks_are_the_measured_points():
    assert compare_view.concurrency_ticks([1, 8, 32, 128, 2, 8.0]) == [1, 2, 8, 32, 128]
    many = compare_view.concurrency_ticks(range(1, 513), max_ticks=10)
    assert many[0] == 1 and many[-1] == 512 and len(many) <= 10
    step = math.log(512) / 9
    assert all(math.log(b / a) >= step * 0.999 for a, b in zip(many, many[1:], strict=False))
    assert compare_view.concurrency_ticks([]) == []


def test_figures_have_one_line_per_run_with_markers_at_the_measured_concurrencies():
    runs = [("store:1", _run(H100, concurrency=(1, 8, 32))),
            ("store:2", _run({"name": "NVIDIA H100 80GB HBM3", "count": 2}, serve_args=["-tp", "2"],
                             concurrency=(2, 8, 64))),
            ("store:3", _run(None, concurrency=(1, 2)))]
    df = compare_view.compare_frame(runs)
    tps = compare_view.throughput_figure(df, per_gpu=True)
    assert len(tps.data) == 2  # the CPU run has no per-GPU value
    assert all(t.mode == "lines+markers" for t in tps.data)
    assert list(tps.layout.xaxis.tickvals) == [1, 2, 8, 32, 64]
    assert list(tps.layout.xaxis.ticktext) == ["1", "2", "8", "32", "64"]
    assert tps.layout.xaxis.type == "log"
    assert tps.data[1].y.tolist() == [100.0, 400.0, 3200.0]  # 2 GPUs: halved
    whole = compare_view.throughput_figure(df, per_gpu=False)
    assert len(whole.data) == 3 and whole.data[1].y.tolist() == [200.0, 800.0, 6400.0]
    assert list(whole.layout.xaxis.tickvals) == [1, 2, 8, 32, 64]
    lat = compare_view.latency_figure(df, "tpot_ms", "p90")
    assert [t.y.tolist() for t in lat.data] == [[7.0, 14.0, 38.0], [8.0, 14.0, 70.0], [7.0, 8.0]]
    assert lat.layout.yaxis.type == "log" and "TPOT p90" in lat.layout.title.text
    with pytest.raises(ValueError, match="percentile one of p50, p90, p99"):
        compare_view.latency_figure(df, "ttft_ms", "p95")


def test_best_frame_is_each_runs_highest_throughput():
    df = compare_view.compare_frame([("store:1", _run(H100, concurrency=(1, 64, 8)))])
    best = compare_view.best_frame(df).to_dict("records")
    assert [(b["at concurrency"], b["output tok/s"]) for b in best] == [(64, 6400.0)]
    assert compare_view.best_frame(compare_view.compare_frame([])).empty


# -- the store ------------------------------------------------------------------------------------------------
def test_get_runs_bare_reads_several_runs_without_samples(tmp_path: Path):
    store = ResultStore(tmp_path / "r.sqlite", hostname="box")
    run = _run(H100)
    run["points"][0]["samples"] = [{"ttft_ms": 1.0, "output_tokens": 256}]
    a, b = store.save_run(run), store.save_run(_run(None, model="tiny"))
    got = store.get_runs_bare([b, a, a, 999])
    assert sorted(got) == [a, b]
    assert got[a]["model"] == "org/Model-8B" and got[b]["model"] == "tiny"
    assert "samples" not in got[a]["points"][0]
    assert store.get_run(a)["points"][0]["samples"] == run["points"][0]["samples"]  # still stored
    assert json.loads(json.dumps(got[a]))["workload"]["input_tokens"] == 512
    assert store.get_runs_bare([]) == {}
    with pytest.raises(ValueError, match="at most 1,000"):
        store.get_runs_bare(range(1001))


def test_the_single_run_charts_label_the_measured_concurrencies_too():
    from ui import results_view

    run = _run(H100, concurrency=(1, 8, 32, 128))
    for fig in (results_view.throughput_figure(run), results_view.latency_figure(run, "tpot_ms")):
        assert fig.layout.xaxis.type == "log"
        assert list(fig.layout.xaxis.tickvals) == [1, 8, 32, 128]
        assert list(fig.layout.xaxis.ticktext) == ["1", "8", "32", "128"]
