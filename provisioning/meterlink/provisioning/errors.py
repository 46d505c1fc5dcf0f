"""Errors an installer can act on: each says what is wrong and what to do about it."""

from __future__ import annotations


class ProvisioningError(Exception):
    """A step failed; `problem` says what, `remedy` says what the installer should do.

    Nothing is lost when one is raised: the registry keeps what was done so far and a
    re-run continues from there.
    """

    exit_code = 1

    def __init__(self, problem: str, remedy: str) -> None:
        super().__init__(f"{problem}\n  -> {remedy}")
        self.problem = problem
        self.remedy = remedy


class NoBoardFound(ProvisioningError):
    exit_code = 3


class PortBusy(ProvisioningError):
    exit_code = 4


class PortPermissionDenied(ProvisioningError):
    exit_code = 5


class UnsupportedBoard(ProvisioningError):
    exit_code = 6


class NotEnoughFlash(ProvisioningError):
    exit_code = 7


class BadValue(ProvisioningError):
    """A value the installer typed (reading, pulse weight, serial...) is not valid."""

    exit_code = 2


class BoardNotResponding(ProvisioningError):
    exit_code = 8


class FlashVerifyFailed(ProvisioningError):
    exit_code = 9


class SelfTestFailed(ProvisioningError):
    exit_code = 10


class RegistryError(ProvisioningError):
    exit_code = 11
