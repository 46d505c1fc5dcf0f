"""Footprint of the nRF51 build (bundle("nrf51"), made from mp/lean/) on the emulated micro:bit
(MicroPython 1.9.2): the files' size and what is left of the filesystem, free heap after
each file is loaded and at the fullest moment of every uplink (the low-water mark), frame
sizes, and the heap the REPL gets after the maintenance stop. Prints the figures
(docs/firmware.md quotes them); run with `make bench`."""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meterlink.boardlink.errors import BoardError
from meterlink.bundler import (
    NRF51_NAMES,
    bundle,
    bundle_features,
    chunked,
    render_config,
    split_chunks,
    symbol_map,
)
from meterlink.bundler.features import POSSIBLE_FEATURES
from meterlink.hil import EmulatedBoard
from meterlink.protocol import LinkDecoder, LinkFrame

MP_TESTS = Path(__file__).resolve().parents[2] / "firmware" / "tests"
MP = MP_TESTS.parent / "meterlink" / "firmware" / "mp"


def lean_sources() -> list[str]:
    """The source file of each file bundle("nrf51") puts on the board (its symbol map)."""
    return [f["source"] for f in symbol_map("nrf51")["files"].values()]


FS_PROBE = (
    "n=0\ntry:\n f=open('fsprobe','wb')\n while True:\n  f.write(b'0123456789abcdef'*8)\n"
    "  n+=128\nexcept OSError:\n pass\ntry:\n f.close()\nexcept NameError:\n pass\n"
    "print(n)\nimport os\ntry:\n os.remove('fsprobe')\nexcept OSError:\n pass\n"
)


def frame_sizes(tmp_path: Path) -> tuple[int, int]:
    """Typical and worst reading frame, built by the firmware's own code: mp/lean/ under
    CPython, with the fake micro:bit of firmware/tests/nrf51."""
    import importlib.util
    from array import array

    for p in (MP, MP_TESTS, MP_TESTS / "cpython", MP_TESTS / "nrf51"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    if "glue" not in sys.modules:  # what the plain sources import (the bundle inlines it)
        spec = importlib.util.spec_from_file_location("glue", MP / "lean" / "glue_nrf51.py")
        assert spec is not None and spec.loader is not None
        sys.modules["glue"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["glue"])
    import microbit
    from lean_board import LeanBoard

    from meterlink.bundler import FIELDS

    f = {name: int(value) for name, value in FIELDS.items()}
    sizes = []
    cwd = os.getcwd()
    for kw, delta in (
        ({"register": 123456}, 100),
        ({"register": 4000000000, "weight": 65535, "interval": 65535, "history": 23}, 2**32 - 1),
    ):
        d = tmp_path / f"f{len(sizes)}"
        d.mkdir()
        os.chdir(d)
        try:
            microbit.reset_all()
            (d / "config.txt").write_text(render_config(
                id=1, key=bytes(16), gen=1, pin_pulse="pin0", board="nrf51", **kw))
            ns = LeanBoard("source").boot()
            ns["S"][f["S_ISEQ"]] = 0xFFFFFFFF if delta > 127 else 1000
            ns["V"][f["V_ACT"]] = 63 if delta > 127 else 0
            ns["Q"][2] = array("L", [delta] * len(ns["Q"][2]))
            ns["V"][f["V_HLEN"]] = len(ns["Q"][2])
            ns["commit"]()  # as at an interval's end, before the reading is built
            sizes.append(11 + ns["body"](0))  # v2: 7-byte header, 4-byte MIC
        finally:
            os.chdir(cwd)
    return sizes[0], sizes[1]


def instrumented(files: dict[str, bytes]) -> dict[str, bytes]:
    """The nRF51 bundle with heap probes: free heap (after a collection) once each file
    is loaded, and in every uplink at its fullest moment (body, sealed frame and link
    frame all alive), printed on the UART between the frames."""
    out = dict(files)
    main = files["main.py"].decode()
    load = ":ld('ml_n'+chr(n))"  # the loop over each phase's files
    assert main.count(load) == 1, main
    out["main.py"] = main.replace(load, load + ";print('heap',chr(n),gc.mem_free())").encode()
    uplink = NRF51_NAMES["uplink"]
    source = "".join(split_chunks(files[uplink].decode()))
    size = re.search(r"def link\((\w)\):", source)  # link(n): names are shortened
    write = re.search(r"(?:microbit\.)?uart\.write\(\w\[0:\w\+1\]\)", source)
    assert size and write, source
    probe = f"gc.collect();print('heap link',{size[1]},gc.mem_free());"
    out[uplink] = chunked(source.replace(write[0], probe + write[0])).encode()
    return out


def bench_config(**fields: Any) -> str:
    """config.txt for the bench's module (id 1, a zero key, 5 s intervals), with fields."""
    return render_config(id=1, key=bytes(16), gen=1, interval=5, rx_window_ms=500,
                         pin_pulse="pin0", **fields, backflow_pulses=2)  # fmt: skip


CONFIG = bench_config(pin_dir="pin1")


@dataclass
class Footprint:
    files: int
    size: int  # bytes of the bundle on the board
    fs_left: int  # filesystem bytes left with it and config.txt (before main.py)
    loaded: int  # heap free once the run phase's files are loaded
    low: int  # the run phase's low-water mark
    heap: list[tuple[str, int]]  # (what, heap free), in order
    kinds: list[int]  # frame types seen
    sizes: list[int]  # payload sizes seen
    repl: int  # heap free at the REPL after the maintenance stop
    error: str = ""  # why it did not run (a MemoryError loading a file)
    tail: str = ""  # the UART output then


# The configurations the loading margin is checked with besides CONFIG (which rows the
# bench gives them to: test_feature_costs): a tamper pin (read by the 100 ms check with
# tamper_alarm) and the longest history (23 deltas in the ring and the frame); and the
# longest history without a direction pin, where the shipped set plus low_battery_alarm
# did not load (a few bytes of earlier allocations move which late compile fails).
HEAVY_CONFIG = bench_config(pin_dir="pin1", pin_tamper="pin2", history=23)
LONG_CONFIG = bench_config(history=23)
CONFIGS = {"heavy config": HEAVY_CONFIG, "history 23, no direction pin": LONG_CONFIG}


def measure(board: EmulatedBoard, files: dict[str, bytes], config: str = CONFIG) -> Footprint:
    """Flashes `files` (with `config`) on the started `board`, measures the filesystem
    left, then boots the probed bundle, makes a backflow alarm (sent again without an ack)
    and readings, and takes the heap figures from the probes."""
    board.flash({**files, "config.txt": config.encode()})
    board.remove_file("main.py")
    fs_left = int(board.exec(FS_PROBE, timeout=60).strip())
    probed = instrumented(files)
    board.flash({"main.py": files["main.py"]} | {n: d for n, d in probed.items() if d != files[n]})
    board.reset()
    decoder = LinkDecoder()
    text, frames = b"", []
    deadline = time.monotonic() + 60
    pulsing = False
    kinds: list[int] = []
    while time.monotonic() < deadline:
        data = board.read(4096, timeout=0.5)
        text += data
        frames += [f for f in decoder.feed(data) if isinstance(f, LinkFrame)]
        kinds = [f.payload[0] & 15 for f in frames]
        if kinds and not pulsing:  # booted: flow in reverse, a backflow alarm frame
            board.set_pin("pin1", 1)
            board.pulse_in_background("pin0", 40, 40, 160)
            pulsing = True
        if kinds.count(1) >= 2 and kinds.count(0) >= 2:  # an alarm frame sent again
            break
    found = re.findall(rb"heap (link )?(\w+) (\d+)", text)
    failed = re.search(rb"\w+Error: [^\r\n]*", text)
    if not frames and failed:
        last = re.findall(rb"heap (\w) \d+", text[: failed.start()])
        where = f" loading the file after ml_n{last[-1].decode()}" if last else ""
        return Footprint(len(files), sum(map(len, files.values())), fs_left, 0, 0, [], [],
                         [], 0, failed[0].decode(errors="replace") + where,
                         text[-400:].decode(errors="replace"))  # fmt: skip
    assert frames and found, text[-600:]
    role = {name[4]: role for role, name in NRF51_NAMES.items()}  # letter -> role
    heap = []
    for link, what, free in found:
        letter = what.decode()
        label = (f"sending a {int(what)}-byte frame" if link
                 else f"loading ml_n{letter} (lean/{role[letter]}.py)")  # fmt: skip
        heap.append((label, int(free)))
    names = [w for _, w, _ in found]
    state = NRF51_NAMES["state"][4].encode()
    run_phase = [int(f) for _, _, f in found[names.index(state) :]]  # from state.py on
    loaded = [int(f) for link, _, f in found if not link][-1]
    repl = int(board.exec("import gc\ngc.collect()\nprint(gc.mem_free())").strip())
    return Footprint(len(files), sum(map(len, files.values())), fs_left, loaded,
                     min(run_phase), heap, kinds, sorted({len(f.payload) for f in frames}),
                     repl)  # fmt: skip


@pytest.mark.hil
@pytest.mark.bench
def test_footprint(board: EmulatedBoard, tmp_path: Path) -> None:
    files = bundle("nrf51")
    source = sum((MP / src).stat().st_size for src in lean_sources())
    shipped = ", ".join(sorted(bundle_features("nrf51"))) or "none"
    print(f"\nfirmware on nrf51 (features: {shipped}): {len(files)} files, "
          f"{sum(map(len, files.values()))} bytes (shrunk from {source} bytes)")
    fp = measure(board, files)
    print(
        f"filesystem left with firmware and config (before main.py, {len(files['main.py'])}"
        f" bytes): {fp.fs_left} bytes; at run time the records and 'rt' need 3-6 chunks of 128"
    )
    for label, free in fp.heap:
        print(f"heap free after {label}: {free} bytes")
    print(f"heap low-water mark, run phase: {fp.low} bytes free (target >= 1024)")
    kinds = fp.kinds
    print(
        f"frames seen: {len(kinds)} (reading, alarm, status: {kinds.count(0)}, "
        f"{kinds.count(1)}, {kinds.count(2)}), payload sizes {fp.sizes} bytes (limit 51)"
    )
    print(f"heap free at the REPL after the maintenance stop: {fp.repl} bytes")
    typical, worst = frame_sizes(tmp_path)
    print(f"reading frame (lean sources): typical {typical} bytes, worst {worst} bytes")
    assert fp.low >= 1024
    assert max(fp.sizes) <= 51 and typical <= 50 and worst <= 51
    assert kinds.count(1) >= 2  # the low-water mark covers an alarm frame


@pytest.mark.hil
@pytest.mark.bench
@pytest.mark.timeout(1800)  # 15-65 s a row: 13-16 min (the run's default is 600 s)
def test_feature_costs(board: EmulatedBoard) -> None:
    """Each feature the nRF51 can take, alone on, against none: heap low-water and heap
    free once loaded, filesystem bytes; then all of them, the shipped set (also with each
    of CONFIGS), the shipped set plus each feature the heap may take beside it (also with
    CONFIGS where it loads; tamper_alarm also with its pin), and plus all of those that
    loaded (with CONFIGS too). A fresh board (empty filesystem) for each; a row whose
    bundle and config were measured already is not measured again."""
    shipped = bundle_features("nrf51")
    sets: list[tuple[str, frozenset[str], str]] = [("none", frozenset(), CONFIG)]
    sets += [(f, frozenset({f}), CONFIG) for f in sorted(POSSIBLE_FEATURES["nrf51"])]
    sets += [("all the nRF51 can take", POSSIBLE_FEATURES["nrf51"], CONFIG),
             ("shipped: " + (", ".join(sorted(shipped)) or "none"), shipped, CONFIG)]
    sets += [(f"shipped, {name}", shipped, config) for name, config in CONFIGS.items()]
    # the features the heap may take beside the shipped ones (the downlinks and the
    # duty-cycle budget do not load, or fit the filesystem, alone)
    extra = sorted({"daily_status", "low_battery_alarm", "safe_mode_repeat", "status_detail",
                    "tamper_alarm"} - shipped)  # fmt: skip
    sets += [(f"shipped + {f}", shipped | {f}, CONFIG) for f in extra]
    sets += [("shipped + tamper_alarm, heavy config", shipped | {"tamper_alarm"},
              HEAVY_CONFIG)] if "tamper_alarm" in extra else []  # fmt: skip
    base: Footprint | None = None
    seen: dict[bytes, Footprint] = {}
    rows: list[tuple[str, Footprint, str]] = []

    def run(label: str, features: frozenset[str], config: str) -> Footprint:
        nonlocal base
        files = bundle("nrf51", features)
        key = repr((sorted(files.items()), config)).encode()
        if key in seen and label != "none":
            rows.append((label, seen[key], "same bundle as none: no code for it yet"
                         if seen[key] is base else "same bundle as measured above"))
            return seen[key]
        if board.running:
            board.close()
        board.start()
        try:
            fp = measure(board, files, config)
        except BoardError as e:  # the bundle does not fit the filesystem: a figure too
            fp = Footprint(len(files), sum(map(len, files.values())), 0, 0, 0, [], [], [],
                           0, "flashing failed: " + str(e).splitlines()[0][:120])
        seen[key] = fp
        base = base or fp
        rows.append((label, fp, ""))
        print(f"\n  measured {label}: {fp.error or f'low-water {fp.low} B'}", flush=True)
        return fp

    loads: set[str] = set()
    for label, features, config in sets:
        fp = run(label, features, config)
        if label in {f"shipped + {f}" for f in extra} and not fp.error and fp.low >= 1024:
            for name, other in CONFIGS.items():
                run(f"{label}, {name}", features, other)
            loads |= features - shipped
    if len(loads) > 1:
        union = shipped | loads
        name = "shipped + " + ", ".join(sorted(loads))
        run(name, union, CONFIG)
        for config_name, config in CONFIGS.items():
            run(f"{name}, {config_name}", union, config)
    assert base is not None
    print("\nnRF51 cost per feature (heap free: low-water / once loaded; filesystem bytes"
          " of the bundle), against none (heavy config: pin_tamper and history 23):")
    for label, fp, note in rows:
        if fp.error:
            print(f"  {label}: does not run ({fp.error}), {fp.files} files {fp.size} B "
                  f"({fp.size - base.size:+d}), filesystem left {fp.fs_left} B")
            continue
        print(f"  {label}: low-water {fp.low} B ({fp.low - base.low:+d}), loaded "
              f"{fp.loaded} B ({fp.loaded - base.loaded:+d}), {fp.files} files "
              f"{fp.size} B ({fp.size - base.size:+d}), filesystem left {fp.fs_left} B"
              + (f"; {note}" if note else ""))
    for label, fp, _ in rows:
        if label.startswith("shipped") and " + " not in label:
            assert not fp.error and fp.low >= 1024, f"{label}: less than 1 KB of heap"
