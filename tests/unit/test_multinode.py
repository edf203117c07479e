"""calculators.multinode: TP x PP x DP validation, per-GPU accounting against the real TP=2 log, the commands.

Flag names are pinned to what vLLM 0.26.0 defines (``vllm/engine/arg_utils.py`` of the wheel
``vllm-0.26.0-cp38-abi3-manylinux_2_28_x86_64.whl``: ``--distributed-executor-backend`` line 972,
``--pipeline-parallel-size`` 976, ``--tensor-parallel-size`` 1014, ``--data-parallel-size`` 1039,
``--data-parallel-size-local`` 1057, ``--data-parallel-backend`` 1075; ``--max-model-len`` 829, ``--quantization``
830, ``--gpu-memory-utilization`` 1163, ``--kv-cache-dtype`` 1168, ``--enable-prefix-caching`` 1173,
``--max-num-batched-tokens`` 1423, ``--max-num-seqs`` 1437, ``--enable-chunked-prefill`` 1460) and the Ray commands
to vLLM's ``examples/online_serving/run_cluster.sh`` at commit 0c37e23945d0be206667266d6951100ef58d6128
(``ray start --block --head --node-ip-address=IP --port=6379`` / ``ray start --block --address=IP:6379``).
``tests/integration/test_multinode_vllm_parser.py`` parses the same argv with a real vLLM's own parser.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators.__main__ import main as dispatch
from calculators.catalog import gpu
from calculators.memory import GIB
from calculators.modelspec import model
from calculators.multinode import RAY_PORT, Topology, check_topology, plan_cluster, stage_memory
from calculators.parallel import parallel_layout
from probes.observe.vllmlog import parse_startup
from tests.strategies import FUZZ

L8 = model("meta-llama/Llama-3.1-8B-Instruct")
L70 = model("meta-llama/Llama-3.3-70B-Instruct")
H100 = gpu("h100-sxm")
TP2_LOG = (Path(__file__).parents[2] / "benchmarks" / "results" / "h100x2-tp2-vllm0.26-2026-11-27"
           / "llama70b-bf16-tp2-u0.95.startup.txt")
# the same log's rank line (../shared/vllm/logs/h100x2-llama70b-bf16-tp2-util0.95.log, line 24):
# "rank 0 in world size 2 is assigned as DP rank 0, PP rank 0, PCP rank 0, TP rank 0"
VLLM_026_FLAGS = {
    "--distributed-executor-backend", "--pipeline-parallel-size", "--tensor-parallel-size", "--data-parallel-size",
    "--data-parallel-size-local", "--data-parallel-backend", "--max-model-len", "--quantization",
    "--gpu-memory-utilization", "--kv-cache-dtype", "--enable-prefix-caching", "--max-num-batched-tokens",
    "--max-num-seqs", "--enable-chunked-prefill", "--host", "--port",
}


def _serve(plan) -> list[str]:
    (cmd,) = [c for c in plan.commands if "serve" in c.argv]
    argv = list(cmd.argv)
    return argv[argv.index("vllm"):]


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


# -- validation ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("topo", "message"), [
    (Topology(2, 1, 1, 2, 2), "TP 2 x PP 1 x DP 1 = 2 GPUs, but nodes 2 x gpus_per_node 2 = 4"),
    (Topology(3, 1, 1), "tensor parallel size 3 must divide the attention heads (32)"),
    (Topology(1, 33, 1), "pipeline parallel size 33 must not exceed the layers (32)"),
    (Topology(2, 1, 1, 2, None), "gpus_per_node is required when nodes > 1"),
    (Topology(2, 3, 4, 3, 8), "a replica (TP x PP = 6 GPUs) must divide gpus_per_node 8"),
    (Topology(4, 3, 2, 3, 8), "a replica of TP x PP = 12 GPUs wider than a node must span whole nodes"),
    (Topology(0, 1, 1), "tensor_parallel_size must be"),
    (Topology(1, 1, 0), "data_parallel_size must be"),
])
def test_shapes_vllm_cannot_run_are_refused_naming_the_field(topo: Topology, message: str) -> None:
    with pytest.raises(ValueError, match=None) as exc:
        check_topology(L8, topo)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_tensor_parallel_across_nodes_runs_but_is_warned() -> None:
    assert check_topology(L70, Topology(8, 2, 1, 2, 8)) == ()
    (w,) = check_topology(L70, Topology(16, 1, 1, 2, 8))
    assert "spans nodes" in w and "TP = GPUs per node and PP = nodes" in w


# -- per-GPU accounting --------------------------------------------------------------------------------------------

def test_tp2_accounting_matches_the_real_two_h100_startup_log() -> None:
    logged = parse_startup(TP2_LOG.read_text(encoding="utf-8"))
    plan = plan_cluster(L70, H100, Topology(2), max_model_len=4096, gpu_memory_utilization=0.95)
    (s,) = plan.stages
    assert s.weights_gib == pytest.approx(logged["weights_gib"], abs=0.01)  # 65.71 GiB per GPU
    assert s.non_torch_gib == pytest.approx(logged["non_torch_gib"], abs=0.005)  # 0.06
    assert s.activation_gib == pytest.approx(logged["peak_activation_gib"], rel=0.15)  # 1.12 modelled vs 1.0
    assert s.budget_gib == pytest.approx(0.95 * logged["device_total_gib"], abs=0.01)  # "(0.95, 75.22 GiB)"
    # free at start = total - CUDA context 0.52 - NCCL/custom all-reduce: the log's 77.64 of 79.18 GiB
    assert logged["device_total_gib"] - 0.52 - s.comm_buffers_gib == pytest.approx(logged["device_free_gib"], abs=0.01)
    assert plan.kv_tokens_per_replica == pytest.approx(logged["kv_cache_tokens"], rel=0.03)  # 54,592 vs 55,328
    assert s.kv_cache_gib == pytest.approx(logged["kv_cache_gib"], rel=0.03)
    assert not s.estimate_only
    # rank order as the log assigns it: rank 0 = DP 0, PP 0, TP 0; rank 1 the other TP rank on the same node
    assert [(r.rank, r.node, r.local_gpu, r.dp_rank, r.pp_rank, r.tp_rank) for r in plan.ranks] == [
        (0, 0, 0, 0, 0, 0), (1, 0, 1, 0, 0, 1)]


def test_pipeline_stages_split_layers_as_vllm_and_agree_with_parallel_layout() -> None:
    stages = stage_memory(L70, H100, tp=2, pp=3)
    assert [s.layers for s in stages] == [27, 27, 26] and all(s.estimate_only for s in stages)
    heaviest = parallel_layout(L70, tp=2, pp=3).weights_bytes_per_gpu / GIB
    assert max(s.weights_gib for s in stages) == pytest.approx(heaviest, abs=1e-6)
    # fewer layers on the last stage: fewer KV bytes per token, so more tokens; the pipeline holds the minimum
    assert stages[2].kv_bytes_per_token < stages[0].kv_bytes_per_token
    plan = plan_cluster(L70, H100, Topology(2, 3, 1))
    assert plan.kv_tokens_per_replica == min(s.kv_tokens for s in stages)
    assert any("estimate" in n for n in plan.notes)


def test_data_parallel_copies_the_replica_and_adds_up_its_kv_cache() -> None:
    one = plan_cluster(L8, H100, Topology(2, 1, 1), max_model_len=4096)
    four = plan_cluster(L8, H100, Topology(2, 1, 4, 2, 4), max_model_len=4096)
    assert four.stages == one.stages  # per-GPU memory does not change with DP
    assert four.kv_tokens_total == 4 * one.kv_tokens_per_replica and four.replicas == 4
    assert sorted({(r.node, r.local_gpu) for r in four.ranks}) == [(n, g) for n in range(2) for g in range(4)]
    assert [r.dp_rank for r in four.ranks] == [0, 0, 1, 1, 2, 2, 3, 3]


# -- commands ------------------------------------------------------------------------------------------------------

def test_one_box_data_parallel_is_one_vllm_serve_without_ray() -> None:
    plan = plan_cluster(L8, H100, Topology(1, 1, 2), max_model_len=4096)
    serve = _serve(plan)
    assert serve[:3] == ["vllm", "serve", L8.id] and _flag(serve, "--data-parallel-size") == "2"
    assert _flag(serve, "--host") == "127.0.0.1" and not any("ray" in a for c in plan.commands for a in c.argv)
    assert plan.commands[-1].argv == ("python", "-m", "probes", "run", "--endpoint", "http://127.0.0.1:8000")
    assert any("per DP rank" in n for n in plan.notes)


def test_two_nodes_start_ray_head_then_workers_then_vllm_on_the_head() -> None:
    plan = plan_cluster(L70, H100, Topology(8, 2, 1, 2, 8),
                        head_address="10.0.0.1", network_interface="ib0", max_model_len=4096)
    head, worker, status, serve_cmd, probe = plan.commands
    assert head.node == "head" and head.argv[-5:] == ("start", "--block", "--head", "--node-ip-address=10.0.0.1",
                                                       f"--port={RAY_PORT}")
    assert worker.node == "worker 1" and worker.argv[-3:] == ("start", "--block", f"--address=10.0.0.1:{RAY_PORT}")
    assert status.argv == ("ray", "status")
    for c in (head, worker, serve_cmd):  # the network settings travel with each command, as argv items
        assert c.argv[0] == "env" and "NCCL_SOCKET_IFNAME=ib0" in c.argv and "GLOO_SOCKET_IFNAME=ib0" in c.argv
    assert "VLLM_HOST_IP=10.0.0.1" in head.argv and "VLLM_HOST_IP=WORKER_IP1" in worker.argv
    serve = _serve(plan)
    assert (_flag(serve, "--tensor-parallel-size"), _flag(serve, "--pipeline-parallel-size"),
            _flag(serve, "--distributed-executor-backend")) == ("8", "2", "ray")
    assert probe.argv[-2:] == ("--endpoint", "http://127.0.0.1:8000")
    assert {n for n, _, _ in plan.env} == {"VLLM_HOST_IP", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"}
    needs = " ".join(plan.node_needs)
    assert "same vLLM version" in needs and "same path" in needs and "6379" in needs


def test_replicas_within_nodes_use_ray_data_parallel_and_wide_replicas_pack_by_span() -> None:
    narrow = _serve(plan_cluster(L8, H100, Topology(2, 1, 4, 2, 4)))
    assert (_flag(narrow, "--data-parallel-size"), _flag(narrow, "--data-parallel-size-local"),
            _flag(narrow, "--data-parallel-backend")) == ("4", "2", "ray")
    assert "--distributed-executor-backend" not in narrow  # data_parallel_deployment.md's Ray form
    wide = plan_cluster(L70, H100, Topology(4, 2, 2, 4, 4))
    serve = _serve(wide)
    assert "--data-parallel-size-local" not in serve and _flag(serve, "--distributed-executor-backend") == "ray"
    (cmd,) = [c for c in wide.commands if "serve" in c.argv]
    assert "VLLM_RAY_DP_PACK_STRATEGY=span" in cmd.argv


@pytest.mark.parametrize("topo", [Topology(1), Topology(2, 1, 2), Topology(8, 2, 1, 2, 8), Topology(2, 1, 4, 2, 4),
                                  Topology(4, 2, 2, 4, 4), Topology(16, 1, 1, 2, 8)])
def test_every_flag_is_one_vllm_0_26_defines_and_the_text_round_trips(topo: Topology) -> None:
    arch = L70 if topo.tensor_parallel_size * topo.pipeline_parallel_size >= 4 else L8
    plan = plan_cluster(arch, H100, topo, max_model_len=4096)
    flags = {a for a in _serve(plan) if a.startswith("--")}
    assert flags <= VLLM_026_FLAGS, flags - VLLM_026_FLAGS
    for c in plan.commands:
        assert shlex.split(c.text) == list(c.argv)


def test_a_head_address_with_shell_syntax_is_refused() -> None:
    with pytest.raises(ValueError, match="head_address must be a host name"):
        plan_cluster(L8, H100, Topology(1, 1, 2, 2, 1), head_address="10.0.0.1; rm -rf ~")


def test_a_public_listen_address_makes_the_probe_use_an_api_key() -> None:
    plan = plan_cluster(L8, H100, Topology(1, 1, 2, 2, 1), head_address="10.0.0.1", serve_host="10.0.0.1")
    assert plan.commands[-1].argv[-3:] == ("http://10.0.0.1:8000", "--api-key-env", "VLLM_API_KEY")
    assert any("VLLM_API_KEY" in w for w in plan.warnings)


def test_a_deployment_that_will_not_start_gets_no_commands() -> None:
    plan = plan_cluster(L70, H100, Topology(1, 1, 2, 2, 1))  # 70B bf16 on one H100 per replica
    assert plan.will_not_start and plan.commands == () and plan.serve_args == ()


@given(tp=st.sampled_from([1, 2, 4, 8]), pp=st.sampled_from([1, 2, 4]), dp=st.integers(1, 4),
       per_node=st.sampled_from([1, 2, 4, 8]))
@FUZZ
def test_fuzz_every_gpu_is_exactly_one_rank(tp: int, pp: int, dp: int, per_node: int) -> None:
    total = tp * pp * dp
    if total % per_node:
        return
    topo = Topology(tp, pp, dp, total // per_node, per_node)
    try:
        check_topology(L70, topo)
    except ValueError:
        return
    plan = plan_cluster(L70, H100, topo, max_model_len=4096)
    assert len({(r.node, r.local_gpu) for r in plan.ranks}) == total
    assert len({(r.dp_rank, r.pp_rank, r.tp_rank) for r in plan.ranks}) == total
    assert plan.kv_tokens_total == plan.kv_tokens_per_replica * dp


# -- CLI -----------------------------------------------------------------------------------------------------------

def _run(capsys, *argv):
    rc = dispatch(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_fit_prints_the_parallel_block_and_commands(capsys) -> None:
    rc, out, _ = _run(capsys, "fit", "--model", L8.id, "--gpu", "h100-sxm", "--gpus", "2", "--data-parallel", "2",
                      "--nodes", "2", "--gpus-per-node", "2", "--max-model-len", "4096", "--free-gib", "idle",
                      "--json")
    d = json.loads(out)
    assert rc == 0 and d["verdict"] == "fits" and d["parallel"]["total_gpus"] == 4
    cmds = d["parallel"]["commands"]
    assert [c["node"] for c in cmds] == ["head", "worker 1", "head", "head", "head"]
    assert all(shlex.split(c["text"]) == c["argv"] for c in cmds)
    rc, text, _ = _run(capsys, "fit", "--model", L8.id, "--gpu", "h100-sxm", "--gpus", "2", "--data-parallel", "2",
                       "--nodes", "2", "--gpus-per-node", "2", "--free-gib", "idle")
    assert rc == 0 and "[head] env VLLM_HOST_IP=HEAD_IP" in text and "KV cache: " in text


def test_fit_with_pipeline_parallel_reports_stages_not_a_tp_only_verdict(capsys) -> None:
    rc, out, _ = _run(capsys, "fit", "--model", L70.id, "--gpu", "h100-sxm", "--gpus", "8", "--pipeline-parallel", "2",
                      "--nodes", "2", "--gpus-per-node", "8", "--json")
    d = json.loads(out)
    assert rc == 0 and "verdict" not in d and [s["layers"] for s in d["parallel"]["stages"]] == [40, 40]


def test_fit_without_the_new_flags_prints_what_it_did_before(capsys) -> None:
    rc, out, _ = _run(capsys, "fit", "--model", L8.id, "--gpu", "h100-sxm", "--free-gib", "idle", "--json")
    assert rc == 0 and "parallel" not in json.loads(out)


@pytest.mark.parametrize("extra", [
    ["--nodes", "2", "--gpus-per-node", "8"],
    ["--nodes", "2"],
    ["--pipeline-parallel", "0"],
    ["--data-parallel", "2", "--nodes", "1", "--gpus-per-node", "3"],
    ["--nodes", "2", "--gpus-per-node", "1", "--head-address", "a b"],
])
def test_fit_bad_parallel_combos_exit_2_with_one_line(capsys, extra: list[str]) -> None:
    rc, out, err = _run(capsys, "fit", "--model", L8.id, "--gpu", "h100-sxm", *extra)
    assert rc == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1


def test_pipeline_plans_refuse_what_vllm_refuses_at_startup() -> None:
    assert "vLLM refuses it" in plan_cluster(L70, H100, Topology(8, 2, 1, 2, 8), gpu_memory_utilization=1.0
                                             ).will_not_start
    tight = plan_cluster(L70, H100, Topology(1, 2, 1), gpu_memory_utilization=0.5)  # 70B bf16 on 2 GPUs, half each
    assert tight.will_not_start.startswith("a pipeline stage has no room") and tight.commands == ()
    with pytest.raises(ValueError, match="weight_dtype must be one of"):
        stage_memory(L70, H100, 2, 2, weight_dtype="fp4")
