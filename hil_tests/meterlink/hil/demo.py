"""`meterlink demo`: the whole chain on this machine.

A local Mosquitto, emulated modules provisioned through the real installer path, the
real gateway, water flowing on their GPIO pins, a power cut and a broker outage on the
way, and a summary of what reached the broker. The radio path is LoRa by default: each
board's UART modem transmits on the LoRa medium, two emulated concentrators hear it and
speak the packet-forwarder protocol to the gateway, whose acks come back by PULL_RESP.
The last `at_modules` modules are emulated Picos (the rp2 build) talking AT commands to an
emulated RAK3172 (`AtModem`) on UART0; the others are nRF51 boards behind the transparent
UART modem. `radio="channel"` uses the ideal serial channel instead (nRF51 boards only).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from meterlink.hil import flow
from meterlink.hil.board import EmulatedBoard
from meterlink.hil.broker import Mosquitto, free_port
from meterlink.hil.central import Central
from meterlink.hil.concentrator import EmulatedConcentrator
from meterlink.hil.gateway_process import GatewayProcess
from meterlink.hil.lora_medium import LoRaMedium, RadioParams, RealtimeMedium
from meterlink.hil.lora_modem import AtModem, TransparentModem
from meterlink.hil.pico import EmulatedPico, runner_missing
from meterlink.hil.radio import RadioChannel
from meterlink.protocol import Header, ProtocolError

Say = Callable[[str], None]

ROLES = ("household", "leak", "backflow")
PULSE_PIN, DIR_PIN = "pin0", "pin1"
PICO_PULSE_GPIO, PICO_DIR_GPIO = 16, 17


@dataclass
class DemoOptions:
    modules: int = 3
    interval_s: int = 20  # one metering interval (15 minutes in the field)
    duration_s: float | None = None  # None: until Ctrl-C
    seed: int = 1
    loss: float = 0.05
    http_port: int = 0
    workdir: Path = Path("demo-run")
    power_cut_at_s: float = 90.0  # after the flow starts
    outage_at_s: float = 130.0
    outage_s: float = 20.0
    summary_every_s: float = 10.0
    radio: str = "lora"  # or "channel": the ideal serial channel with `loss`
    at_modules: int = 1  # the last ones: emulated Picos with an AT modem (radio "lora")


CONCENTRATORS = (("aa555a0000000001", (0.0, 0.0)), ("aa555a0000000002", (1800.0, 300.0)))
DEMO_RADIO = RadioParams(freq_mhz=868.1, sf=7)


class PicoPins:
    """An emulated Pico's GPIOs by name ("16"), as the flow driver drives a board's pins;
    pulses are timed by the chip's clock."""

    def __init__(self, pico: EmulatedPico) -> None:
        self.pico = pico

    def pulse(self, pin: str, count: int, high_ms: float = 40, low_ms: float = 40) -> None:
        self.pico.pulses(int(pin), count, high_ms, low_ms)

    def set_pin(self, pin: str, level: int) -> None:
        self.pico.set_pin(int(pin), level)


@dataclass
class Module:
    index: int
    role: str
    board: EmulatedBoard | EmulatedPico
    serial: str
    reading_m3: Decimal
    device_id: int = 0
    driver: flow.FlowDriver | None = None


@dataclass
class Outcome:
    """What reached the broker, for the summary and for --check."""

    readings: dict[int, int]
    alarms: dict[int, set[str]]
    missing: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing


def goals(modules: list[Module], central: Central) -> Outcome:
    readings: dict[int, int] = {}
    alarms: dict[int, set[str]] = {}
    for msg in central.on_topic("meterlink/v1/"):
        kind, _, dev = msg.topic.removeprefix("meterlink/v1/").partition("/")
        if not dev.isdigit():
            continue
        did = int(dev)
        if kind == "readings":
            readings[did] = readings.get(did, 0) + 1
        elif kind == "alarms":
            body = msg.json()
            alarms.setdefault(did, set()).update(body.get("raised", []) or [])
            alarms[did].update(body.get("active", []) or [])
    missing = []
    for m in modules:
        if not readings.get(m.device_id):
            missing.append(f"no reading yet from module {m.index} ({m.role})")
        want = {"leak": "leak", "backflow": "backflow"}.get(m.role)
        if want and want not in alarms.get(m.device_id, set()):
            missing.append(f"no {want} alarm yet from module {m.index}")
    return Outcome(readings, alarms, missing)


class Demo:
    def __init__(self, options: DemoOptions, say: Say = print) -> None:
        self.o = options
        self.say = say
        self.work = options.workdir.resolve()
        self.modules: list[Module] = []
        self.broker: Mosquitto | None = None
        self.central: Central | None = None
        self.channel: RadioChannel | None = None
        self.medium: RealtimeMedium | None = None
        self.concentrators: list[EmulatedConcentrator] = []
        self.modems: list[TransparentModem | AtModem] = []
        self.gateway: GatewayProcess | None = None
        self.http_port = options.http_port or free_port()
        self.keys = self.work / "gateway-keys.json"
        self.flow_started = time.monotonic()
        self.cpu = HostCpu()
        self._pico_missing: str | None = None  # why no Pico can run here ("" if it can)

    # ----------------------------------------------------------------- set-up
    def _prepare_workdir(self) -> None:
        if self.work.exists():
            shutil.rmtree(self.work)
        (self.work / "boards").mkdir(parents=True)

    def _start_infrastructure(self) -> None:
        self.broker = Mosquitto(self.work / "broker")
        self.broker.start()
        self.say(f"broker    Mosquitto on {self.broker.host}:{self.broker.port}")
        self.central = Central(self.broker.host, self.broker.port)
        self.central.start()
        if self.o.radio == "lora":
            self.medium = RealtimeMedium(LoRaMedium(seed=self.o.seed)).start()
            return
        self.channel = RadioChannel(
            seed=self.o.seed, loss=self.o.loss, trace_path=self.work / "radio-trace.jsonl"
        )
        self.channel.start()

    def _picos(self) -> int:
        """How many modules (the last ones) are Picos with an AT modem: none on the serial
        channel, none (said once) where the Pico emulator or its firmware is missing."""
        if self.o.radio != "lora" or self.o.at_modules <= 0:
            return 0
        if self._pico_missing is None:
            self._pico_missing = runner_missing() or ""
            if self._pico_missing:
                self.say(f"note      no emulated Pico here ({self._pico_missing}); every "
                         "module is an nRF51 board behind a transparent modem")
        if self._pico_missing:
            return 0
        return min(self.o.at_modules, self.o.modules)

    def _boot_boards(self) -> None:
        first_pico = self.o.modules - self._picos()
        boards: list[EmulatedBoard | EmulatedPico] = [
            EmulatedBoard(self.work / "boards" / f"m{i}", name=f"module-{i}", seed=self.o.seed + i)
            if i < first_pico else EmulatedPico(self.work / "boards" / f"m{i}", name=f"module-{i}")
            for i in range(self.o.modules)
        ]
        errors: list[BaseException] = []

        def boot(b: EmulatedBoard | EmulatedPico) -> None:
            try:
                b.start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=boot, args=(b,)) for b in boards]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, b in enumerate(boards):
            self.modules.append(
                Module(
                    index=i,
                    role=ROLES[i % len(ROLES)],
                    board=b,
                    serial=f"WM-DEMO-{i + 1:03d}",
                    reading_m3=Decimal("123.456") + i * Decimal("10.5"),
                )
            )
        if errors:
            raise errors[0]
        picos = self._picos()
        kinds = [f"{len(boards) - picos} emulated nRF51 boards (micro:bit, MicroPython 1.9.2)"]
        if picos:
            kinds.append(f"{picos} emulated Raspberry Pi Pico{'s' if picos > 1 else ''} "
                         "(RP2040, MicroPython 1.27.0)")
        self.say("modules   " + " and ".join(k for k in kinds if not k.startswith("0 ")))

    def _start_gateway(self) -> None:
        from meterlink.provisioning.exports import export_key_file

        assert self.broker is not None
        export_key_file([], self.keys)
        config = self.work / "gateway.toml"
        pf_port = 0
        if self.medium is not None:
            pf_port = free_udp_port()
            euis = ", ".join(f'"{eui}"' for eui, _ in CONCENTRATORS)
            serial = (f'[[packet_forwarder]]\nname = "lora"\nhost = "127.0.0.1"\n'
                      f"port = {pf_port}\ngateway_euis = [{euis}]\n\n")
        else:
            assert self.channel is not None
            receivers = [self.channel.add_receiver(f"rx{n}") for n in range(2)]
            for m in self.modules:
                self.channel.attach_board(m.board, rssi=-85 - 6 * m.index)
            serial = "".join(f'[[serial]]\nname = "rx{n}"\nport = "{path}"\n\n'
                             for n, path in enumerate(receivers))
        config.write_text(
            f'[gateway]\nid = "gw-demo"\nkeys_file = "{self.keys}"\n\n{serial}'
            f'[mqtt]\nhost = "{self.broker.host}"\nport = {self.broker.port}\n'
            f"backoff_max_s = 2\n\n"
            f'[outbox]\npath = "{self.work / "gateway.sqlite"}"\n\n'
            f'[http]\nhost = "127.0.0.1"\nport = {self.http_port}\n'
        )
        self.gateway = GatewayProcess(config, self.work / "gateway.log")
        self.gateway.start()
        self._wait_http(timeout=30)
        if self.medium is not None:
            for eui, pos in CONCENTRATORS:
                self.concentrators.append(EmulatedConcentrator(
                    self.medium, eui, ("127.0.0.1", pf_port), position=pos, keepalive_s=5,
                    seed=self.o.seed).start())
            for m in self.modules:
                pos = (250.0 + 200 * m.index, 150.0 * m.index)
                if isinstance(m.board, EmulatedPico):
                    # a RAK3172 on UART0; the firmware sets its P2P parameters at boot
                    self.modems.append(AtModem(m.board, self.medium, position=pos))
                else:
                    self.modems.append(TransparentModem(m.board, self.medium, position=pos,
                                                        params=DEMO_RADIO))
            at = sum(isinstance(x, AtModem) for x in self.modems)
            self.say(f"radio     LoRa medium ({DEMO_RADIO.datr}, {DEMO_RADIO.freq_mhz} MHz): "
                     f"{len(self.modems) - at} transparent UART modems, {at} AT "
                     f"modem{'' if at == 1 else 's'} (RAK3172, RUI3 P2P), concentrators "
                     f"{', '.join(e for e, _ in CONCENTRATORS)} -> packet forwarder UDP "
                     f"port {pf_port}")
        self.say(
            f"gateway   status page http://127.0.0.1:{self.http_port}/  "
            f"(log {self.gateway.log_path})"
        )

    def _wait_http(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.gateway is not None and not self.gateway.running:
                raise RuntimeError(f"the gateway exited; see {self.gateway.log_path}")
            if self.status() is not None:
                return
            time.sleep(0.3)
        log = self.gateway.log_path if self.gateway else "the gateway log"
        raise RuntimeError(f"the gateway's status page did not come up; see {log}")

    def status(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}/api/status", timeout=2
            ) as r:
                data: dict[str, Any] = json.loads(r.read())
                return data
        except OSError:
            return None

    def _provision_all(self) -> None:
        from meterlink.provisioning.errors import BoardNotResponding, FlashVerifyFailed
        from meterlink.provisioning.provision import ProvisionRequest, flash_and_restart
        from meterlink.provisioning.values import PulseWeight

        assert self.gateway is not None
        for m in self.modules:
            leak_intervals = 4 if m.role == "leak" else 96
            req = ProvisionRequest(
                meter_serial=m.serial,
                reading_m3=m.reading_m3,
                pulse_weight=PulseWeight(1, 1),
                registry_path=self.work / "registry.db",
                port=m.board.pty_path,
                interval_s=self.o.interval_s,
                installer="demo",
                address=f"Demo Street {m.index + 1}",
                keys_out=self.keys,
                pin_pulse=PULSE_PIN,
                pin_dir=DIR_PIN,
            )
            if isinstance(m.board, EmulatedPico):
                # as `meterlink provision --board rp2 --modem at --lora-freq 868100000
                # --lora-sf 7 --pin-pulse 16 --pin-dir 17`
                req.board = "rp2"
                req.pin_pulse, req.pin_dir = str(PICO_PULSE_GPIO), str(PICO_DIR_GPIO)
                req.modem = 1
                req.lora_freq = round(DEMO_RADIO.freq_mhz * 1e6)
                req.lora_sf = DEMO_RADIO.sf
            else:
                req.cable = m.board.cable  # the maintenance input, as an installer's cable
            req.alarms.leak_intervals = leak_intervals
            req.alarms.backflow_pulses = 5
            lines: list[str] = []
            for attempt in range(1, 4):
                try:
                    with m.board.released():
                        flashed = flash_and_restart(req, lines.append, show_progress=False)
                    break
                except (BoardNotResponding, FlashVerifyFailed) as exc:
                    # a byte lost on a loaded host's UART: the remedy is to run again,
                    # which is safe (the registry and the board continue from there)
                    if attempt == 3:
                        raise
                    self.say(f"provision module {m.index}: {exc.problem}; again "
                             f"({attempt + 1} of 3)")
            m.device_id = flashed.device.device_id
            self.gateway.send_signal(signal.SIGHUP)  # load the new key
            board = "rp2, AT modem" if isinstance(m.board, EmulatedPico) else "nRF51"
            self.say(
                f"provision module {m.index} ({m.role}, {board}): meter {m.serial}, device "
                f"{m.device_id}, dial {m.reading_m3} m3 -> register "
                f"{flashed.device.initial_register}"
            )

    def _start_flows(self) -> None:
        for m in self.modules:
            if m.role == "household":
                profile = flow.household(self.o.seed + m.index)
            elif m.role == "leak":
                profile = flow.leak(1)
            else:
                # repeated: a host too busy to run the board for a second loses pulses
                profile = flow.backflow(3, 8, flow.household(self.o.seed + m.index), every=8)
            if isinstance(m.board, EmulatedPico):
                pins: flow.PulseTarget = PicoPins(m.board)
                pulse_pin, dir_pin = str(PICO_PULSE_GPIO), str(PICO_DIR_GPIO)
            else:
                pins, pulse_pin, dir_pin = m.board, PULSE_PIN, DIR_PIN
            m.driver = flow.FlowDriver(
                pins,
                profile,
                interval_s=self.o.interval_s,
                pulse_pin=pulse_pin,
                dir_pin=dir_pin,
                name=f"flow-{m.index}",
            )
            m.driver.start()
        self.say("flow      household day on module 0, a leak on 1, backflow events on 2")

    # ------------------------------------------------------------------ events
    def _power_cut(self, m: Module) -> None:
        assert m.driver is not None
        self.say(f"event     power cut on module {m.index} for 5 s")
        m.driver.paused.set()
        m.board.power_cut()
        time.sleep(5)
        m.board.power_on()
        m.driver.paused.clear()
        self.say(f"event     module {m.index} powered again")

    def _broker_outage(self) -> None:
        assert self.broker is not None
        self.say(f"event     broker stopped for {self.o.outage_s:.0f} s: the gateway buffers")
        self.broker.stop()
        time.sleep(self.o.outage_s)
        self.broker.start()
        self.say("event     broker back: the gateway drains its backlog")

    # ----------------------------------------------------------------- running
    def summary(self) -> str:
        assert self.central is not None
        out = goals(self.modules, self.central)
        st = self.status() or {}
        broker = "up" if self.broker and self.broker.running else "DOWN"
        backlog = st.get("backlog", {}).get("messages", "?")
        frames = st.get("frames", {})
        lines = [
            f"--- {time.strftime('%H:%M:%S')}  broker {broker}  gateway backlog {backlog}  "
            f"frames accepted {frames.get('accepted', '?')} duplicate "
            f"{frames.get('duplicate', '?')} rejected {frames.get('rejected', '?')}"
        ]
        for m in self.modules:
            last = None
            for msg in reversed(self.central.on_topic(f"meterlink/v1/readings/{m.device_id}")):
                last = msg.json()
                break
            reg = f"{last['volume_l'] / 1000:.3f} m3" if last and "volume_l" in last else "-"
            rssi = last.get("rssi", "-") if last else "-"
            alarms = ",".join(sorted(out.alarms.get(m.device_id, set()))) or "-"
            given = m.driver.given_forward if m.driver else 0
            back = m.driver.given_reverse if m.driver else 0
            back_text = f" (+{back} reverse)" if back else ""
            lines.append(
                f"  module {m.index} {m.role:<9} device {m.device_id:<10} readings "
                f"{out.readings.get(m.device_id, 0):<3} register {reg:<12} rssi {rssi!s:<4} "
                f"alarms {alarms:<18} pulses given {given}{back_text}"
            )
            if m.driver and m.driver.errors:
                lines.append(f"    flow on module {m.index}: {m.driver.errors[-1]}")
        if self.medium is not None:
            air = self.medium.outcomes()
            acks = sum(1 for c in self.concentrators for d in c.snapshot()[0] if d.sent)
            lines.append(f"  LoRa: {self.medium.medium.transmissions} frames on the air, "
                         f"received {air.get('received', 0)}, collided "
                         f"{air.get('collision', 0)}, too weak "
                         f"{air.get('below_sensitivity', 0)}; PULL_RESP sent {acks}")
            for m, modem in zip(self.modules, self.modems, strict=False):
                if isinstance(modem, AtModem):
                    lines.append("  " + at_modem_line(m.index, m.device_id, modem))
                else:
                    lines.append("  " + modem.describe())
        cpu = self.cpu.sample()
        if cpu:
            lines.append("  " + cpu)
        for m in self.modules:
            silent_s = time.monotonic() - self.flow_started
            if not out.readings.get(m.device_id) and silent_s > 3 * self.o.interval_s:
                lines.append(
                    f"    nothing heard from module {m.index} for {silent_s:.0f} s: what it "
                    f"printed is in {m.board.uart_log}"
                )
        return "\n".join(lines)

    def run(self) -> int:
        """Runs until Ctrl-C or the duration; returns 0 when every goal was reached."""
        started = time.monotonic()
        try:
            self._prepare_workdir()
            self._start_infrastructure()
            self._boot_boards()
            self._start_gateway()
            self._provision_all()
            self._start_flows()
            assert self.central is not None
            flow_start = self.flow_started = time.monotonic()
            events: list[tuple[float, Callable[[], None]]] = [
                (self.o.power_cut_at_s, lambda: self._power_cut(self.modules[0])),
                (self.o.outage_at_s, self._broker_outage),
            ]
            next_summary = time.monotonic()
            announced = False
            while True:
                now = time.monotonic()
                for ev in list(events):
                    if now - flow_start >= ev[0]:
                        events.remove(ev)
                        threading.Thread(target=ev[1], daemon=True).start()
                if now >= next_summary:
                    self.say(self.summary())
                    next_summary = now + self.o.summary_every_s
                out = goals(self.modules, self.central)
                if out.complete and not announced:
                    announced = True
                    self.say(
                        "DEMO GOALS REACHED: readings from every module, leak and backflow "
                        "alarms at the broker"
                    )
                if self.o.duration_s is not None and now - started >= self.o.duration_s:
                    self.say(self.summary())
                    self.say(self.cpu.overall())
                    if out.complete:
                        return 0
                    self.say("demo ended before: " + "; ".join(out.missing))
                    return 1
                time.sleep(0.5)
        finally:
            self.close()

    def close(self) -> None:
        for m in self.modules:
            if m.driver is not None:
                m.driver.stop()
        if self.gateway is not None:
            self.gateway.stop()
        for m in self.modules:
            m.board.close()
        if self.channel is not None:
            self.channel.close()
        for modem in self.modems:
            modem.close()
        for conc in self.concentrators:
            conc.close()
        if self.medium is not None:
            self.medium.close()
        if self.central is not None:
            with contextlib.suppress(Exception):
                self.central.close()
        if self.broker is not None:
            self.broker.stop()


def at_modem_line(index: int, device_id: int, modem: AtModem) -> str:
    """What one AT modem did: frames sent by AT+PSEND, how many repeated an earlier one
    byte for byte (an alarm resent for want of an ack), downlinks for its module it heard
    in the receive windows the firmware opened."""
    payloads = [tx.payload for tx in list(modem.sent)]
    heard = [r.tx.payload for r in list(modem.heard) if r.outcome == "received"]
    downlinks = 0
    for payload in heard:
        with contextlib.suppress(ProtocolError):
            h = Header.parse(payload)
            downlinks += not h.frame_type.is_uplink and h.device_id == device_id
    return (f"module {index} AT modem: {len(payloads)} frames sent by AT+PSEND "
            f"({len(payloads) - len(set(payloads))} resent), downlinks heard in its receive "
            f"windows: {downlinks}")


_PROGRAMS = {"qemu-system-arm": "nRF51 (QEMU)", "node": "Pico (rp2040js)",
             "mosquitto": "Mosquitto", "meterlink": "gateway"}


class HostCpu:
    """Host CPU the demo's processes used between two calls, in cores, by program: the
    emulators (QEMU for an nRF51, Node for a Pico), the gateway, Mosquitto, the demo
    itself. Read from /proc (Linux); empty elsewhere."""

    def __init__(self) -> None:
        self._last: dict[int, float] = {}
        self._at = self._started = time.monotonic()
        self._total: dict[str, float] = {}  # CPU seconds by program since the first sample

    @staticmethod
    def _processes() -> Iterator[tuple[int, str, float]]:
        import os

        me = os.getpid()
        tick = os.sysconf("SC_CLK_TCK")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = (entry / "stat").read_text()
                comm = raw[raw.index("(") + 1:raw.rindex(")")]
                fields = raw[raw.rindex(")") + 2:].split()
                if int(fields[1]) == me or int(entry.name) == me:
                    name = "demo" if int(entry.name) == me else comm
                    yield int(entry.name), name, (int(fields[11]) + int(fields[12])) / tick

    def sample(self) -> str:
        now = time.monotonic()
        wall = max(1e-3, now - self._at)
        per: dict[str, list[float]] = {}
        seen: dict[int, float] = {}
        for pid, comm, cpu in self._processes():
            seen[pid] = cpu
            if pid in self._last:
                name = _PROGRAMS.get(comm, comm)
                per.setdefault(name, []).append((cpu - self._last[pid]) / wall)
                self._total[name] = self._total.get(name, 0.0) + cpu - self._last[pid]
        if not self._last:
            self._started = now  # the first sample: the totals count from here
        self._last, self._at = seen, now
        if not per:
            return ""
        parts = []
        for name in sorted(per, key=lambda n: -sum(per[n])):
            v = per[name]
            each = f" ({len(v)}, {sum(v) / len(v):.2f} each)" if len(v) > 1 else ""
            parts.append(f"{name} {sum(v):.2f}{each}")
        return f"host CPU (cores, last {wall:.0f} s): " + ", ".join(parts)

    def overall(self) -> str:
        """CPU seconds by program from the first sample to the last, and the mean cores."""
        wall = max(1e-3, self._at - self._started)
        parts = [f"{name} {cpu:.0f} s ({cpu / wall:.2f} cores)"
                 for name, cpu in sorted(self._total.items(), key=lambda kv: -kv[1])]
        return f"host CPU over {wall:.0f} s: " + ", ".join(parts) if parts else ""


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the demo the same clean way as Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_demo(options: DemoOptions) -> int:
    def say(line: str) -> None:
        print(line, flush=True)

    demo = Demo(options, say)
    try:
        with sigterm_as_interrupt():
            return demo.run()
    except KeyboardInterrupt:
        print("\nstopped: every module, the gateway and the broker are shut down", file=sys.stderr)
        return 130
