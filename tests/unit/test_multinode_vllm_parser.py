"""Every ``vllm serve`` argv the multi-node plans print, parsed by a real vLLM's own argument parser.

The parser is vLLM's (``make_arg_parser`` on a ``FlexibleArgumentParser``, as its API server builds it), run in
``VLLM_PYTHON`` (the CPU build of the integration tests, 0.32.0; the parallel flags are the same in 0.26.0's
``vllm/engine/arg_utils.py``, lines 972-1075). An unknown flag or a bad value makes it exit 2; the parsed values must
be the ones the plan means. No server is started. Skipped without ``VLLM_PYTHON`` (a failure under ``CI``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from calculators.catalog import gpu
from calculators.modelspec import model
from calculators.multinode import Topology, plan_cluster

pytestmark = pytest.mark.integration

PARSE = """\
import json, sys
from vllm.utils.argparse_utils import FlexibleArgumentParser
try:
    from vllm.entrypoints.launchers.cli_args import make_arg_parser  # 0.32
except ImportError:
    from vllm.entrypoints.openai.cli_args import make_arg_parser  # 0.26
keys = ("model", "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "data_parallel_size_local",
        "data_parallel_backend", "distributed_executor_backend", "max_model_len", "max_num_seqs", "host", "port")
out = []
for argv in json.loads(sys.stdin.read()):
    ns = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    out.append({k: getattr(ns, k, None) for k in keys})
print("PARSED " + json.dumps(out))
"""

TOPOLOGIES = [Topology(1, 1, 2), Topology(2, 1, 2), Topology(8, 2, 1, 2, 8), Topology(2, 1, 4, 2, 4),
              Topology(4, 2, 2, 4, 4), Topology(16, 1, 1, 2, 8)]


def _vllm_python() -> str:
    python = os.environ.get("VLLM_PYTHON", "")
    if not python or not Path(python).exists():
        if os.environ.get("CI"):
            pytest.fail("VLLM_PYTHON must name vLLM's interpreter in CI")
        pytest.skip("VLLM_PYTHON is unset or missing: no vLLM parser to check against")
    return python


def _serve_argv(topo: Topology) -> list[str]:
    arch = model("meta-llama/Llama-3.3-70B-Instruct" if topo.gpus_per_replica >= 4 else
                 "meta-llama/Llama-3.1-8B-Instruct")
    plan = plan_cluster(arch, gpu("h100-sxm"), topo, max_model_len=4096)
    (cmd,) = [c for c in plan.commands if "serve" in c.argv]
    argv = list(cmd.argv)
    return argv[argv.index("serve") + 1:]


def _value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_vllms_own_parser_accepts_every_plan_and_reads_what_it_means() -> None:
    plans = [_serve_argv(t) for t in TOPOLOGIES]
    api_argv = [["--model", a[0], *a[1:]] for a in plans]  # the API server takes --model; `vllm serve` a position
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    out = subprocess.run([_vllm_python(), "-c", PARSE], input=json.dumps(api_argv), text=True, capture_output=True,
                         env=env, timeout=540, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("PARSED ")]
    parsed = json.loads(line.removeprefix("PARSED "))
    for topo, argv, got in zip(TOPOLOGIES, plans, parsed, strict=True):
        assert got["model"] == argv[0]
        assert got["tensor_parallel_size"] == topo.tensor_parallel_size
        assert got["pipeline_parallel_size"] == topo.pipeline_parallel_size
        assert got["data_parallel_size"] == topo.data_parallel_size
        local = _value(argv, "--data-parallel-size-local")
        assert got["data_parallel_size_local"] == (int(local) if local else None)
        assert got["data_parallel_backend"] == (_value(argv, "--data-parallel-backend") or "mp")
        assert got["distributed_executor_backend"] == _value(argv, "--distributed-executor-backend")
        assert got["max_model_len"] == 4096 and got["host"] == "127.0.0.1" and got["port"] == 8000
        if topo.nodes > 1 and topo.data_parallel_size == 1:
            assert got["distributed_executor_backend"] == "ray"
        if topo.nodes > 1 and topo.data_parallel_size > 1:
            assert got["data_parallel_backend"] == "ray"
