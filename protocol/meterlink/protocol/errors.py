"""Errors a decoder reports (protocol section 8).

Every error carries `.code`, the spec's error string, so callers (the gateway's
counters, the CLI, the test vectors) can report the outcome without parsing text.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadCrc",
    "BadLinkType",
    "BadType",
    "BadVersion",
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


class BadCrc(MalformedError):
    code = "bad_crc"


class BadLinkType(MalformedError):
    code = "bad_link_type"


class AuthenticationError(ProtocolError):
    code = "bad_mic"


class ReplayError(ProtocolError):
    code = "replay"


class UnknownDevice(ProtocolError):
    code = "unknown_device"
