"""Incremental Server-Sent Events decoding: each byte of a stream is scanned a bounded number of times.

The old parser rescanned its whole buffer for every event (O(events x buffer) when a server writes a whole
stream in one burst). :class:`SSEDecoder` decodes each network read to text once (an incremental UTF-8
decoder, so a character split across reads is kept whole), splits it on blank lines with one ``str.split``
and keeps only the unfinished tail. A read that cannot finish an event (no ``\\n\\n`` in it, nor across the
boundary with the previous read) is only appended to a list: a large event arriving in many small reads
costs O(its size), not O(size x reads).

Events are separated by a blank line (``\\n\\n`` or ``\\r\\n\\r\\n``; ``\\r\\n`` is read as ``\\n``, also
when split between two reads); an event's ``data:`` lines are joined with ``\\n``, each stripped of
surrounding whitespace; events without a ``data:`` line (comments such as ``: ping``) are skipped.
Bare ``\\r`` line ends (allowed by the SSE spec, sent by no OpenAI-compatible server we know) are not split.

Measured per event against vLLM's ``StreamedResponseHandler``: ``benchmarks/bench_sse.py``.

>>> d = SSEDecoder()
>>> d.feed(b'data: {"a": 1}\\n\\ndata: [DO')
['{"a": 1}']
>>> d.feed(b'NE]\\n\\n')
['[DONE]']
>>> SSEDecoder().feed(b': ping\\r\\n\\r\\ndata: x\\r\\ndata: y\\r\\n\\r\\n')
['x\\ny']
"""

from __future__ import annotations

import codecs

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Feed raw bytes as they arrive; get the ``data`` payloads of the events they complete."""

    __slots__ = ("_pending", "_utf8", "_cr", "_last_nl")

    def __init__(self) -> None:
        self._pending: list[str] = []  # text of the unfinished event, in pieces
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._cr = False  # the previous read ended with "\r": held back in case "\n" follows
        self._last_nl = False  # the pending text ends with "\n"

    @property
    def pending_chars(self) -> int:
        """Characters received but not yet part of a complete event."""
        return sum(map(len, self._pending)) + self._cr

    def feed(self, chunk: bytes) -> list[str]:
        """Append ``chunk``; return the ``data`` of every event it completes, in order."""
        text = self._utf8.decode(chunk)
        if self._cr:
            text = "\r" + text
            self._cr = False
        if "\r" in text:
            if text.endswith("\r"):
                text = text[:-1]
                self._cr = True
            text = text.replace("\r\n", "\n")
        if not text:
            return []
        pending = self._pending
        if "\n\n" not in text and not (self._last_nl and text[0] == "\n"):
            pending.append(text)
            self._last_nl = text[-1] == "\n"
            return []
        if pending:
            pending.append(text)
            text = "".join(pending)
            pending.clear()
        parts = text.split("\n\n")
        tail = parts.pop()
        if tail:
            pending.append(tail)
        self._last_nl = tail.endswith("\n")
        out: list[str] = []
        for part in parts:
            if part.startswith("data:") and "\n" not in part:  # the usual event: one data line
                out.append(part[5:].strip())
            else:
                data = [line[5:].strip() for line in part.split("\n") if line.startswith("data:")]
                if data:
                    out.append("\n".join(data))
        return out
