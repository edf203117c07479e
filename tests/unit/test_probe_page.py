"""AppTest of the Probe page (no GPU, probing switched off, the start path with a fake ProbeJob, busy GPU,
the API key never kept) and the pure helpers behind it (``ui.probe_view``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from probes.job import GpuLock
from probes.observe.gpu import GpuInfo, GpuSnapshot
from probes.target.server import VllmInstall, detect_install
from ui import probe_view
from ui.probe_view import ProbeForm, build_request, parse_serve_args, progress_text

ROOT = Path(__file__).resolve().parents[2]
PAGE = "app_pages/3_Probe.py"
NO_GPU = GpuSnapshot(False, "no NVIDIA GPU visible: NVIDIA driver not available (test)")


class FakeJob:
    """Stands in for probes.job.ProbeJob at the page's import boundary; records what the page asked."""

    made: list[FakeJob] = []
    finish_with: dict[str, Any] | None = None  # the run the job "measured"; None = still running

    def __init__(self, req, *, settings=None, store=None) -> None:
        self.req, self.settings, self.store = req, settings, store
        self.started = self.stopped = False
        self.phase, self.error, self.progress = "created", None, None
        self.run: dict[str, Any] | None = None
        self.run_id: int | None = None
        FakeJob.made.append(self)

    def start(self) -> FakeJob:
        self.started = True
        if FakeJob.finish_with is not None:
            self.run, self.run_id = FakeJob.finish_with, 7
            self.phase, self.error = FakeJob.finish_with["status"], FakeJob.finish_with.get("error")
        else:
            self.phase = "running"
            self.progress = {"point_index": 0, "points_total": 2, "concurrency": 1, "done": 1, "total": 4,
                             "failed": 0, "phase": "load"}
        return self

    @property
    def running(self) -> bool:
        return self.started and not self.stopped and FakeJob.finish_with is None

    def stop(self, timeout_s: float = 60.0) -> None:
        self.stopped = True


def _point(c: int, tps: float) -> dict[str, Any]:
    return {"concurrency": c, "output_tokens_per_s": tps, "requests_per_s": tps / 16, "completed": 4, "failed": 0,
            "ttft_ms": {"median": 20.0 * c, "p99": 30.0 * c}, "tpot_ms": {"median": 5.0, "p99": 6.0},
            "itl_ms": {"median": 5.0}, "e2el_ms": {"median": 100.0}, "server_metrics": None, "power": None}


RUN = {"schema": "selfhost-vs-api/probe-run/1", "status": "complete", "error": None, "model": "tiny",
       "weights": "synthetic", "gpu": None, "vllm_version": "0.32.0", "server": {"serve_args": []},
       "points": [_point(1, 40.0), _point(2, 70.0)], "best_point": _point(2, 70.0), "notes": []}


def _cpu_install(python: str, timeout_s: float = 30.0) -> VllmInstall:
    return VllmInstall(python, "0.32.0", cpu_build=True)


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("APP__PROBE__DB", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VLLM_PYTHON", sys.executable)
    monkeypatch.delenv("APP__PROBE__ENABLED", raising=False)
    FakeJob.made, FakeJob.finish_with = [], None
    st.cache_data.clear()
    # patched for the whole test: the Start callback is the function of the run that drew the button
    # the app's venv has no vLLM: by default the interpreter is taken for vLLM's CPU build (a machine that can
    # probe); the tests of a machine that cannot patch this again or leave it out
    with mock.patch("probes.observe.gpu.inspect", return_value=NO_GPU), mock.patch("probes.job.ProbeJob", FakeJob), \
            mock.patch("probes.target.readiness.detect_install", side_effect=_cpu_install):
        yield
    st.cache_data.clear()


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _start(at: AppTest) -> AppTest:
    at.button(key="probe_start").click().run()
    assert not at.exception, at.exception
    return at


def test_renders_without_gpu_and_says_so():
    at = _page()
    assert at.title[0].value == "Probe"
    assert any(w.value.startswith("No NVIDIA GPU visible") and "driver not available" in w.value for w in at.warning)
    assert not at.button(key="probe_start").disabled
    assert at.text_input(key="probe_python").value == sys.executable  # prefilled from VLLM_PYTHON


def test_a_visible_gpu_preselects_its_catalog_id():
    snap = GpuSnapshot(True, "", "580", "13.0", (GpuInfo(0, "NVIDIA H200", memory_total_mib=143771),))
    with mock.patch("probes.observe.gpu.inspect", return_value=snap):
        at = _page()
    assert at.selectbox(key="probe_gpu").value == "h200"
    assert not [w for w in at.warning if "GPU visible" in w.value]


def test_probing_disabled_shows_a_message_and_no_start(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("APP__PROBE__ENABLED", "0")
    at = _page()
    assert any("switched off" in i.value for i in at.info)
    assert "probe_start" not in [b.key for b in at.button]
    assert any("No NVIDIA GPU visible" in w.value for w in at.warning)  # GPU status still shown


def test_bad_enabled_value_is_an_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("APP__PROBE__ENABLED", "maybe")
    at = _page()
    assert "APP__PROBE__ENABLED must be one of" in at.error[0].value


def test_catalog_model_prefills_the_flags_from_its_launch_plan():
    at = _page()
    assert at.text_area(key="probe_flags").value == ""  # tiny: not in the catalog, no plan
    at.selectbox(key="probe_synthetic").set_value("meta-llama/Llama-3.1-8B-Instruct").run()
    flags = at.text_area(key="probe_flags").value
    assert "--max-model-len 4096" in flags and "--tensor-parallel-size 1" in flags
    at.selectbox(key="probe_dtype").set_value("fp8").run()
    assert "--quantization fp8" in at.text_area(key="probe_flags").value


def test_start_builds_the_request_and_a_finished_run_feeds_the_break_even():
    FakeJob.finish_with = RUN
    at = _page()
    at.text_area(key="probe_flags").set_value("--max-model-len 512 --enforce-eager")
    at.text_input(key="probe_concurrency").set_value("1,2")
    at.number_input(key="probe_requests").set_value(4)
    _start(at)
    (job,) = FakeJob.made
    assert job.started and job.req.synthetic == "tiny" and job.req.config.concurrencies == (1, 2)
    assert job.req.serve_args == ("--max-model-len", "512", "--enforce-eager")
    assert job.req.config.workload.num_requests == 4 and job.req.vllm_python == sys.executable
    assert any("run 7 saved" in s.value for s in at.success)
    assert at.selectbox(key="probe_result_point").value == 1  # the best point, c=2, preselected
    at.button(key="probe_result_use").click().run()
    assert not at.exception, at.exception
    s = at.session_state["scenario"]
    assert s.self_host.output_tokens_per_s == 70.0
    assert s.self_host.throughput_source == "measured: probe run 7, c=2"


def test_bad_concurrency_is_an_error_and_nothing_starts():
    at = _page()
    at.text_input(key="probe_concurrency").set_value("1,x")
    _start(at)
    assert not FakeJob.made
    assert "concurrency must be a comma-separated list" in at.error[0].value


def test_a_running_job_shows_progress_and_stop_stops_it():
    at = _page()
    _start(at)
    (job,) = FakeJob.made
    assert at.get("progress")[0].proto.text.endswith("point 1 of 2 (concurrency 1): 1 of 4 requests")
    assert at.button(key="probe_start").disabled  # one probe at a time
    at.button(key="probe_stop").click().run()
    assert not at.exception, at.exception
    assert job.stopped


def test_a_failed_start_shows_the_error_and_the_log_tail(tmp_path: Path):
    FakeJob.finish_with = {**RUN, "status": "failed", "error": "vLLM exited with code 1 during startup",
                           "points": [], "best_point": None}
    at = _page()
    _start(at)
    (job,) = FakeJob.made
    Path(job.req.log_path).write_text("line one\nValueError: bad flag --nope\n", encoding="utf-8")
    at.run()
    assert any("vLLM exited with code 1" in e.value for e in at.error)
    assert any("bad flag --nope" in c.value for c in at.code)


def test_another_probe_holding_the_gpu_disables_start(tmp_path: Path):
    lock = GpuLock(tmp_path / "data", 0)
    lock.acquire({"pid": 4242, "host": "box", "started_at": "now", "model": "llama", "phase": "running"})
    try:
        at = _page()
    finally:
        lock.release()
    assert at.button(key="probe_start").disabled
    assert any("Another probe is running" in w.value and "pid 4242" in w.value for w in at.warning)


def test_endpoint_api_key_is_sent_but_not_kept():
    FakeJob.finish_with = RUN
    at = _page()
    at.radio(key="probe_source").set_value("endpoint").run()
    at.text_input(key="probe_endpoint").set_value("http://127.0.0.1:9")
    at.text_input(key="probe_api_key").set_value("sk-secret")
    _start(at)
    (job,) = FakeJob.made
    assert job.req.endpoint == "http://127.0.0.1:9"
    assert at.session_state["probe_api_key"] == ""  # cleared by the Start callback
    assert job.req.api_key is None  # dropped from the finished job too
    assert "sk-secret" not in repr(at.session_state)


def _cannot(at: AppTest, reason: str) -> None:
    """The page says up front that it cannot probe, why, and what can be done; Start is disabled with the reason."""
    assert any(w.value.startswith("This machine cannot start a managed vLLM") and reason in w.value
               for w in at.warning), [w.value for w in at.warning]
    todo = " ".join(m.value for m in at.markdown)
    assert "Endpoint URL" in todo and "make vllm-env" in todo and "Results page" in todo
    start = at.button(key="probe_start")
    assert start.disabled and reason in (start.help or "")
    assert any(c.value.startswith("Start is disabled") and reason in c.value for c in at.caption)


def test_no_vllm_interpreter_disables_start_up_front_and_an_endpoint_still_works(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("VLLM_PYTHON")
    FakeJob.finish_with = RUN
    at = _page()
    _cannot(at, "no vLLM interpreter: VLLM_PYTHON is not set")
    assert not FakeJob.made
    at.radio(key="probe_source").set_value("endpoint").run()
    assert not at.button(key="probe_start").disabled
    at.text_input(key="probe_endpoint").set_value("http://127.0.0.1:9")
    _start(at)
    assert FakeJob.made and FakeJob.made[0].req.endpoint == "http://127.0.0.1:9"


def test_entering_a_working_interpreter_enables_start(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("VLLM_PYTHON")
    at = _page()
    assert at.button(key="probe_start").disabled
    at.text_input(key="probe_python").set_value(sys.executable).run()
    assert not at.exception and not at.button(key="probe_start").disabled
    assert any("CPU build" in c.value for c in at.caption)


def test_a_broken_interpreter_disables_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("VLLM_PYTHON", str(tmp_path / "gone" / "python"))
    _cannot(_page(), "does not exist")


def test_an_interpreter_without_vllm_disables_start():
    with mock.patch("probes.target.readiness.detect_install", side_effect=detect_install):
        at = _page()  # the real check: the app's own venv has no vLLM on purpose
    _cannot(at, "has no vLLM installed")


def test_a_gpu_build_without_a_gpu_disables_start():
    with mock.patch("probes.target.readiness.detect_install",
                    side_effect=lambda python, timeout_s=30.0: VllmInstall(python, "0.26.0", cpu_build=False)):
        at = _page()
    _cannot(at, "no NVIDIA GPU is visible and vLLM 0.26.0")


# -- pure helpers -----------------------------------------------------------------------------------------
def test_parse_serve_args_rejects_bad_quotes_and_probe_flags():
    assert parse_serve_args("--max-model-len=512 --served-model-name 'a b'") == (
        "--max-model-len=512", "--served-model-name", "a b")
    with pytest.raises(ValueError, match="check the quotes"):
        parse_serve_args("--x 'open")
    with pytest.raises(ValueError, match="--host is set by the probe"):
        parse_serve_args("--host=0.0.0.0")


@pytest.mark.parametrize(("changes", "message"), [
    ({"input_tokens": 0}, "input tokens must be an integer >= 1"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"goodput_ttft_ms": -5.0}, "TTFT target must be a number >= 0"),
    ({"vllm_python": ""}, "vLLM interpreter is required"),
    ({"vllm_python": "/nonexistent/python"}, "does not exist"),
    ({"source": "model", "model": " "}, "model id or path is required"),
    ({"source": "nope"}, "source must be one of"),
    ({"shared_prefix_count": 1, "shared_prefix_tokens": 0}, "shared_prefix_count and shared_prefix_tokens"),
])
def test_build_request_names_the_bad_field(changes: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message):
        build_request(ProbeForm(**{"vllm_python": sys.executable, **changes}))


def test_build_request_maps_targets_gpus_and_saturation():
    r = build_request(ProbeForm(vllm_python=sys.executable, goodput_ttft_ms=200.0, goodput_tpot_ms=0.0,
                                saturation_pct=0.0, gpus=2, source="model", model="org/m"))
    assert r.model == "org/m" and r.gpu_indices == (0, 1)
    assert r.config.goodput_ttft_ms == 200.0 and r.config.goodput_tpot_ms is None
    assert r.config.saturation_gain == 0.0


def test_progress_text_covers_start_warmup_and_failures():
    assert progress_text(None) == (0.0, "starting vLLM (waiting for /health)")
    frac, text = progress_text({"point_index": 0, "points_total": 4, "concurrency": 8, "done": 0, "total": 8,
                                "phase": "warmup"})
    assert frac == 0.0 and text.endswith("warm-up")
    frac, text = progress_text({"point_index": 3, "points_total": 4, "concurrency": 8, "done": 8, "total": 8,
                                "failed": 2})
    assert frac == 1.0 and text.endswith("8 of 8 requests, 2 failed")


def test_launch_plan_is_none_for_models_outside_the_catalog():
    assert probe_view.launch_plan("tiny", "h100-sxm") is None
    assert probe_view.flags_text(None) == ""
    plan = probe_view.launch_plan("meta-llama/Llama-3.3-70B-Instruct", "h100-sxm", 2, "fp8")
    assert "--tensor-parallel-size 2" in probe_view.flags_text(plan)


def test_read_log_tail(tmp_path: Path):
    log = tmp_path / "v.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)), encoding="utf-8")
    assert probe_view.read_log_tail(str(log), 2) == "line 98\nline 99"
    assert probe_view.read_log_tail(str(tmp_path / "missing.log")) == ""
    assert probe_view.read_log_tail(None) == ""
