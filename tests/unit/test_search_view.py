"""The Probe page's SLO search (ui.search_view): settings -> search request through the page's Start,
the answer panel (AppTest, fake ProbeJob), and the pure helpers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from probes.observe.gpu import GpuSnapshot
from probes.target.server import VllmInstall
from ui import search_view
from ui.probe_view import ProbeForm, build_request
from ui.search_view import SearchForm, apply_search, build_search, form_from_state, search_points_frame

ROOT = Path(__file__).resolve().parents[2]
NO_GPU = GpuSnapshot(False, "no NVIDIA GPU visible: NVIDIA driver not available (test)")


class FakeJob:
    """Stands in for probes.job.ProbeJob: records the request, 'finishes' at once with ``finish_with``."""

    made: list[FakeJob] = []
    finish_with: dict[str, Any] | None = None

    def __init__(self, req, *, settings=None, store=None) -> None:
        self.req, self.run, self.run_id, self.error, self.progress = req, None, None, None, None
        self.phase, self.started = "created", False
        FakeJob.made.append(self)

    def start(self) -> FakeJob:
        self.started = True
        self.run, self.run_id, self.phase = FakeJob.finish_with, 3, (FakeJob.finish_with or {}).get("status")
        return self

    @property
    def running(self) -> bool:
        return False

    def stop(self, timeout_s: float = 60.0) -> None:
        return None


def _point(rate: float, met: bool, why: str = "") -> dict[str, Any]:
    return {"concurrency": None, "request_rate": rate, "output_tokens_per_s": rate * 100, "requests_per_s": rate,
            "completed": 20, "failed": 0, "ttft_ms": {"median": 50.0, "p99": 90.0 if met else 900.0},
            "tpot_ms": {"median": 5.0, "p99": 6.0}, "itl_ms": {"median": 5.0}, "e2el_ms": {"median": 100.0},
            "server_metrics": None, "power": None, "slo": {"met": met, "why": why}}


OP = {"by": "request_rate", "request_rate": 4.0, "concurrency": None, "output_tokens_per_s_per_replica": 400.0,
      "requests_per_s": 4.0, "ttft_p99_ms": 90.0, "tpot_p99_ms": 6.0, "ttft_p99_target_ms": 500.0,
      "tpot_p99_target_ms": None, "lower": 4.0, "upper": 4.3, "points": 3, "converged": True,
      "reason": "bracketed: 4 req/s meet the SLO, 4.3 do not"}
RUN = {"schema": "selfhost-vs-api/probe-run/1", "status": "complete", "error": None, "model": "tiny",
       "weights": "synthetic", "gpu": None, "vllm_version": "0.32.0", "server": {"serve_args": []},
       "settings": {"search": {"by": "request_rate"}},
       "points": [_point(1.0, True), _point(4.0, True), _point(4.3, False, "p99 TTFT 900 ms > target 500 ms")],
       "best_point": None, "notes": [], "operating_point": OP}


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
    with mock.patch("probes.observe.gpu.inspect", return_value=NO_GPU), mock.patch("probes.job.ProbeJob", FakeJob), \
            mock.patch("probes.target.readiness.detect_install", side_effect=_cpu_install):  # a CPU vLLM "exists"
        yield
    st.cache_data.clear()


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/3_Probe.py").run()
    assert not at.exception, at.exception
    return at


def test_switched_on_search_starts_a_search_and_shows_the_operating_point() -> None:
    FakeJob.finish_with = RUN
    at = _page()
    assert at.toggle(key="probe_search_on").value is False
    at.toggle(key="probe_search_on").set_value(True).run()
    at.number_input(key="probe_search_ttft").set_value(500.0)
    at.number_input(key="probe_search_tpot").set_value(0.0)
    at.number_input(key="probe_search_points").set_value(6).run()
    at.button(key="probe_start").click().run()
    assert not at.exception, at.exception
    (job,) = FakeJob.made
    search = job.req.config.search
    assert (search.by, search.ttft_p99_target_ms, search.tpot_p99_target_ms, search.max_points) == (
        "request_rate", 500.0, None, 6)
    assert job.req.config.min_point_duration_s == 20.0 and not job.req.config.stop_on_errors
    assert any(s.value.startswith("operating point: 4 req/s, 400 output tok/s per replica") for s in at.success)
    (table,) = [d.value for d in at.dataframe if "meets SLO" in d.value.columns]
    assert list(table["meets SLO"]) == [True, True, False] and table["why not"].iloc[2].startswith("p99 TTFT")


def test_search_off_starts_the_sweep_as_before() -> None:
    at = _page()
    at.button(key="probe_start").click().run()
    (job,) = FakeJob.made
    assert job.req.config.search is None and job.req.config.concurrencies == (1, 4, 16)


def test_a_search_without_targets_is_an_error_and_nothing_starts() -> None:
    at = _page()
    at.toggle(key="probe_search_on").set_value(True).run()
    at.number_input(key="probe_search_ttft").set_value(0.0)
    at.number_input(key="probe_search_tpot").set_value(0.0).run()
    at.button(key="probe_start").click().run()
    assert not FakeJob.made
    assert any("give a p99 TTFT target, a p99 TPOT target, or both" in e.value for e in at.error)


def test_apply_search_keeps_target_and_workload() -> None:
    req = build_request(ProbeForm(vllm_python=sys.executable, num_requests=8, input_tokens=64))
    out = apply_search(req, SearchForm(enabled=True, tpot_p99_target_ms=30.0, by="concurrency", start=2,
                                       precision_pct=5.0, min_point_seconds=0.0))
    assert out.synthetic == req.synthetic and out.config.workload == req.config.workload
    assert (out.config.search.by, out.config.search.start, out.config.search.precision) == ("concurrency", 2, 0.05)
    assert out.config.goodput_tpot_ms == 30.0 and out.config.goodput_ttft_ms is None


@pytest.mark.parametrize(("form", "message"), [
    (SearchForm(ttft_p99_target_ms=-1), "TTFT p99 target must be a number >= 0"),
    (SearchForm(ttft_p99_target_ms=100, max_points=0), "max points must be an integer >= 1"),
    (SearchForm(ttft_p99_target_ms=100, precision_pct=0), "precision must be a number > 0"),
    (SearchForm(ttft_p99_target_ms=100, by="concurrency", start=1.5), "starts at an integer"),
])
def test_build_search_names_the_bad_field(form: SearchForm, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_search(form)


def test_form_from_state_and_points_frame() -> None:
    assert form_from_state({}) == SearchForm()
    assert form_from_state({"probe_search_on": True, "probe_search_by": "concurrency"}).by == "concurrency"
    frame = search_points_frame(RUN)
    assert list(frame["request rate"]) == [1.0, 4.0, 4.3] and list(frame["completed"]) == [20, 20, 20]
    assert search_view.search_points_frame({"points": []}).empty
