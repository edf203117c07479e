"""Issue 13's "done when" for the shared store: two probe CLIs on this machine, as two GPU boxes would be, probe
a real vLLM (the shared CPU server) at once and store their runs in one PostgreSQL database (the session's
throwaway server); ``probes list`` and one Results page list both, each run with its host.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from probes.results.store import ResultStore
from probes.target.server import VllmServer

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_two_probe_clis_store_in_one_postgres_database_one_page_lists_both(
        vllm_server: VllmServer, postgres_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = postgres_server.fresh_url()
    procs = {}
    for box in ("gpu-box-a", "gpu-box-b"):
        env = {**os.environ, "APP__PROBE__DB": url, "APP__PROBE__HOSTNAME": box,
               "APP__PROBE__DATA_DIR": str(tmp_path / box)}
        procs[box] = subprocess.Popen(
            [sys.executable, "-m", "probes", "run", "--endpoint", vllm_server.base_url + "/v1", "--concurrency",
             "1,2", "--input-tokens", "32", "--output-tokens", "8", "--requests", "4", "--warmup", "0",
             "--saturation-gain", "0"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for box, proc in procs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        assert "saved as run" in err and "probe:***@127.0.0.1" in err  # where it was saved, without the password
        assert postgres_server.password not in out + err, box
    store = ResultStore(url)
    runs = store.list_runs()
    assert sorted(r["host"] for r in runs) == ["gpu-box-a", "gpu-box-b"]
    assert all(r["status"] == "complete" and r["points"] == 2 and r["model"] == "tiny" for r in runs)
    for r in runs:  # every request's samples came back from their own table
        assert all(len(p["samples"]) >= 4 for p in store.get_run(r["id"])["points"])

    listed = subprocess.run([sys.executable, "-m", "probes", "list", "--host", "gpu-box-b"], cwd=REPO,
                            env={**os.environ, "APP__PROBE__DB": url}, capture_output=True, text=True, timeout=60,
                            check=False)
    assert listed.returncode == 0 and listed.stdout.splitlines()[-1] == "runs 1-1 of 1", listed.stderr
    assert "host=gpu-box-b" in listed.stdout

    monkeypatch.setenv("APP__PROBE__DB", url)
    monkeypatch.setenv("APP__PROBE__DATA_DIR", str(tmp_path / "app"))
    st.cache_data.clear()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.switch_page("app_pages/4_Results.py").run()
    assert not at.exception, at.exception
    labels = [o for o in at.selectbox(key="res_run").options if o.startswith("run ")]
    assert sorted(label.split(" · ")[1] for label in labels) == ["gpu-box-a", "gpu-box-b"]
    assert at.multiselect(key="res_f_hosts").options == ["gpu-box-a", "gpu-box-b"]
    st.cache_data.clear()
