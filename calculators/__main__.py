"""``python -m calculators SUBCOMMAND ...``: the calculators, headless.

Subcommands: ``evaluate`` (break-even report for a scenario TOML), ``fit`` (will the model fit),
``roofline`` (throughput ceilings), ``claim`` (is a claimed tokens/s physically possible), ``prices``
(API prices from genai-prices: list, search, update), ``traffic`` (a production trace's traffic shape),
``fleet`` (replicas, autoscaling headroom for a cold start, API fallback share and cost), ``options`` (named
options side by side), ``report`` (the decision brief, one HTML file).
Each prints JSON (or text) on stdout; bad input exits 2 with a message naming the field.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_COMMANDS = {
    "evaluate": ("calculators.cli_cost", "evaluate: break-even report for a scenario TOML"),
    "fit": ("calculators.cli_capacity", "fit: will a model fit on a GPU (memory, KV cache)"),
    "roofline": ("calculators.cli_capacity", "roofline: decode/prefill throughput ceilings"),
    "claim": ("calculators.cli_capacity", "claim: is a claimed tokens/s physically possible"),
    "prices": ("calculators.cli_prices", "prices: API model prices (genai-prices): list, search, --update"),
    "traffic": ("calculators.cli_traffic", "traffic: traffic shape of a production trace (Azure CSV, Mooncake JSONL)"),
    "fleet": ("calculators.cli_fleet", "fleet: replicas at mean/peak, cold-start headroom, API fallback share and cost"),
    "options": ("calculators.cli_options", "options: named options side by side (cost, $/M, replicas, sources)"),
    "report": ("calculators.cli_report", "report: the decision brief of a scenario as one self-contained HTML file"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in _COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"unknown subcommand {argv[0]!r}", file=sys.stderr)
        print("usage: python -m calculators {" + ",".join(_COMMANDS) + "} ...", file=sys.stderr)
        for _mod, text in _COMMANDS.values():
            print("  " + text, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib

    module = importlib.import_module(_COMMANDS[argv[0]][0])
    try:
        return int(module.main(argv))
    except BrokenPipeError:  # `... | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
