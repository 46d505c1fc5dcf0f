"""The protocol vectors on the emulated nRF51 board (MicroPython 1.9.2, no json): the
host feeds the cases one by one as literals through the raw REPL; the board runs the
nRF51 bundle's own CRC, CBOR encoder, AES, CTR, CMAC, sealing and reading bodies, and the
downlink path (window.py's got(), downlink.py) of a bundle with the config and time
downlinks, loaded the way its main.py loads them. (SLIP framing and the receive window's
SLIP receiver are checked under CPython and MicroPython 1.27: lean_vectors.py.)"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from meterlink.bundler import (
    FIELDS,
    NRF51_NAMES,
    bundle,
    chunk_texts,
    chunked,
    nrf51_loader,
    split_chunks,
)
from meterlink.hil import EmulatedBoard

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "v2.json").read_text()
)
HELPERS = (
    "import gc\n"
    "def h2b(s):\n return bytes([int(s[i:i+2],16) for i in range(0,len(s),2)])\n"
    "def hx(b):\n return ''.join(['%02x' % x for x in b])\n"
)


def run(board: EmulatedBoard, setup: str, cases: list[str],
        want: list[str] | None = None) -> list[str]:
    """Runs setup, then each case in its own exec (a whole list of literals does not fit
    the heap), then resets the board; returns what the cases printed.

    With `want`, a case whose answer differs is sent up to twice more: a byte lost on
    the loaded host's UART changes a literal (seen once in a full run: one CMAC of
    seven), and the board's code, being deterministic, gives a wrong answer again for
    a real fault, which the caller's comparison then shows."""
    board.exec(setup, idempotent=True)  # imports first: the heap is least fragmented
    board.exec(HELPERS, idempotent=True)
    out = []
    for i, case in enumerate(cases):
        for _ in range(3 if want is not None else 1):
            answer = board.exec(case, timeout=30, idempotent=True).strip()
            if want is None or answer == want[i]:
                break
        out.append(answer)
    board.reset(wait_for_repl=True)  # 1.9.2 cannot unload modules: a fresh heap
    return out


def uplinks() -> list[dict[str, Any]]:
    return [
        v for v in VECTORS["valid_frames"]
        if v["header"]["frame_type"] < 8 and "encoder_input" not in v
    ]


# ----------------------------------------------------------------------------------------
# The nRF51 build (bundle("nrf51")) has its own, leaner CRC, AES, CMAC, sealing and body
# code; it is loaded here the way its main.py loads it.

LEAN_LOADER = nrf51_loader()
LEAN_CRYPTO = (
    "".join(f"ld({NRF51_NAMES[role]!r})\n" for role in ("crc", "aes", "boot", "seal"))
    # the rest of the boot phase (phase names boot()): heap for the cases
    + "del boot\ndel rec\ndel phase\ngc.collect()\n"
    "F=bytearray(80)\nV=[0]*32\n"
    # the working keys as the boot phase makes them (boot.py's keys() writes them to a file)
    "class W:\n def write(s,b):\n  L.append(b)\n"
    "def keys_of(root):\n global K,L\n L=[]\n keys(W(),root)\n K=L\n"
)


@pytest.fixture
def lean_board(board: EmulatedBoard) -> EmulatedBoard:
    files = bundle("nrf51")
    roles = ("crc", "aes", "boot", "seal", "counting")
    board.flash({NRF51_NAMES[r]: files[NRF51_NAMES[r]] for r in roles})
    board.reset(wait_for_repl=True)
    board.exec(LEAN_LOADER)
    return board


@pytest.mark.hil
def test_nrf51_build_crc_aes_cmac_keys_and_sealing(lean_board: EmulatedBoard) -> None:
    cases = [f"d=h2b({v['data']!r})\nprint('%04x' % crc(d,len(d)))" for v in VECTORS["crc16"]]
    want = [v["crc"] for v in VECTORS["crc16"]]
    for v in VECTORS["aes128"]:
        cases.append(f"b=bytearray(h2b({v['plaintext']!r}))\nenc(ks(h2b({v['key']!r})),b)\n"
                     "print(hx(b))")
        want.append(v["ciphertext"])
    for v in VECTORS["cmac"]:
        # K_mic := the RFC's key: its schedule and subkeys, as keys() makes them
        cases.append(f"m=ks(h2b({v['key']!r}))\ne=bytearray(16)\nenc(m,e)\ne=dbl(e)\n"
                     f"K=[None,m,e,dbl(e)]\nd=h2b({v['message']!r})\n"
                     "print(hx(cmac(d,len(d))))")
        want.append(v["mac"])
    for v in VECTORS["key_derivation"]:  # a schedule starts with its key
        cases.append(f"keys_of(h2b({v['root_key']!r}))\nprint(hx(K[0][0:16]),hx(K[1][0:16]))")
        want.append(v["enc"] + " " + v["mic"])
    for v in uplinks():
        h = v["header"]
        cases.append(
            f"keys_of(h2b({v['root_key']!r}))\nV[22]={h['device_id']}\n"
            f"p=h2b({v['plaintext']!r})\n"
            "for i in range(len(p)):\n F[9+i]=p[i]\n"
            f"n=seal({0x20 | h['frame_type']},{v['counter']},len(p))\n"
            "print(hx(F[0:n]))"
        )
        want.append(v["payload"])
    assert run(lean_board, LEAN_CRYPTO, cases, want) == want


@pytest.mark.hil
def test_nrf51_build_reading_body_matches_the_vectors(lean_board: EmulatedBoard) -> None:
    readings = [v for v in uplinks() if v["header"]["frame_type"] == 0
                and len(bytes.fromhex(v["map"]["5"])) == len(v["body"]["deltas"])]
    assert readings
    cases = []
    for v in readings:
        b, deltas = v["body"], v["body"]["deltas"]
        cases.append(
            "from array import array\nfrom utime import ticks_ms,ticks_add\n"
            f"Q=[None,None,array('L',{list(reversed(deltas))!r})]\n"
            f"S[2]={b['register']}\nS[5]={b['interval_seq'] + 1}\n"
            f"V[8]=0\nV[9]={len(deltas)}\nV[10]={b['alarms']}\nV[24]={b['pulse_weight']}\n"
            f"V[25]={b['unit']}\nV[26]={b['interval_s']}\n"
            f"V[18]=ticks_add(ticks_ms(),-{b['age_s'] * 1000 + 500})\n"
            "commit()\nn=body(0)\nprint(hx(F[9:9+n]))"  # after a commit, as at an interval's end
        )
    setup = (
        f"ld({NRF51_NAMES['counting']!r})\nld({NRF51_NAMES['crc']!r})\nfrom array import array\n"
        "S=array('L',[0]*15)\nV=array('L',[0]*40)\nF=bytearray(80)\nB=bytearray(62)\n"
    )
    assert run(lean_board, setup, cases) == [v["plaintext"] for v in readings]


def _encode_case(v: dict[str, Any]) -> str:
    # counting.py's CBOR heads, hd(offset, major type, value), over the vector's map
    items = sorted((int(k), x) for k, x in v["map"].items())
    code = f"o=hd(9,5,{len(items)})\n"
    for k, x in items:
        if k == 5:
            code += (f"x=h2b({x!r})\no=hd(hd(o,0,5),2,len(x))\n"
                     "for i in range(len(x)):\n F[o+i]=x[i]\no+=len(x)\n")
        else:
            code += f"o=hd(hd(o,0,{k}),0,{x})\n"
    return code + "print(hx(F[9:o]))"


@pytest.mark.hil
def test_nrf51_build_encodes_every_uplink_body(lean_board: EmulatedBoard) -> None:
    """Reading, alarm and status bodies of the vectors, from their maps, byte for byte."""
    cases = uplinks()
    assert {v["header"]["frame_type"] for v in cases} == {0, 1, 2}
    setup = f"ld({NRF51_NAMES['counting']!r})\nF=bytearray(80)\n"
    assert run(lean_board, setup, [_encode_case(v) for v in cases]) == [
        v["plaintext"] for v in cases]


# ----------------------------------------------------------------------------------------
# The downlink path (window.py's got(), downlink.py's counter, map reader and limits) of a
# bundle with the config and time downlinks (the nRF51 as shipped takes only acks, in
# ack.py's window: the end-to-end tests send it real acks), on the board's MicroPython.

FI = {name: int(value) for name, value in FIELDS.items()}
DOWNLINK_FEATURES = frozenset({"config_downlink", "time_downlink"})
DOWNLINK_ROLES = ("counting", "downlink", "window", "ack", "seal", "crc", "aes", "boot")
# hr(root, device, payload, the alarm counter awaited or -1, the last downlink counter):
# the payload given to got() as listen() gives it (11..64 bytes); prints what it did:
# acked, the overrides, the time, the downlink counter (lean_vectors.heard on the host).
# go(file): hr() for each case in the file (the root keys, then per case root key index,
# device, alarm counter + 1, downlink counter, payload length, payload): cases sent as
# code, parsed one by one, soon leave the heap too fragmented to parse the next.
STATE = ("from array import array\n"
         f"S=array('L',[0]*{FI['S_N']})\nV=array('L',[0]*{FI['V_N']})\n"
         "F=bytearray(80)\nB=bytearray(62)\nA=bytearray(48)\n")
OV = ",".join(f"S[{FI['S_OV'] + i}]" for i in range(5))
HEARD = (
    "import struct\n"
    "class W:\n def write(s,b):\n  L.append(b)\n"
    "R=None\n"
    "def hr(r,d,p,a,c):\n"  # the keys derived once per root key
    " global K,L,R\n if r!=R:\n  K=L=0;gc.collect();L=[];keys(W(),r);K=L;R=r\n"
    f" V[{FI['V_DEV']}]=d;V[{FI['V_ALEN']}]=40 if a>=0 else 0;V[{FI['V_AFC']}]=max(a,0)\n"
    f" S[{FI['S_DLC']}]=c;V[{FI['V_TIME']}]=0\n"
    f" for i in range(5):S[{FI['S_OV']}+i]=0\n"
    " for i in range(len(p)):F[i]=p[i]\n"
    " if 10<len(p)<65:got(len(p))\n"
    f" print(int(a>=0 and not V[{FI['V_ALEN']}]),{OV},V[{FI['V_TIME']}],S[{FI['S_DLC']}])\n"
    "def go(n):\n"
    " f=open(n,'rb')\n k=[f.read(16) for _ in range(f.read(1)[0])]\n"
    " while 1:\n  h=f.read(14)\n  if not h:break\n"
    "  i,d,a,c,m=struct.unpack('>BIIIB',h)\n  hr(k[i],d,f.read(m),a-1,c)\n"
    " f.close()\n"
)
OVERRIDE_KEYS = ("4", "20", "21", "22", "23")
UNUSED = {"boot": ("def boot(", "def rec(", "phase=boot"), "ack": ("def ack(",),
          "window": ("def listen(",), "counting": ("def body(", "def hd(", "def fit("),
          "downlink": ("def reported(",)}


class Cases:
    """The cases for go(), as its file holds them."""

    def __init__(self) -> None:
        self.roots: list[bytes] = []
        self.records = b""

    def add(self, root_hex: str, device: int, payload_hex: str, afc: int, dlc: int) -> None:
        root, p = bytes.fromhex(root_hex), bytes.fromhex(payload_hex)
        if root not in self.roots:
            self.roots.append(root)
        self.records += struct.pack(">BIIIB", self.roots.index(root), device, afc + 1, dlc,
                                    len(p)) + p  # fmt: skip

    def file(self) -> bytes:
        return bytes((len(self.roots),)) + b"".join(self.roots) + self.records


def downlink_cases() -> tuple[Cases, list[str]]:
    """Every valid downlink of v2.json (and again in the wrong counter context), every
    invalid radio case, every downlink counter case; what hr() must print for each."""
    cases = Cases()
    want: list[str] = []
    none = "0 0 0 0 0"
    for v in VECTORS["valid_frames"]:
        t, c, m, dev = v["header"]["frame_type"], v["counter"], v["map"], v["header"]["device_id"]
        if t < 8:
            continue
        if t == 8:  # the ack of the alarm frame awaited, not of another one
            cases.add(v["root_key"], dev, v["payload"], c, 0)
            cases.add(v["root_key"], dev, v["payload"], c + 1, 0)
            want += [f"1 {none} 0 0", f"0 {none} 0 0"]
            continue
        ov = " ".join(str(m.get(k, 0)) for k in OVERRIDE_KEYS) if t == 9 else none
        cases.add(v["root_key"], dev, v["payload"], -1, c - 1)
        cases.add(v["root_key"], dev, v["payload"], -1, c)
        want += [f"0 {ov} {m.get('30', 0)} {c}", f"0 {none} 0 {c}"]  # taken, then stale
    for x in VECTORS["invalid"]:
        if x["layer"] not in ("radio", "downlink"):
            continue  # a gateway's path
        p = bytes.fromhex(x["input"])
        c = x.get("counter", int.from_bytes(p[5:7], "big") if len(p) >= 7 else 0)
        dev = int.from_bytes(p[1:5], "big") if len(p) > 4 else 0
        dlc = max(0, c - 1)
        cases.add(x["root_key"], dev, x["input"], c, dlc)
        # the most permissive context: no ack, no override, no time (a malformed config
        # that passes the MIC uses its counter up: it is answered, protocol 4.5)
        want.append(f"0 {none} 0 [0-9]+")
    for d in VECTORS["downlink_counter"]:
        cases.add("000102030405060708090a0b0c0d0e0f", 0x12345678, d["payload"], -1, d["last"])
        new = d["outcome"] != "stale"
        want.append(f"0 {none} {'[1-9][0-9]*' if new else 0} {d['counter'] if new else d['last']}")
    return cases, want


@pytest.fixture
def downlink_board(board: EmulatedBoard) -> EmulatedBoard:
    files = bundle("nrf51", features=DOWNLINK_FEATURES)
    files = {NRF51_NAMES[r]: files[NRF51_NAMES[r]] for r in DOWNLINK_ROLES}
    # without what got() does not call (boot(), the 948-byte boot phase, rec(), ack(), the
    # ack-only window, listen(), body(), hd(), fit(), reported()): the heap has no room to
    # compile them beside the downlink path
    for role, unused in UNUSED.items():
        name = NRF51_NAMES[role]
        statements = chunk_texts("".join(split_chunks(files[name].decode())), 0)
        kept = [t for t in statements if not t.startswith(unused)]
        assert len(kept) == len(statements) - len(unused), (role, unused)
        files[name] = chunked("".join(kept)).encode()
    files["ml_nh"] = chunked(HEARD).encode()  # hr(), go(): loaded too (no room to parse them)
    files["ml_nq"] = downlink_cases()[0].file()
    board.flash(files)
    board.reset(wait_for_repl=True)
    board.exec(LEAN_LOADER)
    board.exec(STATE)  # downlink.py applies the overrides in S to V as it loads
    for role in DOWNLINK_ROLES:  # one at a time: the heap has no room to compile more
        board.exec(f"gc.collect()\nld({NRF51_NAMES[role]!r})", timeout=30)
    board.exec("gc.collect()")
    return board


@pytest.mark.hil
def test_downlinks_are_taken_and_invalid_or_stale_ones_dropped(
        downlink_board: EmulatedBoard) -> None:  # fmt: skip
    """Every valid downlink of v2.json taken by got() (an ack ends its alarm, a config sets
    its overrides, a time is kept) and dropped in the wrong counter context; every
    invalid radio case and every stale downlink counter changes nothing."""
    want = downlink_cases()[1]
    got = run(downlink_board, "gc.collect()\nld('ml_nh')", ["go('ml_nq')"])[0].splitlines()
    assert len(got) == len(want), got[-3:]
    bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want, strict=True))
           if not re.fullmatch(w, g.strip())]  # fmt: skip
    assert not bad, bad[:3]
    print(f"\n{len(want)} downlink cases through the board")
