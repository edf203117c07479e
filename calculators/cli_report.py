"""``python -m calculators report SCENARIO_OR_OPTIONS.toml --out brief.html``: write the decision brief
(``calculators.brief``).

One self-contained HTML file (charts inline, no network fetches) a finance partner can open offline and print.
The file is a scenario, or an options set (``calculators.options``: a top-level ``[[option]]`` array), whose
brief shows every option and puts the break-even, band and assumptions on its cheapest self-host option.
The uncertainty band uses the assumed +/- % of ``uncertainty.DEFAULT_PCT`` unless ``--ranges`` names the inputs
that vary (the Break-even page's ``unc`` link text, as ``evaluate --ranges``); ``--samples``/``--seed`` set the
Monte Carlo (2000, 0: the page's). ``--band`` is accepted for symmetry with ``evaluate``: the band is always in.

Exit codes: 0 written, 2 bad input (one line on stderr naming the file, the field or the option; nothing is
written). ``--out`` must not be a directory; the file is written to a temporary name beside it and renamed, so a
reader never sees half a brief. ``--out -`` prints the HTML on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from calculators import uncertainty
from calculators.filelimits import MAX_SCENARIO_BYTES
from calculators.scenario import Scenario, load_toml

__all__ = ["main", "build_parser", "write_atomically", "load_source"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m calculators report",
                description="Write the decision brief of a scenario TOML as one self-contained HTML file.")
    p.add_argument("scenario", help="path of a scenario TOML file, or of an options file ([[option]] tables)")
    p.add_argument("--out", required=True, help="the HTML file to write (- for stdout)")
    p.add_argument("--band", action="store_true", help="(default) include the uncertainty band")
    p.add_argument("--ranges", metavar="SPEC", help="vary these inputs instead of the defaults: KEY=PCT or "
                   "KEY=LOW..HIGH, comma-separated; keys: " + ", ".join(uncertainty.RANGE_KEYS))
    p.add_argument("--samples", type=int, default=2000, help="Monte Carlo samples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="Monte Carlo seed (default 0)")
    return p


def _mode_for(target: Path) -> int:
    """The mode a plain ``open(target, "w")`` would give: the existing file's, else 0666 less the umask."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename (ValueError naming
    the path when it is a directory or cannot be written)."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"--out {path!r} is a directory; give a file name")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"--out {path!r}: folder {str(folder)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, _mode_for(target))  # mkstemp makes it 0600; a brief is for sharing, as any file written
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise ValueError(f"--out {path!r}: {e.strerror or e}") from None


def load_source(path: str) -> Any:
    """A scenario, or an options set when the file has a top-level ``option`` array (ValueError naming the file
    and field otherwise; the readers apply the file limits)."""
    import tomllib  # noqa: PLC0415

    raw = None
    try:
        if Path(path).stat().st_size <= MAX_SCENARIO_BYTES:
            raw = tomllib.loads(Path(path).read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        raw = None  # the scenario reader says what is wrong with it
    if isinstance(raw, dict) and "option" in raw:
        from calculators.options import load_options  # noqa: PLC0415

        return load_options(path)
    return load_toml(path)


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["report"]:
        args_in = args_in[1:]
    args = build_parser().parse_args(args_in)
    from calculators import brief  # noqa: PLC0415 - plotly only once the arguments are good

    if not 1 <= args.samples <= 1_000_000:
        print(f"error: --samples must be in 1..1000000, got {args.samples}", file=sys.stderr)
        return 2
    try:
        source = load_source(args.scenario)
    except ValueError as e:
        msg = " ".join(str(e).splitlines())
        print(f"error: {msg}" if repr(args.scenario) in msg else f"error: {args.scenario}: {msg}", file=sys.stderr)
        return 2
    try:
        scenario: Scenario = brief.focus(source)[0]
    except ValueError as e:
        print(f"error: {args.scenario}: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return 2
    try:
        ranges = (uncertainty.ranges_from_pct(scenario, uncertainty.DEFAULT_PCT) if args.ranges is None
                  else uncertainty.parse_ranges(scenario, args.ranges))
    except ValueError as e:
        print(f"error: --ranges: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return 2
    try:
        page = brief.build_brief(source, ranges=ranges, samples=args.samples, seed=args.seed)
    except ValueError as e:
        print(f"error: {args.scenario}: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return 2
    if args.out == "-":
        sys.stdout.write(page)
        return 0
    try:
        write_atomically(args.out, page)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({len(page.encode()) / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
