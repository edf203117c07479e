"""``python -m calculators fleet SCENARIO.toml [--trace FILE] [--cold-start-s S | --run RUN.json] [--json]``.

The fleet capacity plan of a scenario (``calculators.fleet``): replicas at mean and peak, the autoscaling
headroom that absorbs one cold start, the API fallback's share of traffic while scaling and during a replica
outage, and its cost. ``--trace`` gives the demand's shape over time (Azure CSV or Mooncake JSONL, scaled to
the scenario's requests/day; without it a synthetic day, stated as such). The cold start is ``--cold-start-s``,
or a probe run's measured ``cold_start_s`` (``--run``), else the seed article's 120 s (said so).
Text by default; ``--json`` prints ``fleet.plan_to_dict`` (``--timeline`` adds the per-bin series).
Exit codes: 0 on success, 2 on bad input (one line on stderr naming the file or the option).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from calculators import fleet
from calculators.scenario import load_toml

__all__ = ["main", "build_parser", "format_text"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse's default prints usage too)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(low: float, high: float, what: str):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = float("nan")
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"must be {what} in [{low:g}, {high:g}], got {text!r}")
        return v
    return parse


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > 1000:
        raise argparse.ArgumentTypeError(f"must be a whole number 0..1000, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m calculators fleet",
        description="Fleet capacity plan: replicas at mean and peak, autoscaling headroom for a cold start, "
        "and the share and cost of traffic sent to the API fallback while scaling or during an outage.",
        epilog="Traces: /work/shared/traces/ ; runs with a measured cold start: benchmarks/results/*/probe-*.json",
    )
    p.add_argument("scenario", help="path of a scenario TOML file")
    p.add_argument("--trace", metavar="FILE", help="a trace (Azure CSV / Mooncake JSONL) for demand over time")
    cold = p.add_mutually_exclusive_group()
    cold.add_argument("--cold-start-s", type=_number(0, 7 * 86400, "seconds"), metavar="S",
                      help="replica cold start in seconds (launch to serving)")
    cold.add_argument("--run", metavar="RUN.json", help="take the cold start a probe run measured (cold_start_s)")
    p.add_argument("--utilization", type=_number(0.01, 1, "a fraction"), default=fleet.DEFAULT_SCALE_UP_UTILIZATION,
                   help=f"scale-up trigger: utilization of ready replicas (default {fleet.DEFAULT_SCALE_UP_UTILIZATION})")
    p.add_argument("--replicas-down", type=_count, default=1, help="replicas lost in the outage case (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON (fleet.plan_to_dict)")
    p.add_argument("--timeline", action="store_true", help="with --json: add the per-bin demand/capacity series")
    return p


def _read_run(path: str) -> dict:
    from probes.results.schema import read_run_file  # noqa: PLC0415 - only when a run file is given

    return read_run_file(path)


def format_text(p: fleet.FleetPlan, cold_start_from: str) -> str:
    """A short human report of a plan."""
    lines = [
        f"replica capacity      {p.replica_req_per_s:,.3f} requests/s at the operating point",
        f"demand                mean {p.mean_req_per_s:,.3f} requests/s, peak {p.peak_req_per_s:,.3f}",
        f"replicas              {p.replicas_mean} at mean, {p.replicas_peak} at peak, "
        f"{p.replicas_peak_with_headroom} at peak with headroom",
        f"cold start            {p.cold_start_s:,.0f} s ({cold_start_from})",
        f"headroom              {p.headroom_replicas} replica(s) for a rise of {p.rise_req_per_s:,.3f} requests/s "
        f"within one cold start; scale up at <= {p.headroom_utilization:.0%} utilization at peak",
        f"fallback, scaling     {p.scaling_fallback_share:.3%} of requests (trigger {p.scale_up_utilization:.0%}), "
        f"${p.scaling_fallback_usd_per_month:,.2f}/month; with the headroom kept {p.headroom_fallback_share:.3%}",
        f"fallback, outage      {p.replicas_down} of {p.replicas_peak} down: {p.outage_fallback_share:.3%} of the "
        f"day's requests, {p.outage_fallback_share_at_peak:.1%} at peak, ${p.outage_usd_per_day:,.2f} per day down",
        f"autoscaled fleet      {p.mean_ready_replicas:,.2f} replicas on average",
        "assumptions:",
    ]
    return "\n".join(lines + [f"  - {a}" for a in p.assumptions])


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; ``argv`` may start with the subcommand name ``fleet`` (as ``__main__`` passes it)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["fleet"]:
        args_in = args_in[1:]
    args = build_parser().parse_args(args_in)
    if args.timeline and not args.json:
        print("error: --timeline needs --json", file=sys.stderr)
        return 2
    where = args.scenario
    try:
        scenario = load_toml(args.scenario)
        cold, cold_from = fleet.ARTICLE_COLD_START_S, "the article's 60-120 s, upper end; give --run or --cold-start-s"
        if args.cold_start_s is not None:
            cold, cold_from = args.cold_start_s, "typed"
        elif args.run is not None:
            where = args.run
            cold, cold_from = fleet.cold_start_from_run(_read_run(args.run), args.run), f"measured: {args.run}"
        t_s, name = None, ""
        if args.trace is not None:
            from calculators.traces import read_arrays  # noqa: PLC0415 - only with --trace

            where = args.trace
            a = read_arrays(args.trace)
            t_s, name = a.t_s, a.name
        where = args.scenario
        result = fleet.plan_from_scenario(scenario, cold_start_s=cold, trace_t_s=t_s, trace_name=name,
                                          scale_up_utilization=args.utilization, replicas_down=args.replicas_down)
    except ValueError as e:  # ScenarioError, TraceError, a run's check, a calculator's check
        msg = " ".join(str(e).splitlines())
        print(f"error: {msg}" if msg.startswith(where) or repr(where) in msg else f"error: {where}: {msg}",
              file=sys.stderr)
        return 2
    if args.json:
        out = fleet.plan_to_dict(result, timeline=args.timeline) | {"cold_start_from": cold_from}
        print(json.dumps(out, indent=2, allow_nan=False))
    else:
        print(format_text(result, cold_from))
    return 0


if __name__ == "__main__":
    sys.exit(main())
