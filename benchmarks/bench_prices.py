"""How much the genai-prices adapter costs a fresh process (issue 15): import time, first data load, lookups.

Each measurement runs in a NEW interpreter (``subprocess``, argv list) so nothing is cached by an earlier
import; prints the median over ``--runs`` processes of each step, measured with ``time.perf_counter``
inside the child, and the child's peak RSS. Nothing is asserted (unit tests do not check speed).

Steps: ``import calculators.scenario`` (what every page imports: must not import genai-prices),
``import calculators.apiprices`` (the adapter alone: lazy, no data yet), ``data_info()`` (imports
genai-prices and builds the 2,300-model snapshot), one ``lookup`` (a scenario's model), ``search("")`` over
every model (the picker's list), ``evaluate`` of the support-bot example.

Run: ``.venv/bin/python benchmarks/bench_prices.py [--runs 5]`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import calculators.scenario
t1 = time.perf_counter()
light = "genai_prices" not in sys.modules
import calculators.apiprices as ap
t2 = time.perf_counter()
ap.data_info()
t3 = time.perf_counter()
ap.lookup("gpt-6-sol", batch=True)
t4 = time.perf_counter()
n = len(ap.search(""))
t5 = time.perf_counter()
from calculators.cost import evaluate
evaluate(calculators.scenario.DEFAULT_SCENARIO)
t6 = time.perf_counter()
print(json.dumps({"import_scenario_s": t1 - t0, "scenario_import_is_light": light,
                  "import_apiprices_s": t2 - t1, "first_data_info_s": t3 - t2, "lookup_s": t4 - t3,
                  "search_all_s": t5 - t4, "models": n, "evaluate_s": t6 - t5,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", _CHILD], cwd=ROOT, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    keys = [k for k in runs[0] if k.endswith("_s") or k.endswith("_mib")]
    print(f"{args.runs} fresh processes, {runs[0]['models']} models; "
          f"import calculators.scenario leaves genai-prices unimported: {all(r['scenario_import_is_light'] for r in runs)}")
    for k in keys:
        vals = [r[k] for r in runs]
        unit = "MiB" if k.endswith("_mib") else "ms"
        scale = 1 if unit == "MiB" else 1000
        print(f"  {k:<22} median {statistics.median(vals) * scale:8.1f} {unit}   max {max(vals) * scale:8.1f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
