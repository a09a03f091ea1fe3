"""Server-sent events framing, shared by every family's stream decoder.

Bytes arrive split anywhere (inside an event, between CR and LF, inside a UTF-8 sequence); the
framer keeps what is incomplete and hands back the `data` payload of each complete event, with
several `data:` lines joined by newlines. Comments, `event:`, `id:` and `retry:` lines are ignored
(every family here repeats the event type inside its JSON). Linear: no rescanning of the buffer.
"""

from __future__ import annotations


class SSEFramer:
    __slots__ = ("_buf", "_cr", "_scan")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._cr = False  # the previous feed ended with CR: an LF right after it belongs to it
        self._scan = 0

    def feed(self, data: bytes) -> list[bytes]:
        """The data payloads of the events completed by these bytes, in order."""
        if not data:
            return []
        if self._cr:  # the previous feed ended with CR, already taken as a line end: skip its LF
            self._cr = False
            if data.startswith(b"\n"):
                data = data[1:]
        if b"\r" in data:
            self._cr = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if not data:
            return []
        buf = self._buf
        buf += data
        payloads: list[bytes] = []
        start = 0
        scan = self._scan
        while True:
            end = buf.find(b"\n\n", scan)
            if end < 0:
                break
            if end > start:
                payload = event_data(bytes(buf[start:end]))
                if payload is not None:
                    payloads.append(payload)
            start = end + 2
            scan = start
        if start:
            del buf[:start]
            scan = 0
        # Resume scanning at the last byte: it may be the first LF of the terminator.
        self._scan = max(len(buf) - 1, scan)
        return payloads


def event_data(block: bytes) -> bytes | None:
    """One event's data (None: the event has no data field)."""
    if block.startswith(b"data: ") and b"\n" not in block:  # the common case: one `data:` line
        return block[6:]
    parts = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
        elif line == b"data":
            parts.append(b"")
    return b"\n".join(parts) if parts else None
