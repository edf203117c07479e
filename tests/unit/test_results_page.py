"""AppTest of the Results page (reference runs, the break-even button, import/export/delete, bad files) and
the pure shaping behind it (``probes.results.reference``, ``ui.results_view``)."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from calculators import catalog, cost, goodcost, operating, options
from calculators.scenario import DEFAULT_SCENARIO, replace_field
from probes.results import reference
from probes.results.store import RUN_SCHEMA, ResultStore
from ui import results_view

ROOT = Path(__file__).resolve().parents[2]
PAGE = "app_pages/4_Results.py"
BENCH_FIXTURE = ROOT / "tests" / "fixtures" / "vllm_bench_result_cpu.json"
REF_DIR = ROOT / "benchmarks" / "results" / "h100-vllm0.26-2026-11-28"
REF_LABEL = "reference: H100 80GB HBM3, vLLM 0.26.0, synthetic weights, 2026-11-28"
needs_refs = pytest.mark.skipif(not (REF_DIR / "probe-llama-3.1-8b-bf16.json").exists(),
                                reason="the bundled H100 reference runs are not in this checkout")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "results.sqlite"
    monkeypatch.setenv("APP__PROBE__DB", str(path))
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    st.cache_data.clear()
    yield path
    st.cache_data.clear()


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.sidebar.file_uploader(key="res_import").set_value((name, data, "application/json")).run()
    assert not at.exception, at.exception
    return at


def _small_run(model: str = "m") -> dict:
    pts = [{"concurrency": c, "output_tokens_per_s": 10.0 * c, "requests_per_s": 1.0, "completed": 4, "failed": 0,
            "ttft_ms": {"median": 5.0, "p99": 7.0}, "tpot_ms": {"median": 2.0, "p99": 3.0}} for c in (1, 2)]
    return {"schema": RUN_SCHEMA, "status": "complete", "model": model, "weights": "real",
            "gpu": {"name": "NVIDIA A100-SXM4-80GB", "count": 2}, "server": {"serve_args": ["-tp", "2"]},
            "points": pts, "best_point": pts[1]}


@needs_refs
def test_reference_runs_are_listed_and_labelled(db: Path):
    at = _page()
    assert at.title[0].value == "Results"
    options = at.selectbox(key="res_run").options
    assert any("llama-3.1-8b-bf16" in o and REF_LABEL in o for o in options)
    assert any("llama-3.3-70b-fp8" in o for o in options)
    assert any(REF_LABEL in i.value for i in at.info)
    assert "Probe vs vllm bench serve (same server, same workload)" in [h.value for h in at.subheader]
    assert "Server metrics (vLLM /metrics)" in [h.value for h in at.subheader]
    assert "res_delete" not in [b.key for b in at.button]  # a reference run cannot be deleted


@needs_refs
def test_use_in_break_even_takes_the_reference_best_point(db: Path):
    at = _page()
    at.selectbox(key="res_run").set_value("ref:h100-vllm0.26-2026-11-28/llama-3.1-8b-bf16").run()
    run = reference.load_run(REF_DIR / "probe-llama-3.1-8b-bf16.json")
    best = run["points"][reference.best_index(run)]
    assert at.selectbox(key="res_run_view_point").value == reference.best_index(run)
    at.button(key="res_run_view_use").click().run()
    assert not at.exception, at.exception
    s = at.session_state["scenario"]
    rates = operating.point_rates(best)  # both rates kept: the prefill rate is no longer dropped
    assert s.self_host.output_tokens_per_s == round(rates["decode_tokens_per_s"], 1)
    assert s.self_host.prefill_tokens_per_s == round(rates["prefill_tokens_per_s"], 1)
    # at the measured shape (512 in / 256 out) the break-even gives back the measured requests/s
    busy = cost.replica_busy_s_per_request(256, s.self_host.output_tokens_per_s, 512, 0.0,
                                           s.self_host.prefill_tokens_per_s)
    assert busy == pytest.approx(1 / best["requests_per_s"], rel=1e-4)
    assert s.self_host.gpu == "h100-sxm" and s.self_host.gpus_per_replica == 1
    assert s.self_host.throughput_source == (
        f"measured: reference llama-3.1-8b-bf16 ({REF_LABEL.removeprefix('reference: ')}), "
        f"c={best['concurrency']}")
    # the point's own p90 latencies travel with its throughput
    assert s.self_host.throughput_latency == operating.latency_text(
        {"ttft_ms": best["ttft_ms"]["p90"], "tpot_ms": best["tpot_ms"]["p90"]}, "p90")
    assert s.self_host.throughput_latency.startswith("TTFT p90 ")


def test_empty_store_and_no_references_says_so(db: Path):
    with mock.patch("probes.results.reference.discover", return_value=()):
        at = _page()
    assert any("No runs yet" in i.value for i in at.info)


def test_import_a_vllm_bench_file_then_delete_it(db: Path):
    at = _upload(_page(), "cpu-tiny.json", BENCH_FIXTURE.read_bytes())
    (row,) = ResultStore(db).list_runs()
    assert any(f"as run {row['id']}" in s.value for s in at.success)
    assert at.selectbox(key="res_run").value == f"store:{row['id']}"
    bench = json.loads(BENCH_FIXTURE.read_text())
    assert row["best_output_tokens_per_s"] == pytest.approx(bench["output_throughput"])
    at.button(key="res_delete").click().run()
    assert not at.exception, at.exception
    assert ResultStore(db).list_runs() == []
    assert any(f"Deleted run {row['id']}" in s.value for s in at.success)


def test_import_a_run_json_and_use_a_point(db: Path):
    at = _upload(_page(), "run.json", json.dumps(_small_run("imported-model")).encode())
    (row,) = ResultStore(db).list_runs()
    assert row["model"] == "imported-model"
    at.button(key="res_run_view_use").click().run()
    s = at.session_state["scenario"]
    assert s.self_host.output_tokens_per_s == 20.0  # no token counts or mean TTFT/E2EL: output tokens only
    assert s.self_host.prefill_tokens_per_s is None
    assert s.self_host.gpu == "a100-80gb" and s.self_host.gpus_per_replica == 2
    assert s.self_host.throughput_source == f"measured: probe run {row['id']}, c=2"


@pytest.mark.parametrize(("data", "message"), [
    (b"not json at all", "expected a JSON object"),
    (b'{"schema": "selfhost-vs-api/probe-run/1", "status": "weird"}', "run.status must be one of"),
    (b'{"model_id": "x"}', "the field 'completed' is missing"),
    (b"{truncated", "invalid JSON"),
    (b"\xff\xfe", "was not imported"),
])
def test_a_bad_file_is_an_error_and_nothing_is_stored(db: Path, data: bytes, message: str):
    at = _upload(_page(), "bad.json", data)
    assert message in at.error[0].value
    assert ResultStore(db).list_runs() == []


# -- pure shaping ---------------------------------------------------------------------------------------------
def test_gpu_rules_point_at_catalog_ids():
    ids = set(catalog.gpus())
    assert {gpu_id for _, gpu_id in reference._GPU_RULES} <= ids
    for name in ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H200", "NVIDIA B200", "NVIDIA L4",
                 "NVIDIA GeForce RTX 4090", "AMD Instinct MI300X"):
        assert reference.gpu_catalog_id(name) in ids, name


def test_discover_pairs_bench_files_by_name_and_concurrency(tmp_path: Path):
    camp = tmp_path / "campaign"
    camp.mkdir()
    for name in ("probe-a.json", "bench-a-c8.json", "bench-a-c1.json", "bench-a-b-c2.json", "probe-a-b.json"):
        (camp / name).write_text("{}")
    refs = {r.name: r for r in reference.discover(tmp_path)}
    assert [p.name for p in refs["a"].bench_paths] == ["bench-a-c1.json", "bench-a-c8.json"]
    assert [p.name for p in refs["a-b"].bench_paths] == ["bench-a-b-c2.json"]
    assert refs["a"].key == "campaign/a"
    assert reference.discover(tmp_path / "missing") == ()


def test_load_run_rejects_other_json_and_drops_samples(tmp_path: Path):
    bad = tmp_path / "probe-x.json"
    bad.write_text('{"schema": "other"}')
    with pytest.raises(ValueError, match="probe-x.json: run.schema must be"):
        reference.load_run(bad)
    good = tmp_path / "probe-y.json"
    good.write_text(json.dumps({**_small_run(), "points": [{"concurrency": 1, "samples": [1, 2]}]}))
    assert reference.load_run(good)["points"] == [{"concurrency": 1}]
    assert reference.load_run(good, keep_samples=True)["points"][0]["samples"] == [1, 2]


def test_bench_rows_pair_points_at_the_same_concurrency():
    bench = reference.load_bench([BENCH_FIXTURE])
    c = bench["points"][0]["concurrency"]
    run = {"points": [{"concurrency": c, "output_tokens_per_s": bench["points"][0]["output_tokens_per_s"] * 1.1},
                      {"concurrency": c + 1000, "output_tokens_per_s": 1.0}]}
    (row,) = reference.bench_rows(run, bench)
    assert row["concurrency"] == c
    assert row["output_tokens_per_s diff"] == pytest.approx(0.1)


def test_frames_and_figures_from_a_run():
    run = _small_run()
    run["points"][1]["power"] = {"mean_w": 300.0, "j_per_output_token": 1.5}
    df = results_view.points_frame(run)
    assert list(df["concurrency"]) == [1, 2] and "J per output token" in df.columns
    assert results_view.points_frame(_small_run()).columns.tolist().count("J per output token") == 0
    assert list(results_view.energy_figure(run).data[0].y) == [1.5]
    fig = results_view.throughput_figure(run, bench={"points": [{"concurrency": 2, "output_tokens_per_s": 19.0}]})
    assert [t.name for t in fig.data] == ["probe", "vllm bench serve"]
    assert results_view.server_frame(run).empty
    with pytest.raises(ValueError, match="metric must be one of"):
        results_view.latency_figure(run, "nope")


def _stored_reference_run(db: Path) -> tuple[int, dict]:
    """The bundled 8B H100 run, per-request records included, saved into the real SQLite store as a user's own
    run would be."""
    run = reference.load_run(REF_DIR / "probe-llama-3.1-8b-bf16.json", keep_samples=True)
    return ResultStore(db).save_run(run), run


@needs_refs
def test_slo_operating_point_from_a_stored_run_moves_the_break_even(db: Path):
    rid, run = _stored_reference_run(db)
    at = _page()
    rag = DEFAULT_SCENARIO
    for field, value in (("traffic.requests_per_day", 500_000.0), ("traffic.input_tokens", 6000.0),
                         ("traffic.cached_input_fraction", 0.0), ("api.input_usd_per_mtok", 3.0),
                         ("api.cached_input_usd_per_mtok", 0.3), ("api.output_usd_per_mtok", 15.0)):
        rag = replace_field(rag, field, value)
    at.session_state["scenario"] = rag  # a 6,000-token RAG scenario, still on the default 3,400 tok/s
    at.selectbox(key="res_run").set_value(f"store:{rid}").run()
    before = cost.evaluate(at.session_state["scenario"])
    at.number_input(key="res_run_view_slo_ttft").set_value(500.0).run()
    at.number_input(key="res_run_view_slo_tpot").set_value(50.0).run()
    at.selectbox(key="res_run_view_slo_pct").set_value("p90").run()
    assert not at.exception, at.exception
    # c=32 passes (TTFT p90 481 ms), c=128 fails (1,546 ms): interpolated between them
    assert any(i.value.startswith("Interpolated at c≈") for i in at.info)
    at.button(key="res_run_view_slo_use").click().run()
    assert not at.exception, at.exception
    op = operating.find_operating_point(run, operating.SloTarget(ttft_ms=500, tpot_ms=50), run_id=rid)
    assert op.lower == 32 and op.upper == 128
    s = at.session_state["scenario"]
    assert s.self_host.output_tokens_per_s == round(op.decode_tokens_per_s, 1)
    assert s.self_host.prefill_tokens_per_s == round(op.prefill_tokens_per_s, 1)
    assert s.self_host.throughput_source.startswith(
        f"measured run {rid} at SLO TTFT p90 ≤ 500 ms, TPOT p90 ≤ 50 ms, c≈")
    assert any(f"measured run {rid}" in x.value for x in at.success)
    assert any("input 6,000 vs 512 tokens (×11.7)" in w.value for w in at.warning)
    good, source = goodcost.good_fraction_at(run, op)
    assert source == "per-request records" and 0 < good <= 1
    assert s.self_host.slo_good_fraction == round(good, 4)
    # the latency there is kept with the throughput, and the Options table shows it beside the SLO it met
    assert s.self_host.throughput_latency == operating.latency_text(op.latency_ms, "p90")
    assert s.self_host.throughput_latency.startswith("TTFT p90 ") and ", TPOT p90 " in s.self_host.throughput_latency
    assert op.latency_ms["ttft_ms"] <= 500 and op.latency_ms["tpot_ms"] <= 50
    (row,) = options.compare_options([options.make_option("measured", s)]).to_dict("records")
    assert row["latency_at_slo"] == f"{s.self_host.throughput_latency} (SLO TTFT p90 ≤ 500 ms, TPOT p90 ≤ 50 ms)"
    assert any(f"Requests meeting the SLO there: {good:.1%} (per-request records)" in c.value for c in at.caption)
    assert any("self-host (good tokens, idle included)" in d.value.columns for d in at.dataframe)  # the preview
    after = cost.evaluate(s)
    # input is no longer free: 6,000 prompt tokens take replica time, so more replicas and less savings
    assert after.self_host.replicas > before.self_host.replicas
    assert after.savings_usd_per_month < before.savings_usd_per_month
    assert after.breakeven.utilization > before.breakeven.utilization  # the per-token break-even moved
    # the Break-even page says where the number came from and keeps warning about the shape
    at.switch_page("app_pages/1_Break_even.py").run()
    assert not at.exception, at.exception
    assert any(f"measured run {rid} at SLO" in c.value for c in at.caption)
    assert any("input 6,000 vs 512 tokens (×11.7)" in w.value for w in at.warning)
    # and the cost of good tokens, idle included, next to the API's prices
    assert any("Cost of good tokens" in m.value for m in at.markdown)
    (table,) = [d.value for d in at.dataframe if "self-host (good tokens, idle included)" in d.value.columns]
    g = after.good_tokens
    assert table["self-host (good tokens, idle included)"].tolist()[:2] == [
        f"${g.usd_per_m_output:,.2f}/M", f"${g.usd_per_m_input:,.2f}/M"]
    assert table["API"].tolist() == ["$15.00/M", "$3.00/M", "$0.30/M"]


@needs_refs
def test_slo_no_point_passes_is_said_and_nothing_is_applied(db: Path):
    rid, _ = _stored_reference_run(db)
    at = _page()
    at.selectbox(key="res_run").set_value(f"store:{rid}").run()
    before = at.session_state["scenario"]
    at.number_input(key="res_run_view_slo_ttft").set_value(1.0).run()
    assert any("No operating point: no measured point meets TTFT p90 ≤ 1 ms" in w.value for w in at.warning)
    assert "res_run_view_slo_use" not in [b.key for b in at.button]
    assert at.session_state["scenario"] == before


@needs_refs
def test_slo_not_binding_is_marked(db: Path):
    rid, _ = _stored_reference_run(db)
    at = _page()
    at.selectbox(key="res_run").set_value(f"store:{rid}").run()
    at.number_input(key="res_run_view_slo_ttft").set_value(0.0).run()
    at.number_input(key="res_run_view_slo_tpot").set_value(100.0).run()
    assert any("SLO not binding in measured range" in w.value for w in at.warning)
    at.button(key="res_run_view_slo_use").click().run()
    assert "(SLO not binding)" in at.session_state["scenario"].self_host.throughput_source
