"""The Capacity page's "Several GPUs and nodes" section: pipeline and data parallel over one or more nodes.

Widgets (keys ``cap_pp``, ``cap_dp``, ``cap_nodes``, ``cap_gpus_per_node``, ``cap_head``, ``cap_iface``) ->
:func:`calculators.multinode.plan_cluster` on the page's deployment (its model, GPU, TP, dtypes, context and
utilization) -> per-stage memory per GPU, where each rank sits, what each node needs and the commands, each as
copyable text (``shlex.join`` of an argv list). A shape vLLM cannot run is one ``st.error`` line naming the field;
the widgets keep their values.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from calculators.memory import FitInput
from calculators.multinode import HEAD_IP, IFACE, ClusterPlan, Topology, plan_cluster

__all__ = ["cluster_plan", "render"]

KEYS = {"pp": "cap_pp", "dp": "cap_dp", "nodes": "cap_nodes", "gpus_per_node": "cap_gpus_per_node",
        "head": "cap_head", "iface": "cap_iface"}


@st.cache_data(max_entries=64, show_spinner=False)
def cluster_plan(inp: FitInput, pp: int, dp: int, nodes: int, gpus_per_node: int, head: str,
                 iface: str) -> ClusterPlan:
    """The plan for the page's deployment at PP x DP over ``nodes`` (``gpus_per_node`` 0: the GPUs / nodes)."""
    total = inp.tensor_parallel_size * pp * dp
    if gpus_per_node == 0:
        if total % nodes:
            raise ValueError(f"GPUs per node: {total} GPUs do not split evenly over {nodes} nodes; set it")
        gpus_per_node = total // nodes
    topo = Topology(inp.tensor_parallel_size, pp, dp, nodes, gpus_per_node)
    return plan_cluster(inp.arch, inp.gpu, topo, weight_dtype=inp.weight_dtype, kv_cache_dtype=inp.kv_cache_dtype,
                        max_model_len=inp.max_model_len, gpu_memory_utilization=inp.gpu_memory_utilization,
                        max_num_batched_tokens=inp.max_num_batched_tokens, head_address=head.strip() or HEAD_IP,
                        network_interface=iface.strip() or IFACE)


def render(inp: FitInput) -> None:
    """Draw the section for ``inp`` (the page's validated :class:`~calculators.memory.FitInput`)."""
    st.subheader("Several GPUs and nodes")
    st.caption(f"Tensor parallel {inp.tensor_parallel_size} (the sidebar's GPUs) within each pipeline stage; "
               "pipeline stages and data-parallel replicas multiply the GPUs. More than one node runs on vLLM's "
               "Ray backend. Commands are planned, not run here.")
    for key, default in ((KEYS["pp"], 1), (KEYS["dp"], 1), (KEYS["nodes"], 1), (KEYS["gpus_per_node"], 0),
                         (KEYS["head"], HEAD_IP), (KEYS["iface"], IFACE)):
        st.session_state.setdefault(key, default)
    cols = st.columns(6)
    pp = cols[0].number_input("Pipeline stages", min_value=1, max_value=64, key=KEYS["pp"])
    dp = cols[1].number_input("Replicas (data parallel)", min_value=1, max_value=512, key=KEYS["dp"])
    nodes = cols[2].number_input("Nodes", min_value=1, max_value=512, key=KEYS["nodes"])
    per_node = cols[3].number_input("GPUs per node (0: split evenly)", min_value=0, max_value=64,
                                    key=KEYS["gpus_per_node"])
    head = cols[4].text_input("Head node address", key=KEYS["head"])
    iface = cols[5].text_input("Network interface", key=KEYS["iface"])
    try:
        plan = cluster_plan(inp, int(pp), int(dp), int(nodes), int(per_node), head, iface)
    except ValueError as exc:
        st.error(f"Not planned: {exc}")
        return
    t = plan.topology
    st.write(f"TP {t.tensor_parallel_size} x PP {t.pipeline_parallel_size} x DP {t.data_parallel_size} = "
             f"**{plan.total_gpus} GPUs** on {t.nodes} node(s) of {t.node_gpus}; KV cache "
             f"{plan.kv_tokens_per_replica:,} tokens per replica, {plan.kv_tokens_total:,} in all.")
    st.dataframe(pd.DataFrame([{"stage": s.stage, "layers": s.layers, "weights GiB": round(s.weights_gib, 2),
                                "activations GiB": round(s.activation_gib, 2),
                                "NCCL/all-reduce GiB (outside budget)": round(s.comm_buffers_gib, 2),
                                "KV cache GiB": round(s.kv_cache_gib, 2), "KV tokens": s.kv_tokens,
                                "estimate only": s.estimate_only} for s in plan.stages]), hide_index=True)
    for w in plan.warnings:
        st.warning(w)
    for n in plan.notes:
        st.info(n)
    if plan.will_not_start:
        st.error(f"Will not start: {plan.will_not_start}. No command is given.")
        return
    if plan.node_needs:
        st.markdown("**Each node needs**\n" + "\n".join(f"- {n}" for n in plan.node_needs))
    for c in plan.commands:
        st.caption(f"{c.node}: {c.purpose}")
        st.code(c.text, language="bash")
