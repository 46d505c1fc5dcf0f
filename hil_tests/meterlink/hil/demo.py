"""`meterlink demo`: the whole chain on this machine.

A local Mosquitto, emulated modules provisioned through the real installer path, the
real gateway, water flowing on their GPIO pins, a power cut and a broker outage on the
way, and a summary of what reached the broker. The radio path is LoRa by default: each
board's UART modem transmits on the LoRa medium, two emulated concentrators hear it and
speak the packet-forwarder protocol to the gateway, whose acks come back by PULL_RESP;
`radio="channel"` uses the ideal serial channel instead.
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
from meterlink.hil.lora_modem import TransparentModem
from meterlink.hil.radio import RadioChannel

Say = Callable[[str], None]

ROLES = ("household", "leak", "backflow")
PULSE_PIN, DIR_PIN = "pin0", "pin1"


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


CONCENTRATORS = (("aa555a0000000001", (0.0, 0.0)), ("aa555a0000000002", (1800.0, 300.0)))
DEMO_RADIO = RadioParams(freq_mhz=868.1, sf=7)


@dataclass
class Module:
    index: int
    role: str
    board: EmulatedBoard
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
        self.modems: list[TransparentModem] = []
        self.gateway: GatewayProcess | None = None
        self.http_port = options.http_port or free_port()
        self.keys = self.work / "gateway-keys.json"
        self.flow_started = time.monotonic()

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

    def _boot_boards(self) -> None:
        boards = [
            EmulatedBoard(self.work / "boards" / f"m{i}", name=f"module-{i}", seed=self.o.seed + i)
            for i in range(self.o.modules)
        ]
        errors: list[BaseException] = []

        def boot(b: EmulatedBoard) -> None:
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
        self.say(f"modules   {len(boards)} emulated nRF51 boards running MicroPython 1.9.2")

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
                self.modems.append(TransparentModem(
                    m.board, self.medium, position=(250.0 + 200 * m.index, 150.0 * m.index),
                    params=DEMO_RADIO))
            self.say(f"radio     LoRa medium ({DEMO_RADIO.datr}, {DEMO_RADIO.freq_mhz} MHz): "
                     f"{len(self.modems)} UART modems, concentrators "
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
                cable=m.board.cable,  # the maintenance input, as an installer's cable
            )
            req.alarms.leak_intervals = leak_intervals
            req.alarms.backflow_pulses = 5
            lines: list[str] = []
            with m.board.released():
                flashed = flash_and_restart(req, lines.append, show_progress=False)
            m.device_id = flashed.device.device_id
            self.gateway.send_signal(signal.SIGHUP)  # load the new key
            self.say(
                f"provision module {m.index} ({m.role}): meter {m.serial}, device {m.device_id}, "
                f"dial {m.reading_m3} m3 -> register {flashed.device.initial_register}"
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
            m.driver = flow.FlowDriver(
                m.board,
                profile,
                interval_s=self.o.interval_s,
                pulse_pin=PULSE_PIN,
                dir_pin=DIR_PIN,
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
        for modem in self.modems:
            lines.append(f"  {modem.describe()}")
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
