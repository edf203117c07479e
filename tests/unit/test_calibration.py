"""calculators.calibration: recovering known constants, the guards, the labels, the benchmark sharing the fit, and
the Capacity page's "Calibrate from a measured run" (AppTest, with the bundled reference runs and a real SQLite
results store)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from calculators import calibration as cb
from calculators.catalog import gpu
from calculators.closedloop import STEP_MBU, STEP_MFU, STEP_OVERHEAD_MS, ClosedLoopInput, closed_loop_point
from calculators.modelspec import model
from calculators.roofline import RooflineInput
from probes.results import reference
from probes.results.store import open_store
from ui import capacity_view

ROOT = Path(__file__).resolve().parents[2]
L8B, L70 = "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.3-70B-Instruct"
H100_8B = ROOT / "benchmarks/results/h100-vllm0.26-2026-11-28/probe-llama-3.1-8b-bf16.json"
H100_70B = ROOT / "benchmarks/results/h100-vllm0.26-2026-11-28/probe-llama-3.3-70b-fp8.json"
H200_8B = ROOT / "benchmarks/results/h200-vllm0.26-2026-12-01/probe-llama-3.1-8b-bf16.json"


def _synthetic(truth: dict, gpu_id: str = "h200", shapes=((512, 256), (1024, 128)), cs=(1, 8, 32, 128)):
    base = ClosedLoopInput(model(L8B), gpu(gpu_id), kv_capacity_tokens=900_000)
    pts = []
    for i, o in shapes:
        inp = replace(base, input_tokens=i, output_tokens=o)
        for c in cs:
            p = closed_loop_point(replace(inp, **truth), c)
            pts.append(cb.MeasuredPoint("synthetic", inp, c, p.output_tokens_per_s_est, p.tpot_ms_est, p.ttft_ms_est))
    return pts


@pytest.mark.parametrize("truth", [
    {"step_mbu": 0.85, "step_overhead_ms": 0.5, "step_mfu": 0.6},
    {"step_mbu": 0.62, "step_overhead_ms": 2.4, "step_mfu": 0.38},
])
def test_recovers_known_constants(truth):
    exact = cb.fit_calibration(_synthetic(truth), tie_pct=0)
    assert exact.constants() == pytest.approx(truth, abs=1e-9)
    assert exact.fitted == cb.CONSTANTS and exact.note == ""
    assert exact.mae_tokens_per_s_pct < 0.01 and exact.mae_tpot_pct < 0.01 and exact.mae_ttft_pct < 0.01
    leaning = cb.fit_calibration(_synthetic(truth))  # default: near-ties go to the reference constants
    assert abs(leaning.step_mbu - truth["step_mbu"]) <= 0.05
    assert abs(leaning.step_overhead_ms - truth["step_overhead_ms"]) <= 0.5
    assert abs(leaning.step_mfu - truth["step_mfu"]) <= 0.1
    assert leaning.mae_tokens_per_s_pct <= 1.0


def test_too_few_points_fit_mbu_only():
    truth = {"step_mbu": 0.7, "step_overhead_ms": 1.5, "step_mfu": 0.4}
    two = _synthetic(truth, cs=(8, 32), shapes=((512, 256),))
    cal = cb.fit_calibration(two)
    assert cal.fitted == ("step_mbu",) and cal.n_points == 2
    assert (cal.step_overhead_ms, cal.step_mfu) == (STEP_OVERHEAD_MS, STEP_MFU)
    assert cal.note.startswith("only 2 points: fitted step_mbu only")
    assert cal.step_mbu != STEP_MBU  # MBU moved to absorb the slower steps
    one_load = _synthetic(truth, cs=(32,), shapes=((512, 256), (1024, 128), (128, 512)))  # 3 points, one load
    assert cb.fit_calibration(one_load).note.startswith("all points at one concurrency")
    with pytest.raises(ValueError, match="no measured points"):
        cb.fit_calibration([])


def test_constants_stay_in_physical_bounds():
    """A run 5x faster than any efficiency allows: MBU and MFU stop at 1, the overhead at 0."""
    pts = [replace(p, output_tokens_per_s=p.output_tokens_per_s * 5, tpot_ms_median=p.tpot_ms_median / 5)
           for p in _synthetic({"step_mbu": 0.9, "step_overhead_ms": 0.2, "step_mfu": 0.9})]
    cal = cb.fit_calibration(pts)
    for name, (low, high) in cb.BOUNDS.items():
        assert low <= cal.constants()[name] <= high
    assert cal.step_mbu == 1.0 and cal.step_overhead_ms == 0.0
    assert cal.mae_tokens_per_s_pct > 50  # and it says how bad the fit is


def test_fast_grid_score_equals_closed_loop_point():
    """The grid's factored algebra against closed_loop_point on every measured point of the reference runs."""
    pts = [p for path in (H100_8B, H100_70B, H200_8B)
           for p in capacity_view.run_points(reference.load_run(path), path.stem)]
    cy = cb._cycles(pts)
    rng = np.random.default_rng(1)
    for mbu, ovh, mfu in zip(rng.uniform(0.3, 1, 5), rng.uniform(0, 3, 5), rng.uniform(0.2, 1, 5), strict=True):
        fast = cb._scores(cy, np.array([mbu]), np.array([ovh]), np.array([mfu]))[0]
        slow = cb.score_pct(cb.prediction_errors(pts, {"step_mbu": mbu, "step_overhead_ms": ovh, "step_mfu": mfu}))
        assert math.isclose(fast, slow, rel_tol=1e-9)


def _cal_on(path: Path) -> cb.Calibration:
    return capacity_view.calibrate_from_run(reference.load_run(path), path.parent.name + "/" + path.stem)


def test_label_says_extrapolated_when_gpu_or_model_differs():
    cal = _cal_on(H200_8B)
    same = ClosedLoopInput(model(L8B), gpu("h200"), kv_capacity_tokens=10**6)
    est = cb.calibrated_estimate(cal, same, 32)
    assert not est.extrapolated and "applied to the same NVIDIA H200" in est.label
    assert est.label.startswith("calibrated on run h200-vllm0.26-2026-12-01/probe-llama-3.1-8b-bf16 (NVIDIA H200")
    assert f"MAE {cal.mae_tokens_per_s_pct:.1f}% tok/s" in est.label and "on its 4 points" in est.label
    other_gpu = cb.calibrated_estimate(cal, replace(same, gpu=gpu("h100-sxm")), 32)
    assert other_gpu.extrapolated and other_gpu.label.endswith("extrapolated to NVIDIA H100 SXM 80GB/Llama 3.1 8B")
    other_model = cb.calibrated_estimate(cal, ClosedLoopInput(model(L70), gpu("h200"), weight_dtype="fp8",
                                                              kv_capacity_tokens=10**5), 8)
    assert other_model.extrapolated and "extrapolated to NVIDIA H200 SXM 141GB/Llama 3.3 70B fp8" in other_model.label
    # the estimate is closed_loop_point with the calibration's constants
    assert est.point == closed_loop_point(cb.calibrated_input(cal, same), 32)


def test_run_points_reads_the_deployment_from_the_run_json():
    pts = capacity_view.run_points(reference.load_run(H100_70B), "x")
    assert [p.concurrency for p in pts] == [1, 8, 32]
    p = pts[0]
    assert (p.inp.gpu.id, p.inp.arch.id, p.inp.weight_dtype, p.inp.kv_capacity_tokens) == ("h100-sxm", L70, "fp8", 8576)
    run = reference.load_run(H200_8B)
    with pytest.raises(ValueError, match="GPU 'Tesla T4' is not in the GPU catalog"):
        capacity_view.run_points({**run, "gpu": {"name": "Tesla T4"}}, "t4")
    with pytest.raises(ValueError, match="shared-prefix workload"):
        capacity_view.run_points({**run, "workload": {**run["workload"], "shared_prefix_tokens": 1536}}, "p")
    with pytest.raises(ValueError, match="not in the model catalog"):
        capacity_view.run_points({**run, "model": "acme/unknown"}, "m")


def _prediction_error():
    path = ROOT / "benchmarks" / "prediction_error.py"
    spec = importlib.util.spec_from_file_location("prediction_error", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("prediction_error", mod)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_fit_is_the_shared_fit_and_gives_the_shipped_constants():
    consts, _score = _prediction_error().fit_constants()
    assert consts == {"step_mbu": STEP_MBU, "step_overhead_ms": STEP_OVERHEAD_MS, "step_mfu": STEP_MFU}


# --- the Capacity page ---------------------------------------------------------------------------------------

def _page(monkeypatch, db: Path) -> AppTest:
    monkeypatch.setenv("APP__PROBE__DB", str(db))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("app_pages/2_Capacity.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="cap_model").set_value(L8B)
    at.selectbox(key="cap_gpu").set_value("h100-sxm").run()
    assert not at.exception, at.exception
    return at


def _estimate(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("Estimate at "))


def _calibration_note(at: AppTest) -> str:
    notes = [m.value for m in (*at.info, *at.warning) if m.value.startswith("Estimate calibrated on")]
    assert len(notes) == 1, notes
    return notes[0]


def test_page_choosing_a_reference_run_changes_the_estimate_and_shows_the_label(monkeypatch, tmp_path):
    at = _page(monkeypatch, tmp_path / "absent.sqlite")
    assert not (tmp_path / "absent.sqlite").exists()  # the page never creates a store
    before = _estimate(at)
    assert not [m for m in (*at.info, *at.warning) if m.value.startswith("Estimate calibrated on")]
    key = "ref:h100-vllm0.26-2026-11-28/llama-3.1-8b-bf16"
    assert "llama-3.1-8b-bf16 · reference: H100 80GB HBM3, vLLM 0.26.0, synthetic weights, 2026-11-28" in (
        at.multiselect(key="cap_calibrate").options)
    at.multiselect(key="cap_calibrate").set_value([key]).run()
    assert not at.exception, at.exception
    cal = _cal_on(H100_8B)
    assert cal.constants() != cb.REFERENCE  # this run's fit differs from the reference one
    assert _estimate(at) != before
    note = _calibration_note(at)
    assert "calibrated on run h100-vllm0.26-2026-11-28/llama-3.1-8b-bf16 (NVIDIA H100 SXM 80GB, Llama 3.1 8B)" in note
    assert "applied to the same NVIDIA H100 SXM 80GB/Llama 3.1 8B" in note and "extrapolated" not in note
    assert f"per-step overhead {cal.step_overhead_ms:.2f} ms" in note
    table = at.dataframe[0].value  # the run's points, measured against the calibrated estimate
    assert list(table["c"]) == [1, 8, 32, 128] and list(table["tok/s measured"]) == [
        e.measured_tokens_per_s for e in cal.errors]
    at.button(key="cap_use").click().run()  # the break-even gets the calibrated estimate, its source saying so
    assert not at.exception, at.exception
    sh = at.session_state["scenario"].self_host
    rin = RooflineInput(model(L8B), gpu("h100-sxm"))
    expected = capacity_view.shape_estimate(rin, *capacity_view.request_shape(at.session_state["scenario"]), 32, cal)
    assert sh.output_tokens_per_s == round(expected.output_tokens_per_s_est, 1)
    assert "calibrated on h100-vllm0.26-2026-11-28/llama-3.1-8b-bf16)" in sh.throughput_source
    at.multiselect(key="cap_calibrate").set_value(["ref:h200-vllm0.26-2026-12-01/llama-3.1-8b-bf16"]).run()
    assert "extrapolated to NVIDIA H100 SXM 80GB/Llama 3.1 8B" in _calibration_note(at)
    assert any(w.value.startswith("Estimate calibrated on") for w in at.warning)  # extrapolation is a warning
    at.multiselect(key="cap_calibrate").set_value([key, "ref:h200-vllm0.26-2026-12-01/llama-3.1-8b-bf16"]).run()
    note = _calibration_note(at)  # several runs: one fit on their points together
    assert note.startswith("Estimate calibrated on runs h100-vllm0.26-2026-11-28/llama-3.1-8b-bf16, "
                           "h200-vllm0.26-2026-12-01/llama-3.1-8b-bf16 (NVIDIA H100 SXM 80GB, NVIDIA H200 SXM 141GB")
    assert "on its 8 points; applied to the same NVIDIA H100 SXM 80GB/Llama 3.1 8B" in note
    at.multiselect(key="cap_calibrate").set_value([]).run()
    assert not at.exception, at.exception
    assert _estimate(at) == before  # none chosen: the reference fit again


def test_page_calibrates_on_a_stored_run(monkeypatch, tmp_path):
    db = tmp_path / "results.sqlite"
    with open_store(db) as store:
        rid = store.save_run(json.loads(H100_8B.read_text()))
    at = _page(monkeypatch, db)
    at.multiselect(key="cap_calibrate").set_value([f"store:{rid}"]).run()
    assert not at.exception, at.exception
    assert f"calibrated on run stored {rid} (NVIDIA H100 SXM 80GB, Llama 3.1 8B)" in _calibration_note(at)


@settings(max_examples=20, deadline=None)
@given(mbu=st.integers(30, 100), overhead=st.integers(0, 100), mfu=st.integers(10, 50))
def test_fuzz_the_search_finds_a_zero_error_fit_of_model_generated_points(mbu, overhead, mfu):
    """Constants on the grid's lattice (MBU 0.30-1.00, overhead 0-5 ms, MFU 0.20-1.00): the fit reproduces the
    points it was given (it may pick another exact solution where the points cannot tell two apart)."""
    truth = {"step_mbu": mbu / 100, "step_overhead_ms": overhead * 0.05, "step_mfu": mfu * 0.02}
    pts = _synthetic(truth, shapes=((512, 256), (2048, 128)))
    cal = cb.fit_calibration(pts, tie_pct=0)
    assert cal.mae_tokens_per_s_pct < 1e-6 and cal.mae_tpot_pct < 1e-6, (truth, cal.constants())
    assert all(lo <= cal.constants()[k] <= hi for k, (lo, hi) in cb.BOUNDS.items())
