"""AppTest of the Capacity page's "Several GPUs and nodes" section: commands as copyable text, one-line errors."""

from __future__ import annotations

import shlex
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
L8B = "meta-llama/Llama-3.1-8B-Instruct"


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/2_Capacity.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="cap_model").set_value(L8B)
    at.selectbox(key="cap_gpus").set_value(2)
    return at


def _codes(at: AppTest) -> list[str]:
    return [c.value for c in at.code]


def test_two_nodes_of_replicas_show_ray_commands_that_split_back_into_their_argv() -> None:
    at = _page()
    at.number_input(key="cap_dp").set_value(2)
    at.number_input(key="cap_nodes").set_value(2)
    at.text_input(key="cap_head").set_value("10.0.0.1")
    at.run()
    assert not at.exception, at.exception
    codes = _codes(at)
    head = [c for c in codes if "ray start --block --head" in c]
    serve = [c for c in codes if "--data-parallel-backend ray" in c]
    assert len(head) == 1 and "--node-ip-address=10.0.0.1" in head[0]
    assert len(serve) == 1 and shlex.split(serve[0])[:5] == ["env", "VLLM_HOST_IP=10.0.0.1", "NCCL_SOCKET_IFNAME=IFACE",
                                                             "GLOO_SOCKET_IFNAME=IFACE", "vllm"]
    assert "python -m probes run --endpoint http://127.0.0.1:8000" in codes
    assert any("4 GPUs" in m.value for m in at.markdown)


def test_a_shape_vllm_cannot_run_is_one_error_line_and_keeps_the_widgets() -> None:
    at = _page()
    at.number_input(key="cap_nodes").set_value(2)
    at.number_input(key="cap_gpus_per_node").set_value(3)
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error if e.value.startswith("Not planned")]
    assert len(errors) == 1 and "nodes 2 x gpus_per_node 3 = 6" in errors[0] and "\n" not in errors[0]
    assert at.number_input(key="cap_gpus_per_node").value == 3 and at.number_input(key="cap_nodes").value == 2
