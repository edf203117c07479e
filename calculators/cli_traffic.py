"""``python -m calculators traffic TRACE [--json] [--window-s 60]``: a production trace's traffic shape.

Reads an Azure LLM inference CSV or a Mooncake JSONL (``calculators.traces``; the format is detected from
the first line) and prints what a scenario's ``[traffic]`` needs (``calculators.traffic``): text by
default, ``--json`` for the keys of ``TrafficShape.to_dict``. Exit codes: 0 on success, 2 on a bad file or
argument (one line on stderr naming the file and line; no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from calculators.traffic import DEFAULT_WINDOW_S, TrafficShape, heavy_tail_notes, summarize_file

__all__ = ["main", "build_parser", "format_text"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse's default prints usage too)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _window(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m calculators traffic",
        description="Traffic shape of a production trace (Azure LLM inference CSV or Mooncake JSONL): "
        "requests/day, mean and p50/p90/p99 token lengths, peak-to-mean, prefix reuse.",
        epilog="Samples: /work/shared/traces/ (see its README for formats and licences).",
    )
    p.add_argument("trace", help="path of the trace file (.csv Azure or .jsonl Mooncake; detected from content)")
    p.add_argument("--json", action="store_true", help="print JSON (keys as in a scenario's [traffic])")
    p.add_argument("--window-s", type=_window, default=DEFAULT_WINDOW_S,
                   help=f"peak window in seconds (default {DEFAULT_WINDOW_S:g})")
    return p


def format_text(s: TrafficShape) -> str:
    """A short human report of a shape."""
    reuse = "n/a (no hash ids)" if s.prefix_reuse_fraction is None else f"{s.prefix_reuse_fraction:.1%}"
    lines = [
        f"trace                 {s.trace_name} ({s.format}, {s.requests:,} requests over {s.duration_s / 60:,.1f} min)",
        f"requests_per_day      {s.requests_per_day:,.0f}",
        f"input_tokens          mean {s.input_tokens:,.0f}  p50 {s.input_tokens_p50:,.0f}  "
        f"p90 {s.input_tokens_p90:,.0f}  p99 {s.input_tokens_p99:,.0f}",
        f"output_tokens         mean {s.output_tokens:,.0f}  p50 {s.output_tokens_p50:,.0f}  "
        f"p90 {s.output_tokens_p90:,.0f}  p99 {s.output_tokens_p99:,.0f}",
        f"peak_to_mean          {s.peak_to_mean:.2f} ({s.peak_window_requests:,} requests in the busiest "
        f"{s.window_s:g} s window)",
        f"prefix_reuse_fraction {reuse}",
    ]
    return "\n".join(lines + heavy_tail_notes(s))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; ``argv`` may start with the subcommand name ``traffic`` (as ``__main__`` passes it)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["traffic"]:
        args_in = args_in[1:]
    args = build_parser().parse_args(args_in)
    try:
        shape = summarize_file(args.trace, window_s=args.window_s)
    except ValueError as e:  # TraceError: names the file and the line
        msg = " ".join(str(e).splitlines())
        print(f"error: {msg}" if msg.startswith(args.trace) else f"error: {args.trace}: {msg}", file=sys.stderr)
        return 2
    print(json.dumps(shape.to_dict(), indent=2, allow_nan=False) if args.json else format_text(shape))
    return 0


if __name__ == "__main__":
    sys.exit(main())
