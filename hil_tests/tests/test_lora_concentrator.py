"""The emulated concentrator as a network server sees it: a test socket plays the server
and checks the packet-forwarder datagrams byte by byte, and the TX_ACK for each kind of
PULL_RESP (scheduled, TOO_LATE, TOO_EARLY, COLLISION_PACKET, TX_FREQ, imme)."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from meterlink.hil.concentrator import EmulatedConcentrator
from meterlink.hil.lora_medium import LoRaMedium, RadioParams, RealtimeMedium, Reception

EUI = "00800000a0001234"


class Server:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3)
        self.addr = self.sock.getsockname()
        self.peer: Any = None

    def recv(self, ident: int) -> bytes:
        while True:
            data, self.peer = self.sock.recvfrom(65535)
            if data[3] == ident:
                return data

    def pull_resp(self, token: bytes, txpk: dict[str, Any]) -> dict[str, Any]:
        self.sock.sendto(b"\x02" + token + b"\x03" + json.dumps({"txpk": txpk}).encode(),
                         self.peer)
        ack = self.recv(0x05)
        assert ack[1:3] == token and ack[4:12] == bytes.fromhex(EUI)
        return dict(json.loads(ack[12:])["txpk_ack"])


@pytest.fixture
def setup() -> Iterator[tuple[RealtimeMedium, EmulatedConcentrator, Server, list[Reception]]]:
    medium = RealtimeMedium(LoRaMedium(seed=4)).start()
    heard: list[Reception] = []
    medium.add_radio("mod", position=(300, 0), listening=lambda tx: True,
                     on_reception=heard.append)
    server = Server()
    conc = EmulatedConcentrator(medium, EUI, server.addr, keepalive_s=0.5,
                                stat_interval_s=0.7).start()
    yield medium, conc, server, heard
    conc.close()
    medium.close()
    server.sock.close()


def txpk(tmst: int, **kw: Any) -> dict[str, Any]:
    data = base64.b64encode(b"\x18" + bytes(12)).decode()
    return {"imme": False, "tmst": tmst, "freq": 868.1, "rfch": 0, "powe": 14,
            "modu": "LORA", "datr": "SF9BW125", "codr": "4/5", "ipol": False,
            "size": 13, "data": data, **kw}


def test_pull_data_push_data_and_stat_datagrams(setup):
    medium, conc, server, _ = setup
    pull = server.recv(0x02)
    assert len(pull) == 12 and pull[0] == 2 and pull[4:] == bytes.fromhex(EUI)
    server.sock.sendto(b"\x02" + pull[1:3] + b"\x04", server.peer)  # PULL_ACK
    medium.transmit("mod", b"\x10" + bytes(20), RadioParams(freq_mhz=868.3, sf=10))
    push = server.recv(0x00)
    assert push[4:12] == bytes.fromhex(EUI)
    obj = json.loads(push[12:])
    if "rxpk" not in obj:  # a stat datagram came first
        push = server.recv(0x00)
        obj = json.loads(push[12:])
    [rx] = obj["rxpk"]
    assert rx["stat"] == 1 and rx["modu"] == "LORA" and rx["datr"] == "SF10BW125"
    assert rx["freq"] == 868.3 and rx["chan"] == 1 and rx["codr"] == "4/5"
    assert base64.b64decode(rx["data"]) == b"\x10" + bytes(20) and rx["size"] == 21
    assert -130 < rx["rssi"] < -40 and isinstance(rx["lsnr"], float)
    assert abs(((rx["tmst"] - conc.tmst()) + 2**31) % 2**32 - 2**31) < 2_000_000
    server.sock.sendto(b"\x02" + push[1:3] + b"\x01", server.peer)  # PUSH_ACK
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        stat = json.loads(server.recv(0x00)[12:]).get("stat")
        if stat and stat["rxok"] == 1:
            break
    assert stat["rxnb"] == 1 and stat["rxfw"] == 1 and stat["ackr"] > 0


def test_each_pull_resp_gets_its_tx_ack(setup):
    medium, conc, server, heard = setup
    server.recv(0x02)
    now = conc.tmst()
    assert server.pull_resp(b"\x00\x01", txpk((now + 400_000) & 0xFFFFFFFF)) \
        == {"error": "NONE"}
    assert server.pull_resp(b"\x00\x02", txpk((now + 450_000) & 0xFFFFFFFF)) \
        == {"error": "COLLISION_PACKET"}  # overlaps the one just scheduled (SF9: 0.2 s)
    assert server.pull_resp(b"\x00\x03", txpk((now - 5_000) & 0xFFFFFFFF)) \
        == {"error": "TOO_LATE"}
    assert server.pull_resp(b"\x00\x04", txpk((now + 20_000_000) & 0xFFFFFFFF)) \
        == {"error": "TOO_EARLY"}
    assert server.pull_resp(b"\x00\x05", txpk(now, freq=915.0)) == {"error": "TX_FREQ"}
    assert server.pull_resp(b"\x00\x06", txpk(0, imme=True, freq=869.525)) \
        == {"error": "NONE"}
    time.sleep(0.8)
    got = sorted((r.tx.params.freq_mhz, round(r.tx.start - medium.now(), 1)) for r in heard)
    assert [f for f, _ in got] == [868.1, 869.525]  # the two accepted ones went on air
    downs, _ = conc.snapshot()
    assert [d.error for d in downs] == ["NONE", "COLLISION_PACKET", "TOO_LATE",
                                        "TOO_EARLY", "TX_FREQ", "NONE"]
    assert downs[0].at_tmst == (now + 400_000) & 0xFFFFFFFF and downs[0].sent
