"""On a GPU box: does the probe leave a real vLLM healthy, and why did its shared-prefix TTFT differ from vLLM's?

Run where vLLM is importable by ``--vllm-python`` (default: this interpreter), e.g. on the lent H200::

    python3 benchmarks/gpu_probe_trust.py --out-dir OUT [--synthetic meta-llama/Llama-3.1-8B-Instruct]

One vLLM server (synthetic weights, prefix caching ON, vLLM's default) is started and always stopped by
``probes.target.server.VllmServer``. Against it, as a user would, through the CLI (``python -m probes run
--endpoint URL``, a subprocess):

1. **Safe endpoint mode.** A default-style sweep with ``--api auto`` (text prompts for a vLLM endpoint) and
   one with ``--api vllm-token-ids`` (ids learned from the server, never guessed). Before and after, the
   server's ``/metrics`` counters of HTTP responses by status class are read: the probe must add no 4xx
   and no 5xx, and ``/health`` must still answer 200 at the end.
2. **Shared-prefix TTFT.** The workload of the report that found +25 % TTFT against ``vllm bench serve``:
   1,536-token shared prefix + 512 unique tokens, 128 out, concurrency 32, 96 requests. Three variants, in
   alternation, ``--rounds`` times: ``vllm bench serve`` (random dataset, one fixed prefix, its initial test
   request warms it), ours with the warm-up caching the same prefix (today's default), and ours with a cold
   prefix (new seed, no warm-up: what every point did when prefixes were salted per point).

3. **No orphans** (``--sigkill``, its own vLLM): ``python -m probes run --synthetic ...`` is started as a
   user would, SIGKILLed once its vLLM holds GPU memory, and the script polls (bounded) until no process
   of vLLM remains and the GPU memory is back.

Everything lands in ``--out-dir``: the run JSONs, bench result files, the server log and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.target.server import VllmServer  # noqa: E402
from probes.target.synthetic import write_model_dir  # noqa: E402

__all__ = ["main", "status_counts"]

ROOT = Path(__file__).resolve().parents[1]
_STATUS = re.compile(r'^http_requests_total\{([^}]*)\}\s+([0-9.eE+]+)', re.M)


def status_counts(metrics_text: str) -> dict[str, float]:
    """HTTP responses by status class from vLLM's ``/metrics`` (prometheus-fastapi-instrumentator).

    >>> status_counts('http_requests_total{handler="/v1/completions",method="POST",status="2xx"} 3.0\\n'
    ...               'http_requests_total{handler="/health",method="GET",status="2xx"} 2.0\\n'
    ...               'http_requests_total{handler="/v1/completions",method="POST",status="4xx"} 1.0\\n')
    {'2xx': 5.0, '4xx': 1.0}
    """
    out: dict[str, float] = {}
    for labels, value in _STATUS.findall(metrics_text):
        m = re.search(r'status="([^"]+)"', labels)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(value)
    return out


def _counts(base_url: str) -> dict[str, float]:
    return status_counts(requests.get(f"{base_url}/metrics", timeout=10).text)


def _probe(base_url: str, out: Path, name: str, args: list[str]) -> dict[str, Any]:
    argv = [sys.executable, "-m", "probes", "run", "--endpoint", base_url, "--no-store", "--json",
            "--out", str(out / f"{name}.json"), *args]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    (out / f"{name}.log").write_text(proc.stdout[-20000:] + "\n--- stderr ---\n" + proc.stderr[-20000:])
    run = json.loads((out / f"{name}.json").read_text()) if (out / f"{name}.json").exists() else {}
    pts = run.get("points", [])
    return {"rc": proc.returncode, "wall_s": round(time.perf_counter() - t0, 1), "status": run.get("status"),
            "vocabulary": run.get("vocabulary"), "request_kind": run.get("request_kind"),
            "points": [{k: p.get(k) for k in ("concurrency", "completed", "failed", "output_tokens_per_s",
                                               "steady_output_tokens_per_s", "output_length_mismatches",
                                               "client_cpu_fraction", "client_bound")}
                       | {"median_ttft_ms": (p.get("ttft_ms") or {}).get("median"),
                          "median_tpot_ms": (p.get("tpot_ms") or {}).get("median")} for p in pts]}


def _bench(python: str, base_url: str, model: str, tokenizer: str, out: Path, name: str, *, prefix: int,
           inp: int, outp: int, n: int, c: int, seed: int) -> dict[str, Any]:
    argv = [python, "-m", "vllm.entrypoints.cli.main", "bench", "serve", "--backend", "vllm",
            "--base-url", base_url, "--endpoint", "/v1/completions", "--model", model, "--tokenizer", tokenizer,
            "--dataset-name", "random", "--random-prefix-len", str(prefix), "--random-input-len", str(inp),
            "--random-output-len", str(outp), "--random-range-ratio", "0", "--num-prompts", str(n),
            "--max-concurrency", str(c), "--request-rate", "inf", "--ignore-eos", "--seed", str(seed),
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
            "--save-result", "--result-dir", str(out), "--result-filename", f"{name}.json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    (out / f"{name}.log").write_text(proc.stdout[-20000:] + "\n--- stderr ---\n" + proc.stderr[-20000:])
    path = out / f"{name}.json"
    if proc.returncode != 0 or not path.exists():
        return {"error": f"vllm bench serve exited {proc.returncode}", "tail": proc.stderr[-1500:]}
    d = json.loads(path.read_text())
    return {k: d.get(k) for k in ("completed", "output_throughput", "median_ttft_ms", "p99_ttft_ms",
                                  "median_tpot_ms", "median_itl_ms", "total_input_tokens")}


def _vllm_pids() -> list[int]:
    pids = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if b"vllm" in cmd and b"gpu_probe_trust" not in cmd and stat[stat.rfind(")") + 2] != "Z":
            pids.append(int(d.name))
    return pids


def _gpu_used_mib() -> int | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=False).stdout
        return int(out.split()[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def sigkill_check(synthetic: str, python: str, out: Path) -> dict[str, Any]:
    """SIGKILL a probing CLI once its vLLM holds GPU memory; poll until no vLLM process remains."""
    before = _gpu_used_mib()
    argv = [sys.executable, "-m", "probes", "run", "--synthetic", synthetic, "--vllm-python", python,
            "--concurrency", "1", "--requests", "64", "--output-tokens", "512", "--no-store",
            "--max-model-len", "4096", "--log", str(out / "sigkill-vllm.log")]
    env = dict(os.environ, APP__PROBE__DATA_DIR=str(out / "data"))
    with open(out / "sigkill-cli.log", "wb") as log:
        cli = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    t0 = time.monotonic()
    loaded = None
    while time.monotonic() - t0 < 420 and cli.poll() is None:
        used = _gpu_used_mib()
        if used is not None and before is not None and used - before > 8000 and "vLLM ready" in (
                out / "sigkill-cli.log").read_text(errors="replace"):
            loaded = used
            break
        time.sleep(2)
    pids = _vllm_pids()
    res: dict[str, Any] = {"gpu_used_mib_before": before, "gpu_used_mib_loaded": loaded,
                           "vllm_pids_before_kill": pids, "cli_rc_before_kill": cli.poll()}
    os.kill(cli.pid, 9)
    cli.wait(timeout=30)
    t1 = time.monotonic()
    while time.monotonic() - t1 < 90 and _vllm_pids():
        time.sleep(0.5)
    res["vllm_pids_after"] = _vllm_pids()
    res["seconds_until_gone"] = round(time.monotonic() - t1, 1)
    time.sleep(3)
    res["gpu_used_mib_after"] = _gpu_used_mib()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synthetic", default="meta-llama/Llama-3.1-8B-Instruct")
    ap.add_argument("--vllm-python", default=os.environ.get("VLLM_PYTHON") or sys.executable)
    ap.add_argument("--vllm-arg", action="append", default=["--max-model-len", "4096"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--skip-safety", action="store_true")
    ap.add_argument("--skip-prefix", action="store_true")
    ap.add_argument("--sigkill", action="store_true", help="only the SIGKILL check (its own vLLM)")
    ns = ap.parse_args(argv)
    out = Path(ns.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if ns.sigkill:
        res = sigkill_check(ns.synthetic, ns.vllm_python, out)
        (out / "sigkill.json").write_text(json.dumps(res, indent=1))
        print("sigkill", json.dumps(res), flush=True)
        return 0 if not res["vllm_pids_after"] else 1
    model_dir = write_model_dir(ns.synthetic, out / "model")
    name = "llama8b"
    summary: dict[str, Any] = {"synthetic": ns.synthetic, "serve_args": ns.vllm_arg, "safety": {}, "prefix": []}
    server = VllmServer(model=str(model_dir), serve_args=["--load-format", "dummy", *ns.vllm_arg],
                        vllm_python=ns.vllm_python, served_model_name=name, log_path=str(out / "vllm.log"),
                        startup_timeout_s=900)
    with server:
        url = server.base_url
        summary["cold_start_s"] = server.cold_start_s
        summary["vllm_version"] = server.version()
        print(f"vLLM {summary['vllm_version']} ready after {server.cold_start_s:.0f} s", flush=True)
        if not ns.skip_safety:
            for label, extra in (("endpoint-auto", []), ("endpoint-token-ids", ["--api", "vllm-token-ids"])):
                before = _counts(url)
                res = _probe(url, out, label, ["--concurrency", "1,4,16", "--input-tokens", "512",
                                                "--output-tokens", "128", *extra])
                after = _counts(url)
                res["http_status_delta"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                res["health_after"] = requests.get(f"{url}/health", timeout=10).status_code
                res["server_alive"] = server.is_running()
                summary["safety"][label] = res
                print(label, json.dumps(res["http_status_delta"]), "health", res["health_after"],
                      [(p["concurrency"], p["completed"], p["failed"]) for p in res["points"]], flush=True)
        if not ns.skip_prefix:
            common = ["--concurrency", "32", "--requests", "96", "--input-tokens", "2048", "--output-tokens",
                      "128", "--shared-prefix", "1", "--shared-prefix-tokens", "1536", "--api", "vllm-token-ids",
                      "--vocab-size", "128000", "--saturation-gain", "0"]
            for r in range(ns.rounds):
                row: dict[str, Any] = {"round": r}
                row["vllm_bench"] = _bench(ns.vllm_python, url, name, str(model_dir), out, f"bench-prefix-r{r}",
                                           prefix=1536, inp=512, outp=128, n=96, c=32, seed=100 + r)
                row["ours_warm_prefix"] = _probe(url, out, f"ours-warm-r{r}", [*common, "--seed", str(200 + r)])
                row["ours_cold_prefix"] = _probe(url, out, f"ours-cold-r{r}",
                                                 [*common, "--seed", str(300 + r), "--warmup", "0"])
                summary["prefix"].append(row)
                print(json.dumps(row, default=str)[:1500], flush=True)
        summary["server_alive_at_end"] = server.is_running()
        summary["health_at_end"] = requests.get(f"{url}/health", timeout=10).status_code
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print("done; server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
