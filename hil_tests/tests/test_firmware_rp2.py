"""The production build (bundle("rp2"): the lean sources of mp/lean/ with the Pico's glue,
mp/lean/glue_rp2.py) on the emulated RP2040 running MicroPython v1.27.0: provisioned by
`meterlink provision --board rp2` through the Pico's USB console (its modules compiled
to .mpy), the three boot phases with a machine.reset() between them, the boot status
first, pulses counted by Pin.irq (the CPU in lightsleep between them, woken by their
edges), the direction input making a debt, readings and confirmed alarms through the
UART0 modem, the radio channel and the real gateway to Mosquitto, config and time
downlinks, maintenance by Ctrl-C on the USB console (a clean commit on the way), power
cuts at random instants, the protocol vectors on the chip."""

from __future__ import annotations

import json
import random
import struct
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt import publish

from meterlink.bundler import FIELDS, NRF51_NAMES, bundle, render_config
from meterlink.hil.pico import EmulatedPico
from meterlink.protocol import (
    Alarm,
    FrameType,
    LinkDecoder,
    LinkFrame,
    Reading,
    Status,
    decode_frame,
)
from meterlink.provisioning import registry as reg
from meterlink.provisioning.provision import ProvisionRequest
from meterlink.provisioning.values import PulseWeight

pytestmark = pytest.mark.hil

KEY = bytes(range(16))
DEV = 0x0A0B0C0D
REGISTER = 7000
DEV2, REG2 = 0x0A0B0C0E, 3000  # the Ctrl-C test's module
NAMES = dict(NRF51_NAMES)  # role -> on-board file (the same names on both boards)
PULSE, DIR = 16, 17  # GPIO numbers of the pulse and flow-direction inputs


def test_provisioned_pico_counts_pulses_and_its_alarm_is_confirmed_via_the_gateway(
    tmp_path: Path, pico: EmulatedPico, channel: Any, broker: Any, central: Any,
    provisioning_gateway: Any,
) -> None:
    channel.attach_board(pico, rssi=-101)
    req = ProvisionRequest(
        meter_serial="WM-RP2-001",
        reading_m3=Decimal("42.000"),
        pulse_weight=PulseWeight(1, 1),
        registry_path=tmp_path / "registry.db",
        port=pico.pty_path,
        board="rp2",
        interval_s=10,
        pin_pulse=str(PULSE),
        pin_dir=str(DIR),
        installer="hil",
        keys_out=provisioning_gateway.keys,
        mqtt=(broker.host, broker.port),
        selftest_timeout=120,
    )
    req.alarms.backflow_pulses = 3
    result = provisioning_gateway.provision(pico, req)
    text = "\n".join(provisioning_gateway.lines)
    assert "board: rp2 (Raspberry Pi Pico with RP2040), MicroPython 1.27.0" in text, text
    assert result.selftest is not None and result.selftest.passed, text
    assert result.device.state == reg.STATE_TESTED and result.device.rssi == -101
    names = set(pico.list_files())
    # the modules it imports compiled to .mpy; the files ld() loads a chunk at a time
    # into one namespace are source (docs/firmware.md, "Lowering per board")
    compiled = {"ml_cfg.mpy", "glue.mpy", NRF51_NAMES["config"].replace(".py", ".mpy")}
    assert compiled | {"config.txt", "main.py", NRF51_NAMES["run"]} <= names, names
    assert not {"ml_cfg.py", "glue.py", NRF51_NAMES["config"]} & names  # compiled, not source
    restart(pico)  # the listing went through the USB REPL, which stopped the firmware

    did = result.device.device_id
    pico.pulses(PULSE, 15, 20, 20)  # 25 Hz
    want = 42000 + 15
    msg = central.wait_for(
        lambda m: m.topic == f"meterlink/v1/readings/{did}" and m.json()["register"] == want,
        timeout=120,
    )
    assert msg.json()["device_id"] == did
    # backflow: reverse pulses raise a confirmed alarm; the gateway acks it
    pico.set_pin(DIR, 1)
    pico.pulses(PULSE, 4, 20, 20)
    pico.set_pin(DIR, 0)
    alarm = central.wait_for(lambda m: m.topic == f"meterlink/v1/alarms/{did}", timeout=120)
    assert "backflow" in str(alarm.json()), alarm.json()
    channel.wait_for(lambda e: e.direction == "down" and e.outcome == "delivered", timeout=60)
    # config and time downlinks from the central system, in the next receive windows
    for command in ({"type": "config", "interval_s": 4}, {"type": "time"}):
        publish.single(f"meterlink/v1/commands/{did}", json.dumps(command), qos=1,
                       hostname=broker.host, port=broker.port)  # fmt: skip
    central.wait_for(
        lambda m: m.topic == f"meterlink/v1/readings/{did}" and m.json()["interval_s"] == 4,
        timeout=120,
    )
    downs = [e for e in channel.trace if e.direction == "down" and e.outcome == "delivered"]
    assert len(downs) >= 3, downs  # the ack, the config, the time


def test_boots_counts_and_stops_on_ctrl_c(pico: EmulatedPico) -> None:
    config = render_config(board="rp2", id=DEV2, key=KEY, gen=1, register=REG2,
                           interval=2, rx_window_ms=200, pin_pulse=str(PULSE),
                           pin_dir=str(DIR))  # fmt: skip
    pico.flash({**bundle("rp2"), "config.txt": config.encode()})
    pico.take_modem_bytes()
    pico.reset()
    decoder = LinkDecoder()
    heard: list[Any] = []

    def collect(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for link in decoder.feed(pico.take_modem_bytes()):
                if isinstance(link, LinkFrame):
                    heard.append(decode_frame(link.payload, KEY))
            time.sleep(0.1)

    deadline = time.monotonic() + 90
    while not [f for f in heard if f.frame_type == FrameType.READING]:
        assert time.monotonic() < deadline, f"no reading from the rp2 build: {heard}"
        collect(1)
    assert heard[0].frame_type == FrameType.STATUS and isinstance(heard[0].body, Status)
    assert heard[0].body.error in (None, 0)
    # status_detail: the register (as committed) and the configuration echo, as they fit
    assert (heard[0].body.register, heard[0].body.interval_s) == (REG2, 2)
    assert heard[0].body.alarms is not None and heard[0].body.pulse_weight is not None
    pico.pulses(PULSE, 40, 20, 20)  # 25 Hz, timed by the chip
    pico.set_pin(DIR, 1)
    pico.pulses(PULSE, 5, 20, 20)  # backflow: a debt of 5
    pico.set_pin(DIR, 0)
    pico.pulses(PULSE, 10, 20, 20)  # pays it back, then 5 more
    collect(6)
    readings = [f.body for f in heard if f.frame_type == FrameType.READING]
    assert all(isinstance(r, Reading) for r in readings)
    registers = [r.register for r in readings]
    assert registers == sorted(registers) and registers[-1] == REG2 + 40 + 5, registers
    counters = [f.counter for f in heard]
    assert counters == sorted(set(counters))
    # maintenance: Ctrl-C on USB (the REPL's own way in) stops it at the REPL, and the
    # run phase committed a clean record on the way
    assert pico.exec("print(7 * 6)").strip() == "42"
    names = pico.list_files()
    assert "rt" not in names and "cf" not in names
    records = [pico.read_file(n) for n in ("st0", "st1") if n in names]
    newest = max((struct.unpack_from("<15I", r) for r in records if len(r) == 62),
                 key=lambda s: s[0])  # fmt: skip
    assert newest[int(FIELDS["S_FLAGS"])] & 1 and newest[int(FIELDS["S_REG"])] == REG2 + 45


def restart(pico: EmulatedPico, timeout: float = 60) -> None:
    """Resets the chip and returns once the firmware has sent its first frame (its pulse
    input is armed by then: edges before it are not counted, as on a real board)."""
    pico.take_modem_bytes()
    pico.reset()
    decoder = LinkDecoder()
    deadline = time.monotonic() + timeout
    while not decoder.feed(pico.take_modem_bytes()):
        assert time.monotonic() < deadline, "the firmware sent nothing after the reset"
        time.sleep(0.2)


def frames(pico: EmulatedPico, decoder: LinkDecoder) -> list[Any]:
    out = []
    for link in decoder.feed(pico.take_modem_bytes()):
        out.append(decode_frame(link.payload, KEY))  # type: ignore[union-attr]
    return out


def flash_build(pico: EmulatedPico, interval: int = 5) -> None:
    text = render_config(
        id=DEV, key=KEY, gen=1, register=REGISTER, interval=interval, rx_window_ms=200,
        pin_pulse=str(PULSE), pin_dir=str(DIR),
    )  # fmt: skip
    pico.flash({**bundle("rp2"), "config.txt": text.encode()})


def power_cut_campaign(pico: EmulatedPico, cuts: int, seed: int) -> None:
    """Pulses go in while the power is cut at random instants; every frame heard that
    carries a register (readings and alarms always; a status only where it has room, key
    1 being its lowest priority: protocol 4.4) must have one at least the last one heard,
    at most the initial register plus the pulses made so far, and a counter not heard
    before (unless it is an alarm's resend). Pulses not yet committed when the power goes
    are lost (docs/firmware.md): after the last power-on, the pulses given are all
    counted."""
    rng = random.Random(seed)
    flash_build(pico)
    pico.reset()
    decoder = LinkDecoder()
    sent = 0
    counters: dict[int, bytes] = {}  # counter -> the frame sent with it
    heard: list[Any] = []
    log: list[str] = []

    def check(got: list[Any], when: str, made: int = 0) -> None:
        # made: edges of the running train so far (read after the frames were taken)
        for f in got:
            assert f.device_id == DEV
            # an alarm's resend repeats its frame byte for byte (and so its register,
            # however old); anything else with a known counter is reuse
            if f.counter in counters:
                assert counters[f.counter] == f.payload, f"counter {f.counter} reused ({when})"
                continue
            counters[f.counter] = f.payload
            now = f.body.register if isinstance(f.body, Reading | Status | Alarm) else None
            if now is not None:
                if heard:
                    assert now >= heard[-1], f"register went back ({when}): {now} after {log[-8:]}"
                assert now <= REGISTER + sent + made, f"register above the truth ({when})"
                heard.append(now)
                log.append(f"{when} {f.frame_type.name} c{f.counter} r{now}")

    def wait_frame(pred: Any, timeout: float, when: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = frames(pico, decoder)
            check(got, when, pico.rises())
            for f in got:
                if pred(f):
                    return f
            time.sleep(0.3)
        raise AssertionError(f"no frame as wanted within {timeout} s ({when})")

    for cut in range(cuts):
        wait_frame(lambda f: True, 60, f"boot {cut}")  # the firmware is up
        pico.pulses(PULSE, rng.randint(3, 25), 15, 15, wait=False)
        time.sleep(rng.uniform(0.2, 6.0))  # the cut lands anywhere: in a pulse, a commit
        got = frames(pico, decoder)
        check(got, f"cut {cut}", pico.rises())
        pico.power_cut()
        sent += pico.rises_at_cut  # edges made before the CPU stopped
        check(frames(pico, decoder), f"cut {cut}")
        pico.power_on()
        decoder = LinkDecoder()
    wait_frame(lambda f: True, 60, "last boot")  # the boot status: the input is armed
    first = wait_frame(lambda f: isinstance(f.body, Reading), 60, "last boot's reading")
    base = first.body.register
    pico.pulses(PULSE, 12, 15, 15)  # pico.rises() counts them from here on
    wait_frame(lambda f: isinstance(f.body, Reading) and f.body.register == base + 12, 90, "last")


def test_power_cuts_at_random_instants(pico: EmulatedPico) -> None:
    power_cut_campaign(pico, cuts=3, seed=16)


@pytest.mark.slow
def test_power_cuts_at_random_instants_long(pico: EmulatedPico) -> None:
    power_cut_campaign(pico, cuts=25, seed=1616)


def test_protocol_vectors_on_the_chip(pico: EmulatedPico) -> None:
    """firmware/tests/lean_vectors.py (CRC, AES, CMAC, keys, SLIP writer and receiver,
    varints, every valid and invalid frame, the downlink counter rule, LoRa airtimes) on
    the chunks of bundle("rp2"), loaded by its main.py's ld() on MicroPython v1.27.0
    on the RP2040, as CPython and the WebAssembly port run it on the sources."""
    root = Path(__file__).resolve().parents[2]
    files = {n: d for n, d in bundle("rp2").items() if n != "main.py"}
    main = bundle("rp2")["main.py"].decode()
    files["ml_ld.py"] = ("import gc\n" + main[main.index("def ld(") : main.index("\ntry:")]
                         + "\n").encode()  # fmt: skip
    files["fields.py"] = (root / "firmware/meterlink/firmware/mp/fields.py").read_bytes()
    files["lean_vectors.py"] = (root / "firmware/tests/lean_vectors.py").read_bytes()
    # without the indentation: 51 of 62 KB over the emulated USB, about 6 KB/s
    vectors = json.loads((root / "protocol/vectors/v2.json").read_bytes())
    files["v2.json"] = json.dumps(vectors, separators=(",", ":")).encode()
    pico.flash(files)
    out = pico.exec(
        "import json, lean_vectors\n"
        "def load(ns, roles):\n"
        "    exec(open('ml_ld.py').read(), ns)\n"
        "    for r in roles:\n"
        f"        if {NAMES!r}.get(r) in {sorted(files)!r}:\n"
        f"            ns['ld']({NAMES!r}[r])\n"
        "print(lean_vectors.run_all(json.load(open('v2.json')), lean_vectors.space(load)))\n",
        timeout=300,
    )
    # without the downlink handler (lean/downlink.py) the uplink side only
    cases = 137 if "downlink" in NAMES and NAMES["downlink"] in files else 28
    assert out.strip() == f"({cases}, 42)", out


def test_pulses_during_sealing_and_the_receive_window_all_counted(pico: EmulatedPico) -> None:
    """30 Hz for 8 s across interval ends: the handler counts while the main loop seals,
    sends and listens."""
    flash_build(pico, interval=3)
    restart(pico)
    decoder = LinkDecoder()
    pico.pulses(PULSE, 240, 16, 17)
    deadline = time.monotonic() + 90
    registers: list[int] = []
    while time.monotonic() < deadline and REGISTER + 240 not in registers:
        registers += [f.body.register for f in frames(pico, decoder) if isinstance(f.body, Reading)]
        time.sleep(0.3)
    assert REGISTER + 240 in registers, registers
    assert len(registers) >= 3  # sealing happened while pulses came
