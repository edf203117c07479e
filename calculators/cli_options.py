"""``python -m calculators options OPTIONS.toml [--json]``: the options side by side, as a table or JSON.

The file is an options set (``calculators.options``: ``[traffic]`` once and one ``[[option]]`` table per option);
``-`` reads it from stdin. The numbers are ``calculators.options.compare_options``'s, the same the Options page
shows. Exit codes: 0 on success, 2 on bad input (one line on stderr naming the option and field).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, NoReturn

from calculators.filelimits import MAX_SCENARIO_BYTES, FileLimitError, read_stream_limited
from calculators.options import OptionsError, compare_options, load_options, options_from_toml

__all__ = ["main", "build_parser", "comparison_records"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m calculators options",
                description="Compare named options (GPU kinds, models, API vendors) over the same traffic: "
                "monthly cost, $/M input and output, replicas, utilization and where each number came from.",
                epilog="See scenarios/options/three-ways.toml for an example file.")
    p.add_argument("file", help="path of an options TOML file, or - to read it from stdin")
    p.add_argument("--json", action="store_true", help="print JSON records (one per option) instead of a table")
    return p


def _clean(v: Any) -> Any:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    if hasattr(v, "item"):  # numpy / pandas scalars
        return _clean(v.item())
    try:
        import pandas as pd  # noqa: PLC0415

        if v is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    return v


def comparison_records(df: Any) -> list[dict[str, Any]]:
    """The comparison frame as JSON-ready records (NaN / NA become None)."""
    return [{k: _clean(v) for k, v in row.items()} for row in df.astype(object).to_dict("records")]


def _money(v: Any) -> str:
    return "-" if v is None else f"${v:,.0f}" if abs(v) >= 100 else f"${v:,.2f}"


def _table(records: list[dict[str, Any]]) -> str:
    head = ("option", "deployment", "$/month", "$/M in", "$/M out", "replicas", "util.", "throughput from")
    rows = [head]
    for r in records:
        util = "-" if r["utilization"] is None else f"{r['utilization']:.0%}"
        src = r["throughput_kind"] or "-"
        if r["run_id"]:
            src += f" (run {r['run_id']})"
        if r["latency_at_slo"]:
            src += f" at {r['latency_at_slo']}"
        rows.append((r["option"], r["deployment"], _money(r["monthly_usd"]), _money(r["usd_per_m_input"]),
                     _money(r["usd_per_m_output"]), "-" if r["replicas"] is None else str(r["replicas"]), util, src))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["options"]:
        args_in = args_in[1:]
    ns = build_parser().parse_args(args_in)
    try:
        if ns.file == "-":
            oset = options_from_toml(read_stream_limited(sys.stdin.buffer, MAX_SCENARIO_BYTES, "stdin"),
                                     what="stdin")
        else:
            oset = load_options(ns.file)
        records = comparison_records(compare_options(oset))
    except (OptionsError, FileLimitError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # a price lookup or evaluation refused a value
        print(f"error: {ns.file}: {e}", file=sys.stderr)
        return 2
    if ns.json:
        print(json.dumps({"name": oset.name, "options": records}, indent=2, ensure_ascii=False))
    else:
        if oset.name:
            print(oset.name)
        print(_table(records) if records else "(no options)")
    return 0
