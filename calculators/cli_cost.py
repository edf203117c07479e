"""``python -m calculators evaluate SCENARIO.toml``: print the break-even report of a scenario as JSON.

``-`` reads the TOML from stdin. Exit codes: 0 on success, 2 on any bad input (one line on stderr that
names the file and the field, no traceback). A file over 256 KiB, not UTF-8 (a byte-order mark is fine),
nested over 32 deep or with an integer beyond 64 bits is refused before it is evaluated
(``calculators.filelimits``). The JSON is ``calculators.cost.report_to_dict`` with indent 2.

``--band`` adds an ``uncertainty`` key (``calculators.uncertainty.uncertainty_to_dict``): the savings band at
the low/high corners, a seeded Monte Carlo (p5/p50/p95) and the tornado ranking, for the assumed +/- % of
``uncertainty.DEFAULT_PCT``; ``--ranges "otps=20,gpu_usd=4..6"`` (the Break-even page's ``unc`` URL parameter)
varies exactly the inputs it names instead. ``--samples`` and ``--seed`` set the Monte Carlo (2000, 0: the
page's). ``--throughput-run RUN.json [--point C]`` (implies --band) takes the throughput range from a measured
run instead of a %: the percentile-bootstrap 95% interval of that point's output tokens/s over its requests
(``uncertainty.point_throughput_ci``; default point: the fastest with samples), applied to the scenario's
throughput by its relative width; the interval is printed as ``uncertainty.throughput_ci``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from calculators import uncertainty
from calculators.cost import evaluate, report_to_dict
from calculators.filelimits import MAX_SCENARIO_BYTES, read_stream_limited
from calculators.scenario import load_toml, loads_toml

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse's default prints usage too)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m calculators evaluate",
        description="Break-even report for a scenario TOML file: monthly API vs self-host cost, replicas, "
        "utilization, break-even volume, verdict and reasons, printed as JSON.",
        epilog="Sections: [traffic] [api] [self_host] [context]; see scenarios/*.toml for examples.",
    )
    p.add_argument("scenario", help="path of a scenario TOML file, or - to read it from stdin")
    p.add_argument("--indent", type=int, default=2, help="JSON indent (default 2; 0 for one line)")
    p.add_argument("--band", action="store_true",
                   help="add the uncertainty band and tornado ranking for the default assumed ranges "
                   "(" + uncertainty.format_ranges(uncertainty.DEFAULT_PCT) + ", in +/- %%)")
    p.add_argument("--ranges", metavar="SPEC",
                   help="vary these inputs instead (implies --band): KEY=PCT (+/- %%) or KEY=LOW..HIGH, "
                   "comma-separated; keys: " + ", ".join(uncertainty.RANGE_KEYS))
    p.add_argument("--throughput-run", metavar="RUN.json",
                   help="throughput range from this probe run's bootstrap interval (implies --band)")
    p.add_argument("--point", type=int, metavar="C", help="the run's point at concurrency C (default: fastest)")
    p.add_argument("--samples", type=int, default=2000, help="Monte Carlo samples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="Monte Carlo seed (default 0)")
    return p


def _read_run(path: str) -> dict:
    from probes.results.schema import read_run_file  # noqa: PLC0415 - only when a run file is given

    return read_run_file(path)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; ``argv`` may start with the subcommand name ``evaluate`` (as ``__main__`` passes it)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["evaluate"]:
        args_in = args_in[1:]
    args = build_parser().parse_args(args_in)
    try:
        if args.scenario == "-":
            scenario = loads_toml(read_stream_limited(sys.stdin.buffer, MAX_SCENARIO_BYTES, "stdin"), what="stdin")
        else:
            scenario = load_toml(args.scenario)
        report = report_to_dict(evaluate(scenario))
    except ValueError as e:  # ScenarioError (with the file limits) or a calculator's check
        msg = " ".join(str(e).splitlines())
        named = repr(args.scenario) in msg or args.scenario == "-" and "stdin" in msg
        where = "stdin" if args.scenario == "-" else args.scenario
        print(f"error: {msg}" if named else f"error: {where}: {msg}", file=sys.stderr)
        return 2
    if args.band or args.ranges is not None or args.throughput_run is not None:
        option = "--ranges"
        try:
            ranges = (uncertainty.ranges_from_pct(scenario, uncertainty.DEFAULT_PCT) if args.ranges is None
                      else uncertainty.parse_ranges(scenario, args.ranges))
            ci_out = None
            if args.throughput_run is not None:
                option = "--throughput-run"
                point, ci = uncertainty.point_throughput_ci(_read_run(args.throughput_run), args.point)
                ranges["otps"] = uncertainty.relative_range(scenario.self_host.output_tokens_per_s, ci)
                ci_out = {"run": args.throughput_run, "concurrency": point.get("concurrency"),
                          "measured_output_tokens_per_s": point.get("output_tokens_per_s")} | vars(ci)
            option = "--samples"
            out = uncertainty.uncertainty_to_dict(uncertainty.analyse(scenario, ranges, n=args.samples,
                                                                      seed=args.seed))
        except ValueError as e:  # a bad --ranges/--throughput-run/--samples: name the option, not the file
            print(f"error: {option}: {' '.join(str(e).splitlines())}", file=sys.stderr)
            return 2
        if ci_out is not None:
            out["throughput_ci"] = ci_out
        report["uncertainty"] = out
    indent = args.indent if args.indent > 0 else None
    print(json.dumps(report, indent=indent, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
