"""HIL harness: emulated nRF51 boards (QEMU `microbit` + MicroPython 1.9.2), the radio
channel between board UARTs and gateway receivers, a real Mosquitto, and a pytest plugin.
docs/hil.md is the guide.

Names are imported on first use (PEP 562), so `import meterlink.hil.flow` or loading
the `meterlink demo` subcommand does not start the board machinery or mpremote.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meterlink.boardlink.errors import BoardError
    from meterlink.boardlink.files import FileCheck
    from meterlink.hil.board import EmulatedBoard
    from meterlink.hil.broker import BrokerError, Mosquitto
    from meterlink.hil.pulses import MICROBIT_PINS, PulseTrain
    from meterlink.hil.qemu import DEFAULT_MICROBIT_HEX

_WHERE = {
    "DEFAULT_MICROBIT_HEX": "meterlink.hil.qemu",
    "MICROBIT_PINS": "meterlink.hil.pulses",
    "BoardError": "meterlink.boardlink.errors",
    "BrokerError": "meterlink.hil.broker",
    "EmulatedBoard": "meterlink.hil.board",
    "FileCheck": "meterlink.boardlink.files",
    "Mosquitto": "meterlink.hil.broker",
    "PulseTrain": "meterlink.hil.pulses",
}

__all__ = [
    "DEFAULT_MICROBIT_HEX",
    "MICROBIT_PINS",
    "BoardError",
    "BrokerError",
    "EmulatedBoard",
    "FileCheck",
    "Mosquitto",
    "PulseTrain",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'meterlink.hil' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
