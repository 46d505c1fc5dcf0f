"""The emulated Pico itself: MicroPython v1.27.0 on rp2040js with the project's fixes
(UART TX interrupt, SPI NOR flash), each shown needed by a run without it; guest-timed
pulses through Pin.irq; reset and power cut with littlefs kept; guest time; no emulator
outlives its Pico."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from meterlink.boardlink.errors import BoardError
from meterlink.hil.pico import FS_IMAGE_BYTES, EmulatedPico
from meterlink.hil.pytest_plugin import require_pico

# The emulated RP2040 takes a whole host core: run beside the host-timed pulse tests it
# starved their QEMU boards (149 of 150 pulses), so it queues in their group.
pytestmark = pytest.mark.hil

UART_ECHO = (
    "from machine import UART, Pin\n"
    "u = UART(0, 115200, tx=Pin(0), rx=Pin(1), rxbuf=256)\n"
    "u.write(b'modem?')\n"
    "import time\n"
    "got = b''\n"
    "t = time.ticks_ms()\n"
    "while len(got) < 100 and time.ticks_diff(time.ticks_ms(), t) < 3000:\n"
    "    got += u.read() or b''\n"
    "print(len(got), got == bytes(range(100)))\n"
)


def test_usb_console_is_a_serial_port_mpremote_opens(pico: EmulatedPico) -> None:
    with pico.released() as port:
        out = subprocess.run(
            [sys.executable, "-m", "mpremote", "connect", port, "exec",
             "import os, sys; print(os.uname().machine, sys.implementation._build)"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert "Raspberry Pi Pico with RP2040 RPI_PICO" in out.stdout, out


def test_uart0_is_the_modem_line_both_ways(pico: EmulatedPico) -> None:
    """machine.UART(0) returns (the TX-interrupt fix); its bytes reach the modem side and
    100 host bytes, more than the 32-byte RX FIFO, all arrive (the emulator paces them)."""
    heard: list[bytes] = []
    pico.add_uart_listener(heard.append)
    sender = _later(0.3, lambda: pico.try_write(bytes(range(100))))
    out = pico.exec(UART_ECHO, timeout=60)
    sender.join()
    assert out.split() == ["100", "True"]
    assert b"".join(heard) == b"modem?"


def test_without_the_uart_fix_machine_uart_never_returns(tmp_path: Path) -> None:
    require_pico()
    with EmulatedPico(tmp_path, without=("uart-fix",)) as p, pytest.raises(BoardError):
        p.exec("from machine import UART\nUART(0, 115200)\nprint('back')\n", timeout=5)


def test_littlefs_written_kept_across_reset_and_power_cut(pico: EmulatedPico) -> None:
    data = bytes(range(256)) * 40  # 10 KiB: several pages, more than one sector
    pico.flash({"data.bin": data})
    pico.reset(wait_for_repl=True)
    assert pico.read_file("data.bin") == data
    image = pico.power_cut()
    assert image.stat().st_size == FS_IMAGE_BYTES
    assert not pico.running
    pico.power_on(wait_for_repl=True)
    assert pico.list_files()["data.bin"] == len(data)
    assert pico.exec("import os\nprint(os.statvfs('/')[2])").strip() == "352"


def test_without_the_flash_model_littlefs_cannot_be_written(tmp_path: Path) -> None:
    require_pico()
    with EmulatedPico(tmp_path, without=("flash-model",)) as p, pytest.raises(BoardError):
        p.exec("f = open('x', 'w')\nf.write('x')\nf.close()\n", timeout=20)


@pytest.mark.parametrize(("hz", "count"), [(1, 3), (30, 60)])
def test_pulses_in_guest_time_counted_by_pin_irq(pico: EmulatedPico, hz: int, count: int) -> None:
    period_ms = 1000 / hz
    pico.exec(
        "from machine import Pin\nn = [0]\ndef h(p):\n    n[0] += 1\n"
        "Pin(16, Pin.IN, Pin.PULL_DOWN).irq(h, Pin.IRQ_RISING)\n"
    )
    before = pico.guest_time().guest_ns
    pico.pulses(16, count, high_ms=period_ms / 2, low_ms=period_ms / 2)
    took_s = (pico.guest_time().guest_ns - before) / 1e9
    assert pico.exec("print(n[0])").strip() == str(count)
    assert took_s >= (count - 0.5) / hz * 0.99  # timed by the chip's clock: last low not waited


def test_gpio_driven_by_number_and_outputs_read(pico: EmulatedPico) -> None:
    pico.set_pin(3, 1)
    assert pico.exec("from machine import Pin\nprint(Pin(3, Pin.IN).value())").strip() == "1"
    pico.set_pin(3, 0)
    assert pico.exec("print(Pin(3, Pin.IN).value())").strip() == "0"
    pico.exec("Pin(25, Pin.OUT).value(1)")
    state = pico.pin_state(25)
    assert (state["oe"], state["out"]) == (1, 1)


def test_guest_time_counts_lightsleep_as_deep_sleep(pico: EmulatedPico) -> None:
    before = pico.guest_time()
    pico.exec("import machine\nfor i in range(10):\n    machine.lightsleep(100)\n", timeout=60)
    after = pico.guest_time()
    assert after.deep_sleep_ns - before.deep_sleep_ns >= 0.9e9
    assert after.guest_ns - before.guest_ns >= 1e9
    assert after.active_ns + after.idle_ns + after.deep_sleep_ns <= after.guest_ns * 1.01


def test_no_emulator_outlives_its_pico(tmp_path: Path) -> None:
    require_pico()
    p = EmulatedPico(tmp_path)
    p.start()
    pid = p.pid
    assert pid is not None
    p.close()
    assert not _alive(pid)
    # a pytest that dies by SIGKILL takes its emulators with it (PR_SET_PDEATHSIG)
    script = tmp_path / "child.py"
    script.write_text(
        "import os, sys, time\nfrom pathlib import Path\n"
        "from meterlink.hil.pico import EmulatedPico\n"
        f"p = EmulatedPico(Path({str(tmp_path / 'c')!r}))\np.start()\n"
        "print(p.pid, flush=True)\ntime.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        emulator = int(child.stdout.readline())
        assert _alive(emulator)
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 5
    while _alive(emulator) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(emulator)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _later(delay: float, fn: Callable[[], object]) -> threading.Timer:
    t = threading.Timer(delay, fn)
    t.start()
    return t
