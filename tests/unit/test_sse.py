"""SSEDecoder: any chunking of a stream gives the same events (Hypothesis), plus the corner cases by hand."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from probes.load.sse import SSEDecoder

_line = st.text(st.characters(blacklist_categories=["Cs", "Zs", "Zl", "Zp", "Cc"]), min_size=1, max_size=30)
_event = st.tuples(st.lists(_line, min_size=0, max_size=3), st.booleans())  # (data lines, has a comment)


def _encode(events: list[tuple[list[str], bool]], crlf: bool) -> tuple[bytes, list[str]]:
    nl = "\r\n" if crlf else "\n"
    text, expected = "", []
    for lines, comment in events:
        body = ([": ping"] if comment else []) + [f"data: {line}" for line in lines]
        if not body:
            body = [": keep-alive"]
        text += nl.join(body) + nl + nl
        if lines:
            expected.append("\n".join(lines))
    return text.encode(), expected


def _feed_in_pieces(stream: bytes, cuts: list[int]) -> list[str]:
    decoder, out, last = SSEDecoder(), [], 0
    for cut in sorted(set(cuts)) + [len(stream)]:
        out += decoder.feed(stream[last:cut])
        last = cut
    assert decoder.pending_chars == 0
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(_event, max_size=12), st.booleans(), st.data())
def test_any_chunking_gives_the_same_events(events, crlf, data):
    stream, expected = _encode(events, crlf)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=40))
    assert _feed_in_pieces(stream, cuts) == expected


def test_byte_by_byte_with_multibyte_characters_and_split_crlf():
    stream = 'data: é€😀\r\n\r\ndata: x\n\n'.encode()
    assert _feed_in_pieces(stream, list(range(len(stream)))) == ["é€😀", "x"]


def test_incomplete_event_stays_pending_and_extra_blank_lines_are_ignored():
    d = SSEDecoder()
    assert d.feed(b"data: a\n\n\n\ndata: b") == ["a"]
    assert d.pending_chars == len("data: b")
    assert d.feed(b"\n") == [] and d.feed(b"\n") == ["b"]
