"""Time and peak memory of the calculators CLIs on the hostile files of issue 9 (and a good file for scale).

Each case is one ``python -m calculators evaluate FILE`` or ``fit --model FILE --gpu h100-sxm`` process;
the wall time and the child's peak RSS (``os.wait4``) are printed with its exit code and stderr line.
Unit tests check that these files are refused by their size, depth or numbers, never by how long it took.

Recorded on the 2-core dev VM shared with two other sessions (2026-12-01), Python 3.11.7; "before" is this
script run on a snapshot of main at cdd23b9 (peak RSS of the CLI process, wall time including start-up):

| file | before: exit, wall, peak RSS, what | now: exit, wall, peak RSS, what |
|---|---|---|
| good scenario (scale) | 0, 0.21 s, 28 MB | 0, 0.23 s, 29 MB |
| scenario, 50 MB array | 2, 38.4 s, 212 MB, "unknown key 'padding'" | 2, 0.24 s, 28 MB, "is 50.0 MiB, over the 256 KiB limit" |
| scenario, 100,000 deep | 1, RecursionError traceback | 2, 0.24 s, "nested deeper than 32 levels" |
| scenario, 400-digit int | 1, OverflowError traceback | 2, 0.25 s, "a 400-digit number at traffic.requests_per_day" |
| scenario with UTF-8 BOM | 2, "malformed TOML: Invalid statement" | 0 |
| config.json, 50 MB | 2, 0.38 s, 129 MB, "missing required field(s)" | 2, 0.27 s, 29 MB, "is 50.0 MiB, over the 4.0 MiB limit" |
| config.json, 100,000 deep | 1, RecursionError traceback | 2, 0.28 s, "nested deeper than 32 levels" |
| config.json, 400-digit int | 1, OverflowError traceback | 2, 0.27 s, "a 400-digit number at hidden_size" |
| config.json with UTF-8 BOM | 2, "Unexpected UTF-8 BOM (decode using utf-8-sig)" | 0 |

(Issue 9's 50 MB scenario took 73 s and 285 MB; its content is not recorded, the array above is one such file.)

Run: ``python benchmarks/bench_file_limits.py`` (a few seconds; writes only to a temporary folder).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str]) -> tuple[int, float, float, str]:
    """Exit code, wall seconds, peak RSS in MB, last stderr line of one CLI process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "calculators", *argv], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode("utf-8", "replace")
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    lines = err.strip().splitlines()
    return proc.returncode, wall, usage.ru_maxrss / 1024, (lines[-1] if lines else "")[:110]


def main() -> None:
    good_toml = (ROOT / "scenarios" / "support-bot-8b.toml").read_text(encoding="utf-8")
    good_cfg = (ROOT / "tests" / "fixtures" / "configs" / "llama-3.1-8b.json").read_text(encoding="utf-8")
    assert '"hidden_size": 4096' in good_cfg and "requests_per_day = 20000" in good_toml
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        # The 50 MB files are written in 1 MiB chunks: a forked child's peak RSS counts the parent's memory
        # at fork time, so this process never holds them.
        mib = b"x" * 2**20
        ones = b"1, " * (2**20 // 3)  # a 50 MB array: parsed in full before the unknown section is refused
        files: dict[str, Callable[[], Iterable[bytes]]] = {
            "good.toml": lambda: [good_toml.encode()],
            "big.toml": lambda: [good_toml.encode(), b"[padding]\nx = [", *([ones] * 50), b"1]\n"],
            "deep.toml": lambda: [("a = " + "[" * 100_000).encode()],
            "bigint.toml": lambda: [good_toml.replace("requests_per_day = 20000",
                                                      "requests_per_day = 1" + "0" * 399).encode()],
            "bom.toml": lambda: [b"\xef\xbb\xbf", good_toml.encode()],
            "big.json": lambda: [b'{"pad": "', *([mib] * 50), b'"}'],
            "deep.json": lambda: [('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()],
            "bigint.json": lambda: [good_cfg.replace('"hidden_size": 4096',
                                                     '"hidden_size": 1' + "0" * 399).encode()],
            "bom.json": lambda: [b"\xef\xbb\xbf", good_cfg.encode()],
        }
        print(f"{'file':<12} {'exit':>4} {'wall s':>7} {'peak MB':>8}  stderr")
        for name, chunks in files.items():
            path = d / name
            with open(path, "wb") as f:
                for chunk in chunks():
                    f.write(chunk)
            argv = (["evaluate", str(path)] if name.endswith(".toml")
                    else ["fit", "--model", str(path), "--gpu", "h100-sxm"])
            rc, wall, rss, line = _run(argv)
            print(f"{name:<12} {rc:>4} {wall:>7.2f} {rss:>8.1f}  {line.replace(str(d), '.')}")


if __name__ == "__main__":
    main()
