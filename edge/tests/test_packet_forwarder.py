"""Packet-forwarder ingress and egress, byte for byte (Semtech UDP protocol v2), with real
UDP sockets on loopback: a hand-written concentrator client talks to the running gateway."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import socket
from typing import Any

import pytest

from meterlink.edge.config import ConfigError, parse_config
from meterlink.protocol import FrameType, decode_frame
from meterlink.protocol.constants import OVERHEAD
from meterlink.protocol.lora import airtime_s

EUI_A = "0016c001ff10a235"
EUI_B = "0016c001ff10a236"


def pf_table(*euis: str, extra: str = "") -> str:
    listed = ", ".join(f'"{e}"' for e in euis)
    return ('\n[[packet_forwarder]]\nname = "lora"\nhost = "127.0.0.1"\nport = 0\n'
            f"gateway_euis = [{listed}]\n{extra}\n")


def rxpk(payload: bytes, tmst: int, *, rssi: int = -80, lsnr: float = 7.5, stat: int = 1,
         freq: float = 868.1, datr: str = "SF9BW125") -> dict[str, Any]:
    return {"tmst": tmst, "chan": 0, "rfch": 0, "freq": freq, "stat": stat, "modu": "LORA",
            "datr": datr, "codr": "4/5", "rssi": rssi, "lsnr": lsnr, "size": len(payload),
            "data": base64.b64encode(payload).decode()}


class Client:
    """The concentrator side of the protocol on a real socket (non-blocking, in the loop)."""

    def __init__(self, port: int, eui: str) -> None:
        self.addr = ("127.0.0.1", port)
        self.eui = bytes.fromhex(eui)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.token = 0x1200

    def close(self) -> None:
        self.sock.close()

    def raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.addr)

    def _next(self) -> bytes:
        self.token += 1
        return self.token.to_bytes(2, "big")

    def push(self, obj: dict[str, Any]) -> bytes:
        token = self._next()
        self.raw(b"\x02" + token + b"\x00" + self.eui + json.dumps(obj).encode())
        return token

    def pull(self) -> bytes:
        token = self._next()
        self.raw(b"\x02" + token + b"\x02" + self.eui)
        return token

    def tx_ack(self, token: bytes, error: str | None = None) -> None:
        body = b"" if error is None else json.dumps({"txpk_ack": {"error": error}}).encode()
        self.raw(b"\x02" + token + b"\x05" + self.eui + body)

    async def recv(self, timeout: float = 3.0) -> bytes:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recv(self.sock, 65535), timeout)

    async def nothing(self, timeout: float = 0.5) -> bool:
        try:
            await self.recv(timeout)
        except TimeoutError:
            return True
        return False

    async def drain(self, timeout: float = 0.5) -> list[bytes]:
        out = []
        with contextlib.suppress(TimeoutError):
            while True:
                out.append(await self.recv(timeout))
        return out

    async def pull_resp(self, timeout: float = 3.0) -> tuple[bytes, dict[str, Any]]:
        while True:
            data = await self.recv(timeout)
            if data[3] == 0x03:
                assert data[0] == 2
                return data[1:3], json.loads(data[4:])["txpk"]


async def connect(gw: Any, eui: str) -> Client:
    c = Client(gw.udp_ports["lora"], eui)
    token = c.pull()
    assert await c.recv() == b"\x02" + token + b"\x04"  # PULL_ACK: version, token, 0x04
    return c


def test_push_data_is_acked_and_rxpk_becomes_a_reading_tagged_with_the_eui(
        broker, central, fleet, write_config, running_gateway, until):
    cfg = write_config(udp=False, broker_port=broker.port, extra=pf_table(EUI_A))
    dev = fleet.devices[0]
    frame = dev.reading()

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            c = Client(gw.udp_ports["lora"], EUI_A)
            token = c.push({"rxpk": [rxpk(frame, 1_000_000, rssi=-97, lsnr=-3.25)]})
            ack = await c.recv()
            assert ack == b"\x02" + token + b"\x01"  # PUSH_ACK: 4 bytes, same token
            assert await until(lambda: gw.metrics.published.total() >= 1)
            snap = gw.snapshot()
            conc = snap["concentrators"][0]
            assert conc["eui"] == EUI_A and conc["frames"] == 1 and not conc["connected"]
            lora = snap["modules"][0]["lora"][0]
            assert lora == {"eui": EUI_A, "datr": "SF9BW125", "freq": 868.1, "rssi": -97,
                            "snr_db": -3.25, "at": lora["at"]}
            text = gw.metrics.render()
            assert f'meterlink_pf_rxpk_total{{concentrator="{EUI_A}",outcome="forwarded"}} 1' \
                in text
            c.close()

    asyncio.run(main())
    body = central.wait_for(
        lambda m: m.topic == f"meterlink/v1/readings/{dev.device_id}").json()
    assert body["receivers"] == [EUI_A] and body["rssi"] == -97


def test_alarm_ack_goes_out_as_pull_resp_timed_for_the_window(fleet, write_config,
                                                              running_gateway, until):
    cfg = write_config(udp=False, extra=pf_table(EUI_A, extra="rx_delay_ms = 1500\n"
                                                 "tx_power_dbm = 16"))
    dev = fleet.devices[1]
    alarm = dev.alarm()
    tmst = 0xFFFF_0000  # the 32-bit counter wraps inside the window

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            c = await connect(gw, EUI_A)
            c.push({"rxpk": [rxpk(alarm, tmst, freq=868.3, datr="SF12BW125")]})
            token, txpk = await c.pull_resp()
            c.tx_ack(token)  # empty TX_ACK: no error
            assert txpk["imme"] is False
            assert txpk["tmst"] == (tmst + 1_500_000) & 0xFFFFFFFF
            assert (txpk["freq"], txpk["datr"], txpk["codr"]) == (868.3, "SF12BW125", "4/5")
            assert txpk["modu"] == "LORA" and txpk["powe"] == 16 and txpk["ipol"] is False
            payload = base64.b64decode(txpk["data"])
            assert txpk["size"] == len(payload)
            ack = decode_frame(payload, dev.key)
            assert ack.frame_type == FrameType.ACK and ack.counter == dev.counter
            assert await until(lambda: gw.metrics.acks_sent.total() == 1)
            assert gw.metrics.render().count('result="scheduled"} 1') == 1
            c.close()

    asyncio.run(main())


@pytest.mark.parametrize("error", ["TOO_LATE", "TOO_EARLY", "COLLISION_PACKET", "TX_FREQ",
                                   "OTHER"])
def test_tx_ack_error_is_counted_and_the_command_kept_for_the_next_window(
        error, fleet, write_config, running_gateway, until):
    cfg = write_config(udp=False, extra=pf_table(EUI_A))
    dev = fleet.devices[0]

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            c = await connect(gw, EUI_A)
            await gw.downlink.add_command(dev.device_id, b'{"type": "config", '
                                          b'"interval_s": 600}')
            c.push({"rxpk": [rxpk(dev.reading(), 5_000_000)]})
            token, txpk = await c.pull_resp()
            assert decode_frame(base64.b64decode(txpk["data"]), dev.key).frame_type \
                == FrameType.CONFIG
            c.tx_ack(token, "SOMETHING_NEW" if error == "OTHER" else error)
            assert await until(lambda: gw.metrics.render().count(
                f'meterlink_pf_tx_ack_errors_total{{concentrator="{EUI_A}",error="{error}"}} 1'
            ) == 1)
            await asyncio.sleep(0.1)
            assert gw.downlink.pending(dev.device_id) == 1  # kept for the next window
            view = gw.snapshot()["concentrators"][0]
            assert view["tx_ack_errors"] == {error: 1}
            c.push({"rxpk": [rxpk(dev.reading(), 9_000_000)]})
            token, txpk = await c.pull_resp()
            assert txpk["tmst"] == 10_000_000
            c.tx_ack(token, "NONE")  # the old packet forwarder's "no error"
            assert await until(lambda: gw.metrics.downlinks_sent.get(kind="config") == 1)
            assert gw.downlink.pending(dev.device_id) == 0
            c.close()

    asyncio.run(main())


def test_ack_and_command_share_the_window_one_after_the_other(fleet, write_config,
                                                              running_gateway):
    cfg = write_config(udp=False, extra=pf_table(EUI_A))
    dev = fleet.devices[2]

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            c = await connect(gw, EUI_A)
            await gw.downlink.add_command(dev.device_id, b'{"type": "time"}')
            c.push({"rxpk": [rxpk(dev.alarm(), 100, datr="SF7BW125")]})
            t1, first = await c.pull_resp()
            c.tx_ack(t1)
            t2, second = await c.pull_resp()
            c.tx_ack(t2)
            kinds = [decode_frame(base64.b64decode(p["data"]), dev.key).frame_type
                     for p in (first, second)]
            assert kinds == [FrameType.ACK, FrameType.TIME]
            assert first["tmst"] == 1_000_100
            # the second starts after the first's airtime at SF7 + 20 ms
            ack_len = len(base64.b64decode(first["data"]))
            assert ack_len == OVERHEAD  # an ack has no body
            gap_us = round(airtime_s(ack_len, 7) * 1e6) + 20_000
            assert second["tmst"] - first["tmst"] == gap_us
            assert t1 != t2
            c.close()

    asyncio.run(main())


def test_bad_crc_and_stat_objects_unknown_eui_and_wrong_versions(fleet, write_config,
                                                                 running_gateway, until):
    cfg = write_config(udp=False, extra=pf_table(EUI_A))
    dev = fleet.devices[0]

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            c = Client(gw.udp_ports["lora"], EUI_A)
            token = c.push({"rxpk": [rxpk(dev.reading(), 1, stat=-1),
                                     rxpk(dev.reading(), 2, stat=0)],
                            "stat": {"time": "2026-12-01 09:00:00 GMT", "rxnb": 7,
                                     "rxok": 5, "rxfw": 5, "ackr": 100.0, "dwnb": 0,
                                     "txnb": 0, "temp": 41.5}})
            assert await c.recv() == b"\x02" + token + b"\x01"
            assert await until(lambda: gw.metrics.link_errors.total() == 2)
            assert gw.metrics.frames.get(outcome="accepted", reason="reading") == 0
            text = gw.metrics.render()
            for line in ('outcome="crc_bad"} 1', 'outcome="no_crc"} 1',
                         f'meterlink_concentrator_stat{{concentrator="{EUI_A}",field="rxnb"}} 7',
                         f'{{concentrator="{EUI_A}",field="temp"}} 41.5'):
                assert line in text, line
            assert gw.snapshot()["concentrators"][0]["crc_errors"] == 2

            stranger = Client(gw.udp_ports["lora"], "00000000deadbeef")
            stranger.push({"rxpk": [rxpk(dev.reading(), 3)]})
            stranger.pull()
            assert await stranger.nothing()  # neither PUSH_ACK nor PULL_ACK
            assert 'meterlink_pf_refused_total{forwarder="lora",reason="unknown_eui"} 2' \
                in gw.metrics.render()
            c.raw(b"\x03\x00\x01\x00" + bytes.fromhex(EUI_A) + b"{}")  # version 3
            c.raw(b"\x02\x00\x01\x03{}")  # PULL_RESP is the server's to send
            c.raw(b"\x02\x00")
            assert await c.nothing()
            text = gw.metrics.render()
            for reason in ("bad_version", "unexpected_type", "truncated"):
                assert f'reason="{reason}"}} 1' in text, reason
            c.close()
            stranger.close()

    asyncio.run(main())


def test_two_concentrators_one_reading_with_both_euis_ack_through_the_best(
        broker, central, fleet, write_config, running_gateway, until):
    cfg = write_config(udp=False, broker_port=broker.port, extra=pf_table(EUI_A, EUI_B),
                       outbox="commit_interval_ms = 200")
    dev = fleet.devices[0]
    reading, alarm = dev.reading(), dev.alarm()

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            a, b = await connect(gw, EUI_A), await connect(gw, EUI_B)
            a.push({"rxpk": [rxpk(reading, 10, rssi=-110)]})
            b.push({"rxpk": [rxpk(reading, 77_000, rssi=-72)]})
            a.push({"rxpk": [rxpk(alarm, 3_000_000, rssi=-120, lsnr=-12)]})
            b.push({"rxpk": [rxpk(alarm, 3_077_000, rssi=-90)]})
            token, txpk = await b.pull_resp()  # B heard the alarm best
            b.tx_ack(token)
            assert txpk["tmst"] == 4_077_000
            got = await a.drain(0.6)  # PUSH_ACKs only, no PULL_RESP through A
            assert [d[3] for d in got] == [0x01, 0x01]
            assert await until(lambda: gw.metrics.published.total() >= 2)
            await asyncio.sleep(0.3)
            assert gw.metrics.frames.get(outcome="duplicate", reason="duplicate") == 2
            a.close()
            b.close()

    asyncio.run(main())
    readings = central.on_topic(f"meterlink/v1/readings/{dev.device_id}")
    assert len(readings) == 1
    body = readings[0].json()
    assert sorted(body["receivers"]) == [EUI_A, EUI_B] and body["rssi"] == -72
    alarms = central.on_topic(f"meterlink/v1/alarms/{dev.device_id}")
    assert len(alarms) == 1 and sorted(alarms[0].json()["receivers"]) == [EUI_A, EUI_B]


def test_a_concentrator_without_downlink_route_hands_the_ack_to_the_next_best(
        fleet, write_config, running_gateway, until):
    cfg = write_config(udp=False, extra=pf_table(EUI_A, EUI_B))
    dev = fleet.devices[1]
    alarm = dev.alarm()

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            a = await connect(gw, EUI_A)
            b = Client(gw.udp_ports["lora"], EUI_B)  # heard it best, but sent no PULL_DATA
            b.push({"rxpk": [rxpk(alarm, 500_000, rssi=-70)]})
            a.push({"rxpk": [rxpk(alarm, 8_000_000, rssi=-115)]})
            token, txpk = await a.pull_resp()
            a.tx_ack(token)
            assert txpk["tmst"] == 9_000_000  # A's own counter
            assert await until(lambda: gw.metrics.acks_sent.total() == 1)
            a.close()
            b.close()

    asyncio.run(main())


def test_no_downlink_without_pull_data_or_after_the_window(fleet, write_config,
                                                           running_gateway, until):
    cfg = write_config(udp=False, extra=pf_table(EUI_A, extra="rx_delay_ms = 100"))
    dev = fleet.devices[0]

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            c = Client(gw.udp_ports["lora"], EUI_A)  # never sent PULL_DATA
            c.push({"rxpk": [rxpk(dev.alarm(), 1)]})
            assert await until(lambda: 'result="no_route"} 1' in gw.metrics.render())
            c.pull()
            await c.recv()
            gw.downlink.delay_s = 0.2  # the answer is ready after the 100 ms window
            c.push({"rxpk": [rxpk(dev.alarm(), 2)]})
            assert await until(lambda: 'result="late"} 1' in gw.metrics.render())
            assert gw.metrics.acks_sent.total() == 0
            c.close()

    asyncio.run(main())


def test_a_flood_of_garbage_datagrams_is_survived(fleet, write_config, running_gateway,
                                                  until):
    cfg = write_config(udp=False, extra=pf_table(EUI_A))
    dev = fleet.devices[0]
    rng = random.Random(15)
    eui = bytes.fromhex(EUI_A)
    garbage = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
               for _ in range(1500)]
    # well-framed from an allowed EUI but with broken JSON and rxpk objects
    garbage += [b"\x02\x00\x01\x00" + eui + bytes(rng.randrange(256) for _ in range(40))
                for _ in range(200)]
    broken = [{"rxpk": "x"}, {"rxpk": [None]}, {"rxpk": [{"stat": 1, "data": "%%%"}]},
              {"rxpk": [{**rxpk(b"\x10" * 20, 5), "size": 3}]},
              {"rxpk": [{**rxpk(b"\x10" * 20, 5), "datr": "SF99BW1"}]},
              {"rxpk": [{**rxpk(b"\x10" * 20, 5), "tmst": -1}]}, [1, 2]]
    garbage += [b"\x02\x00\x01\x00" + eui + json.dumps(o).encode() for o in broken]

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            c = Client(gw.udp_ports["lora"], EUI_A)
            for i, g in enumerate(garbage):
                c.raw(g)
                if i % 100 == 0:
                    await asyncio.sleep(0.01)
            token = c.push({"rxpk": [rxpk(dev.reading(), 9)]})
            while (await c.recv()) != b"\x02" + token + b"\x01":
                pass
            assert await until(lambda: gw.metrics.frames.get(outcome="accepted",
                                                             reason="reading") == 1)
            assert gw.packet_forwarders["lora"].refused >= 1000
            c.close()

    asyncio.run(main())


def _cfg(tmp_path: Any, keys_file: Any, table: dict[str, Any]) -> Any:
    return parse_config({"gateway": {"id": "g", "keys_file": str(keys_file)},
                         "packet_forwarder": [table],
                         "outbox": {"path": str(tmp_path / "o.sqlite")}})


def test_config_names_what_is_wrong(tmp_path, keys_file):
    cfg = _cfg(tmp_path, keys_file, {"name": "lora", "gateway_euis": ["00:16:C0:01:FF:10:A2:35"]})
    pf = cfg.packet_forwarder[0]
    assert pf.gateway_euis == (EUI_A,) and pf.port == 1700 and pf.rx_delay_ms == 1000
    for table, message in (
            ({"name": "lora"}, "gateway_euis: required key is missing"),
            ({"name": "lora", "gateway_euis": []}, "list the EUIs"),
            ({"name": "lora", "gateway_euis": ["0016c001"]}, "not an EUI of 16 hex digits"),
            ({"name": "lora", "gateway_euis": [EUI_A, EUI_A.upper()]}, "listed twice"),
            ({"name": "lora", "gateway_euis": [EUI_A], "tx_datr": "SF13BW125"},
             "tx_datr: data rate"),
            ({"name": "lora", "gateway_euis": [EUI_A], "tx_codr": "4/9"}, "tx_codr"),
            ({"name": "lora", "gateway_euis": [EUI_A], "rx_delay": 1}, "unknown key")):
        with pytest.raises(ConfigError, match=message):
            _cfg(tmp_path, keys_file, table)


def test_every_receiver_closes_its_socket_when_the_gateway_stops(write_config,
                                                                 running_gateway, tools):
    """All receivers run in one nested TaskGroup: stopping the gateway stops each of them,
    and each closes what it opened, so the UDP and packet-forwarder ports it had bound can
    be bound again at once (also the gateway's /api/status says they were up)."""
    cfg = write_config(extra=pf_table(EUI_A))

    async def main() -> dict[str, int]:
        async with running_gateway(cfg) as gw:
            ports = dict(gw.udp_ports)
            code, body = await asyncio.to_thread(tools.http_get, gw.http_port, "/api/status")
            assert code == 200
            assert [r["connected"] for r in json.loads(body)["receivers"]] == [True]
        return ports

    ports = asyncio.run(main())
    assert set(ports) == {"net", "lora"}
    for port in ports.values():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))  # EADDRINUSE if a receiver had left it open
