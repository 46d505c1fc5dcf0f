"""Stream decoder for link frames on a serial line: SLIP, resynchronising on END."""

from __future__ import annotations

from .constants import MAX_LINK_FRAME
from .errors import BadCrc, IncompleteError, Oversized, ProtocolError
from .link import END, ESC, ESC_END, ESC_ESC, LinkFrame, parse_link_content

__all__ = ["LinkDecoder"]

_UNESCAPE = {ESC_END: END, ESC_ESC: ESC}


class LinkDecoder:
    """Feed it bytes as they arrive; it returns the frames and errors completed so far.

    Bytes before the first END are skipped (the line was joined mid-frame). Memory is
    bounded: at most one frame of MAX_LINK_FRAME bytes is buffered; a longer run without
    END is reported once as `oversized` and dropped up to the next END.

    `stats` counts outcomes: "ok", each error code, "empty" (END END), "skipped_bytes"
    (before the first END), "bytes" (all bytes fed).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._raw_len = 0  # escaped bytes since the last END
        self._escape = False
        self._bad_escape = False
        self._overflow = False
        self._synced = False
        self.stats: dict[str, int] = {
            "bytes": 0,
            "ok": 0,
            "empty": 0,
            "skipped_bytes": 0,
            "truncated": 0,
            "oversized": 0,
            "bad_crc": 0,
            "bad_link_type": 0,
            "incomplete": 0,
        }

    def reset(self) -> None:
        """Forget a partial frame, e.g. after the line was reopened."""
        self._buffer.clear()
        self._raw_len = 0
        self._escape = self._bad_escape = self._overflow = self._synced = False

    @property
    def pending(self) -> bool:
        """True while part of a frame is buffered (an END seen, bytes since, no END yet)."""
        return self._synced and (self._raw_len > 0 or self._overflow)

    def finish(self) -> list[ProtocolError]:
        """The line ended (closed, reopened): a partial frame is reported as `incomplete`
        (spec 5) and forgotten; the decoder then waits for an END as when new."""
        out: list[ProtocolError] = []
        if self.pending:
            self.stats["incomplete"] += 1
            out.append(IncompleteError(
                f"the line ended {self._raw_len} bytes into a frame, before its END"))
        self.reset()
        return out

    def feed(self, data: bytes) -> list[LinkFrame | ProtocolError]:
        out: list[LinkFrame | ProtocolError] = []
        self.stats["bytes"] += len(data)
        for byte in bytes(data):
            if byte == END:
                self._end_of_frame(out)
                continue
            if not self._synced:
                self.stats["skipped_bytes"] += 1
                continue
            if self._overflow:
                continue
            self._raw_len += 1
            if self._raw_len > MAX_LINK_FRAME:
                self._overflow = True
                self._buffer.clear()
                continue
            if self._escape:
                self._escape = False
                # spec 5: a byte after ESC that is not ESC_END/ESC_ESC spoils the frame,
                # whatever its CRC (RFC 1055 would keep the byte)
                if byte not in _UNESCAPE:
                    self._bad_escape = True
                self._buffer.append(_UNESCAPE.get(byte, byte))
            elif byte == ESC:
                self._escape = True
            else:
                self._buffer.append(byte)
        return out

    def _end_of_frame(self, out: list[LinkFrame | ProtocolError]) -> None:
        result: LinkFrame | ProtocolError | None = None
        if not self._synced:
            self._synced = True
        elif self._overflow:
            result = Oversized(f"more than {MAX_LINK_FRAME} bytes between two ENDs: frame dropped")
        elif self._escape:
            result = BadCrc("frame ends inside a SLIP escape: corrupted on the line")
        elif self._bad_escape:
            result = BadCrc("invalid SLIP escape (ESC not followed by DC or DD): corrupted")
        elif self._raw_len == 0:
            self.stats["empty"] += 1
        else:
            try:
                result = parse_link_content(bytes(self._buffer))
            except ProtocolError as exc:
                result = exc
        self._buffer.clear()
        self._raw_len = 0
        self._escape = self._bad_escape = self._overflow = False
        if result is not None:
            key = "ok" if isinstance(result, LinkFrame) else result.code
            self.stats[key] = self.stats.get(key, 0) + 1
            out.append(result)
