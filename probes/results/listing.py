"""``python -m probes list``: stored runs, newest first, filtered by host, GPU kind, model and date, one page at a
time. Its parser and command live here, apart from :mod:`probes.cli`, so that listing imports only the store:
``python -m probes list`` goes straight to :func:`main` (no load generator, aiohttp or numpy to import first), and
``probes.cli`` mounts the same parser and command among its others.

>>> import argparse
>>> sub = argparse.ArgumentParser().add_subparsers(dest="command")
>>> add_list_parser(sub)
>>> ns = sub.choices["list"].parse_args(["--host", "box-1", "--host", "box-2", "--since", "2026-12-01"])
>>> filter_from(ns)
RunFilter(hosts=('box-1', 'box-2'), gpus=(), models=(), since=datetime.date(2026, 12, 1), until=None)
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from probes.errors import ProbeError

__all__ = ["add_list_parser", "filter_from", "cmd_list", "main"]


def _iso_date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date YYYY-MM-DD, got {text!r}") from None


def _int_at_least(low: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text}")
        return value
    return parse


def add_list_parser(sub: Any) -> None:
    """Add the ``list`` subcommand to ``sub`` (an ``add_subparsers()`` result)."""
    ls = sub.add_parser("list", help="list stored runs (newest first; filters; pages)")
    ls.add_argument("--db", metavar="PATH_OR_URL",
                    help="SQLite file or postgresql:// URL (default APP__PROBE__DB, then a PostgreSQL DATABASE_URL)")
    ls.add_argument("--host", action="append", default=[], help="only runs from this host (repeatable)")
    ls.add_argument("--gpu", action="append", default=[], metavar="GPU_KIND",
                    help="only this GPU kind, e.g. 'NVIDIA H100 80GB HBM3' (repeatable)")
    ls.add_argument("--model", action="append", default=[], help="only this model (repeatable)")
    ls.add_argument("--since", type=_iso_date, metavar="YYYY-MM-DD", help="runs created on or after (UTC)")
    ls.add_argument("--until", type=_iso_date, metavar="YYYY-MM-DD", help="runs created on or before (UTC)")
    ls.add_argument("--limit", type=_int_at_least(1), default=50, help="runs per page (default 50)")
    ls.add_argument("--offset", type=_int_at_least(0), default=0, help="skip this many runs (next pages)")


def filter_from(ns: argparse.Namespace) -> Any:
    """The store's :class:`~probes.results.store.RunFilter` of the parsed ``list`` arguments."""
    from probes.results.store import RunFilter  # noqa: PLC0415 - the store only when listing

    if ns.since and ns.until and ns.since > ns.until:
        raise ValueError(f"--since {ns.since} is after --until {ns.until}")
    return RunFilter(hosts=tuple(ns.host), gpus=tuple(ns.gpu), models=tuple(ns.model), since=ns.since,
                     until=ns.until)


def cmd_list(ns: argparse.Namespace, out: TextIO) -> int:
    """One line per run (``key=value``), newest first, one page; then which runs were shown of how many and the
    next page's ``--offset``; when nothing matches, the hosts, GPU kinds and models there are."""
    from probes.results.store import RunFilter, open_store  # noqa: PLC0415
    from probes.settings import load_settings  # noqa: PLC0415

    filters = filter_from(ns)
    with open_store(ns.db or load_settings().db_path) as store:
        rows = store.list_runs(filters, limit=ns.limit, offset=ns.offset)
        total = store.count_runs(filters)
        facets = store.facets() if not total and filters != RunFilter() else None
    if not total:
        if facets is None:
            out.write("no runs stored\n")
        else:
            out.write(f"no runs match; stored hosts: {', '.join(facets['hosts']) or '-'}; GPU kinds: "
                      f"{', '.join(facets['gpus']) or '-'}; models: {', '.join(facets['models']) or '-'}\n")
        return 0
    for row in rows:
        out.write("  ".join(f"{k}={v}" for k, v in row.items()) + "\n")
    shown = f"runs {ns.offset + 1}-{ns.offset + len(rows)}" if rows else f"no runs past offset {ns.offset}"
    more = f" (next page: --offset {ns.offset + ns.limit})" if ns.offset + len(rows) < total else ""
    out.write(f"{shown} of {total:,}{more}\n")
    return 0


def main(argv: Sequence[str], *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``python -m probes list ARGS`` without importing the rest of the CLI; exit codes as :func:`probes.cli.main`
    (2 bad arguments, 1 a store that cannot be opened or read), errors one line on stderr."""
    out = out or sys.stdout
    err = err or sys.stderr
    ap = argparse.ArgumentParser(prog="python -m probes")
    add_list_parser(ap.add_subparsers(dest="command", required=True))
    ns = ap.parse_args(["list", *argv])
    try:
        return cmd_list(ns, out)
    except ProbeError as exc:
        err.write(f"error: {exc}\n")
        return 1
    except (ValueError, KeyError, OSError) as exc:
        err.write(f"error: {exc}\n")
        return 2
