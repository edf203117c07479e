"""Uncertainty (issue 11 item 4): how fast the Break-even page's "Uncertainty" expander computes, whether 2,000
Monte Carlo samples are enough, and the bootstrap interval of every stored run point.

``.venv/bin/python benchmarks/bench_uncertainty.py``. Prints three markdown tables:

1. time of ``uncertainty.analyse`` (corners, 2,000 samples, tornado) and ``savings_band_vs_volume`` (2,000
   samples x 80 volumes) per example scenario, default ranges, median and worst of 15 runs after a warm-up
   (what a cache miss costs the page);
2. Monte Carlo percentiles at 2,000 samples (seed 0) against 200,000 (seed 1), as % of the spread p95 - p5;
3. percentile-bootstrap 95% interval of output tokens/s for each point of each ``benchmarks/results`` run.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calculators import uncertainty  # noqa: E402
from calculators.scenario import load_toml  # noqa: E402

__all__ = ["main"]


def _time(fn, repeats: int = 15) -> tuple[float, float]:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3, max(ts) * 1e3


def main() -> int:
    examples = sorted((ROOT / "scenarios").glob("*.toml"))
    print("| scenario | inputs varied | corners | analyse ms (median / worst) | volume band ms (median / worst) |")
    print("|---|---|---|---|---|")
    for path in examples:
        s = load_toml(path)
        r = uncertainty.ranges_from_pct(s, uncertainty.DEFAULT_PCT)
        a = _time(lambda s=s, r=r: uncertainty.analyse(s, r))
        b = _time(lambda s=s, r=r: uncertainty.savings_band_vs_volume(s, r, points=80))
        print(f"| {path.stem} | {len(r)} | {2 ** len(r)} | {a[0]:.1f} / {a[1]:.1f} | {b[0]:.1f} / {b[1]:.1f} |")

    print("\n| scenario | p5 / p50 / p95 at 2,000 | at 200,000 | largest gap, % of p95 - p5 |")
    print("|---|---|---|---|")
    for path in examples:
        s = load_toml(path)
        r = uncertainty.ranges_from_pct(s, uncertainty.DEFAULT_PCT)
        small, big = uncertainty.analyse(s, r, n=2000, seed=0).mc, uncertainty.analyse(s, r, n=200_000, seed=1).mc
        a = (small.savings_p5, small.savings_p50, small.savings_p95)
        b = (big.savings_p5, big.savings_p50, big.savings_p95)
        gap = max(abs(x - y) for x, y in zip(a, b, strict=True)) / (b[2] - b[0]) * 100
        print(f"| {path.stem} | {' / '.join(f'{x:,.0f}' for x in a)} | {' / '.join(f'{x:,.0f}' for x in b)} "
              f"| {gap:.1f} |")

    print("\n| run | concurrency | requests | measured tok/s | 95% interval | half-width |")
    print("|---|---|---|---|---|---|")
    for path in sorted((ROOT / "benchmarks" / "results").glob("*/probe-*.json")):
        run = json.loads(path.read_text())
        for p in run["points"]:
            if not p.get("samples"):
                continue
            ci = uncertainty.throughput_ci_from_samples(p["samples"], p["duration_s"])
            print(f"| {path.parent.name}/{path.stem} | {p['concurrency']} | {ci.n_obs} | "
                  f"{p['output_tokens_per_s']:,.1f} | {ci.low:,.1f} - {ci.high:,.1f} | "
                  f"±{(ci.high - ci.low) / 2 / ci.estimate:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
