"""The production build (bundle("rp2")) on the emulated Pico through the real LoRa path:
provisioned by `meterlink provision --board rp2 --modem at`, its UART0 wired to an emulated
RAK3172 (`AtModem`, RUI3 P2P) on the LoRa medium, an emulated concentrator, the
packet-forwarder protocol to the gateway process, Mosquitto. Readings reach the broker; a
backflow alarm is acked by PULL_RESP inside the receive window the firmware opens on
`+EVT:TXP2P DONE`, so it is sent once; config and time commands reach the chip in its
next windows; after a power cut the firmware sets the modem up again and its
unexpected-reset alarm is acked the same way."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt import publish

from meterlink import cli
from meterlink.hil.concentrator import EmulatedConcentrator
from meterlink.hil.lora_medium import LoRaMedium, RealtimeMedium
from meterlink.hil.lora_modem import AtModem
from meterlink.hil.pico import EmulatedPico
from meterlink.protocol import FrameType, Header
from meterlink.provisioning.exports import export_key_file

pytestmark = pytest.mark.hil

EUI = "aa555a0000000001"
PULSE, DIR = 16, 17  # GPIO numbers of the pulse and flow-direction inputs
FREQ_HZ, SF = 868_300_000, 8


def gateway_config(tmp_path: Path, keys: Path, broker: Any) -> Path:
    conf = tmp_path / "gateway.toml"
    conf.write_text(
        f'[gateway]\nid = "gw-lora-at"\nkeys_file = "{keys}"\n\n'
        f'[[packet_forwarder]]\nname = "lora"\nhost = "127.0.0.1"\nport = 0\n'
        f'gateway_euis = ["{EUI}"]\npull_timeout_s = 5\n\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n\n'
        f'[outbox]\npath = "{tmp_path / "outbox.db"}"\n\n'
        f'[http]\nhost = "127.0.0.1"\nport = 0\n'
    )
    return conf


def provision(pico: EmulatedPico, tmp_path: Path, keys: Path, broker: Any, gw: Any) -> str:
    """`meterlink provision` as an installer runs it; SIGHUP to the gateway once the key
    file is written (as the installer's instructions say). Returns its output."""
    argv = ["provision", "--yes", "--no-progress",
            "--port", pico.pty_path, "--board", "rp2", "--modem", "at",
            "--lora-freq", str(FREQ_HZ), "--lora-sf", str(SF),
            "--meter-serial", "WM-AT-001", "--reading", "42.000", "--pulse-weight", "1L",
            "--interval", "10", "--backflow-pulses", "3",
            "--pin-pulse", str(PULSE), "--pin-dir", str(DIR), "--installer", "hil",
            "--registry", str(tmp_path / "registry.db"), "--keys-out", str(keys),
            "--mqtt", f"{broker.host}:{broker.port}", "--selftest-timeout", "120"]

    class Out(io.StringIO):
        def write(self, s: str) -> int:
            if "gateway key file" in s:
                gw.proc.send_signal(signal.SIGHUP)
            return super().write(s)

    out = Out()
    # in this process: the test itself holds the pty open (its console bridge), which
    # the CLI's port check would report as another program using the port
    with pico.released(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = cli.main(argv)
    lines = out.getvalue().splitlines()
    text = "\n".join(lines)
    assert rc == 0, text
    return text


def test_pico_through_the_at_modem_and_the_concentrator(
    tmp_path: Path, pico: EmulatedPico, broker: Any, central: Any, gateway: Any
) -> None:
    keys = tmp_path / "keys.json"
    export_key_file([], keys)
    gw = gateway(gateway_config(tmp_path, keys, broker))
    port = gw.wait_ready()["udp_ports"]["lora"]
    medium = RealtimeMedium(LoRaMedium(seed=16)).start()
    conc = EmulatedConcentrator(medium, EUI, ("127.0.0.1", port), keepalive_s=2).start()
    modem = AtModem(pico, medium, position=(700, 0))  # RUI3 boots in LoRaWAN mode
    try:
        text = provision(pico, tmp_path, keys, broker, gw)
        assert "PASS: " in text and "state tested" in text, text
        did = int(next(ln for ln in text.splitlines()
                       if ln.startswith("registered: device")).split()[2])
        # P2P set at boot: frequency, SF, 125 kHz, 4/5, preamble 8, 14 dBm
        assert modem.commands[:2] == ["AT+NWM=0", f"AT+P2P={FREQ_HZ}:{SF}:125:0:8:14"]
        assert modem.nwm == 0 and modem.params.sf == SF

        pico.pulses(PULSE, 15, 20, 20)
        reading = central.wait_for(
            lambda m: m.topic == f"meterlink/v1/readings/{did}"
            and m.json()["register"] == 42015, timeout=120)
        assert reading.json()["receivers"] == [EUI]

        # backflow: a confirmed alarm, acked by PULL_RESP inside the window
        pico.set_pin(DIR, 1)
        pico.pulses(PULSE, 4, 20, 20)
        pico.set_pin(DIR, 0)
        central.wait_for(lambda m: m.topic == f"meterlink/v1/alarms/{did}"
                         and "backflow" in m.json()["raised"], timeout=120)
        time.sleep(10)  # unacked, it would be resent after 2 s, 4 s and 8 s
        alarms = [tx for tx in modem.sent
                  if Header.parse(tx.payload).frame_type == FrameType.ALARM]
        assert len(alarms) == 1, [round(tx.start, 2) for tx in alarms]
        assert alarms[0].params.sf == SF and alarms[0].params.freq_mhz == FREQ_HZ / 1e6
        acks = [r for r in modem.heard if r.outcome == "received"
                and Header.parse(r.tx.payload).frame_type == FrameType.ACK
                and r.tx.start > alarms[0].end]
        assert acks, [(r.outcome, round(r.tx.start, 2)) for r in modem.heard]
        # the ack began rx_delay (1 s) after the alarm left the antenna
        assert acks[0].tx.start - alarms[0].end == pytest.approx(1.0, abs=0.01)
        downs, _ = conc.snapshot()
        assert all(d.error == "NONE" for d in downs), [d.error for d in downs]
        # each window opens on TX done for what is left of rx_window_ms (2000 ms, in guest
        # time; a run here gave [2000, 2000, 2000, 1628, 2000], the 1628 after an ack)
        precv = [int(c[9:]) for c in modem.commands if c.startswith("AT+PRECV=")]
        print(f"AT+PRECV windows (ms): {precv}")
        assert precv and all(0 < ms <= 2000 for ms in precv) and max(precv) > 1500, precv

        # config and time commands from the central system, in the next windows
        for command in ({"type": "config", "interval_s": 4}, {"type": "time"}):
            publish.single(f"meterlink/v1/commands/{did}", json.dumps(command), qos=1,
                           hostname=broker.host, port=broker.port)
        central.wait_for(lambda m: m.topic == f"meterlink/v1/readings/{did}"
                         and m.json()["interval_s"] == 4, timeout=120)
        kinds = [Header.parse(r.tx.payload).frame_type for r in modem.heard
                 if r.outcome == "received"]
        assert FrameType.CONFIG in kinds and FrameType.TIME in kinds, kinds

        # the status page: the module as heard through the concentrator (SF, signal), its
        # board from the key file, the downlinks the concentrator took without error
        url = f"http://127.0.0.1:{gw.wait_ready()['http_port']}/api/status"
        with urllib.request.urlopen(url, timeout=5) as r:
            status = json.loads(r.read())
        (module,) = [m for m in status["modules"] if m["device_id"] == did]
        assert module["board"] == "rp2", module
        assert {(x["eui"], x["datr"]) for x in module["lora"]} == {(EUI, f"SF{SF}BW125")}, module
        (pf,) = status["concentrators"]
        assert pf["eui"] == EUI and pf["downlinks"] >= 3 and not pf["tx_ack_errors"], pf

        # a power cut: the modem stays on UART0 across it, the firmware sets P2P again at
        # boot, and its unexpected-reset alarm is acked inside the window like the first
        said, cut_at = len(modem.commands), medium.now()
        pico.power_cut()
        pico.power_on()
        central.wait_for(lambda m: m.topic == f"meterlink/v1/alarms/{did}"
                         and "unexpected_reset" in m.json()["raised"], timeout=120)
        assert modem.commands[said:said + 2] == ["AT+NWM=0", f"AT+P2P={FREQ_HZ}:{SF}:125:0:8:14"]
        time.sleep(8)  # unacked, it would be resent after 2 s and 4 s
        alarms = [tx.payload for tx in modem.sent if tx.start > cut_at
                  and Header.parse(tx.payload).frame_type == FrameType.ALARM]
        assert alarms and len(set(alarms)) == len(alarms), alarms  # none resent
        assert any(r.outcome == "received" and r.tx.start > cut_at
                   and Header.parse(r.tx.payload).frame_type == FrameType.ACK
                   for r in modem.heard)
    finally:
        modem.close()
        conc.close()
        medium.close()
