"""Limits on untrusted files (a scenario TOML, a model's ``config.json``), read from disk, stdin or an upload.

Each limit is checked before the expensive step it protects, and each failure is a :class:`FileLimitError`
(a ``ValueError``) with a one-line message naming the file and what is wrong, never a codec or recursion
message:

* size: at most :data:`MAX_SCENARIO_BYTES` (256 KiB; our example scenarios are under 2 KB) and
  :data:`MAX_CONFIG_BYTES` (4 MiB; real ``config.json`` files are 1-50 KB), checked on the byte count before
  decoding or parsing (a file on disk: on its ``stat`` size and again on a bounded read);
* encoding: UTF-8, with or without a byte-order mark (Windows editors write one); a UTF-16/32 file is named
  as such;
* nesting: at most :data:`MAX_DEPTH` levels of tables/arrays (a scenario is 2 deep, a config.json about 6),
  checked without recursion after parsing; a parser that recurses first (``tomllib``, ``json``) is stopped
  by Python's recursion limit at a few hundred levels, which is reported as the same depth error;
* numbers: integers within TOML's own range, ``|n| <= 2**63 - 1``, named by key path (JSON is held to the
  same; a digit string over 1,000 long is refused before it is converted), floats finite (JSON's ``NaN``/``Infinity``/``1e400``
  refused).

>>> parse_json(b'\\xef\\xbb\\xbf{"a": 1}', limit=MAX_CONFIG_BYTES, what="config.json")
{'a': 1}
>>> parse_json("[" * 5000 + "]" * 5000, limit=MAX_CONFIG_BYTES, what="config.json")
Traceback (most recent call last):
...
calculators.filelimits.FileLimitError: config.json is nested deeper than 32 levels of arrays/objects
>>> parse_json('{"hidden_size": ' + "9" * 400 + "}", limit=MAX_CONFIG_BYTES, what="config.json")
Traceback (most recent call last):
...
calculators.filelimits.FileLimitError: config.json: a 400-digit number at hidden_size; integers must be within +-9223372036854775807
>>> check_size(50 * 2**20, MAX_SCENARIO_BYTES, "scenario file 'big.toml'")
Traceback (most recent call last):
...
calculators.filelimits.FileLimitError: scenario file 'big.toml' is 50.0 MiB, over the 256 KiB limit
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

__all__ = ["FileLimitError", "MAX_SCENARIO_BYTES", "MAX_CONFIG_BYTES", "MAX_DEPTH", "MAX_INT_ABS",
           "short", "check_size", "read_limited", "read_stream_limited", "decode_text", "check_tree",
           "parse_json"]

MAX_SCENARIO_BYTES = 256 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32
MAX_INT_ABS = 2**63 - 1
_MAX_PARSED_DIGITS = 1_000  # int() of a longer digit string is refused unparsed (its cost grows as n**2)


class FileLimitError(ValueError):
    """An untrusted file is too large, not UTF-8, nested too deep or holds an out-of-range number."""


def _digits(n: int) -> int:
    """Decimal digits of ``|n|``; past Python's 4,300-digit str() limit, from its bit length (within 1)."""
    return len(str(abs(n))) if n.bit_length() < 14_000 else int(n.bit_length() * 0.30103) + 1


def short(value: object, limit: int = 60) -> str:
    """``repr(value)`` on one line, at most ``limit`` characters; huge integers by their digit count.

    >>> short(10**400), short("x" * 100)
    ('a 401-digit number', "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...")
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"a {_digits(value)}-digit number"
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB" if n_bytes >= 2**20 else f"{n_bytes / 1024:.0f} KiB"


def check_size(n_bytes: int, limit: int, what: str) -> None:
    """FileLimitError when ``n_bytes`` is over ``limit``."""
    if n_bytes > limit:
        raise FileLimitError(f"{what} is {_size(n_bytes)}, over the {_size(limit)} limit")


def read_limited(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, refused by size before reading (stat) and while reading (at most limit + 1 bytes,
    so a pipe or a growing file cannot exceed it either). OSError is left to the caller."""
    p = Path(path)
    if p.is_file():
        check_size(os.stat(p).st_size, limit, what)
    with open(p, "rb") as f:
        return read_stream_limited(f, limit, what)


def read_stream_limited(stream: IO[bytes], limit: int, what: str) -> bytes:
    """At most ``limit`` bytes from a binary stream (stdin); FileLimitError if there are more."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise FileLimitError(f"{what} is over the {_size(limit)} limit")
    return data


def decode_text(data: bytes | str, what: str) -> str:
    """UTF-8 text, a leading byte-order mark dropped; FileLimitError naming the bad byte otherwise.

    >>> decode_text(b"\\xef\\xbb\\xbfa = 1", "s.toml"), decode_text("\\ufeffa = 1", "s.toml")
    ('a = 1', 'a = 1')
    >>> decode_text(b"caf\\xe9", "s.toml")
    Traceback (most recent call last):
    ...
    calculators.filelimits.FileLimitError: s.toml is not UTF-8 text (byte 0xe9 at offset 3); save it as UTF-8
    """
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if data[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        raise FileLimitError(f"{what} is UTF-32 text; save it as UTF-8")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise FileLimitError(f"{what} is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileLimitError(
            f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None


def _depth_error(what: str) -> FileLimitError:
    return FileLimitError(f"{what} is nested deeper than {MAX_DEPTH} levels of arrays/objects")


def _int_error(what: str, where: str, digits: int) -> FileLimitError:
    at = f" at {where}" if where else ""
    return FileLimitError(f"{what}: a {digits}-digit number{at}; integers must be within +-{MAX_INT_ABS}")


def check_tree(obj: Any, what: str, limit: int = MAX_DEPTH) -> None:
    """FileLimitError if ``obj`` nests dicts/lists deeper than ``limit`` or holds an integer beyond
    :data:`MAX_INT_ABS` (naming its key path); iterative, so any depth is safe.

    >>> check_tree({"traffic": {"requests_per_day": 10**30}}, "s.toml")
    Traceback (most recent call last):
    ...
    calculators.filelimits.FileLimitError: s.toml: a 31-digit number at traffic.requests_per_day; integers must be within +-9223372036854775807
    """
    stack: list[tuple[Any, int, str]] = [(obj, 1, "")]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, Mapping | list | tuple):
            if depth > limit:
                raise _depth_error(what)
            items = node.items() if isinstance(node, Mapping) else enumerate(node)
            for key, child in items:
                name = f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))
                stack.append((child, depth + 1, short(name, 80).strip("'\"")))
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_INT_ABS:
            raise _int_error(what, where, _digits(node))


def parse_json(data: bytes | str, *, limit: int, what: str) -> Any:
    """Untrusted JSON -> Python object within the size, encoding, strictness, number and depth limits."""
    check_size(len(data), limit, what)
    text = decode_text(data, what)

    def parse_int(s: str) -> int:
        if len(s.lstrip("-")) > _MAX_PARSED_DIGITS:
            raise _int_error(what, "", len(s.lstrip("-")))
        return int(s)

    def parse_float(s: str) -> float:
        v = float(s)
        if not math.isfinite(v):
            raise FileLimitError(f"{what}: number {short(s)} is out of range (must be finite)")
        return v

    def parse_constant(s: str) -> Any:
        raise FileLimitError(f"{what}: {s} is not a JSON number (NaN and Infinity are refused)")

    try:
        obj = json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except RecursionError:
        raise _depth_error(what) from None
    except json.JSONDecodeError as exc:
        raise FileLimitError(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    check_tree(obj, what)
    return obj
