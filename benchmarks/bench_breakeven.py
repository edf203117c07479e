"""Time one "input change" on the Break-even page: evaluate() plus the three chart DataFrames.

Goal (issue 2): under 50 ms of calculator time. Prints median and max over repeated runs, measured with
``time.perf_counter``; nothing is asserted (unit tests do not check speed). Each run changes an input
(requests/day), as a user moving a slider would, so nothing is reused between runs.

Run: ``.venv/bin/python benchmarks/bench_breakeven.py [--runs 200]`` from the repository root.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calculators import cost, curves  # noqa: E402
from calculators.scenario import load_toml, replace_field  # noqa: E402

__all__ = ["time_one_change", "main"]


def time_one_change(s) -> dict[str, float]:
    """Seconds spent in each calculator call for one scenario."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    cost.evaluate(s)
    t1 = time.perf_counter()
    curves.cost_vs_volume(s)
    t2 = time.perf_counter()
    curves.usd_per_mtok_vs_utilization(s)
    t3 = time.perf_counter()
    curves.savings_heatmap(s)
    t4 = time.perf_counter()
    out.update(evaluate=t1 - t0, cost_vs_volume=t2 - t1, usd_per_mtok_vs_utilization=t3 - t2,
               savings_heatmap=t4 - t3, total=t4 - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--scenario", default=str(Path(__file__).resolve().parents[1] / "scenarios/rag-assistant-70b.toml"))
    args = p.parse_args(argv)
    base = load_toml(args.scenario)
    time_one_change(base)  # warm-up: imports, first pandas allocations
    runs = []
    for i in range(args.runs):
        s = replace_field(base, "traffic.requests_per_day", base.traffic.requests_per_day * (1 + i / args.runs))
        runs.append(time_one_change(s))
    print(f"{args.runs} input changes, scenario {Path(args.scenario).name} (ms, perf_counter):")
    for key in runs[0]:
        values = [r[key] * 1e3 for r in runs]
        print(f"  {key:<28} median {statistics.median(values):7.2f}   max {max(values):7.2f}")
    total = statistics.median(r["total"] for r in runs) * 1e3
    print(f"goal: total < 50 ms -> {'met' if total < 50 else 'NOT met'} (median {total:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
