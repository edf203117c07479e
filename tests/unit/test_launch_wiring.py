"""The launch plan's inputs wired through every caller (issue 9 item 3): the scenario's request shape sizes
--max-num-seqs and the free GPU memory NVML measures caps --gpu-memory-utilization, in ``python -m calculators
fit``, on the Probe page and on the Capacity page; "no GPU" falls back to an idle GPU and says so; a deployment
that will not start gets no command anywhere. NVML is faked at ``probes.observe.gpu.inspect`` (the one adapter)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from calculators.__main__ import main as dispatch
from calculators.catalog import gpu
from calculators.launch import free_gib_at_start_measured, plan_launch
from calculators.memory import FitInput, fit
from calculators.modelspec import model
from calculators.scenario import DEFAULT_SCENARIO
from probes.observe.gpu import GpuInfo, GpuSnapshot
from ui import probe_view
from ui.cached import devices_from_snapshot

ROOT = Path(__file__).resolve().parents[2]
L8 = "meta-llama/Llama-3.1-8B-Instruct"
L70 = "meta-llama/Llama-3.3-70B-Instruct"
H100 = gpu("h100-sxm")
SHAPE = (round(DEFAULT_SCENARIO.traffic.input_tokens), round(DEFAULT_SCENARIO.traffic.output_tokens))
NO_GPU = GpuSnapshot(False, "no NVIDIA GPU visible: NVIDIA driver not available (test)")
# an H100 where another process holds 40 GiB: NVML total 81,559 MiB, used 40,960 + 500 MiB reserved
BUSY_H100 = GpuSnapshot(True, "", "580", "13.0", (
    GpuInfo(0, "NVIDIA H100 80GB HBM3", memory_total_mib=81_559, memory_used_mib=41_460),))
BUSY_FREE_GIB = round((81_559 - 41_460) / 1024 - 0.52, 2)  # 38.64 GiB at vLLM's start


def _args(argv) -> dict[str, str]:
    argv = list(argv)
    return dict(zip(argv, argv[1:], strict=False))


# --- the measured free memory -------------------------------------------------------------------------------

def test_measured_free_memory_by_hand():
    free, note = free_gib_at_start_measured(H100, 1, devices_from_snapshot(
        {"available": True, "gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81_559,
                                      "memory_used_mib": 41_460}]}))
    assert free == BUSY_FREE_GIB == 38.64
    assert note == ("measured now (NVML): 39.16 GiB free on the GPU, less 0.52 GiB for vLLM's CUDA context "
                    "= 38.64 GiB")
    # an idle GPU never reads as more free than vLLM's logged idle value (79.18 - 0.52 = 78.66)
    assert free_gib_at_start_measured(H100, 1, [("h100-sxm", 81_559.0)])[0] == 78.66
    # TP=2: the least free GPU of the two counts, less 1.54 GiB of context and NCCL buffers per GPU
    two = [("h100-sxm", 60 * 1024.0), ("h100-sxm", 50 * 1024.0)]
    assert free_gib_at_start_measured(H100, 2, two)[0] == round(50 - 1.54, 2)


@pytest.mark.parametrize(("devices", "reason"), [
    ([], "no NVIDIA GPU visible here: assumed an idle GPU"),
    ([("l4", 20_000.0)], "this machine has no NVIDIA H100 SXM 80GB, fewer than the 1 planned: assumed idle GPUs"),
    ([("h100-sxm", None)], "NVML could not read the free memory of every NVIDIA H100 SXM 80GB here"),
])
def test_no_matching_gpu_assumes_an_idle_one(devices, reason):
    free, note = free_gib_at_start_measured(H100, 1, devices)
    assert free is None and note.startswith(reason)


def test_devices_from_a_snapshot_without_gpus_is_empty():
    assert devices_from_snapshot({"available": False, "reason": "no NVIDIA GPU visible: x", "gpus": []}) == []
    assert devices_from_snapshot({"available": True, "gpus": [{"name": "NVIDIA L4", "memory_total_mib": None,
                                                               "memory_used_mib": 3}]}) == [("l4", None)]


# --- python -m calculators fit --------------------------------------------------------------------------------

def _fit(capsys, *argv: str, snapshot: GpuSnapshot = NO_GPU):
    with mock.patch("probes.observe.gpu.inspect", return_value=snapshot):
        rc = dispatch(["fit", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_fit_cli_sizes_max_num_seqs_for_the_request_shape(capsys):
    rc, out, _ = _fit(capsys, "--model", L8, "--gpu", "h100-sxm", "--max-model-len", "8192", "--input-tokens", "2000",
                      "--output-tokens", "500", "--json")
    d = json.loads(out)
    # 463,232 KV tokens = 28,952 blocks; a 2,500-token request takes 157 blocks -> 184 at once
    assert rc == 0 and _args(d["launch"]["serve_args"])["--max-num-seqs"] == "184" == str(28_952 // 157)
    assert d["launch"]["free_memory_source"] == "no NVIDIA GPU visible here: assumed an idle GPU"
    assert d["launch"]["free_gib_at_start"] is None and d["launch"]["will_not_start"] is None
    assert any(c.startswith("--max-num-seqs 184: set by the KV room") for c in d["launch"]["caps"])


def test_fit_cli_caps_utilization_by_the_measured_free_memory(capsys):
    rc, out, _ = _fit(capsys, "--model", L8, "--gpu", "h100-sxm", "--max-model-len", "4096", "--json",
                      snapshot=BUSY_H100)
    d = json.loads(out)
    launch = d["launch"]
    assert rc == 0 and launch["free_gib_at_start"] == BUSY_FREE_GIB
    assert launch["free_memory_source"].startswith("measured now (NVML)")
    # floor((38.64 - 0.98 - 0.146) / 79.18, 2) = 0.47
    assert _args(launch["serve_args"])["--gpu-memory-utilization"] == "0.47"
    expected = plan_launch(FitInput(model(L8), H100, max_model_len=4096), free_gib_at_start=BUSY_FREE_GIB)
    assert launch["serve_args"] == list(expected.serve_args)
    # the same on a GPU of another type, or with --free-gib idle: NVML's reading does not apply
    _, out, _ = _fit(capsys, "--model", L8, "--gpu", "h100-sxm", "--max-model-len", "4096", "--free-gib", "idle",
                     "--json", snapshot=BUSY_H100)
    assert _args(json.loads(out)["launch"]["serve_args"])["--gpu-memory-utilization"] == "0.92"


def test_fit_cli_says_will_not_start_and_prints_no_command(capsys):
    rc, out, _ = _fit(capsys, "--model", L70, "--gpu", "h100-sxm", "--max-model-len", "4096")
    assert rc == 0 and "will not start: weights + activations need 133.9 GiB per GPU" in out
    assert "vllm serve" not in out
    rc, out, _ = _fit(capsys, "--model", L70, "--gpu", "h100-sxm", "--json")
    launch = json.loads(out)["launch"]
    assert launch["vllm_serve_argv"] is None and launch["serve_args"] == [] and launch["will_not_start"]


@pytest.mark.parametrize(("value", "message"), [
    ("lots", "--free-gib must be auto, idle or a number of GiB, got 'lots'"),
    ("500", "free_gib_at_start must be <= 79.18"),
    ("-1", "free_gib_at_start must be >= 0"),
])
def test_fit_cli_bad_free_gib_is_one_line_exit_2(capsys, value, message):
    rc, out, err = _fit(capsys, "--model", L8, "--gpu", "h100-sxm", "--free-gib", value)
    assert rc == 2 and out == "" and err.startswith(f"error: {message}") and err.count("\n") == 1


# --- the Probe page -------------------------------------------------------------------------------------------

def test_probe_view_plan_takes_the_shape_and_the_free_memory():
    plan = probe_view.launch_plan(L8, "h100-sxm", 1, "bf16", input_tokens=SHAPE[0], output_tokens=SHAPE[1],
                                  free_gib_at_start=BUSY_FREE_GIB)
    a = _args(plan.serve_args)
    kv = fit(FitInput(model(L8), H100, max_model_len=4096, gpu_memory_utilization=0.47)).kv_capacity_tokens
    assert a["--gpu-memory-utilization"] == "0.47" and int(a["--max-num-seqs"]) == kv // 16 // 113  # 1,800 tokens
    bad = probe_view.launch_plan(L70, "h100-sxm", 1, "bf16")
    assert bad.will_not_start and probe_view.flags_text(bad) == ""


@pytest.fixture
def _probe_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from probes.target.server import VllmInstall

    monkeypatch.setenv("APP__PROBE__DB", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLLM_PYTHON", sys.executable)
    monkeypatch.delenv("APP__PROBE__ENABLED", raising=False)
    st.cache_data.clear()
    with mock.patch("probes.target.readiness.detect_install",
                    side_effect=lambda python, timeout_s=30.0: VllmInstall(python, "0.32.0", cpu_build=True)):
        yield
    st.cache_data.clear()


def _probe_page(snapshot: GpuSnapshot) -> AppTest:
    with mock.patch("probes.observe.gpu.inspect", return_value=snapshot):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.switch_page("app_pages/3_Probe.py").run()
        assert not at.exception, at.exception
        at.selectbox(key="probe_synthetic").set_value(L8).run()
        assert not at.exception, at.exception
    return at


def test_probe_page_prefills_flags_for_the_scenario_and_the_busy_gpu(_probe_env):
    at = _probe_page(BUSY_H100)
    assert at.selectbox(key="probe_gpu").value == "h100-sxm"
    flags = at.text_area(key="probe_flags").value
    assert "--gpu-memory-utilization 0.47" in flags
    expected = plan_launch(FitInput(model(L8), H100, max_model_len=4096), input_tokens=SHAPE[0],
                           output_tokens=SHAPE[1], free_gib_at_start=BUSY_FREE_GIB)
    assert f"--max-num-seqs {expected.max_num_seqs}" in flags
    captions = " ".join(c.value for c in at.caption)
    assert f"({SHAPE[0]:,} in + {SHAPE[1]:,} out)" in captions and "measured now (NVML)" in captions
    assert "Cap: --gpu-memory-utilization 0.47 (asked 0.92)" in captions


def test_probe_page_without_gpu_assumes_an_idle_one_and_refuses_a_plan_that_will_not_start(_probe_env):
    at = _probe_page(NO_GPU)
    assert "--gpu-memory-utilization 0.92" in at.text_area(key="probe_flags").value
    assert any("no NVIDIA GPU visible here: assumed an idle GPU" in c.value for c in at.caption)
    with mock.patch("probes.observe.gpu.inspect", return_value=NO_GPU):
        at.selectbox(key="probe_synthetic").set_value(L70).run()
    assert not at.exception, at.exception
    assert any(e.value.startswith("The launch plan says vLLM will not start: weights + activations") for e in at.error)
    assert at.text_area(key="probe_flags").value == ""


# --- the Capacity page ----------------------------------------------------------------------------------------

def test_capacity_page_caps_the_plan_by_this_gpu_and_can_ignore_it():
    st.cache_data.clear()
    with mock.patch("probes.observe.gpu.inspect", return_value=BUSY_H100):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.switch_page("app_pages/2_Capacity.py").run()
        at.selectbox(key="cap_model").set_value(L8).run()
        assert not at.exception, at.exception
        serve = next(c.value for c in at.code if c.value.startswith("vllm serve"))
        assert "--gpu-memory-utilization 0.47" in serve
        assert any("measured now (NVML)" in c.value for c in at.caption)
        at.toggle(key="cap_use_measured").set_value(False).run()
        serve = next(c.value for c in at.code if c.value.startswith("vllm serve"))
        assert "--gpu-memory-utilization 0.92" in serve
    st.cache_data.clear()
