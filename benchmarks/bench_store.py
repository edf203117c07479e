"""The results store at team scale (issue 13): 10,000 generated runs from 20 hosts, on SQLite and on PostgreSQL;
how long ``python -m probes list`` and the Results page's first render take. Goal: each under 1 s.

What is timed, per backend (median and worst of ``--repeat`` runs, each a fresh store object, so each pays its
connection and schema check):

* ``probes list`` in process (``cli.main``): the default page (50 newest of 10,000 and the count), a filtered one
  (one host and one GPU kind) and the last page (``--offset 9950``); and the whole command as a new process
  (``python -m probes list``, interpreter start-up and imports included);
* the Results page's data query: what the page runs on its first render (open the store, the filter values,
  the count, the first page of 50 rows, and the newest run it shows in detail);
* the Results page's whole first render (Streamlit ``AppTest``: app.py switched to app_pages/4_Results.py), and the
  same with an empty store, so the store's share can be told from Streamlit's own.

Each generated run has 3 points with 8 per-request samples each (kept in ``run_samples``, never read by a
listing), 20 hosts, 4 GPU kinds, 6 models, dates over 180 days. PostgreSQL is a throwaway local cluster
(tests/pg_server.py: Debian's server, 127.0.0.1, fsync off; removed at the end).

Run: ``python benchmarks/bench_store.py [--runs 10000] [--repeat 5] [--out benchmarks/results/store-DATE.json]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from probes import cli  # noqa: E402
from probes.results.store import RUN_SCHEMA, ResultStore, RunFilter, open_store  # noqa: E402
from tests.pg_server import ThrowawayPostgres  # noqa: E402

HOSTS = tuple(f"gpu-box-{i:02d}" for i in range(1, 21))
GPUS = (("NVIDIA H100 80GB HBM3", 1), ("NVIDIA H100 80GB HBM3", 2), ("NVIDIA H200", 1), ("NVIDIA L4", 1),
        ("NVIDIA A100-SXM4-80GB", 4))
MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.3-70B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
          "Qwen/Qwen2.5-32B-Instruct", "mistralai/Mistral-Small-24B-Instruct-2501", "google/gemma-2-9b-it")


def generate(n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` runs spread over 20 hosts, GPU kinds, models and 180 days (seeded, so both backends get the same)."""
    rnd = random.Random(seed)
    start = datetime(2026, 6, 1, tzinfo=UTC)
    for i in range(n):
        gpu, count = rnd.choice(GPUS)
        points = []
        for c in (1, 8, 32):
            tps = rnd.uniform(50, 4000) * c ** 0.6
            points.append({
                "concurrency": c, "output_tokens_per_s": tps, "requests_per_s": tps / 256, "completed": 64,
                "failed": 0, "ttft_ms": {"median": rnd.uniform(10, 200), "p99": rnd.uniform(200, 900)},
                "tpot_ms": {"median": rnd.uniform(4, 30), "p99": rnd.uniform(30, 90)},
                "samples": [{"index": k, "success": True, "ttft_ms": rnd.uniform(10, 300),
                             "itl_ms": [rnd.uniform(4, 30) for _ in range(4)]} for k in range(8)],
            })
        yield {"schema": RUN_SCHEMA, "status": rnd.choice(("complete",) * 8 + ("partial", "failed")),
               "host": HOSTS[i % len(HOSTS)], "model": rnd.choice(MODELS), "weights": "synthetic",
               "gpu": {"name": gpu, "count": count}, "vllm_version": "0.26.0",
               "created_at": (start + timedelta(minutes=rnd.uniform(0, 180 * 24 * 60))).isoformat(timespec="seconds")
               .replace("+00:00", "Z"),
               "workload": {"input_tokens": 512, "output_tokens": 256, "num_requests": 64},
               "points": points, "best_point": max(points, key=lambda p: p["output_tokens_per_s"])}


def fill(url: str, n: int) -> float:
    """Store ``n`` generated runs (batches of 500, one transaction each); returns the seconds it took."""
    store = ResultStore(url)
    t0 = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for run in generate(n):
        batch.append(run)
        if len(batch) == 500:
            store.save_runs(batch)
            batch = []
    if batch:
        store.save_runs(batch)
    return time.perf_counter() - t0


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "max_s": max(times), "first_s": times[0]}


def cli_list(url: str, *extra: str) -> Callable[[], None]:
    def go() -> None:
        out = io.StringIO()
        code = cli.main(["list", "--db", url, *extra], out=out, err=io.StringIO())
        assert code == 0 and " of " in out.getvalue().splitlines()[-1], out.getvalue()[-200:]
    return go


def cli_process(url: str) -> Callable[[], None]:
    env = {**os.environ, "APP__PROBE__DB": url}  # not in argv: the URL carries the password

    def go() -> None:
        done = subprocess.run([sys.executable, "-m", "probes", "list"], cwd=ROOT, env=env, capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, done.stderr
    return go


def page_query(url: str) -> Callable[[], None]:
    """What app_pages/4_Results.py reads on its first render (no filter, page 1 of 50, the newest run in detail)."""
    def go() -> None:
        store = open_store(url)
        store.facets()
        filters = RunFilter()
        store.count_runs(filters)
        rows = store.list_runs(filters, limit=50, offset=0)
        if rows:
            store.get_run(rows[0]["id"])
    return go


def page_render(url: str) -> Callable[[], None]:
    import streamlit as st  # noqa: PLC0415
    from streamlit.testing.v1 import AppTest  # noqa: PLC0415

    def go() -> None:
        os.environ["APP__PROBE__DB"] = url
        st.cache_data.clear()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.switch_page("app_pages/4_Results.py").run()
        assert not at.exception, at.exception
    return go


def measure(url: str, empty_url: str, repeat: int, runs: int) -> dict[str, Any]:
    page_render(empty_url)()  # warm Streamlit's own imports once, so the first timed render is comparable
    return {
        "probes list (in process, page 1 of 50)": timed(cli_list(url), repeat),
        "probes list --host --gpu (in process)": timed(cli_list(url, "--host", "gpu-box-07", "--gpu",
                                                                "NVIDIA H100 80GB HBM3"), repeat),
        f"probes list --offset {runs - 50} (in process)": timed(cli_list(url, "--offset", str(runs - 50)), repeat),
        "python -m probes list (new process)": timed(cli_process(url), repeat),
        "Results page data query": timed(page_query(url), repeat),
        "Results page first render (AppTest)": timed(page_render(url), repeat),
        "Results page first render, empty store": timed(page_render(empty_url), repeat),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, help="write the numbers as JSON here")
    ns = ap.parse_args(argv)
    results: dict[str, Any] = {
        "runs": ns.runs, "hosts": len(HOSTS), "repeat": ns.repeat,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average "
                   f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at start, Python {platform.python_version()}",
        "date": datetime.now(UTC).date().isoformat(), "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp, ThrowawayPostgres() as pg:
        for backend, url, empty in (("sqlite", str(Path(tmp) / "r.sqlite"), str(Path(tmp) / "empty.sqlite")),
                                    ("postgresql", pg.fresh_url(), pg.fresh_url())):
            ResultStore(empty)
            fill_s = fill(url, ns.runs)
            assert ResultStore(url).count_runs() == ns.runs
            numbers = measure(url, empty, ns.repeat, ns.runs)
            results["backends"][backend] = {"fill_s": fill_s, **numbers}
            print(f"\n{backend}: {ns.runs:,} runs stored in {fill_s:.1f} s")
            for name, t in numbers.items():
                print(f"  {name:45s} median {t['median_s'] * 1000:8.1f} ms   worst {t['max_s'] * 1000:8.1f} ms")
    os.environ.pop("APP__PROBE__DB", None)
    results["machine"] += f"; {', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end"
    print(f"\n{results['machine']}")
    if ns.out:
        ns.out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {ns.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
