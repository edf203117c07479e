"""Mutation score of the calculators and the metric, workload and store modules, measured with mutmut.

Not part of ``make test``: it runs the chosen unit tests once per mutant and takes minutes to an hour.
mutmut (a maintained tool from PyPI, ``pip install mutmut==3.8.1``) is not in requirements-test.txt; install
it into the venv you run this with. The repository is left untouched: the tracked files are copied into a
scratch folder, a ``setup.cfg`` with a ``[mutmut]`` section is written there, and mutmut runs in it pinned to
ONE core (``taskset``, ``--max-children 1``, one BLAS thread) because the machine is shared.

    python benchmarks/mutation.py                                  # every module below
    python benchmarks/mutation.py --module calculators/cost.py     # one module (repeatable)
    python benchmarks/mutation.py --keep /tmp/mut                  # keep the scratch folder (mutmut show ...)

    python benchmarks/mutation.py --keep /tmp/mut --rerun old.json  # after adding tests: rerun the survivors

Prints one line per module, then each survivor's name (``--diffs``: its diff). Score = (killed + timeout) /
(all - skipped - not checked): a mutant that hangs is detected (make test's pytest-timeout fails it);
survivors and mutants no selected test covers ("no tests") count against it. Hypothesis runs the "mutation"
profile of tests/conftest.py (deterministic, 10 examples per property) so that one core gets through it in
about 25 minutes; each module's doctests run through ``benchmarks/mutation_doctests.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["MODULE_TESTS", "main"]

ROOT = Path(__file__).resolve().parents[1]

# module -> the fast unit tests that exercise it (no vLLM, no browser, no page tests)
# (each module's doctests too, through benchmarks/mutation_doctests.py: make test runs them)
DOCTESTS = "benchmarks/mutation_doctests.py"
MODULE_TESTS: dict[str, tuple[str, ...]] = {
    "calculators/cost.py": ("tests/unit/test_cost.py", "tests/unit/test_cost_contracts.py", DOCTESTS),
    "probes/load/metrics.py": ("tests/unit/test_metrics.py", "tests/unit/test_metrics_contracts.py", DOCTESTS),
    "probes/load/workload.py": ("tests/unit/test_workload.py", "tests/unit/test_workload_contracts.py", DOCTESTS),
    "probes/results/store.py": ("tests/unit/test_store.py", "tests/unit/test_store_contracts.py", DOCTESTS),
}
COPY_TOO = ("scenarios", "benchmarks", "ui", "pages", "app.py")


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line and (ROOT / line).is_file()]


def _write_config(work: Path, modules: list[str], tests: list[str]) -> None:
    lines = ["[mutmut]", "source_paths =", "    calculators", "    probes", "only_mutate ="]
    lines += [f"    {m}" for m in modules]
    lines += ["also_copy ="] + [f"    {p}" for p in COPY_TOO]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests]
    # no doctest collection of the mutated tree, no cache folder (the Hypothesis profile comes from the env)
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -o", "    addopts=",
              "    -o", "    filterwarnings=ignore"]
    lines += ["timeout_multiplier = 3.0", "timeout_constant = 5.0", ""]  # a hung mutant counts as killed
    (work / "setup.cfg").write_text("\n".join(lines))


def _statuses(work: Path) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work,
                         capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s+(\S+): (.+)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def _module_of(mutant: str, modules: list[str]) -> str:
    dotted = mutant.split(".x", 1)[0].split(".x_", 1)[0]
    for mod in modules:
        if dotted.startswith(mod[:-3].replace("/", ".")):
            return mod
    return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", action="append", choices=sorted(MODULE_TESTS),
                    help="module to mutate (repeatable; default: all)")
    ap.add_argument("--keep", type=Path, help="scratch folder to use and keep (default: a temp dir, removed)")
    ap.add_argument("--cpu", default="0", help="taskset CPU list for mutmut (default: 0, one core)")
    ap.add_argument("--json", type=Path, help="also write {mutant: status} here")
    ap.add_argument("--diffs", action="store_true", help="print each survivor's diff (one mutmut call each)")
    ap.add_argument("--rerun", type=Path, metavar="PREV.json",
                    help="rerun only the mutants not killed in a previous --json (after adding tests; use the same "
                         "--keep folder); killed ones keep their verdict, since adding tests cannot revive them")
    ns = ap.parse_args(argv)
    modules = ns.module or sorted(MODULE_TESTS)
    tests = sorted({t for m in modules for t in MODULE_TESTS[m] if (ROOT / t).exists()})
    work = ns.keep or Path(tempfile.mkdtemp(prefix="mutation-"))
    work.mkdir(parents=True, exist_ok=True)
    for rel in _tracked_files():
        dest = work / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    (work / "pyproject.toml").unlink(missing_ok=True)  # its pytest addopts would doctest the mutated tree
    _write_config(work, modules, tests)
    # one BLAS thread; Hypothesis deterministic with 10 examples per property (tests/conftest.py "mutation")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(work), "HYPOTHESIS_PROFILE": "mutation", "FUZZ_EXAMPLES": "10"}
    previous: dict[str, str] = json.loads(ns.rerun.read_text()) if ns.rerun else {}
    again = sorted(k for k, v in previous.items() if v != "killed")
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *again]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", ns.cpu, *cmd]
    t0 = time.monotonic()
    print(f"mutating {', '.join(modules)} with {', '.join(tests)} in {work}", flush=True)
    run = subprocess.run(cmd, cwd=work, env=env)
    wall_s = time.monotonic() - t0
    statuses = previous | {k: v for k, v in _statuses(work).items() if not previous or k in again}
    if ns.json:
        ns.json.write_text(json.dumps(statuses, indent=1, sort_keys=True))
    print(f"\nmutmut exit {run.returncode}, {wall_s / 60:.1f} min on CPU {ns.cpu}")
    print(f"{'module':32} {'mutants':>7} {'killed':>7} {'survived':>8} {'no tests':>8} {'timeout':>7} score")
    for mod in modules:
        mine = {k: v for k, v in statuses.items() if _module_of(k, modules) == mod}
        count = {s: sum(1 for v in mine.values() if v == s) for s in set(mine.values())}
        killed = count.get("killed", 0) + count.get("timeout", 0)  # a hang fails make test too (pytest-timeout)
        scored = sum(n for s, n in count.items() if s not in ("skipped", "not checked"))
        score = killed / scored if scored else float("nan")
        print(f"{mod:32} {len(mine):7} {killed:7} {count.get('survived', 0):8} {count.get('no tests', 0):8} "
              f"{count.get('timeout', 0):7} {score:.1%}  {count}")
    for name, status in sorted(statuses.items()):
        if status in ("killed", "timeout"):
            continue
        if not ns.diffs:
            print(f"{status}: {name}")
            continue
        diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work,
                              capture_output=True, text=True).stdout
        print(f"\n## {status}\n{diff.strip()}")
    if ns.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if run.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
