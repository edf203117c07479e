"""Incremental Server-Sent Events decoding: each byte of a stream is scanned a bounded number of times.

The old parser rescanned its whole buffer for every event (O(events x buffer) when a server writes a whole
stream in one burst). :class:`SSEDecoder` keeps the unconsumed tail, resumes the separator search where
the previous one stopped, and drops consumed bytes once per :meth:`~SSEDecoder.feed`, not per event.

Events are separated by a blank line (``\\n\\n`` or ``\\r\\n\\r\\n``); an event's ``data:`` lines are joined
with ``\\n``; events without a ``data:`` line (comments such as ``: ping``) are skipped.

>>> d = SSEDecoder()
>>> d.feed(b'data: {"a": 1}\\n\\ndata: [DO')
['{"a": 1}']
>>> d.feed(b'NE]\\n\\n')
['[DONE]']
>>> SSEDecoder().feed(b': ping\\r\\n\\r\\ndata: x\\r\\ndata: y\\r\\n\\r\\n')
['x\\ny']
"""

from __future__ import annotations

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Feed raw bytes as they arrive; get the ``data`` payloads of the events they complete."""

    __slots__ = ("_buf", "_scan")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf already searched without finding a separator

    @property
    def pending_bytes(self) -> int:
        """Bytes received but not yet part of a complete event."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[str]:
        buf = self._buf
        buf += chunk
        out: list[str] = []
        start = 0
        pos = max(0, self._scan - 3)  # a separator may straddle the old end of the buffer
        crlf_absent = False  # once a CRLF search fails, none exists in the rest of this buffer
        crlf = -1
        while True:
            lf = buf.find(b"\n\n", pos)
            if not crlf_absent and crlf < pos:
                crlf = buf.find(b"\r\n\r\n", pos)
                crlf_absent = crlf == -1
            if not crlf_absent and (lf == -1 or crlf < lf):
                cut, sep = crlf, 4
            elif lf != -1:
                cut, sep = lf, 2
            else:
                break
            data = [line[5:].strip() for line in bytes(buf[start:cut]).split(b"\n") if line.startswith(b"data:")]
            if data:
                out.append(b"\n".join(data).decode("utf-8", errors="replace"))
            start = pos = cut + sep
        if start:
            del buf[:start]
        self._scan = len(buf)
        return out
