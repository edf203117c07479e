"""Trace readers: the public files are accepted as they are, bad lines are named, both readers agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculators.traces import (
    MAX_LINE_BYTES,
    TraceError,
    TraceRequest,
    arrays_from_requests,
    detect_format,
    iter_requests,
    read_arrays,
)

SHARED = Path("/work/shared/traces")
AZURE = SHARED / "azure-llm-2023-conv.csv"
MOONCAKE = SHARED / "mooncake-fast25-conversation.jsonl"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "traces"
HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
public = pytest.mark.skipif(not AZURE.exists(), reason="shared traces not on this machine")


def _mc(ts: object, n_in: object = 600, n_out: object = 9, ids: object = (1, 2)) -> str:
    import json

    return json.dumps({"timestamp": ts, "input_length": n_in, "output_length": n_out, "hash_ids": list(ids)
                       if isinstance(ids, tuple) else ids}) + "\n"


def _agree(source: bytes | Path) -> list[TraceRequest]:
    """Both readers give the same requests; returns them."""
    streamed = list(iter_requests(source))
    arrays = read_arrays(source)
    assert len(arrays) == len(streamed)
    assert [arrays.request(i) for i in range(len(arrays))] == streamed
    return streamed


def _both_refuse(data: bytes) -> str:
    """Both readers refuse ``data`` with the same one-line message; returns it."""
    with pytest.raises(TraceError) as streamed:
        list(iter_requests(data, name="t"))
    with pytest.raises(TraceError) as bulk:
        read_arrays(data, name="t")
    assert str(streamed.value) == str(bulk.value)
    assert "\n" not in str(bulk.value)
    return str(bulk.value)


@public
def test_public_azure_trace_is_read_as_it_is():
    rows = _agree(AZURE)
    assert detect_format(AZURE) == "azure"
    assert len(rows) == 19_366  # the README's count
    assert rows[0] == TraceRequest(0.0, 374, 44)
    assert rows[1].t_s == pytest.approx(50.9951690 - 46.6805900)  # 7 fractional digits kept
    assert np.mean([r.input_tokens for r in rows]) == pytest.approx(1155, abs=1)
    assert rows[-1].t_s / 60 == pytest.approx(58.4, abs=0.1)


@public
def test_public_mooncake_trace_is_read_as_it_is():
    rows = _agree(MOONCAKE)
    assert detect_format(MOONCAKE) == "mooncake"
    assert len(rows) == 12_031
    assert rows[0].hash_ids == tuple(range(14)) and rows[0].input_tokens == 6758
    assert np.mean([r.input_tokens for r in rows]) == pytest.approx(12_035, abs=1)
    arrays = read_arrays(MOONCAKE)
    assert arrays.hash_ids.dtype == np.int32 and arrays.hash_offsets[-1] == arrays.hash_ids.size


def test_fixtures_agree():
    files = sorted(FIXTURES.glob("*.csv")) + sorted(FIXTURES.glob("*.jsonl"))
    assert len(files) >= 2
    for path in files:
        _agree(path)


def test_azure_details_bom_crlf_blank_lines_quotes_and_t_separator():
    data = ("\ufeff" + HEADER + "\r\n2023-11-16T00:00:00,1,2\r\n\r\n\"2023-11-16 00:00:01.123456789\",\"3\",4\r\n")
    rows = _agree(data.encode())
    assert rows == [TraceRequest(0.0, 1, 2), TraceRequest(1.123456789, 3, 4)]


def test_mooncake_details_missing_or_null_hash_ids_extra_keys_float_ms_two_objects_a_line():
    data = ('  {"timestamp": 0, "input_length": 5, "output_length": 1}  \n'
            '{"timestamp": 1.5, "input_length": 5, "output_length": 1, "hash_ids": null, "x": {"y": [1]}}\n'
            '{"timestamp": 2, "input_length": 5, "output_length": 1, "hash_ids": [-3]} '
            '{"timestamp": 2, "input_length": 7, "output_length": 0, "hash_ids": [4, 5]}\n')
    rows = _agree(data.encode())
    assert [r.t_s for r in rows] == [0.0, 0.0015, 0.002, 0.002]
    assert [r.hash_ids for r in rows] == [(), (), (-3,), (4, 5)]
    assert not read_arrays(_mc(0, ids=None).encode()).has_hash_ids


def test_large_hash_ids_widen_to_int64():
    arrays = read_arrays((_mc(0, ids=(2**40, 1)) + _mc(1, ids=(3,))).encode())
    assert arrays.hash_ids.dtype == np.int64 and arrays.hash_ids.tolist() == [2**40, 1, 3]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (HEADER + "2023-11-16 18:15:46,374,44\n2023-11-16 18:15:47,-1,44\n",
         "t: line 3: ContextTokens must be a whole number of tokens, got '-1'"),
        (HEADER + "2023-11-16 18:15:46,374,44\n\n2023-11-16 18:15:47,374\n",
         "t: line 4: expected 3 fields (TIMESTAMP,ContextTokens,GeneratedTokens), got 2"),
        (HEADER + "11/16/2023 18:15,374,44\n", "t: line 2: TIMESTAMP must look like"),
        (HEADER + "2023-02-30 18:15:46,374,44\n", "t: line 2: TIMESTAMP '2023-02-30 18:15:46' is not a valid time"),
        (HEADER + "2023-11-16 18:15:46,20000000,44\n", "t: line 2: ContextTokens must be within 0..10,000,000"),
        (HEADER + "2023-11-16 18:15:46,1,1\n2023-11-16 18:15:45,1,1\n", "t: line 3: timestamp goes back in time"),
        (HEADER, "t: has no requests"),
        ("", "t: is empty: no requests"),
        ("time,in,out\n1,2,3\n", "t: line 1: not a trace"),
        (_mc(0) + '{"timestamp": 1, "input_length": 600}\n', "t: line 2: output_length is missing"),
        (_mc(0) + _mc(1, n_in=6.5), "t: line 2: input_length must be a whole number of tokens, got 6.5"),
        (_mc(0) + _mc(1, n_in=True), "t: line 2: input_length must be a whole number of tokens, got True"),
        (_mc(0) + _mc(1, n_out=-2), "t: line 2: output_length must be within 0..10,000,000, got -2"),
        (_mc(0) + _mc(1, n_in=10**30), "t: line 2: input_length must be within"),
        (_mc(0) + _mc("1"), "t: line 2: timestamp must be a number of milliseconds"),
        (_mc(0) + _mc(-1), "t: line 2: timestamp must be a number of milliseconds"),
        (_mc(5) + _mc(4), "t: line 2: timestamp goes back in time (-0.001 s after the first request"),
        (_mc(0) + _mc(1, ids=[1, "a"]), "t: line 2: hash_ids must hold 64-bit integers, got 'a'"),
        (_mc(0) + _mc(1, ids=[2**64]), "t: line 2: hash_ids must hold 64-bit integers"),
        (_mc(0) + _mc(1, ids=7), "t: line 2: hash_ids must be a list"),
        (_mc(0) + "\n" + '{"timestamp": 1, "input_length": 6\n', "t: line 3: not a JSON object"),
        (_mc(0) + "[1, 2]\n", "t: line 2: expected a JSON object, got list"),
        (_mc(0) + '{"timestamp": NaN, "input_length": 1, "output_length": 1}\n',
         "t: line 2: timestamp must be a number of milliseconds"),
        (_mc(0) + _mc(1, n_in="5"), "t: line 2: input_length must be a whole number of tokens, got '5'"),
        (_mc(0) + _mc(1, n_in=5.0), "t: line 2: input_length must be a whole number of tokens, got 5.0"),
        (_mc(0) + _mc(1, ids=[[1]]), "t: line 2: hash_ids must hold 64-bit integers, got [1]"),
        (_mc(0) + '{"timestamp": 1, "input_length": 5, "input_length": 6, "output_length": 1}\n',
         "t: line 2: key 'input_length' appears twice"),
    ],
)
def test_bad_lines_are_named_the_same_by_both_readers(data: str, expected: str):
    assert _both_refuse(data.encode()).startswith(expected)


def test_non_utf8_and_overlong_lines_are_named():
    assert _both_refuse((HEADER + "2023-11-16 18:15:46,1,1\n").encode() + b"2023-11-16 18:15:4\xe9,1,1\n") \
        .startswith("t: line 3: not UTF-8 text (byte 0xe9)")
    long_line = '{"timestamp": 1, "input_length": 1, "output_length": 1, "pad": "%s"}\n' % ("x" * MAX_LINE_BYTES)
    assert _both_refuse((_mc(0) + long_line).encode()) == "t: line 2: longer than 1024 KiB"


def test_size_limit_is_checked_before_reading(tmp_path: Path):
    path = tmp_path / "big.csv"
    path.write_text(HEADER + "2023-11-16 18:15:46,1,1\n" * 100)
    for reader in (read_arrays, lambda p, **kw: list(iter_requests(p, **kw))):
        with pytest.raises(TraceError, match=r"big.csv: .* over the 1 KiB limit"):
            reader(path, max_bytes=1024)
    with pytest.raises(TraceError, match="over the 1 KiB limit"):
        read_arrays(path.read_bytes(), name="upload", max_bytes=1024)
    with pytest.raises(TraceError, match="cannot read"):
        read_arrays(tmp_path / "missing.csv")


def test_max_requests_stops_early_without_reading_the_rest():
    data = (_mc(0) + _mc(1) + "not json\n").encode()
    assert [r.t_s for r in iter_requests(data, max_requests=2)] == [0.0, 0.001]
    # the bulk reader's batch holds the bad line too: it falls back to the streaming reader, which agrees
    assert read_arrays(data, max_requests=2).t_s.tolist() == [0.0, 0.001]
    for reader in (read_arrays, lambda d, **kw: list(iter_requests(d, **kw))):
        with pytest.raises(TraceError, match="line 3"):
            reader(data, max_requests=3)


@public
def test_a_slice_of_the_public_trace_is_its_first_requests():
    first = list(iter_requests(MOONCAKE, max_requests=500))
    arrays = read_arrays(MOONCAKE, max_requests=500)
    assert [arrays.request(i) for i in range(500)] == first
    assert arrays_from_requests(first).request(499) == first[499]


_NASTY = ["0", "7", "-1", "5.0", "1e3", '"5"', "null", "true", "[]", "[1, 2]", "[[1]]", "[1.5]", "{}",
          "99999999999999999999", "NaN", "", " 3", "2023-11-16 18:15:46", "2023-11-16T18:15:47.1234567",
          "2023-13-01 00:00:00", '"2023-11-16 18:15:48"']


@st.composite
def _mutated_trace(draw) -> bytes:
    """A small valid trace in either format with some fields, lines or separators replaced by nasty ones."""
    mooncake = draw(st.booleans())
    lines = [] if mooncake else ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for i in range(draw(st.integers(1, 6))):
        if mooncake:
            fields = {"timestamp": str(i * 100), "input_length": "600", "output_length": "9", "hash_ids": "[1, 2]"}
        else:
            fields = {"t": f"2023-11-16 18:15:{i + 10:02d}.5", "i": "600", "o": "9"}
        for key in list(fields):
            if draw(st.integers(0, 9)) == 0:
                fields[key] = draw(st.sampled_from(_NASTY))
        if mooncake:
            keys = [k for k in fields if draw(st.integers(0, 19)) > 0]  # sometimes a key is missing
            line = "{" + ", ".join(f'"{k}": {fields[k]}' for k in keys) + "}"
        else:
            line = ",".join(fields.values())
        lines.append(draw(st.sampled_from([line, line, line, "", "  " + line, line + ",", line[:-1]])))
    return ("\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))).encode()


@given(_mutated_trace(), st.sampled_from([None, 1, 2, 4]))
def test_fuzz_both_readers_accept_the_same_files_and_name_the_same_line(data: bytes, first: int | None):
    outcomes = []
    for read in (lambda: list(iter_requests(data, name="f", max_requests=first)),
                 lambda: (lambda a: [a.request(i) for i in range(len(a))])(
                     read_arrays(data, name="f", max_requests=first))):
        try:
            outcomes.append(read())
        except TraceError as e:
            outcomes.append(str(e))
    assert outcomes[0] == outcomes[1]
