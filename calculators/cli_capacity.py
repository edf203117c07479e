"""Headless capacity commands: ``python -m calculators fit|roofline|claim ...``.

- ``fit --model ID_OR_CONFIG_JSON --gpu GPU_ID [--gpus N] [--dtype D] [--kv-cache-dtype auto|fp8]
  [--max-model-len L] [--gpu-memory-utilization U] [--input-tokens I --output-tokens O] [--free-gib auto|idle|G]
  [--json]``: the memory verdict, the fixes and the launch plan (``--max-num-seqs`` sized for requests of I + O
  tokens; ``--gpu-memory-utilization`` capped by the free memory per GPU at start: measured through NVML with
  ``auto``, the default, where this machine has the planned GPU; an idle GPU otherwise or with ``idle``);
  a deployment that will not start prints "will not start: ..." and no command;
  ``[--pipeline-parallel P] [--data-parallel D] [--nodes K --gpus-per-node G] [--head-address IP]
  [--network-interface IF]`` add the per-GPU accounting of every pipeline stage, the rank placement and the
  commands (Ray head and workers on several nodes, then ``vllm serve`` and the probe), ``parallel`` in the JSON
  (:mod:`calculators.multinode`; ``--gpus`` is the tensor-parallel size, total GPUs = gpus x P x D);
- ``roofline --model ... --gpu ... --concurrency 1,8,32 [--context-tokens C] [--prompt-tokens P] [--json]``;
  with ``--input-tokens I --output-tokens O [--max-num-batched-tokens B] [--max-model-len L]`` each point also
  carries the closed-loop estimate of that request shape (:mod:`calculators.closedloop`:
  ``output_tokens_per_s_est``, ``tpot_ms_est``, ``ttft_ms_est``, ``closed_loop_bound``, ``running``) and the
  JSON a ``closed_loop`` block with the shape, the batch budget, the KV room and the calibration constants;
- ``claim --article a|b|c|d|e|f|all`` or ``claim --model ... --gpu ... --concurrency N --claimed-tokens-per-s X``.

Bad input prints one line naming the field on stderr and exits 2
(here: ``error: unknown GPU 'h100'; known: h100-sxm, ...``).

>>> main(["fit", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100"])
2
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from calculators.catalog import gpu
from calculators.claims import ARTICLE_CLAIMS, Claim, check_claim
from calculators.closedloop import CALIBRATION, ClosedLoopInput, closed_loop_sweep
from calculators.launch import (
    DEFAULT_INPUT_TOKENS,
    DEFAULT_OUTPUT_TOKENS,
    free_gib_at_start_measured,
    plan_launch,
)
from calculators.memory import KV_CACHE_DTYPES, WEIGHT_DTYPES, FitInput, fit
from calculators.modelspec import load_model
from calculators.multinode import HEAD_IP, IFACE, ClusterPlan, Topology, plan_cluster
from calculators.roofline import DEFAULT_MBU, DEFAULT_MFU, RooflineInput, decode_sweep, prefill

__all__ = ["main"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="catalog repo id or a path to a config.json")
    p.add_argument("--gpu", required=True, help="GPU id from calculators/data/gpus.csv")
    p.add_argument("--gpus", type=int, default=1, help="GPUs = tensor-parallel size (default 1)")
    p.add_argument("--dtype", default="bf16", choices=WEIGHT_DTYPES, help="weight precision")
    p.add_argument("--kv-cache-dtype", default="auto", choices=KV_CACHE_DTYPES)
    p.add_argument("--json", action="store_true", help="print JSON")


def _parallel_flags(p: argparse.ArgumentParser) -> None:
    """``fit``'s multi-GPU and multi-node shape (:mod:`calculators.multinode`); ``--gpus`` stays the TP size."""
    g = p.add_argument_group("several GPUs and nodes (total GPUs = --gpus x --pipeline-parallel x --data-parallel)")
    g.add_argument("--pipeline-parallel", type=int, default=1, metavar="P", help="pipeline stages (default 1)")
    g.add_argument("--data-parallel", type=int, default=1, metavar="D", help="replicas (default 1)")
    g.add_argument("--nodes", type=int, default=1, metavar="K", help="machines (default 1)")
    g.add_argument("--gpus-per-node", type=int, default=None, metavar="G",
                   help="GPUs per machine (required with --nodes > 1)")
    g.add_argument("--head-address", default=HEAD_IP, help="the head node's IP in the commands (default HEAD_IP)")
    g.add_argument("--network-interface", default=IFACE,
                   help="NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME in the commands (default IFACE)")


def _parser(cmd: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"python -m calculators {cmd}", add_help=True)
    if cmd == "fit":
        _common(p)
        p.add_argument("--max-model-len", type=int, default=None)
        p.add_argument("--gpu-memory-utilization", type=float, default=None)
        p.add_argument("--max-num-batched-tokens", type=int, default=None)
        p.add_argument("--concurrency", type=int, default=None)
        p.add_argument("--input-tokens", type=int, default=DEFAULT_INPUT_TOKENS,
                       help="expected prompt tokens per request (sizes --max-num-seqs)")
        p.add_argument("--output-tokens", type=int, default=DEFAULT_OUTPUT_TOKENS,
                       help="expected output tokens per request (sizes --max-num-seqs)")
        p.add_argument("--free-gib", default="auto",
                       help="free GiB per GPU before vLLM starts: auto (NVML, default), idle, or a number")
        _parallel_flags(p)
    elif cmd == "roofline":
        _common(p)
        p.add_argument("--concurrency", default="1,8,32", help="comma-separated, e.g. 1,8,32")
        p.add_argument("--context-tokens", type=int, default=1024)
        p.add_argument("--prompt-tokens", type=int, default=1024)
        p.add_argument("--mbu", type=float, default=DEFAULT_MBU)
        p.add_argument("--mfu", type=float, default=DEFAULT_MFU)
        p.add_argument("--input-tokens", type=int, default=None, help="closed-loop request shape: prompt tokens")
        p.add_argument("--output-tokens", type=int, default=None, help="closed-loop request shape: output tokens")
        p.add_argument("--max-num-batched-tokens", type=int, default=None,
                       help="vLLM's step budget (default: vLLM 0.26's for the GPU, 8192 or 2048)")
        p.add_argument("--max-model-len", type=int, default=None,
                       help="context vLLM is started with, for the KV room (default: input + output tokens)")
    else:
        p.add_argument("--article", choices=[*ARTICLE_CLAIMS, "all"], default=None)
        p.add_argument("--model")
        p.add_argument("--gpu")
        p.add_argument("--gpus", type=int, default=1)
        p.add_argument("--dtype", default="bf16", choices=WEIGHT_DTYPES)
        p.add_argument("--concurrency", type=int, default=1)
        p.add_argument("--claimed-tokens-per-s", type=float, default=None)
        p.add_argument("--context-tokens", type=int, default=1000)
        p.add_argument("--usd-per-gpu-hour", type=float, default=None)
        p.add_argument("--json", action="store_true")
    return p


def _concurrencies(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--concurrency must be comma-separated whole numbers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise ValueError(f"--concurrency needs values >= 1, got {text!r}")
    return vals


def _nvml_devices() -> list[tuple[str | None, float | None]]:
    """(catalog GPU id, free MiB) of each GPU NVML sees here; [] without a GPU (probes.observe.gpu never raises)."""
    from probes.observe.gpu import inspect  # noqa: PLC0415 - only for --free-gib auto
    from probes.results.reference import gpu_catalog_id  # noqa: PLC0415

    snap = inspect()
    return [(gpu_catalog_id(g.name), None if g.memory_total_mib is None or g.memory_used_mib is None
             else float(g.memory_total_mib - g.memory_used_mib)) for g in snap.gpus] if snap.available else []


def _free_gib(a: argparse.Namespace, g, tp: int) -> tuple[float | None, str]:
    if a.free_gib == "idle":
        return None, "an idle GPU assumed (--free-gib idle)"
    if a.free_gib == "auto":
        return free_gib_at_start_measured(g, tp, _nvml_devices())
    try:
        value = float(a.free_gib)
    except ValueError:
        raise ValueError(f"--free-gib must be auto, idle or a number of GiB, got {a.free_gib!r}") from None
    return value, f"--free-gib {value:g}"


def _parallel_requested(a: argparse.Namespace) -> bool:
    return (a.pipeline_parallel, a.data_parallel, a.nodes, a.gpus_per_node) != (1, 1, 1, None) or \
        (a.head_address, a.network_interface) != (HEAD_IP, IFACE)


def _cluster(a: argparse.Namespace) -> ClusterPlan:
    topo = Topology(a.gpus, a.pipeline_parallel, a.data_parallel, a.nodes, a.gpus_per_node)
    return plan_cluster(load_model(a.model), gpu(a.gpu), topo, weight_dtype=a.dtype, kv_cache_dtype=a.kv_cache_dtype,
                        max_model_len=a.max_model_len, gpu_memory_utilization=a.gpu_memory_utilization,
                        max_num_batched_tokens=a.max_num_batched_tokens, head_address=a.head_address,
                        network_interface=a.network_interface)


def _cluster_lines(c: ClusterPlan) -> list[str]:
    t = c.topology
    lines = [f"parallel: TP {t.tensor_parallel_size} x PP {t.pipeline_parallel_size} x DP {t.data_parallel_size} = "
             f"{c.total_gpus} GPUs on {t.nodes} node(s) x {t.node_gpus}; {c.replicas} replica(s) of "
             f"{t.gpus_per_replica} GPU(s)"]
    for s in c.stages:
        lines.append(f"per GPU, stage {s.stage} ({s.layers} layers, {t.tensor_parallel_size} GPU(s)): weights "
                     f"{s.weights_gib:.2f} GiB + activations {s.activation_gib:.2f} + non-torch {s.non_torch_gib:.2f}"
                     f" of a {s.budget_gib:.2f} GiB budget -> KV cache {s.kv_cache_gib:.2f} GiB = {s.kv_tokens:,} "
                     f"tokens; NCCL/all-reduce {s.comm_buffers_gib:.2f} GiB outside the budget"
                     + (" (estimate: not measured at PP > 1)" if s.estimate_only else ""))
    lines.append(f"KV cache: {c.kv_tokens_per_replica:,} tokens per replica, {c.kv_tokens_total:,} in all")
    by_node: dict[int, list[str]] = {}
    for r in c.ranks:
        by_node.setdefault(r.node, []).append(f"{r.local_gpu}:dp{r.dp_rank}/pp{r.pp_rank}/tp{r.tp_rank}")
    lines += [f"node {n} GPUs: {' '.join(v)}" for n, v in by_node.items()]
    lines += [f"warning: {w}" for w in c.warnings] + [f"note: {n}" for n in c.notes]
    if c.will_not_start:
        return [*lines, f"will not start: {c.will_not_start}"]
    lines += [f"each node needs: {n}" for n in c.node_needs]
    lines += [f"env {name}={value}: {why}" for name, value, why in c.env]
    lines += [f"[{cmd.node}] {cmd.text}" for cmd in c.commands]
    return lines


def _fit(a: argparse.Namespace) -> tuple[dict, str]:
    cluster = _cluster(a) if _parallel_requested(a) else None
    if cluster is not None and a.pipeline_parallel > 1:  # the single-replica fit below models TP only
        d = {"model": cluster.model, "gpu": cluster.gpu, "gpus": a.gpus, "parallel": cluster.as_dict()}
        return d, "\n".join([f"{cluster.model} on {cluster.total_gpus} x {cluster.gpu} ({a.dtype})",
                             *_cluster_lines(cluster)])
    inp = FitInput(load_model(a.model), gpu(a.gpu), a.gpus, a.dtype, a.kv_cache_dtype, a.max_model_len,
                   a.gpu_memory_utilization, a.max_num_batched_tokens, a.concurrency)
    r = fit(inp)
    free, free_note = _free_gib(a, inp.gpu, a.gpus)
    plan = plan_launch(inp, r, input_tokens=a.input_tokens, output_tokens=a.output_tokens, free_gib_at_start=free)
    launch = {"will_not_start": plan.will_not_start or None, "free_gib_at_start": free,
              "free_memory_source": free_note, "caps": list(plan.caps), "serve_args": list(plan.serve_args),
              "vllm_serve_argv": None if plan.will_not_start else plan.vllm_serve_argv(),
              "warnings": list(plan.warnings)}
    d = {"model": inp.arch.id, "gpu": inp.gpu.id, "gpus": a.gpus, **r.as_dict(), "launch": launch}
    lines = [f"{inp.arch.id} on {a.gpus} x {inp.gpu.id} ({a.dtype}): {r.verdict}", *r.reasons,
             *("fix: " + f for f in r.fixes), f"free memory at start: {free_note}"]
    if plan.will_not_start:
        lines.append(f"will not start: {plan.will_not_start}")
    else:
        lines += [*("cap: " + c for c in plan.caps), "launch: " + shlex.join(plan.vllm_serve_argv())]
    if cluster is not None:
        d["parallel"] = cluster.as_dict()
        lines += _cluster_lines(cluster)
    return d, "\n".join(lines)


def _roofline(a: argparse.Namespace) -> tuple[dict, str]:
    rin = RooflineInput(load_model(a.model), gpu(a.gpu), a.gpus, a.dtype, a.kv_cache_dtype, a.context_tokens,
                        a.mbu, a.mfu)
    pts = decode_sweep(rin, _concurrencies(a.concurrency))
    pf = prefill(rin, a.prompt_tokens)
    d = {"model": rin.arch.id, "gpu": rin.gpu.id, "gpus": a.gpus, "context_tokens": a.context_tokens,
         "mbu": a.mbu, "mfu": a.mfu, "points": [p.__dict__ for p in pts], "prefill": pf.__dict__}
    text = [f"{p.concurrency:>6}: {p.decode_tokens_per_s_max:10.1f} tok/s max ({p.per_user_tokens_per_s_max:.1f}/user), "
            f"{p.decode_tokens_per_s_est:10.1f} est, {p.bound}-bound" for p in pts]
    text.append(f"prefill {pf.prompt_tokens} tokens: TTFT >= {pf.ttft_ms_floor:.1f} ms (~{pf.ttft_ms_est:.1f} ms est)")
    if a.input_tokens is not None or a.output_tokens is not None:
        if a.input_tokens is None or a.output_tokens is None:
            raise ValueError("--input-tokens and --output-tokens go together (the closed-loop request shape)")
        if a.max_model_len is not None and a.max_model_len < a.input_tokens + a.output_tokens:
            raise ValueError(f"--max-model-len {a.max_model_len} is shorter than --input-tokens + --output-tokens")
        cin = ClosedLoopInput(rin.arch, rin.gpu, a.gpus, a.dtype, a.kv_cache_dtype, a.input_tokens, a.output_tokens,
                              a.max_num_batched_tokens, max_model_len=a.max_model_len)
        cl = closed_loop_sweep(cin, [p.concurrency for p in pts])
        for row, c in zip(d["points"], cl, strict=True):
            row.update(output_tokens_per_s_est=c.output_tokens_per_s_est, tpot_ms_est=c.tpot_ms_est,
                       ttft_ms_est=c.ttft_ms_est, closed_loop_bound=c.bound, running=c.running)
        d["closed_loop"] = {"input_tokens": a.input_tokens, "output_tokens": a.output_tokens,
                            "max_num_batched_tokens": cin.batched_tokens, "max_num_seqs": cin.seqs_cap,
                            "kv_capacity_tokens": cin.kv_tokens(), "calibration": CALIBRATION,
                            "points": [c.as_dict() for c in cl]}
        text.append(f"closed loop, {a.input_tokens} in / {a.output_tokens} out, batch budget {cin.batched_tokens} "
                    f"tokens (prefill included):")
        text += [f"{c.concurrency:>6}: {c.output_tokens_per_s_est:10.1f} output tok/s est, TPOT {c.tpot_ms_est:.2f} ms, "
                 f"TTFT {c.ttft_ms_est:.0f} ms, {c.bound}-bound ({c.running} running)" for c in cl]
    return d, "\n".join(text)


def _claim(a: argparse.Namespace) -> tuple[object, str]:
    if a.article:
        claims = list(ARTICLE_CLAIMS.values()) if a.article == "all" else [ARTICLE_CLAIMS[a.article]]
    else:
        if not a.model or not a.gpu:
            raise ValueError("claim needs --article KEY, or --model and --gpu (with --claimed-tokens-per-s)")
        claims = [Claim("custom", "custom claim", a.model, a.gpu, a.gpus, a.dtype, a.concurrency,
                        a.claimed_tokens_per_s, a.context_tokens, a.usd_per_gpu_hour)]
    out, text = [], []
    for c in claims:
        v = check_claim(c)
        out.append({"key": c.key, "text": c.text, "possible": v.possible, "fits": v.fits,
                    "fit_verdict": v.fit_verdict, "ceiling_tokens_per_s": v.ceiling_tokens_per_s,
                    "estimate_tokens_per_s": v.estimate_tokens_per_s, "margin": v.margin, "lines": list(v.lines)})
        text += [f"({c.key}) {c.text}", *("  " + line for line in v.lines)]
    return (out[0] if len(out) == 1 else out), "\n".join(text)


def main(argv: list[str]) -> int:
    """Run ``argv[0]`` (fit, roofline or claim) with the rest; return the exit code."""
    if not argv or argv[0] not in ("fit", "roofline", "claim"):
        print("error: first argument must be fit, roofline or claim", file=sys.stderr)
        return 2
    cmd = argv[0]
    try:
        a = _parser(cmd).parse_args(argv[1:])
        data, text = {"fit": _fit, "roofline": _roofline, "claim": _claim}[cmd](a)
    except (_UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    print(json.dumps(data, indent=2) if getattr(a, "json", False) else text)
    return 0
