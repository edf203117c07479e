"""The headless probe CLI: ``python -m probes gpu | run | search | import | list | export``.

``run`` starts vLLM (``--model`` or ``--synthetic``) through ``--vllm-python`` / ``VLLM_PYTHON`` or
attaches to ``--endpoint``, sweeps ``--concurrency``, prints a progress bar on stderr and a table (or
``--json``) on stdout, writes ``--out FILE.json`` and saves the run in the results store. Exit codes:
0 complete, 1 failed or partial (message on stderr), 2 bad arguments or probing disabled, 130 interrupted
(Ctrl-C: the first one stops the run and keeps the results so far, the server is always stopped).

``run --trace FILE [--time-scale X] [--max-requests N]`` replays a production trace as one open-loop point
instead of the sweep (``X`` > 1 is faster; :mod:`probes.plan.replay`), with its prefix-cache hit rate beside the
trace's own reuse.

``search`` takes every ``run`` option (target, workload, vLLM flags) and finds the highest request rate
(``--by rate``, open loop, default) or concurrency (``--by concurrency``) whose p99 TTFT and TPOT meet
``--ttft-p99-ms`` / ``--tpot-p99-ms``: it brackets geometrically from ``--start`` and bisects to
``--precision`` in at most ``--max-points`` points; the answer is the run's ``operating_point``.

Flags that go to vLLM: ``--max-model-len``, ``--gpu-memory-utilization``, ``--max-num-seqs``,
``--tensor-parallel-size``, ``--pipeline-parallel-size``, ``--data-parallel-size``, ``--quantization``,
``--kv-cache-dtype``, ``--[no-]enable-prefix-caching``, ``--enforce-eager``, ``--load-format`` and
``--vllm-arg=ARG`` (repeatable, split like a shell would: ``--vllm-arg="--block-size 16"``).

Several GPUs on one box: a managed server of TP x PP x DP GPUs takes one lock per GPU (``--gpu-ids``, else the
first of ``CUDA_VISIBLE_DEVICES``, else 0..N-1; in index order, all or none; a GPU held by another probe refuses
the run naming that probe) and starts vLLM with ``CUDA_VISIBLE_DEVICES`` set to exactly those GPUs.

>>> p = build_parser().parse_args(["run", "--synthetic", "tiny", "--concurrency", "1,4", "--max-model-len", "512"])
>>> serve_args_from(p, synthetic=True)
['--max-model-len', '512', '--load-format', 'dummy']
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import shlex
import signal
import socket
import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from probes.errors import ProbeDisabledError, ProbeError, ServerError
from probes.job import GpuLocks, ProbeRequest, execute
from probes.load.backends import AUTO, BACKEND_NAMES
from probes.load.fleet import BALANCE_POLICIES, describe_fleet, split_endpoints
from probes.load.replay import TraceReplay
from probes.load.workload import DISTRIBUTIONS, WorkloadSpec
from probes.observe import gpu as gpu_mod
from probes.plan.replay import describe_replay
from probes.plan.search import SloSearch, describe_operating_point
from probes.plan.sweep import SweepConfig, SweepProgress, parse_int_list
from probes.results.listing import add_list_parser, cmd_list
from probes.settings import load_settings, require_enabled

__all__ = ["build_parser", "main", "serve_args_from", "format_table", "ProgressBar", "EXIT_CODES"]

EXIT_CODES = {"complete": 0, "partial": 1, "failed": 1, "interrupted": 130}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _fraction_or_more(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


class _JoinUrls(argparse.Action):
    """``--endpoint A B`` is stored as ``"A,B"`` (one URL stays itself): the form ProbeRequest takes."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, ",".join(values))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m probes``."""
    ap = argparse.ArgumentParser(prog="python -m probes", description="Measure a vLLM server on this box.")
    sub = ap.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gpu", help="inspect the NVIDIA GPUs (NVML)")
    g.add_argument("--json", action="store_true", help="print JSON instead of text")

    r = sub.add_parser("run", help="start vLLM (or attach), sweep concurrency, measure, store")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="model id or local path (real weights)")
    src.add_argument("--synthetic", metavar="MODEL_ID_OR_CONFIG_JSON",
                     help="catalog id, HF id or config.json: random weights of the real shape")
    src.add_argument("--endpoint", metavar="URL", nargs="+", action=_JoinUrls,
                     help="attach to a running OpenAI-compatible server; several URLs (space- or comma-separated) "
                          "are replicas of one model without a balancer: the client spreads the load (--balance) "
                          "and reports each replica")
    r.add_argument("--balance", choices=BALANCE_POLICIES, default=None,
                   help="how load is spread over several --endpoint replicas: round-robin (default) or "
                        "least-inflight (fewest requests in flight, ties by order)")
    r.add_argument("--concurrency", default="1,4,16",
                   help="comma-separated list (default 1,4,16); 'uncapped' with --request-rate: one open-loop "
                        "point with no cap on in-flight requests (client queue time is reported per request)")
    r.add_argument("--request-rate", type=_positive_float, default=math.inf,
                   help="requests/s, Poisson arrivals (each concurrency then caps in-flight requests)")
    r.add_argument("--burstiness", type=_positive_float, default=1.0)
    r.add_argument("--input-tokens", type=_positive_int, default=512)
    r.add_argument("--output-tokens", type=_positive_int, default=128)
    r.add_argument("--requests", type=_positive_int, default=64,
                   help="measured requests per point, at least (a point runs at least 3 x its concurrency)")
    r.add_argument("--warmup", type=int, default=2,
                   help="warm-up requests per point, at least (raised to the concurrency; 0 = none; excluded)")
    r.add_argument("--distribution", choices=DISTRIBUTIONS, default="fixed")
    r.add_argument("--input-spread", type=float, default=0.0)
    r.add_argument("--output-spread", type=float, default=0.0)
    r.add_argument("--shared-prefix", type=int, default=0, metavar="N", help="N shared system prompts")
    r.add_argument("--shared-prefix-tokens", type=int, default=0, help="tokens per shared prefix "
                   "(default: half of --input-tokens when --shared-prefix is set)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--vocab-size", type=_positive_int,
                   help="draw prompt token ids below this (default: config.json, else asked from the server)")
    r.add_argument("--api", choices=(AUTO, *BACKEND_NAMES), default=AUTO,
                   help="request kind: vllm-token-ids (token-id prompts, exact lengths), completions (text on "
                        "/v1/completions) or chat (text on /v1/chat/completions); auto: on a vLLM, token ids when "
                        "its valid ids are known without sending any (config.json, --vocab-size, its own "
                        "/tokenize), else completions text; chat on anything else (hosted APIs)")
    r.add_argument("--goodput-ttft-ms", type=_positive_float)
    r.add_argument("--goodput-tpot-ms", type=_positive_float)
    r.add_argument("--saturation-gain", type=_fraction_or_more, default=0.05,
                   help="stop when output tok/s gains less than this fraction (0 = never)")
    r.add_argument("--request-timeout", type=_positive_float, default=600.0, help="seconds per request")
    r.add_argument("--hang-timeout", type=_positive_float, default=60.0,
                   help="seconds without /health before the server counts as hung")
    r.add_argument("--no-samples", action="store_true", help="do not keep per-request samples")
    r.add_argument("--out", metavar="FILE.json", help="write the run JSON here")
    r.add_argument("--db", metavar="PATH", help="results database (default: APP__PROBE__DB or the data dir)")
    r.add_argument("--no-store", action="store_true", help="do not save the run in the database")
    r.add_argument("--json", action="store_true", help="print the run JSON (without samples) on stdout")
    r.add_argument("--vllm-python", metavar="PATH", help="interpreter of vLLM's environment (env VLLM_PYTHON)")
    r.add_argument("--host", help="interface for the managed server (default APP__PROBE__HOST or 127.0.0.1)")
    r.add_argument("--port", type=int, help="port for the managed server (default: a free one)")
    r.add_argument("--startup-timeout", type=_positive_float, default=900.0, help="seconds to /health 200")
    r.add_argument("--served-model-name")
    r.add_argument("--log", metavar="FILE", help="vLLM's log file (default: a temp file)")
    r.add_argument("--api-key-env", metavar="VAR", help="name of an env var holding the endpoint's API key")
    _add_trace_flags(r)
    v = r.add_argument_group("vLLM flags (passed through)")
    v.add_argument("--max-model-len", type=_positive_int)
    v.add_argument("--gpu-memory-utilization", type=_positive_float)
    v.add_argument("--max-num-seqs", type=_positive_int)
    v.add_argument("--tensor-parallel-size", type=_positive_int)
    v.add_argument("--pipeline-parallel-size", type=_positive_int)
    v.add_argument("--data-parallel-size", type=_positive_int,
                   help="replicas in one server; the probe locks TP x PP x DP GPUs (all or none) and starts vLLM "
                        "with CUDA_VISIBLE_DEVICES set to them")
    v.add_argument("--gpu-ids", metavar="I,J,...",
                   help="physical GPU indices for a managed server (default: CUDA_VISIBLE_DEVICES's, else 0..N-1)")
    v.add_argument("--quantization")
    v.add_argument("--kv-cache-dtype")
    v.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=None)
    v.add_argument("--enforce-eager", action="store_true")
    v.add_argument("--load-format")
    v.add_argument("--vllm-arg", action="append", default=[], metavar="ARG",
                   help='extra vLLM argument(s), repeatable: --vllm-arg="--block-size 16"')
    _add_search_parser(sub, r)

    i = sub.add_parser("import", help="import a run JSON or a `vllm bench serve --save-result` file")
    i.add_argument("file")
    i.add_argument("--label", default="")
    i.add_argument("--db", metavar="PATH")
    add_list_parser(sub)
    e = sub.add_parser("export", help="print a stored run as JSON")
    e.add_argument("run_id", type=int)
    e.add_argument("--db", metavar="PATH")
    e.add_argument("--out", metavar="FILE.json")
    return ap


_TRACE_DEFAULTS = {"time_scale": 1.0, "max_requests": None, "trace_block_tokens": 512, "trace_overlong": "clip"}
_SWEEP_ONLY = ("request_rate", "burstiness", "input_tokens", "output_tokens", "requests", "distribution",
               "input_spread", "output_spread", "shared_prefix", "shared_prefix_tokens", "saturation_gain")


def _add_trace_flags(r: argparse.ArgumentParser) -> None:
    """``run --trace FILE``: replay a trace instead of sweeping (see README, "Replay a trace")."""
    t = r.add_argument_group("trace replay (instead of a sweep; --concurrency N then caps in-flight requests, "
                             "default uncapped)")
    t.add_argument("--trace", metavar="FILE", help="Azure CSV or Mooncake JSONL trace: send its requests at "
                   "their (scaled) times with their lengths; Mooncake hash ids become shared prompt blocks")
    t.add_argument("--time-scale", type=_positive_float, default=_TRACE_DEFAULTS["time_scale"], metavar="X",
                   help="replay X times faster than the trace (10: one trace minute in 6 s; 0.5: half speed)")
    t.add_argument("--max-requests", type=_positive_int, metavar="N", help="replay the first N requests only")
    t.add_argument("--trace-block-tokens", type=_positive_int, default=_TRACE_DEFAULTS["trace_block_tokens"],
                   metavar="B", help="tokens per hash block (default 512, the trace's); below 512 every length is "
                                     "scaled by B/512: a shrunken replay for small-context servers")
    t.add_argument("--trace-overlong", choices=("clip", "skip"), default=_TRACE_DEFAULTS["trace_overlong"],
                   help="a request longer than the server's max model length: clip its input to fit (default) "
                        "or skip it; counted on the run either way")


def _trace(ns: argparse.Namespace) -> TraceReplay | None:
    """The :class:`~probes.load.replay.TraceReplay` of ``run --trace`` (None without ``--trace``); ValueError
    naming the flag for trace flags without ``--trace`` or sweep flags with it."""
    trace = getattr(ns, "trace", None)
    if not trace:
        for flag, default in _TRACE_DEFAULTS.items():
            if getattr(ns, flag, default) != default:
                raise ValueError(f"--{flag.replace('_', '-')} needs --trace FILE")
        return None
    defaults = build_parser().parse_args(["run", "--model", "m"])
    for flag in _SWEEP_ONLY:
        if getattr(ns, flag) != getattr(defaults, flag):
            raise ValueError(f"--{flag.replace('_', '-')} is a sweep flag: a trace replay sends the trace's own "
                             "arrivals and lengths")
    cap: int | None = None
    if ns.concurrency != defaults.concurrency:
        caps = parse_int_list(ns.concurrency)
        if len(caps) != 1:
            raise ValueError(f"--concurrency with --trace is one cap on in-flight requests (or 'uncapped'), "
                             f"got {ns.concurrency!r}")
        cap = caps[0] or None
    if not Path(trace).is_file():
        raise ValueError(f"--trace {trace}: no such file")
    return TraceReplay(path=trace, time_scale=ns.time_scale, max_requests=ns.max_requests,
                       block_tokens=ns.trace_block_tokens, overlong=ns.trace_overlong, concurrency=cap,
                       seed=ns.seed)


def _add_search_parser(sub: Any, run_parser: argparse.ArgumentParser) -> None:
    """``search``: every ``run`` option (same target, workload and vLLM flags) plus the SLO search's own."""
    s = sub.add_parser("search", parents=[run_parser], add_help=False,
                       help="find the highest request rate (or concurrency) whose p99 TTFT/TPOT meet targets")
    g = s.add_argument_group("SLO search (the sweep flags --concurrency, --request-rate, --saturation-gain and "
                             "--requests do not apply)")
    g.add_argument("--ttft-p99-ms", type=_positive_float, help="p99 TTFT target in ms")
    g.add_argument("--tpot-p99-ms", type=_positive_float, help="p99 TPOT target in ms")
    g.add_argument("--by", choices=("rate", "concurrency"), default="rate",
                   help="search the open-loop request rate (default) or the closed-loop concurrency")
    g.add_argument("--start", type=_positive_float, default=1.0, help="first value tried (default 1)")
    g.add_argument("--growth", type=_positive_float, default=4.0, help="bracketing factor (default 4)")
    g.add_argument("--precision", type=_positive_float, default=0.1,
                   help="stop when the bracket is within this fraction (default 0.1)")
    g.add_argument("--max-points", type=_positive_int, default=12, help="hard cap on measured points")
    g.add_argument("--min-value", type=_positive_float, help="lowest value (default 0.1 req/s or 1)")
    g.add_argument("--max-value", type=_positive_float, help="highest value (default 10000 req/s or 4096)")
    g.add_argument("--max-concurrency", type=_positive_int,
                   help="cap on in-flight requests while searching the rate (default: uncapped)")
    g.add_argument("--min-requests", type=_positive_int, default=16, help="measured requests per point, at least")
    g.add_argument("--min-point-seconds", type=_fraction_or_more, default=20.0,
                   help="an open-loop point covers at least this many seconds of arrivals (default 20)")


def serve_args_from(ns: argparse.Namespace, *, synthetic: bool) -> list[str]:
    """vLLM flags from the parsed ``run`` arguments (in a stable order)."""
    args: list[str] = []
    for flag in ("max_model_len", "gpu_memory_utilization", "max_num_seqs", "tensor_parallel_size",
                 "pipeline_parallel_size", "data_parallel_size", "quantization", "kv_cache_dtype"):
        value = getattr(ns, flag)
        if value is not None:
            args += ["--" + flag.replace("_", "-"), str(value)]
    if ns.enable_prefix_caching is not None:
        args.append("--enable-prefix-caching" if ns.enable_prefix_caching else "--no-enable-prefix-caching")
    if ns.enforce_eager:
        args.append("--enforce-eager")
    load_format = ns.load_format or ("dummy" if synthetic else None)
    if load_format:
        args += ["--load-format", load_format]
    for extra in ns.vllm_arg:
        args += shlex.split(extra)
    return args


class ProgressBar:
    """A tiny progress bar on a stream: redrawn in place on a terminal, one line per point otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.stream, self.width = stream, width
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def __call__(self, p: SweepProgress) -> None:
        rate = getattr(p, "request_rate", None)
        load = f"rate {rate:.4g} req/s" if rate is not None else f"concurrency {p.concurrency}"
        head = f"point {p.point_index + 1}/{p.points_total} {load}"
        if p.phase == "point_done":
            tps = f"{p.output_tokens_per_s:.1f}" if p.output_tokens_per_s is not None else "-"
            end = "\r" if self.tty else ""
            self._write(f"{end}{head}: {p.done}/{p.total} requests, {p.failed} failed, {tps} output tok/s\n")
        elif p.phase == "warmup":
            self._write(f"{head}: warming up\n" if not self.tty else f"\r{head}: warming up")
        elif self.tty:
            filled = int(self.width * p.done / max(p.total, 1))
            bar = "#" * filled + "." * (self.width - filled)
            self._write(f"\r{head} [{bar}] {p.done}/{p.total} ({p.failed} failed)")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _fmt(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(run: dict[str, Any]) -> str:
    """A plain-text summary of a run: header lines and one row per point.

    >>> print(format_table({"model": "m", "weights": "synthetic", "status": "complete", "points": []}).splitlines()[0])
    model m (synthetic weights), vLLM ?, status complete
    """
    lines = [f"model {run.get('model')} ({run.get('weights')} weights), vLLM {run.get('vllm_version') or '?'}, "
             f"status {run.get('status')}"]
    gpu = run.get("gpu")
    lines.append(f"GPU: {gpu['count']}x {gpu['name']}" if gpu else "GPU: none visible (CPU or remote)")
    if run.get("cold_start_s") is not None:
        lines.append(f"cold start to /health: {run['cold_start_s']:.1f} s")
    startup = run.get("startup") or {}
    if startup.get("kv_cache_tokens") is not None:
        lines.append(f"KV cache: {startup['kv_cache_tokens']:,} tokens"
                     + (f", weights {startup['weights_gib']} GiB" if startup.get("weights_gib") is not None else ""))
    rated = any(p.get("request_rate") is not None for p in run.get("points", []))
    head = (f"{'req/s in':>8} " if rated else "") + (f"{'conc':>5} {'ok':>5} {'fail':>4} {'out tok/s':>10} {'req/s':>7} {'TTFT med':>9} {'TTFT p99':>9} "
            f"{'TPOT med':>9} {'TPOT p99':>9} {'ITL med':>8} {'ITL p99':>8} {'E2EL med':>9} {'J/tok':>7}")
    lines += [head, "-" * len(head)]
    for p in run.get("points", []):
        power = p.get("power") or {}
        lines.append(
            (f"{_fmt(p.get('request_rate'), 2):>8} " if rated else "") +
            f"{p.get('concurrency') or '-':>5} {p['completed']:>5} {p['failed']:>4} {_fmt(p['output_tokens_per_s']):>10} "
            f"{_fmt(p['requests_per_s'], 2):>7} {_fmt(p['ttft_ms']['median']):>9} {_fmt(p['ttft_ms']['p99']):>9} "
            f"{_fmt(p['tpot_ms']['median'], 2):>9} {_fmt(p['tpot_ms']['p99'], 2):>9} "
            f"{_fmt(p['itl_ms']['median'], 2):>8} {_fmt(p['itl_ms']['p99'], 2):>8} "
            f"{_fmt(p['e2el_ms']['median']):>9} {_fmt(power.get('j_per_output_token'), 3):>7}")
    best = run.get("best_point")
    if best:
        where = (f"rate {best['request_rate']:.4g} req/s" if best.get("request_rate") is not None
                 else f"concurrency {best.get('concurrency')}")
        lines.append(f"best point: {where}, {best['output_tokens_per_s']:.1f} output tok/s")
    if run.get("operating_point"):
        lines.append(describe_operating_point(run["operating_point"]))
    lines += describe_replay(run.get("replay"))
    lines += describe_fleet(run)
    lines += [f"note: {n}" for n in run.get("notes", [])]
    if run.get("error"):
        lines.append(f"error: {run['error'].splitlines()[0]}")
    lines.append("(latencies in ms)")
    return "\n".join(lines)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _open_store(path: str | None) -> Any:
    try:
        from probes.results.store import ResultStore  # noqa: PLC0415 - keeps `gpu` usable without the store
    except ImportError as exc:
        raise ValueError(f"the results store is unavailable ({exc}): install requirements.txt, or pass "
                         "--no-store and keep the run with --out") from exc
    return ResultStore(path)


@contextlib.contextmanager
def _interrupts(stop: threading.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM/SIGHUP sets ``stop`` (graceful); a second SIGINT raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        sys.stderr.write("\nstopping: finishing up, stopping the server (Ctrl-C again to force)...\n")

    # SIGHUP too: closing the terminal must stop the server we started, not orphan it in its own session
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _gpu_indices(tp: int | None, pp: int | None = None, dp: int | None = None,
                 gpu_ids: str | None = None) -> tuple[list[int], str | None]:
    """The GPUs a managed server uses (one lock each) and the ``CUDA_VISIBLE_DEVICES`` it gets (None: leave the
    caller's as it is). TP x PP x DP GPUs: ``--gpu-ids``, else the first of ``CUDA_VISIBLE_DEVICES``, else 0..N-1.
    ``CUDA_VISIBLE_DEVICES`` naming GPUs by UUID or MIG id stays untouched (the lock then goes by position).

    >>> _gpu_indices(2, dp=2, gpu_ids="4,5,6,7")
    ([4, 5, 6, 7], '4,5,6,7')
    """
    count = (tp or 1) * (pp or 1) * (dp or 1)
    if gpu_ids is not None:
        try:
            ids = [int(x) for x in gpu_ids.split(",")]
        except ValueError:
            raise ValueError(f"--gpu-ids must be comma-separated GPU indices, got {gpu_ids!r}") from None
        if len(ids) != count or len(set(ids)) != count or min(ids) < 0:
            raise ValueError(f"--gpu-ids {gpu_ids}: TP x PP x DP needs {count} distinct GPU indices >= 0")
        return ids, ",".join(map(str, ids))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    entries = [x.strip() for x in visible.split(",") if x.strip()] if visible else []
    if entries and not all(x.isdigit() for x in entries):
        if len(entries) < count:
            raise ValueError(f"TP x PP x DP needs {count} GPUs, but CUDA_VISIBLE_DEVICES lists {len(entries)}")
        return list(range(count)), None
    if entries and len(entries) < count:
        raise ValueError(f"TP x PP x DP needs {count} GPUs, but CUDA_VISIBLE_DEVICES={visible} lists "
                         f"{len(entries)}: widen it or pass --gpu-ids")
    ids = [int(x) for x in entries][:count] if entries else list(range(count))
    return ids, ",".join(map(str, ids))


def _require_gpus_exist(indices: Sequence[int]) -> None:
    """A group naming a GPU this box does not have fails here, in one line, not minutes later inside vLLM
    ("World size is larger than the number of available GPUs"). Without NVML (a CPU box) nothing is checked."""
    snap = gpu_mod.inspect()
    if snap.available and indices and max(indices) >= len(snap.gpus):
        raise ValueError(f"GPU {max(indices)} does not exist here: NVML sees {len(snap.gpus)} GPU(s) "
                         f"(indices 0..{len(snap.gpus) - 1}); this probe needs GPUs {','.join(map(str, indices))}")


def _workload(ns: argparse.Namespace) -> WorkloadSpec:
    prefix_tokens = ns.shared_prefix_tokens or (ns.input_tokens // 2 if ns.shared_prefix else 0)
    return WorkloadSpec(input_tokens=ns.input_tokens, output_tokens=ns.output_tokens, num_requests=ns.requests,
                        distribution=ns.distribution, input_spread=ns.input_spread,
                        output_spread=ns.output_spread, shared_prefix_count=ns.shared_prefix,
                        shared_prefix_tokens=prefix_tokens if ns.shared_prefix else 0, seed=ns.seed)


def _config(ns: argparse.Namespace) -> SweepConfig:
    if ns.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {ns.warmup}")
    workload = _workload(ns)
    longest = workload.input_tokens * (1 + workload.input_spread * 3) + workload.output_tokens * (
        1 + workload.output_spread * 3)
    if ns.max_model_len is not None and workload.distribution == "fixed" and longest > ns.max_model_len and not (
            getattr(ns, "trace", None)):  # a replay fits each trace request to the limit itself
        raise ValueError(f"--input-tokens + --output-tokens ({int(longest)}) must fit --max-model-len "
                         f"({ns.max_model_len})")
    return SweepConfig(workload=workload, concurrencies=parse_int_list(ns.concurrency),
                       request_rate=ns.request_rate, burstiness=ns.burstiness, warmup_requests=ns.warmup,
                       goodput_ttft_ms=ns.goodput_ttft_ms, goodput_tpot_ms=ns.goodput_tpot_ms,
                       saturation_gain=ns.saturation_gain, request_timeout_s=ns.request_timeout,
                       hang_timeout_s=ns.hang_timeout, keep_samples=not ns.no_samples)


def _finish(run: dict[str, Any], ns: argparse.Namespace, store: Any, out: TextIO, err: TextIO) -> int:
    if store is not None:
        try:
            run["run_id"] = store.save_run(run)
            err.write(f"saved as run {run['run_id']} in {getattr(store, 'path', 'the results store')}\n")
        except Exception as exc:  # noqa: BLE001 - the run JSON must still be written and printed
            err.write(f"warning: could not save the run in the results store: {exc}\n")
    if ns.out:
        Path(ns.out).write_text(json.dumps(run, indent=1), encoding="utf-8")
        err.write(f"wrote {ns.out}\n")
    if ns.json:
        out.write(json.dumps({**run, "points": [{k: v for k, v in p.items() if k != "samples"}
                                                for p in run["points"]]}, indent=1) + "\n")
    else:
        out.write(format_table(run) + "\n")
    code = EXIT_CODES.get(run["status"], 1)
    if code:
        err.write(f"probe {run['status']}: {run.get('error') or 'see notes'}\n")
    return code


def _endpoint(ns: argparse.Namespace) -> str | None:
    """``--endpoint`` as ProbeRequest takes it (replica URLs joined by commas); ValueError for ``--balance``
    without two or more replicas."""
    urls = split_endpoints(ns.endpoint) if ns.endpoint else ()
    if ns.balance is not None and len(urls) < 2:
        raise ValueError("--balance needs two or more --endpoint URLs (replicas)")
    return ",".join(urls) or None


def _request(ns: argparse.Namespace, config: SweepConfig, api_key: str | None) -> ProbeRequest:
    indices, visible = _gpu_indices(ns.tensor_parallel_size, ns.pipeline_parallel_size, ns.data_parallel_size,
                                    ns.gpu_ids)
    if ns.endpoint and ns.gpu_ids is not None:
        raise ValueError("--gpu-ids is for a managed server: an --endpoint's GPUs are its own")
    return ProbeRequest(config=config, model=ns.model, synthetic=ns.synthetic, endpoint=_endpoint(ns),
                        balance=ns.balance or "round-robin",
                        serve_args=tuple(serve_args_from(ns, synthetic=bool(ns.synthetic))),
                        vllm_python=ns.vllm_python, host=ns.host, port=ns.port,
                        served_model_name=ns.served_model_name, startup_timeout_s=ns.startup_timeout,
                        log_path=ns.log, gpu_indices=tuple(indices), vocab_size=ns.vocab_size, api_key=api_key,
                        backend=ns.api, trace=_trace(ns), visible_devices=None if ns.endpoint else visible)


def _search_config(ns: argparse.Namespace) -> SweepConfig:
    """The ``search`` command's config: ``run``'s workload with an :class:`SloSearch` as the plan."""
    if getattr(ns, "trace", None):
        raise ValueError("--trace is a flag of `run`: a search chooses the load itself")
    defaults = build_parser().parse_args(["run", "--model", "m"])
    for flag in ("concurrency", "request_rate", "saturation_gain", "requests"):
        if getattr(ns, flag) != getattr(defaults, flag):
            hint = " (use --min-requests)" if flag == "requests" else ""
            raise ValueError(f"--{flag.replace('_', '-')} is a flag of `run`: a search chooses the load "
                             f"itself{hint}")
    base = _config(ns)
    search = SloSearch(ttft_p99_target_ms=ns.ttft_p99_ms, tpot_p99_target_ms=ns.tpot_p99_ms,
                       by="request_rate" if ns.by == "rate" else "concurrency", start=ns.start,
                       growth=ns.growth, precision=ns.precision, max_points=ns.max_points,
                       min_value=ns.min_value, max_value=ns.max_value, max_concurrency=ns.max_concurrency)
    return dataclasses.replace(
        base, workload=dataclasses.replace(base.workload, num_requests=ns.min_requests), concurrencies=(1,),
        saturation_gain=0.0, stop_on_errors=False, min_point_duration_s=ns.min_point_seconds, search=search,
        goodput_ttft_ms=base.goodput_ttft_ms or search.ttft_p99_target_ms,
        goodput_tpot_ms=base.goodput_tpot_ms or search.tpot_p99_target_ms)


def _cmd_run(ns: argparse.Namespace, out: TextIO, err: TextIO, config: SweepConfig | None = None) -> int:
    settings = load_settings()
    require_enabled(settings)
    config = _config(ns) if config is None else config
    api_key = os.environ.get(ns.api_key_env) if ns.api_key_env else None
    if ns.api_key_env and not api_key:
        raise ValueError(f"--api-key-env {ns.api_key_env}: that environment variable is empty or unset")
    if not ns.endpoint and not (ns.vllm_python or settings.vllm_python):
        raise ValueError("--vllm-python (or env VLLM_PYTHON) is required: the interpreter of vLLM's environment")
    req = _request(ns, config, api_key)
    store = None if ns.no_store else _open_store(ns.db or settings.db_path)
    stop = threading.Event()

    def on_point(r: dict[str, Any]) -> None:
        if store is not None:
            with contextlib.suppress(Exception):  # the final save in _finish reports errors
                r["run_id"] = store.save_run(r)

    def log(msg: str) -> None:
        err.write(msg + "\n")
        err.flush()

    if not ns.endpoint:
        _require_gpus_exist(req.gpu_indices)
    lock = GpuLocks(settings.data_dir, req.gpu_indices or (0,))
    status = {"pid": os.getpid(), "host": socket.gethostname(), "phase": "running (CLI)",
              "model": ns.synthetic or ns.model, "started_at": _now(), "gpus": list(req.gpu_indices)}
    with _interrupts(stop), lock:
        if not ns.endpoint:  # one managed probe per GPU, also across the app and other terminals
            lock.acquire(status)
            if lock.reaped:
                log(f"stopped a vLLM server left by an earlier, killed probe (pids {lock.reaped})")

        def on_started(identity: dict[str, Any]) -> None:  # recorded so a later probe can reap it if we die
            if not ns.endpoint:
                lock.write_status({**status, "server": identity})

        run = execute(req, settings=settings, stop=stop, on_progress=ProgressBar(err), on_point=on_point,
                      on_started=on_started, log=log)
    return _finish(run, ns, store, out, err)


def _cmd_gpu(ns: argparse.Namespace, out: TextIO) -> int:
    snap = gpu_mod.inspect()
    if ns.json:
        out.write(json.dumps(gpu_mod.snapshot_to_dict(snap), indent=1) + "\n")
        return 0
    if not snap.available:
        out.write(snap.reason + "\n")
        return 0
    out.write(f"driver {snap.driver_version or '?'}, CUDA {snap.cuda_version or '?'}\n")
    for g in snap.gpus:
        if g.error:
            out.write(f"[{g.index}] {g.error}\n")
            continue
        out.write(f"[{g.index}] {g.name}  mem {g.memory_used_mib}/{g.memory_total_mib} MiB  util "
                  f"{g.utilization_pct}%  power {_fmt(g.power_w)}/{_fmt(g.power_limit_w)} W  "
                  f"{g.temperature_c} C  SM {g.sm_clock_mhz} MHz  mem {g.mem_clock_mhz} MHz\n")
        for pid, name, used in g.processes:
            out.write(f"      pid {pid} {name or '?'} {used if used is not None else '?'} MiB\n")
    return 0


def _cmd_import(ns: argparse.Namespace, out: TextIO) -> int:
    """Import a run JSON or a ``vllm bench serve`` result; anything the store refuses (over 64 MiB, not strict
    JSON, nested too deep, a wrong type where a number belongs) is one line on stderr and exit 2, and nothing
    is written (one transaction)."""
    store = _open_store(ns.db or load_settings().db_path)
    try:
        run_id, _kind = store.import_file(ns.file, label=ns.label)
    except sqlite3.Error as exc:
        raise ValueError(f"the results store could not save {ns.file}: {exc}") from None
    out.write(f"imported {ns.file} as run {run_id}\n")
    return 0


def _cmd_export(ns: argparse.Namespace, out: TextIO) -> int:
    text = _open_store(ns.db or load_settings().db_path).export_json(ns.run_id)
    if ns.out:
        Path(ns.out).write_text(text, encoding="utf-8")
    else:
        out.write(text + "\n")
    return 0


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code (errors are printed, never raised as tracebacks)."""
    out = out or sys.stdout
    err = err or sys.stderr
    ns = build_parser().parse_args(argv)
    try:
        if ns.command == "gpu":
            return _cmd_gpu(ns, out)
        if ns.command == "run":
            return _cmd_run(ns, out, err)
        if ns.command == "search":
            return _cmd_run(ns, out, err, config=_search_config(ns))
        if ns.command == "import":
            return _cmd_import(ns, out)
        if ns.command == "list":
            return cmd_list(ns, out)
        return _cmd_export(ns, out)
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130
    except ServerError as exc:
        err.write(f"error: {exc}\n")
        return 1
    except ProbeError as exc:
        err.write(f"error: {exc}\n")
        return 2 if isinstance(exc, ProbeDisabledError) else 1
    except (ValueError, KeyError, OSError) as exc:
        err.write(f"error: {exc}\n")
        return 2
