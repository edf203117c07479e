"""``python -m calculators evaluate SCENARIO.toml``: print the break-even report of a scenario as JSON.

``-`` reads the TOML from stdin. Exit codes: 0 on success, 2 on any bad input (one line on stderr that
names the file and the field, no traceback). A file over 256 KiB, not UTF-8 (a byte-order mark is fine),
nested over 32 deep or with an integer beyond 64 bits is refused before it is evaluated
(``calculators.filelimits``). The JSON is ``calculators.cost.report_to_dict`` with indent 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

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
    return p


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
    indent = args.indent if args.indent > 0 else None
    print(json.dumps(report, indent=indent, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
