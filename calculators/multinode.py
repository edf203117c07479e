"""Multi-GPU and multi-node launch plans: TP x PP x DP over ``nodes`` x ``gpus_per_node``, per-GPU accounting for
each rank, and the commands (argv lists) to start it on vLLM's own backends.

Shapes (flag names read in vLLM 0.26.0's ``vllm/engine/arg_utils.py``, lines 972-1075 of the wheel
``vllm-0.26.0-cp38-abi3-manylinux_2_28_x86_64.whl``: ``--distributed-executor-backend``,
``--pipeline-parallel-size``, ``--tensor-parallel-size``, ``--data-parallel-size``, ``--data-parallel-size-local``,
``--data-parallel-backend``; the Ray commands from vLLM's ``examples/online_serving/run_cluster.sh`` at commit
0c37e23945d0be206667266d6951100ef58d6128; the DP forms from ``docs/serving/data_parallel_deployment.md`` at
01e4fce07423dafcc832600ba05159fb28dc1126; ``VLLM_HOST_IP`` and ``NCCL_SOCKET_IFNAME`` from
``docs/serving/distributed_troubleshooting.md`` at 0328802bed2bb6ca346ea10acb61221a0c607768)::

    one node          vllm serve M --tensor-parallel-size T [--pipeline-parallel-size P] [--data-parallel-size D]
                      (vLLM's multiprocessing backend; no Ray)
    nodes > 1         every node:  ray start --block --head --node-ip-address=HEAD_IP --port=6379   (head)
                                   ray start --block --address=HEAD_IP:6379                         (workers)
                      then on the head: vllm serve M -tp T -pp P --distributed-executor-backend ray
                      D > 1 replicas, each within a node: --data-parallel-size D --data-parallel-size-local L
                      --data-parallel-backend ray instead of the executor flag; a replica wider than a node:
                      both flags and VLLM_RAY_DP_PACK_STRATEGY=span (--data-parallel-size-local then automatic)

Rules (``ValueError`` naming the field otherwise)::

    total GPUs       = TP * PP * DP = nodes * gpus_per_node          (every GPU is one rank)
    TP               divides the attention heads (and the KV heads, or is a multiple of them)
    PP               <= decoder layers
    replica = TP*PP  divides gpus_per_node (replicas pack into nodes) or is a multiple of it (spans whole nodes)

Ranks follow vLLM's order (``rank = dp * PP * TP + pp * TP + tp``, the TP=2 log's "DP rank 0, PP rank 0, TP rank 0"),
packed onto nodes in order; Ray places workers itself, so the node of a rank is the usual packing, not a promise.

Per-GPU memory: PP = 1 is :func:`calculators.memory.fit` (pinned to real logs, TP=2 included); PP > 1 splits the
layers as vLLM does (:func:`calculators.parallel.pp_partition`) and is an **estimate**: the activation peak of a
stage and the send/receive buffers between stages are not measured (``estimate_only``).

>>> from calculators.catalog import gpu
>>> from calculators.modelspec import model
>>> p = plan_cluster(model("meta-llama/Llama-3.3-70B-Instruct"), gpu("h100-sxm"), Topology(8, 2, 1, 2, 8),
...                  max_model_len=4096)
>>> [s.layers for s in p.stages], p.total_gpus
([40, 40], 16)
>>> print(p.commands[0].text)
env VLLM_HOST_IP=HEAD_IP NCCL_SOCKET_IFNAME=IFACE GLOO_SOCKET_IFNAME=IFACE ray start --block --head --node-ip-address=HEAD_IP --port=6379
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import asdict, dataclass, field

from calculators.catalog import Gpu
from calculators.kvcache import check_tensor_parallel, kv_bytes_per_token
from calculators.launch import plan_launch
from calculators.memory import (
    GIB,
    VLLM_0_26,
    FitInput,
    activation_bytes,
    check_deployment,
    fit,
    per_gpu_memory,
    weight_bytes,
)
from calculators.modelspec import ModelArch
from calculators.parallel import pp_partition
from calculators.validation import require_finite, require_int

__all__ = ["RAY_PORT", "Topology", "StageMemory", "RankPlacement", "Command", "ClusterPlan", "check_topology",
           "stage_memory", "plan_cluster"]

RAY_PORT = 6379  # run_cluster.sh: the head "accepts connections on port 6379"
API_PORT = 8000
HEAD_IP, WORKER_IP, IFACE = "HEAD_IP", "WORKER_IP", "IFACE"  # placeholders the user replaces
Gib = float
_NAME = re.compile(r"[A-Za-z0-9_.:%\-]{1,253}")  # host, IPv4/IPv6 address or interface name: nothing a shell reads


@dataclass(frozen=True)
class Topology:
    """TP x PP x DP over ``nodes`` x ``gpus_per_node`` (None: every GPU of the deployment on one node)."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    nodes: int = 1
    gpus_per_node: int | None = None

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_replica * self.data_parallel_size

    @property
    def node_gpus(self) -> int:
        return self.gpus_per_node if self.gpus_per_node is not None else self.total_gpus // self.nodes


def check_topology(arch: ModelArch, topo: Topology) -> tuple[str, ...]:
    """Raise ``ValueError`` (one line naming the field) for a shape vLLM cannot run; return warnings.

    >>> from calculators.modelspec import model
    >>> m = model("meta-llama/Llama-3.1-8B-Instruct")
    >>> check_topology(m, Topology(2, 1, 2, 2, 2))
    ()
    >>> check_topology(m, Topology(2, 1, 1, 2, 2))
    Traceback (most recent call last):
    ...
    ValueError: TP 2 x PP 1 x DP 1 = 2 GPUs, but nodes 2 x gpus_per_node 2 = 4: every GPU must be one rank (raise --data-parallel to 2, or use fewer GPUs)
    >>> check_topology(m, Topology(16, 1, 1, 2, 8))[0][:52]
    'tensor parallel 16 spans nodes (8 GPUs each): every '
    """
    tp = require_int("tensor_parallel_size", topo.tensor_parallel_size, low=1, high=64)
    pp = require_int("pipeline_parallel_size", topo.pipeline_parallel_size, low=1, high=64)
    dp = require_int("data_parallel_size", topo.data_parallel_size, low=1, high=4096)
    nodes = require_int("nodes", topo.nodes, low=1, high=4096)
    if topo.gpus_per_node is None and nodes > 1:
        raise ValueError("gpus_per_node is required when nodes > 1 (--gpus-per-node)")
    per_node = require_int("gpus_per_node", topo.node_gpus if topo.gpus_per_node is None else topo.gpus_per_node,
                           low=1, high=64)
    check_tensor_parallel(arch, tp)
    pp_partition(arch.layers, pp)
    total, cluster = topo.total_gpus, nodes * per_node
    if total != cluster:
        if cluster > total and cluster % (tp * pp) == 0:
            hint = f"raise --data-parallel to {cluster // (tp * pp)}, or use fewer GPUs"
        else:
            hint = "make nodes x gpus-per-node equal the GPUs the ranks need"
        raise ValueError(f"TP {tp} x PP {pp} x DP {dp} = {total} GPUs, but nodes {nodes} x gpus_per_node {per_node} "
                         f"= {cluster}: every GPU must be one rank ({hint})")
    replica = tp * pp
    if replica <= per_node and per_node % replica:
        raise ValueError(f"a replica (TP x PP = {replica} GPUs) must divide gpus_per_node {per_node}: otherwise one "
                         "replica straddles two nodes while others do not")
    if replica > per_node and replica % per_node:
        raise ValueError(f"a replica of TP x PP = {replica} GPUs wider than a node must span whole nodes: "
                         f"a multiple of gpus_per_node {per_node}")
    warnings = []
    if tp > per_node:
        warnings.append(f"tensor parallel {tp} spans nodes ({per_node} GPUs each): every layer's all-reduce "
                        "crosses the network; vLLM's docs put TP = GPUs per node and PP = nodes")
    if pp > 1 and nodes == 1:
        warnings.append("pipeline parallel on one node: vLLM's docs suggest it only when the GPU count does not "
                        "divide the model evenly or the GPUs lack NVLink; TP is usually faster")
    return tuple(warnings)


@dataclass(frozen=True)
class StageMemory:
    """What each GPU of one pipeline stage holds (GiB) and the KV tokens its cache holds."""

    stage: int
    layers: int
    weights_gib: Gib
    activation_gib: Gib
    non_torch_gib: Gib
    comm_buffers_gib: Gib  # before vLLM's snapshot: outside the budget, lowers the free memory at start
    budget_gib: Gib
    kv_cache_gib: Gib
    kv_bytes_per_token: int  # on one GPU of this stage
    kv_tokens: int
    estimate_only: bool  # PP > 1: activation peak and inter-stage buffers not measured


def _stage_weight_bytes(arch: ModelArch, weight_dtype: str, tp: int, stages: tuple[int, ...]) -> list[float]:
    """Weights per GPU of each stage, as :func:`calculators.parallel.parallel_layout` splits them."""
    embed = 2 * arch.vocab_size * arch.hidden_size
    head = 2 * (arch.vocab_size * arch.hidden_size + arch.hidden_size)
    per_layer = (weight_bytes(arch, weight_dtype) - 2 * (arch.embedding_params + arch.hidden_size)) / arch.layers
    out = [n * per_layer for n in stages]
    out[0] += embed
    out[-1] += head
    return [math.ceil(b / tp) for b in out]


def stage_memory(arch: ModelArch, gpu: Gpu, tp: int = 1, pp: int = 1, weight_dtype: str = "bf16",
                 kv_cache_dtype: str = "auto", gpu_memory_utilization: float | None = None,
                 max_num_batched_tokens: int | None = None, max_model_len: int | None = None) -> list[StageMemory]:
    """Per-GPU memory of each pipeline stage (every TP rank of a stage holds the same)::

        PP = 1:  calculators.memory.fit (weights, activation, non-torch, KV cache: pinned to vLLM 0.26 logs)
        PP > 1:  weights_i   = stage_i weights / TP              (first stage + embedding, last + lm_head)
                 activation  = the TP formula of calculators.memory.activation_bytes   (not measured at PP > 1)
                 kv_cache_i  = utilization * total - weights_i - activation - non_torch
                 kv_tokens_i = floor(kv_cache_i / (16 * kv_bytes_i)) * 16,  kv_bytes_i = layers_i/layers * KV(TP)

    vLLM gives every worker one block count, so a pipeline holds ``min_i(kv_tokens_i)`` tokens.

    >>> from calculators.catalog import gpu
    >>> from calculators.modelspec import model
    >>> s = stage_memory(model("meta-llama/Llama-3.3-70B-Instruct"), gpu("h100-sxm"), 2, 1, max_model_len=4096,
    ...                  gpu_memory_utilization=0.95)
    >>> round(s[0].weights_gib, 2), s[0].kv_tokens, s[0].estimate_only   # the TP=2 log: 65.71 GiB, 55,328 tokens
    (65.71, 54592, False)
    >>> [round(x.weights_gib, 2) for x in stage_memory(model("meta-llama/Llama-3.3-70B-Instruct"), gpu("h100-sxm"),
    ...                                                  2, 2)]
    [32.85, 32.85]
    """
    check_deployment(arch, tp, weight_dtype, kv_cache_dtype)
    if gpu_memory_utilization is not None:
        require_finite("gpu_memory_utilization", gpu_memory_utilization, low=0.0, high=1.0, low_inclusive=False)
    util = VLLM_0_26.default_gpu_memory_utilization if gpu_memory_utilization is None else gpu_memory_utilization
    mnbt = max_num_batched_tokens or VLLM_0_26.default_max_num_batched_tokens(gpu)
    per = per_gpu_memory(arch, tp, weight_dtype, mnbt)
    if pp == 1:
        r = fit(FitInput(arch, gpu, tp, weight_dtype, kv_cache_dtype, max_model_len, util, mnbt))
        return [StageMemory(0, arch.layers, r.weights_gib, r.activation_gib, r.non_torch_gib, r.comm_buffers_gib,
                            r.budget_gib, r.kv_cache_gib, r.kv_bytes_per_token, r.kv_capacity_tokens, False)]
    stages = pp_partition(arch.layers, pp)
    budget = util * gpu.usable_memory_gib * GIB
    act = activation_bytes(arch, tp, mnbt)
    comm = VLLM_0_26.comm_buffers_gib_tp * GIB  # world size > 1: NCCL is set up whatever the split
    per_token_all = kv_bytes_per_token(arch, kv_cache_dtype, tp)
    out = []
    for i, (layers, w) in enumerate(zip(stages, _stage_weight_bytes(arch, weight_dtype, tp, stages), strict=True)):
        avail = max(0.0, budget - w - act - per.non_torch_bytes)
        kv_b = per_token_all // arch.layers * layers
        tokens = math.floor(avail / (VLLM_0_26.block_size * kv_b)) * VLLM_0_26.block_size
        out.append(StageMemory(i, layers, w / GIB, act / GIB, per.non_torch_bytes / GIB, comm / GIB, budget / GIB,
                               avail / GIB, kv_b, tokens, True))
    return out


@dataclass(frozen=True)
class RankPlacement:
    rank: int
    node: int
    local_gpu: int
    dp_rank: int
    pp_rank: int
    tp_rank: int


@dataclass(frozen=True)
class Command:
    """One command on one node: an argv list (never a shell string) and what it is for."""

    node: str  # "head", "worker 1", ..., "each node", "probe"
    argv: tuple[str, ...]
    purpose: str

    @property
    def text(self) -> str:
        """The argv as copyable shell text, every item quoted as needed (shlex.join)."""
        return shlex.join(self.argv)


@dataclass(frozen=True)
class ClusterPlan:
    model: str
    gpu: str
    topology: Topology
    total_gpus: int
    replicas: int
    stages: tuple[StageMemory, ...]
    ranks: tuple[RankPlacement, ...]
    kv_tokens_per_replica: int
    kv_tokens_total: int
    serve_args: tuple[str, ...]
    commands: tuple[Command, ...]
    env: tuple[tuple[str, str, str], ...]  # (name, value or placeholder, why) on every node
    node_needs: tuple[str, ...]
    warnings: tuple[str, ...]
    will_not_start: str = ""
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["commands"] = [{"node": c.node, "argv": list(c.argv), "text": c.text, "purpose": c.purpose}
                         for c in self.commands]
        d["env"] = [{"name": n, "value": v, "why": w} for n, v, w in self.env]
        return d


def _placements(topo: Topology) -> tuple[RankPlacement, ...]:
    tp, pp, per_node = topo.tensor_parallel_size, topo.pipeline_parallel_size, topo.node_gpus
    return tuple(RankPlacement(r, r // per_node, r % per_node, r // (tp * pp), (r // tp) % pp, r % tp)
                 for r in range(topo.total_gpus))


def _env(network_interface: str) -> tuple[tuple[str, str, str], ...]:
    return (
        ("VLLM_HOST_IP", "THIS_NODE_IP", "this node's address on the private network, unique per node (vLLM and "
         "Ray must agree on it: distributed_troubleshooting.md)"),
        ("NCCL_SOCKET_IFNAME", network_interface, "the interface NCCL uses between nodes (e.g. eth0, or the "
         "InfiniBand/RoCE one); the wrong one hangs at startup"),
        ("GLOO_SOCKET_IFNAME", network_interface, "the same interface for torch's Gloo (CPU-side collectives)"),
    )


def plan_cluster(arch: ModelArch, gpu: Gpu, topo: Topology, *, weight_dtype: str = "bf16",
                 kv_cache_dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float | None = None, max_num_batched_tokens: int | None = None,
                 head_address: str = HEAD_IP, network_interface: str = IFACE, serve_host: str = "127.0.0.1",
                 port: int = API_PORT, ray_port: int = RAY_PORT) -> ClusterPlan:
    """The deployment ``topo`` of ``arch`` on ``gpu``: per-stage memory, rank placement, flags and commands.

    PP = 1 takes its flags from :func:`calculators.launch.plan_launch` (utilization cap, ``--max-num-seqs`` per
    DP rank); PP > 1 passes only what was asked (``--max-model-len``, ``--gpu-memory-utilization``). The API server
    binds ``serve_host`` (loopback by default: the probe then runs on the head node); the probe attaches with
    ``python -m probes run --endpoint http://HOST:PORT`` and takes no GPU lock (the server owns the GPUs).
    """
    warnings = list(check_topology(arch, topo))
    for name, value in (("head_address", head_address), ("network_interface", network_interface),
                        ("serve_host", serve_host)):
        if not _NAME.fullmatch(value):
            raise ValueError(f"{name} must be a host name, an IP address or an interface name, got {value!r}")
    require_int("port", port, low=1, high=65535)
    require_int("ray_port", ray_port, low=1, high=65535)
    tp, pp, dp, nodes = (topo.tensor_parallel_size, topo.pipeline_parallel_size, topo.data_parallel_size,
                         topo.nodes)
    stages = tuple(stage_memory(arch, gpu, tp, pp, weight_dtype, kv_cache_dtype, gpu_memory_utilization,
                                max_num_batched_tokens, max_model_len))
    per_replica = min(s.kv_tokens for s in stages)
    notes: list[str] = []
    will_not_start = ""
    if pp == 1:
        inp = FitInput(arch, gpu, tp, weight_dtype, kv_cache_dtype, max_model_len, gpu_memory_utilization,
                       max_num_batched_tokens)
        launch = plan_launch(inp)
        will_not_start = launch.will_not_start
        serve = list(launch.serve_args)
        if dp > 1 and not will_not_start:
            notes.append(f"--max-num-seqs {launch.max_num_seqs} applies per DP rank: {dp} replicas run up to "
                         f"{dp * launch.max_num_seqs:,} requests at once")
    else:
        serve = ["--tensor-parallel-size", str(tp)]
        if max_model_len is not None:
            serve += ["--max-model-len", str(max_model_len)]
        if gpu_memory_utilization is not None:
            serve += ["--gpu-memory-utilization", f"{gpu_memory_utilization:g}"]
        serve += ["--pipeline-parallel-size", str(pp)]
        notes.append("pipeline parallel: per-stage memory is an estimate (activation peak and send/receive "
                     "buffers between stages not measured); no utilization or --max-num-seqs cap is computed")
        free = gpu.usable_memory_gib - VLLM_0_26.startup_used_gib - VLLM_0_26.comm_buffers_gib_tp
        if stages[0].budget_gib > free:  # vllm/v1/worker/utils.py::request_memory, as calculators.memory
            will_not_start = (f"the budget {stages[0].budget_gib:.2f} GiB per GPU is above the about {free:.2f} GiB "
                              "free when vLLM starts (CUDA context and NCCL buffers): vLLM refuses it; lower "
                              "--gpu-memory-utilization")
        elif any(s.kv_tokens < VLLM_0_26.block_size for s in stages):
            will_not_start = "a pipeline stage has no room for the KV cache (weights + activations over the budget)"
    if dp > 1:
        serve += ["--data-parallel-size", str(dp)]
    commands: list[Command] = []
    env: tuple[tuple[str, str, str], ...] = ()
    needs: list[str] = []
    if nodes > 1:
        env = _env(network_interface)
        replica_spans = topo.gpus_per_replica > topo.node_gpus
        if dp == 1 or replica_spans:  # the ranks of one replica on several nodes: Ray runs them
            serve += ["--distributed-executor-backend", "ray"]
        if dp > 1:  # data_parallel_deployment.md: one command on the head starts the DP ranks of every node
            if not replica_spans:
                serve += ["--data-parallel-size-local", str(topo.node_gpus // topo.gpus_per_replica)]
            serve += ["--data-parallel-backend", "ray"]

        def with_env(ip: str, argv: list[str], extra: tuple[str, ...] = ()) -> tuple[str, ...]:
            return ("env", f"VLLM_HOST_IP={ip}", f"NCCL_SOCKET_IFNAME={network_interface}",
                    f"GLOO_SOCKET_IFNAME={network_interface}", *extra, *argv)

        commands.append(Command("head", with_env(head_address, ["ray", "start", "--block", "--head",
                                                                f"--node-ip-address={head_address}",
                                                                f"--port={ray_port}"]),
                                "start the Ray head (keep it running; it is the cluster)"))
        for w in range(1, nodes):
            commands.append(Command(f"worker {w}", with_env(f"{WORKER_IP}{w}", ["ray", "start", "--block",
                                                                               f"--address={head_address}:{ray_port}"]),
                                    f"join node {w} to the cluster"))
        commands.append(Command("head", ("ray", "status"), f"check: {nodes} nodes and {topo.total_gpus} GPUs listed"))
        extra = ("VLLM_RAY_DP_PACK_STRATEGY=span",) if dp > 1 and replica_spans else ()
        if extra:
            notes.append("VLLM_RAY_DP_PACK_STRATEGY=span: each replica is wider than a node, so Ray lets a DP rank "
                         "span nodes (data_parallel_deployment.md); --data-parallel-size-local is then automatic")
        commands.append(Command("head", with_env(head_address, ["vllm", "serve", arch.id, *serve, "--host",
                                                                serve_host, "--port", str(port)], extra),
                                "start vLLM once, on the head: Ray starts every rank on every node"))
        needs = [
            f"the same vLLM version on every node (the plan is checked against {VLLM_0_26.version}; the image "
            "vllm/vllm-openai:v0.26.0 keeps them equal) and the same Ray and Python",
            f"the model at the same path on every node ({arch.id}: pre-download it, or a shared filesystem)",
            f"{topo.node_gpus} GPUs per node of one kind ({gpu.name}), all visible to Ray",
            "a private network between the nodes (Ray and NCCL traffic is unencrypted), the Ray port "
            f"{ray_port} open on the head, and the interface named in NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME",
            "fast interconnect for TP across nodes (InfiniBand/RoCE with GPUDirect RDMA: NCCL_DEBUG=TRACE shows "
            "'via NET/IB/GDRDMA', not 'NET/Socket')",
        ]
    else:
        commands.append(Command("this node", ("vllm", "serve", arch.id, *serve, "--host", serve_host, "--port",
                                              str(port)), "one command starts every rank (multiprocessing backend)"))
    endpoint_host = head_address if serve_host not in ("127.0.0.1", "localhost", "::1") else "127.0.0.1"
    probe = ["python", "-m", "probes", "run", "--endpoint", f"http://{endpoint_host}:{port}"]
    if endpoint_host != "127.0.0.1":
        probe += ["--api-key-env", "VLLM_API_KEY"]
        warnings.append(f"vLLM listens on {serve_host}: keep it on the private network and start it with "
                        "VLLM_API_KEY set (vLLM then requires the key); the probe reads it with --api-key-env")
    commands.append(Command("probe" if nodes == 1 else "head", tuple(probe),
                            "attach the probe once /health answers (it takes no GPU lock: the server owns them)"))
    if will_not_start:  # no command for a deployment vLLM would refuse (as calculators.launch)
        commands, serve = [], []
    return ClusterPlan(model=arch.id, gpu=gpu.id, topology=topo, total_gpus=topo.total_gpus, replicas=dp,
                       stages=stages, ranks=_placements(topo), kv_tokens_per_replica=per_replica,
                       kv_tokens_total=per_replica * dp, serve_args=tuple(serve), commands=tuple(commands), env=env,
                       node_needs=tuple(needs), warnings=tuple(warnings), will_not_start=will_not_start,
                       notes=tuple(notes))
