"""``python -m calculators prices [--search TEXT] [--update [--url URL]] [--forget] [--json]``.

Lists the API models of the price data (genai-prices) with their $/M rates, provider and our overlay's
flags (retirement date, successor), and says which data is in use. ``--update`` fetches the newest data
file (``--url``, else ``$SELFHOST_PRICES_URL``, else genai-prices' own URL), prints what changed and keeps
it in the user cache dir; offline it says so and the pinned data keeps working (exit 1). ``--forget``
deletes fetched data. Exit codes: 0 ok, 1 update failed (network or bad file), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from calculators import apiprices, catalog

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m calculators prices",
                description="API prices from the genai-prices database: list, search, update.")
    p.add_argument("--search", default="", metavar="TEXT", help="only models whose provider/id/name has every word")
    p.add_argument("--batch", action="store_true", help="show batch rates where the data has them")
    p.add_argument("--limit", type=int, default=50, help="at most this many models (default 50; 0: all)")
    p.add_argument("--update", action="store_true", help="fetch the newest price data and show what changed")
    p.add_argument("--url", default=None, help=f"data file URL for --update (default ${apiprices.URL_ENV} or "
                   "genai-prices' own)")
    p.add_argument("--forget", action="store_true", help="delete fetched data: back to the pinned data")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def _row(e: apiprices.ModelEntry, batch: bool) -> dict[str, object]:
    out: dict[str, object] = {"provider": e.provider_id, "model": e.model_id, "name": e.name,
                              "deprecated": e.deprecated}
    try:
        q = apiprices.quote(e.model_id, e.provider_id, batch)
    except apiprices.PriceDataError:
        q = None
    if q is not None:
        out |= {"mode": "batch" if q.batch else "interactive", "input_usd_per_mtok": q.base.input_usd_per_mtok,
                "cached_input_usd_per_mtok": q.base.cached_input_usd_per_mtok,
                "cache_write_usd_per_mtok": q.base.cache_write_usd_per_mtok,
                "output_usd_per_mtok": q.base.output_usd_per_mtok, "long_context_tokens": q.long_context_tokens}
    ov = catalog.overlay_for(e.provider_id, e.model_id)
    if ov is not None and ov.retires:
        out |= {"retires": ov.retires, "successor": ov.successor}
    return out


def _text(row: dict[str, object]) -> str:
    if "input_usd_per_mtok" not in row:
        return f"{row['provider']:<12} {row['model']:<44} (no per-token prices)"
    cw = row["cache_write_usd_per_mtok"]
    tier = f"  >{row['long_context_tokens']:,} tok: tier" if row["long_context_tokens"] else ""
    flag = f"  RETIRES {row['retires']}" if row.get("retires") else ""
    dep = "  [deprecated]" if row["deprecated"] else ""
    return (f"{row['provider']:<12} {row['model']:<44} in {row['input_usd_per_mtok']:g}  cache read "
            f"{row['cached_input_usd_per_mtok']:g}  write {'-' if cw is None else f'{cw:g}'}  out "
            f"{row['output_usd_per_mtok']:g} ({row['mode']}){tier}{flag}{dep}")


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["prices"]:
        args_in = args_in[1:]
    args = build_parser().parse_args(args_in)
    if args.limit < 0:
        print("error: --limit must be >= 0", file=sys.stderr)
        return 2
    if args.forget:
        print("fetched price data deleted" if apiprices.forget_update() else "no fetched price data to delete",
              file=sys.stderr)
    update: dict[str, object] | None = None
    if args.update:
        try:
            res = apiprices.update(args.url)
        except apiprices.PriceDataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        update = {"stored": str(res.path), "changes": [vars(c) for c in res.changes]}
    info = apiprices.data_info()
    rows = [_row(e, args.batch) for e in apiprices.search(args.search, args.limit or None)]
    if args.json:
        print(json.dumps({"data": vars(info) | {"label": info.label}, "update": update, "models": rows}, indent=2))
        return 0
    print(f"# {info.label}: {info.models} models from {info.providers} providers; $ per million tokens")
    if info.note:
        print(f"# note: {info.note}")
    if update is not None:
        changes = update["changes"]
        assert isinstance(changes, list)
        print(f"# updated: {len(changes)} change(s); stored in {update['stored']}")
        for c in changes[:200]:
            print(f"#   {c['kind']:<8} {c['key']}: {c['detail']}")
        if len(changes) > 200:
            print(f"#   ... {len(changes) - 200} more (--json lists all)")
    for row in rows:
        print(_text(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
