"""Production request traces: the Azure LLM inference CSV and the Mooncake JSONL, read and validated.

Two readers share one set of rules (the patterns and limits below, applied per value by ``_count``,
``_datetime_ns``, ``_timestamp_ms`` and ``_hash_ids`` and per column by ``read_arrays``):

* :func:`iter_requests` streams :class:`TraceRequest` records one line at a time (for replay; any size);
* :func:`read_arrays` reads the whole trace into numpy columns with pyarrow's streaming CSV/JSON readers,
  batch by batch, hash ids as one flat array plus offsets (for summaries; a million requests in seconds).

They agree on every file: the same requests, the same ``t_s``, and the same one-line :class:`TraceError`
for the same bad line (``read_arrays`` checks the rules on whole columns and, when one fails or pyarrow
refuses a block, re-reads the file with the streaming reader and returns its answer: the first bad line's
error, or the requests).

Formats (public samples and their licences: ``../shared/traces/README.md`` beside the checkout):

* **Azure** CSV, header exactly ``TIMESTAMP,ContextTokens,GeneratedTokens``; ``TIMESTAMP`` a wall-clock time
  ``YYYY-MM-DD HH:MM:SS[.fffffffff]`` (up to 9 fractional digits; the public files have 7), read as UTC;
  token counts whole numbers.
* **Mooncake** JSONL, one object a line: ``timestamp`` (ms since the trace start, a number),
  ``input_length``, ``output_length`` (whole numbers) and ``hash_ids`` (a list of integers, each one
  :data:`TRACE_BLOCK_TOKENS`-token prompt block; missing or null reads as ``[]``). Other keys are ignored;
  several objects on one line are read in order (pyarrow does so; the streaming reader follows).

Rules for both: blank lines are skipped; token counts in ``[0, MAX_TOKENS]`` (the scenario's own limit);
timestamps never go backwards (sort the file first: replay needs arrival order); at most
:data:`MAX_HASH_IDS` hash ids a request; a line at most :data:`MAX_LINE_BYTES`; a file at most ``max_bytes``
(:data:`MAX_TRACE_BYTES` from disk, :data:`MAX_TRACE_UPLOAD_BYTES` for an upload), checked before reading.

>>> rows = b'TIMESTAMP,ContextTokens,GeneratedTokens\\n2023-11-16 18:15:46.5,374,44\\n2023-11-16 18:15:48,396,109\\n'
>>> list(iter_requests(rows))
[TraceRequest(t_s=0.0, input_tokens=374, output_tokens=44, hash_ids=()), TraceRequest(t_s=1.5, input_tokens=396, output_tokens=109, hash_ids=())]
>>> read_arrays(rows).t_s.tolist()
[0.0, 1.5]
>>> list(iter_requests(rows + b'2023-11-16 18:15:47,5,x\\n', name="log.csv"))
Traceback (most recent call last):
...
calculators.traces.TraceError: log.csv: line 4: GeneratedTokens must be a whole number of tokens, got 'x'
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np

from calculators.filelimits import check_size, short

__all__ = [
    "TRACE_BLOCK_TOKENS",
    "MAX_TOKENS",
    "MAX_HASH_IDS",
    "MAX_LINE_BYTES",
    "MAX_TRACE_BYTES",
    "MAX_TRACE_UPLOAD_BYTES",
    "AZURE_HEADER",
    "TraceError",
    "TraceRequest",
    "TraceArrays",
    "Source",
    "detect_format",
    "iter_requests",
    "read_arrays",
    "arrays_from_requests",
]

TRACE_BLOCK_TOKENS = 512
"""Tokens in one Mooncake prompt block (one hash id)."""
MAX_TOKENS = 10_000_000
"""Largest input or output length of one request (``calculators.scenario``'s limit)."""
MAX_HASH_IDS = MAX_TOKENS // TRACE_BLOCK_TOKENS + 1
MAX_LINE_BYTES = 1 << 20
MAX_TRACE_BYTES = 1 << 30
"""A trace file read from disk (1 GiB: about 4 million Mooncake requests)."""
MAX_TRACE_UPLOAD_BYTES = 64 << 20
"""An uploaded trace: the app server's ``maxUploadSize`` (64 MiB: about 250,000 Mooncake requests)."""
AZURE_HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MAX_TIMESTAMP_MS = 1e15  # Mooncake: well inside float64's exact integers, so both readers compute alike
_NS = 1_000_000_000
# pyarrow block: 2 MiB single-threaded read a 1M-request Mooncake file as fast as 8 MiB threaded on 2 cores,
# with a peak of 150 MB instead of 400 MB (benchmarks/bench_traces.py)
_BLOCK_BYTES = 2 << 20

# The rules, as patterns both readers apply (Python's ``re`` per line, pyarrow's RE2 per column).
_DATETIME_RE = r"^([12][0-9]{3})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?$"
_COUNT_RE = r"^[0-9]{1,18}$"
_DATETIME = re.compile(_DATETIME_RE)
_COUNT = re.compile(_COUNT_RE)

Source = str | Path | bytes
"""A trace: a path on disk, or the bytes of an upload."""


class TraceError(ValueError):
    """A trace file is unreadable, too large or breaks a rule; one line naming the file and the line."""

    def __init__(self, name: str, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"{name}: line {line}: {message}" if line is not None else f"{name}: {message}")


@dataclass(frozen=True)
class TraceRequest:
    """One request of a trace. ``t_s``: arrival in seconds after the trace's first request."""

    t_s: float
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False)
class TraceArrays:
    """A whole trace as columns: request ``i`` has hash ids ``hash_ids[hash_offsets[i]:hash_offsets[i+1]]``.

    ``t_s`` float64 (non-decreasing, ``t_s[0] == 0``), token counts int64, ``hash_ids`` int32 when every id
    fits, else int64, ``hash_offsets`` int64 of length ``n + 1``. ``has_hash_ids``: any request has one.
    """

    name: str
    format: str
    t_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    hash_ids: np.ndarray
    hash_offsets: np.ndarray

    def __len__(self) -> int:
        return int(self.t_s.size)

    @property
    def has_hash_ids(self) -> bool:
        return bool(self.hash_ids.size)

    def request(self, i: int) -> TraceRequest:
        """Row ``i`` as the streaming reader yields it."""
        lo, hi = int(self.hash_offsets[i]), int(self.hash_offsets[i + 1])
        return TraceRequest(float(self.t_s[i]), int(self.input_tokens[i]), int(self.output_tokens[i]),
                            tuple(int(h) for h in self.hash_ids[lo:hi]))


# ---------------------------------------------------------------- opening


def _name(source: Source, name: str | None) -> str:
    if name:
        return name
    return "trace" if isinstance(source, bytes) else str(source)


def _open(source: Source, name: str, max_bytes: int) -> IO[bytes]:
    """A binary stream over the source, its size checked first; a UTF-8 byte-order mark skipped."""
    try:
        if isinstance(source, bytes):
            check_size(len(source), max_bytes, name)
            f: IO[bytes] = io.BytesIO(source)
        else:
            p = Path(source)
            if p.is_file():
                check_size(os.stat(p).st_size, max_bytes, name)
            f = open(p, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except OSError as e:
        raise TraceError(name, f"cannot read: {e.strerror or e}") from None
    except ValueError as e:  # FileLimitError
        raise TraceError(name, str(e).removeprefix(name).strip(": ")) from None
    if f.read(3) != codecs.BOM_UTF8:
        f.seek(0)
    return f


def _lines(f: IO[bytes], name: str, max_bytes: int) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line; a line over MAX_LINE_BYTES, a non-UTF-8 line or a file
    that grows past ``max_bytes`` (a pipe) is a TraceError."""
    total = 0
    lineno = 0
    while True:
        raw = f.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        lineno += 1
        total += len(raw)
        if len(raw) > MAX_LINE_BYTES:
            raise TraceError(name, f"longer than {MAX_LINE_BYTES // 1024} KiB", lineno)
        if total > max_bytes:
            raise TraceError(name, f"the file is over the {max_bytes / 2**20:.0f} MiB limit", lineno)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TraceError(name, f"not UTF-8 text (byte 0x{raw[e.start]:02x}); save it as UTF-8", lineno) from None
        if text.strip():
            yield lineno, text.rstrip("\r\n")


def _sniff(first: str) -> str | None:
    if first.lstrip().startswith("{"):
        return "mooncake"
    if tuple(first.split(",")) == AZURE_HEADER:
        return "azure"
    return None


def _not_a_trace(name: str, line: int | None) -> TraceError:
    return TraceError(name, f"not a trace: expected the Azure CSV header {','.join(AZURE_HEADER)!r} "
                            "or a Mooncake JSON object", line)


def detect_format(source: Source, *, name: str | None = None, max_bytes: int = MAX_TRACE_BYTES) -> str:
    """``"azure"`` or ``"mooncake"``, from the first non-blank line (the file name does not matter).

    >>> detect_format(b'{"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [0]}')
    'mooncake'
    >>> detect_format(b"time,in,out\\n", name="log.csv")
    Traceback (most recent call last):
    ...
    calculators.traces.TraceError: log.csv: line 1: not a trace: expected the Azure CSV header 'TIMESTAMP,ContextTokens,GeneratedTokens' or a Mooncake JSON object
    """
    name = _name(source, name)
    with _open(source, name, max_bytes) as f:
        for lineno, text in _lines(f, name, max_bytes):
            fmt = _sniff(text)
            if fmt is None:
                raise _not_a_trace(name, lineno)
            return fmt
    raise TraceError(name, "is empty: no requests")


# ---------------------------------------------------------------- the rules, one value at a time


def _count(name: str, lineno: int, field: str, value: object, *, csv_text: bool = False) -> int:
    """A token count within [0, MAX_TOKENS]: a JSON integer, or (``csv_text``) a CSV field of digits."""
    if csv_text and isinstance(value, str):
        if not _COUNT.match(value):
            raise TraceError(name, f"{field} must be a whole number of tokens, got {short(value)}", lineno)
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TraceError(name, f"{field} must be a whole number of tokens, got {short(value)}", lineno)
    if not 0 <= value <= MAX_TOKENS:
        raise TraceError(name, f"{field} must be within 0..{MAX_TOKENS:,}, got {short(value)}", lineno)
    return value


def _datetime_ns(name: str, lineno: int, text: str) -> int:
    """Nanoseconds since 1970 (UTC) of an Azure ``TIMESTAMP``."""
    m = _DATETIME.match(text)
    if m is None:
        raise TraceError(name, f"TIMESTAMP must look like '2023-11-16 18:15:46.6805900', got {short(text)}", lineno)
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        seconds = int(datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC).timestamp())
    except ValueError as e:
        raise TraceError(name, f"TIMESTAMP {short(text)} is not a valid time ({e})", lineno) from None
    return seconds * _NS + int((frac or "").ljust(9, "0"))


def _timestamp_ms(name: str, lineno: int, value: object) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or (isinstance(value, float) and not math.isfinite(value)) or not 0 <= value <= MAX_TIMESTAMP_MS:
        raise TraceError(name, f"timestamp must be a number of milliseconds in 0..1e15, got {short(value)}", lineno)
    return float(value)


def _hash_ids(name: str, lineno: int, value: object) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_HASH_IDS:
        raise TraceError(name, f"hash_ids must be a list of at most {MAX_HASH_IDS:,} integers, got {short(value)}",
                         lineno)
    for h in value:
        if not isinstance(h, int) or isinstance(h, bool) or not -(2**63) <= h < 2**63:
            raise TraceError(name, f"hash_ids must hold 64-bit integers, got {short(h)}", lineno)
    return tuple(value)


def _backwards(name: str, lineno: int, t_s: float, prev_s: float) -> TraceError:
    return TraceError(name, f"timestamp goes back in time ({t_s:.3f} s after the first request, the request "
                            f"before is at {prev_s:.3f} s); sort the trace by time", lineno)


# ---------------------------------------------------------------- streaming reader


def _azure_rows(lines: Iterator[tuple[int, str]], name: str) -> Iterator[tuple[int, int, int, int]]:
    """(line, ns, input, output) of each Azure data row."""
    for lineno, text in lines:
        fields = next(csv.reader([text]))
        if len(fields) != 3:
            raise TraceError(name, f"expected 3 fields ({','.join(AZURE_HEADER)}), got {len(fields)}", lineno)
        ns = _datetime_ns(name, lineno, fields[0])
        yield lineno, ns, _count(name, lineno, AZURE_HEADER[1], fields[1], csv_text=True), \
            _count(name, lineno, AZURE_HEADER[2], fields[2], csv_text=True)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _DuplicateKey(f"key {short(key)} appears twice")
            seen.add(key)
    return out


def _mooncake_objects(lines: Iterator[tuple[int, str]], name: str) -> Iterator[tuple[int, dict]]:
    """The JSON objects of each line (several on one line are read in order, as pyarrow does)."""
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates)
    for lineno, text in lines:
        pos, end = 0, len(text)
        while pos < end and text[pos].isspace():
            pos += 1
        while pos < end:
            try:
                obj, pos = decoder.raw_decode(text, pos)
            except _DuplicateKey as e:  # pyarrow refuses a repeated column too
                raise TraceError(name, str(e), lineno) from None
            except (ValueError, RecursionError) as e:  # JSONDecodeError, or int() past 4,300 digits
                msg = e.msg if isinstance(e, json.JSONDecodeError) else ("nested too deep" if isinstance(
                    e, RecursionError) else "a number with too many digits")
                raise TraceError(name, f"not a JSON object: {msg}", lineno) from None
            if not isinstance(obj, dict):
                raise TraceError(name, f"expected a JSON object, got {type(obj).__name__}", lineno)
            yield lineno, obj
            while pos < end and text[pos].isspace():
                pos += 1


def _mooncake_rows(lines: Iterator[tuple[int, str]], name: str) -> Iterator[tuple[int, float, int, int, tuple]]:
    for lineno, obj in _mooncake_objects(lines, name):
        for key in ("timestamp", "input_length", "output_length"):
            if key not in obj:
                raise TraceError(name, f"{key} is missing", lineno)
        yield (lineno, _timestamp_ms(name, lineno, obj["timestamp"]),
               _count(name, lineno, "input_length", obj["input_length"]),
               _count(name, lineno, "output_length", obj["output_length"]),
               _hash_ids(name, lineno, obj.get("hash_ids")))


def iter_requests(source: Source, *, max_requests: int | None = None, name: str | None = None,
                  max_bytes: int = MAX_TRACE_BYTES) -> Iterator[TraceRequest]:
    """The trace's requests in file order, validated line by line, never holding the file whole.

    ``t_s`` counts from the first request: Azure ``(TIMESTAMP - first) / 1e9 ns``, Mooncake
    ``(timestamp - first) / 1000 ms``. ``max_requests`` stops early (the rest of the file is not read).
    A file with no requests is a TraceError.

    >>> line = '{"timestamp": %d, "input_length": 600, "output_length": 9, "hash_ids": [7, 8]}\\n'
    >>> [r.t_s for r in iter_requests((line % 1500 + line % 2000).encode())]
    [0.0, 0.5]
    """
    name = _name(source, name)
    if max_requests is not None and max_requests < 0:
        raise ValueError(f"max_requests must be >= 0, got {max_requests}")
    with _open(source, name, max_bytes) as f:
        lines = _lines(f, name, max_bytes)
        first = next(lines, None)
        if first is None:
            raise TraceError(name, "is empty: no requests")
        fmt = _sniff(first[1])
        if fmt is None:
            raise _not_a_trace(name, first[0])
        count = 0
        t0 = prev = None
        if max_requests == 0:
            return
        if fmt == "azure":
            for lineno, ns, n_in, n_out in _azure_rows(lines, name):
                t0 = ns if t0 is None else t0
                if prev is not None and ns < prev:
                    raise _backwards(name, lineno, (ns - t0) / _NS, (prev - t0) / _NS)
                prev = ns
                count += 1
                yield TraceRequest((ns - t0) / _NS, n_in, n_out)
                if count == max_requests:
                    return
        else:
            for lineno, ms, n_in, n_out, ids in _mooncake_rows(itertools.chain([first], lines), name):
                t0 = ms if t0 is None else t0
                if prev is not None and ms < prev:
                    raise _backwards(name, lineno, (ms - t0) / 1000.0, (prev - t0) / 1000.0)
                prev = ms
                count += 1
                yield TraceRequest((ms - t0) / 1000.0, n_in, n_out, ids)
                if count == max_requests:
                    return
        if count == 0:
            raise TraceError(name, "has no requests")


# ---------------------------------------------------------------- vectorised reader


class _Refused(Exception):
    """A column broke a rule or pyarrow refused a block: find the line with the streaming reader."""


class _LineGuard(io.RawIOBase):
    """The bytes of ``f`` for pyarrow, holding them to the streaming reader's line-length rule (numpy scans
    each block for its newlines); a longer line sets ``broken`` and ends the stream early."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._run = 0  # bytes since the last newline
        self.broken = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        if data:
            ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
            if ends.size:
                longest = max(self._run + int(ends[0]) + 1, int(np.diff(ends).max(initial=0)))
                self._run = len(data) - int(ends[-1]) - 1
            else:
                longest = self._run = self._run + len(data)
            if max(longest, self._run) > MAX_LINE_BYTES:
                self.broken = True
                raise _Refused("a line is too long")
        return data

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def _streamed(source: Source, name: str, max_bytes: int, max_requests: int | None, fmt: str) -> TraceArrays:
    """The bulk path refused the file: the streaming reader names the first bad line (the readers share the
    rules); should it read the file after all (a line pyarrow alone refuses, or one past ``max_requests`` in
    the last batch read), its requests are the answer, so the two readers still agree."""
    requests = list(iter_requests(source, name=name, max_bytes=max_bytes, max_requests=max_requests))
    return arrays_from_requests(requests, name=name, format=fmt)


def arrays_from_requests(requests: Iterable[TraceRequest], *, name: str = "trace", format: str = "mooncake"
                         ) -> TraceArrays:
    """Columns of a list of requests (e.g. a slice, or replayed ones), ``t_s`` counted from the first.

    >>> arrays_from_requests([TraceRequest(2.0, 10, 1, (4,)), TraceRequest(2.5, 20, 2)]).t_s.tolist()
    [0.0, 0.5]
    """
    rows = list(requests)
    if not rows:
        raise TraceError(name, "has no requests")
    t = np.array([r.t_s for r in rows], np.float64)
    lengths = np.array([len(r.hash_ids) for r in rows], np.int64)
    flat = np.fromiter((h for r in rows for h in r.hash_ids), np.int64, int(lengths.sum()))
    if not flat.size or (flat.min() >= -(2**31) and flat.max() < 2**31):
        flat = flat.astype(np.int32)
    offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return TraceArrays(name, format, t - t[0], np.array([r.input_tokens for r in rows], np.int64),
                       np.array([r.output_tokens for r in rows], np.int64), flat, offsets)


def _azure_batches(f: IO[bytes], name: str):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in AZURE_HEADER},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    reader = pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=_BLOCK_BYTES, use_threads=False), convert_options=convert)
    if tuple(reader.schema.names) != AZURE_HEADER:
        raise _Refused("header")
    for batch in reader:
        stamp, n_in, n_out = batch.columns
        for col, pattern in ((stamp, _DATETIME_RE), (n_in, _COUNT_RE), (n_out, _COUNT_RE)):
            if col.null_count or not pc.all(pc.match_substring_regex(col, pattern)).as_py():
                raise _Refused("pattern")
        ns = pc.cast(stamp, pa.timestamp("ns")).cast(pa.int64()).to_numpy()
        yield ns, n_in.cast(pa.int64()).to_numpy(), n_out.cast(pa.int64()).to_numpy(), None


def _mooncake_batches(f: IO[bytes], name: str):
    import pyarrow as pa
    import pyarrow.json as pajson

    schema = pa.schema([("timestamp", pa.float64()), ("input_length", pa.int64()),
                        ("output_length", pa.int64()), ("hash_ids", pa.list_(pa.int64()))])
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    for batch in pajson.open_json(f, read_options=pajson.ReadOptions(block_size=_BLOCK_BYTES, use_threads=False), parse_options=options):
        ts, n_in, n_out, ids = batch.columns
        if ts.null_count or n_in.null_count or n_out.null_count or ids.values.null_count:
            raise _Refused("null or missing value")
        lengths = ids.value_lengths().fill_null(0).to_numpy()
        if lengths.size and lengths.max() > MAX_HASH_IDS:
            raise _Refused("too many hash ids")
        # ids.values ignores the slice offset of a sliced batch; flatten() honours it
        yield ts.to_numpy(), n_in.to_numpy(), n_out.to_numpy(), (ids.flatten().to_numpy(), lengths)


def read_arrays(source: Source, *, max_requests: int | None = None, name: str | None = None,
                max_bytes: int = MAX_TRACE_BYTES) -> TraceArrays:
    """The whole trace (or its first ``max_requests``) as numpy columns (:class:`TraceArrays`), read in
    2 MiB pyarrow batches and checked column-wise by the streaming reader's rules; on a broken rule the
    error is the streaming reader's, naming the first bad line. Memory: about 25 bytes a request plus 4-8
    bytes a hash id.

    >>> a = read_arrays(b'{"timestamp": 0, "input_length": 600, "output_length": 9, "hash_ids": [7, 8]}\\n'
    ...                 b'{"timestamp": 250, "input_length": 100, "output_length": 1}\\n')
    >>> a.t_s.tolist(), a.hash_ids.tolist(), a.hash_offsets.tolist(), a.request(1)
    ([0.0, 0.25], [7, 8], [0, 2, 2], TraceRequest(t_s=0.25, input_tokens=100, output_tokens=1, hash_ids=()))
    """
    import pyarrow as pa

    name = _name(source, name)
    if max_requests is not None and max_requests < 1:
        raise ValueError(f"max_requests must be >= 1, got {max_requests}")
    fmt = detect_format(source, name=name, max_bytes=max_bytes)
    count = 0
    stamps: list[np.ndarray] = []
    ins: list[np.ndarray] = []
    outs: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    lens: list[np.ndarray] = []
    try:
        with _open(source, name, max_bytes) as raw_f:
            f = _LineGuard(raw_f)
            batches = _azure_batches(f, name) if fmt == "azure" else _mooncake_batches(f, name)
            for stamp, n_in, n_out, hashed in batches:
                if max_requests is not None and count + stamp.size >= max_requests:
                    keep = max_requests - count
                    stamp, n_in, n_out = stamp[:keep], n_in[:keep], n_out[:keep]
                    if hashed is not None:
                        hashed = (hashed[0][: int(hashed[1][:keep].sum())], hashed[1][:keep])
                count += stamp.size
                stamps.append(stamp)
                ins.append(n_in.astype(np.int64, copy=False))
                outs.append(n_out.astype(np.int64, copy=False))
                if hashed is not None:
                    flat, length = hashed
                    fits = flat.size == 0 or (flat.min() >= -(2**31) and flat.max() < 2**31)
                    ids.append(flat.astype(np.int32) if fits else flat.astype(np.int64, copy=False))
                    lens.append(length.astype(np.int64, copy=False))
                if count == max_requests:
                    break
    except (_Refused, pa.ArrowException, OSError):  # OSError: pyarrow's wrap of a _LineGuard refusal
        return _streamed(source, name, max_bytes, max_requests, fmt)
    raw = np.concatenate(stamps) if stamps else np.zeros(0)
    n_in = np.concatenate(ins) if ins else np.zeros(0, np.int64)
    n_out = np.concatenate(outs) if outs else np.zeros(0, np.int64)
    del stamps, ins, outs
    bad = (n_in > MAX_TOKENS) | (n_out > MAX_TOKENS) | (n_in < 0) | (n_out < 0)
    if fmt == "azure":
        t_s = (raw - raw[0]).astype(np.float64) / _NS if raw.size else raw.astype(np.float64)
    else:
        bad |= ~np.isfinite(raw) | (raw < 0) | (raw > MAX_TIMESTAMP_MS)
        t_s = (raw - raw[0]) / 1000.0 if raw.size else raw
    if raw.size > 1:
        bad[1:] |= raw[1:] < raw[:-1]
    if raw.size == 0 or bad.any():  # a value out of range, out of order, or no requests: name the line
        return _streamed(source, name, max_bytes, max_requests, fmt)
    flat = np.concatenate(ids) if ids else np.zeros(0, np.int32)
    offsets = np.zeros(raw.size + 1, np.int64)
    if lens:
        np.cumsum(np.concatenate(lens), out=offsets[1:])
    return TraceArrays(name, fmt, t_s, n_in, n_out, flat, offsets)
