"""Time and peak memory of summarising a 1-million-request trace in each format (issue 10's scale goal:
under 15 s and under 1 GB on the 2-core dev VM), and of streaming it with the replay reader.

The traces are generated, seeded, in a temporary folder (or ``--keep DIR``), written in chunks so this
process stays small (a child's peak RSS would otherwise count what it inherits):

* **Azure CSV**: 1,000,000 requests over 24 h, a diurnal rate with minute-scale bursts (Poisson counts per
  minute), lognormal lengths (means about 1,150 input / 210 output tokens, as the public conversation trace);
* **Mooncake JSONL**: 1,000,000 requests over 24 h, multi-turn conversations that share a system-prompt
  block: each turn's hash ids are its conversation's previous prompt plus 1-26 new 512-token blocks; 60 %
  of requests open a new conversation, a conversation ends at 200 blocks; so about 39 % of prompt tokens
  repeat and a request has about 22 hash ids (11,000 tokens), near the public trace's 37 %, 24 and 12,000.

Each measurement is one fresh process (``python -m calculators traffic FILE --json``, or a loop over
``iter_requests``); wall time includes interpreter start-up and imports; peak RSS from ``os.wait4``.

Run: ``python benchmarks/bench_traces.py [--requests N] [--keep DIR] [--repeat 3]`` (generation takes a
minute or two; the files are about 40 MB and 170 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DAY_S = 86_400
SEED = 20261201


def _arrivals(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` sorted arrival times in seconds over a day: a diurnal rate (x0.4 to x1.6) times a lognormal
    burst factor per minute, Poisson counts per minute, uniform within the minute."""
    minutes = DAY_S // 60
    k = np.arange(minutes)
    shape = (1 + 0.6 * np.sin(2 * np.pi * (k / minutes - 0.3))) * rng.lognormal(0, 0.35, minutes)
    counts = rng.poisson(shape / shape.sum() * n)
    counts[-1] += n - counts.sum()  # exactly n (the last minute absorbs the rounding)
    counts = np.maximum(counts, 0)
    extra = n - counts.sum()
    counts[np.argmax(counts)] += extra
    t = np.repeat(k * 60.0, counts) + rng.uniform(0, 60, n)
    return np.sort(t)


def write_azure(path: Path, n: int, seed: int = SEED) -> None:
    rng = np.random.default_rng(seed)
    t = _arrivals(n, rng)
    stamps = np.datetime64("2026-11-30T00:00:00", "ns") + (t * 1e9).astype("timedelta64[ns]")
    n_in = np.clip(rng.lognormal(np.log(900), 0.75, n), 1, 10_000_000).astype(np.int64)
    n_out = np.clip(rng.lognormal(np.log(150), 0.8, n), 1, 10_000_000).astype(np.int64)
    with open(path, "w", encoding="utf-8") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for lo in range(0, n, 100_000):
            hi = min(lo + 100_000, n)
            text = np.datetime_as_string(stamps[lo:hi], unit="ns")
            f.write("".join(f"{s[:10]} {s[11:27]},{a},{b}\n"  # 7 fractional digits, as the public file
                            for s, a, b in zip(text, n_in[lo:hi].tolist(), n_out[lo:hi].tolist(), strict=True)))


def write_mooncake(path: Path, n: int, seed: int = SEED) -> None:
    rng = np.random.default_rng(seed)
    t_ms = np.round(_arrivals(n, rng) * 1000).astype(np.int64)
    new_blocks = rng.integers(1, 27, n).tolist()  # new 512-token blocks a turn
    last_partial = rng.integers(1, 513, n).tolist()  # tokens in the prompt's last block
    starts = (rng.random(n) < 0.6).tolist()  # a new conversation (under 2 turns each)
    pick = rng.random(n).tolist()
    n_out = np.clip(rng.lognormal(np.log(300), 0.6, n), 1, 10_000_000).astype(np.int64).tolist()
    next_id = 1  # 0: the shared system-prompt block
    live: list[list[int]] = []  # prompts of the conversations in progress
    lines: list[str] = []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            if starts[i] or not live:
                prompt = [0]
                slot = len(live)
                live.append(prompt)
                if len(live) > 2000:
                    live.pop(0)
                    slot -= 1
            else:
                slot = int(pick[i] * len(live))
                prompt = live[slot]
            ids = prompt + list(range(next_id, next_id + new_blocks[i]))
            next_id += new_blocks[i]
            if len(ids) > 200:
                live.pop(slot)
            else:
                live[slot] = ids
            n_in = (len(ids) - 1) * 512 + last_partial[i]
            lines.append(f'{{"timestamp": {t_ms[i]}, "input_length": {n_in}, "output_length": {n_out[i]}, '
                         f'"hash_ids": [{", ".join(map(str, ids))}]}}\n')
            if len(lines) == 50_000:
                f.write("".join(lines))
                lines.clear()
        f.write("".join(lines))


_STREAM = ("import sys; from calculators.traces import iter_requests\n"
           "n = sum(1 for _ in iter_requests(sys.argv[1])); print(n)")


def _run_child(argv: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + system), peak RSS in MiB and stdout of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{argv} exited {code}: {err.decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.decode()


def main() -> None:
    if sys.argv[1:2] == ["--generate"]:
        kind, path, n = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
        (write_azure if kind == "azure" else write_mooncake)(path, n)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="summary runs per file (best and worst printed)")
    ap.add_argument("--keep", type=Path, help="write the traces here and keep them (default: a temp folder)")
    ap.add_argument("--no-stream", action="store_true", help="skip the iter_requests runs")
    a = ap.parse_args()
    folder = a.keep or Path(tempfile.mkdtemp(prefix="bench-traces-"))
    folder.mkdir(parents=True, exist_ok=True)
    files = {"azure": folder / f"azure-{a.requests}.csv", "mooncake": folder / f"mooncake-{a.requests}.jsonl"}
    for kind, path in files.items():
        if not path.exists():  # in a child: this process stays small, so the children measured below
            t0 = time.perf_counter()  # inherit no memory that their peak RSS would count
            subprocess.run([sys.executable, __file__, "--generate", kind, str(path), str(a.requests)], check=True)
            print(f"generated {path.name}: {path.stat().st_size / 2**20:,.0f} MiB in {time.perf_counter() - t0:.0f} s",
                  flush=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    load_start = os.getloadavg()[0]
    print("| trace | MiB | step | wall s (best / worst) | CPU s (best / worst) | peak RSS MiB | result |")
    print("|---|---|---|---|---|---|---|")
    for kind, path in files.items():
        size = path.stat().st_size / 2**20
        runs = [_run_child(["-m", "calculators", "traffic", str(path), "--json"]) for _ in range(a.repeat)]
        d = json.loads(runs[0][3])
        walls = sorted(r[0] for r in runs)
        cpus = sorted(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        reuse = d["prefix_reuse_fraction"]
        print(f"| {kind} {d['requests']:,} requests | {size:,.0f} | summary (`traffic --json`) | "
              f"{walls[0]:.1f} / {walls[-1]:.1f} | {cpus[0]:.1f} / {cpus[-1]:.1f} | {rss:,.0f} | rpd {d['requests_per_day']:,.0f}, in mean/p99 "
              f"{d['input_tokens']:,.0f}/{d['input_tokens_p99']:,.0f}, peak/mean {d['peak_to_mean']:.2f}, "
              f"reuse {'n/a' if reuse is None else f'{reuse:.1%}'} |", flush=True)
        if not a.no_stream:
            wall, cpu, rss, out = _run_child(["-c", _STREAM, str(path)])
            print(f"| {kind} | {size:,.0f} | stream (`iter_requests`, replay) | {wall:.1f} | {cpu:.1f} | {rss:,.0f} | "
                  f"{int(out):,} requests |", flush=True)
    print(f"load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end (CPU s is what the work "
          "took; wall s grows with the neighbours' load)")
    if a.keep is None:
        for path in files.values():
            path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
