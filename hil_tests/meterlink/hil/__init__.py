"""HIL harness: emulated nRF51 boards (QEMU `microbit` + MicroPython 1.9.2), the radio
channel between board UARTs and gateway receivers, a real Mosquitto, and a pytest plugin.
docs/hil.md is the guide."""

from meterlink.hil.board import EmulatedBoard
from meterlink.hil.board_files import FileCheck
from meterlink.hil.broker import BrokerError, Mosquitto
from meterlink.hil.errors import BoardError
from meterlink.hil.pulses import MICROBIT_PINS, PulseTrain
from meterlink.hil.qemu import DEFAULT_MICROBIT_HEX

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
