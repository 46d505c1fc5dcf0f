"""Errors and outcomes a decoder reports (protocol section 9).

Every error carries `.code`, the spec's error string, so callers (the gateway's
counters, the CLI, the test vectors) can report the outcome without parsing text.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadCrc",
    "BadDirection",
    "BadLinkType",
    "BadType",
    "BadVersion",
    "DuplicateFrame",
    "IncompleteError",
    "MalformedError",
    "Oversized",
    "ProtocolError",
    "ReplayError",
    "Truncated",
    "UnknownDevice",
]


class ProtocolError(Exception):
    """Base of every error the codec reports; `.code` is the spec's error string."""

    code: str = "protocol_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class IncompleteError(ProtocolError):
    code = "incomplete"


class MalformedError(ProtocolError):
    code = "malformed"


class Truncated(MalformedError):
    code = "truncated"


class Oversized(MalformedError):
    code = "oversized"


class BadVersion(MalformedError):
    code = "bad_version"


class BadType(MalformedError):
    code = "bad_type"


class BadDirection(MalformedError):
    """A downlink type on the uplink path, or an uplink type where a downlink is expected."""

    code = "bad_direction"


class BadCrc(MalformedError):
    code = "bad_crc"


class BadLinkType(MalformedError):
    code = "bad_link_type"


class AuthenticationError(ProtocolError):
    code = "bad_mic"


class ReplayError(ProtocolError):
    code = "replay"


class DuplicateFrame(ProtocolError):
    """Not an error of the sender: the same bytes as a frame already accepted (spec 3.5)."""

    code = "duplicate"


class UnknownDevice(ProtocolError):
    code = "unknown_device"
