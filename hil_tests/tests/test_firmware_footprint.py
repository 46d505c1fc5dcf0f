"""Footprint of the firmware on the emulated nRF51 board (MicroPython 1.9.2): heap after
each import of the resident set and of a frame's crypto, the low-water mark, the files'
size on the board's filesystem and what is left of it, frame sizes, and what a full boot
does. Prints the figures (docs/firmware.md quotes them); run with `make bench`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from meterlink.firmware import bundle, full_profile_nrf51, render_config
from meterlink.hil import BoardError, EmulatedBoard

MP_TESTS = Path(__file__).resolve().parents[2] / "firmware" / "tests"

# import orders measured: the resident loop, and what sealing a frame adds
SETS = {
    "resident": ["board", "ml_core", "ml_main"],
    "seal": ["board", "ml_core", "ml_aes", "ml_sec"],
    "crypto only": ["ml_aes", "ml_sec"],
}
PROBE = (
    "import gc\n"
    "gc.collect()\n"
    "print('start', gc.mem_free())\n"
    "for m in {mods!r}:\n"
    " try:\n"
    "  __import__(m)\n"
    "  gc.collect()\n"
    "  print(m, gc.mem_free())\n"
    " except MemoryError as e:\n"
    "  print(m, 'MemoryError')\n"
    "  break\n"
)
FS_PROBE = (
    "n=0\ntry:\n f=open('fsprobe','wb')\n while True:\n  f.write(b'0123456789abcdef'*8)\n"
    "  n+=128\nexcept OSError:\n pass\ntry:\n f.close()\nexcept NameError:\n pass\n"
    "print(n)\nimport os\ntry:\n os.remove('fsprobe')\nexcept OSError:\n pass\n"
)


def frame_sizes(tmp_path: Path) -> tuple[int, int]:
    """Typical and worst reading frame, built by the firmware's own code (CPython)."""
    for p in (MP_TESTS.parent / "meterlink" / "firmware" / "mp", MP_TESTS / "fake",
              MP_TESTS / "cpython", MP_TESTS):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    import mp_checks

    sizes = []
    for kw, delta in (({"register": 123456}, 100), ({"register": 4000000000, "weight": 65535,
                                                     "interval": 65535, "history": 48}, 2**32 - 1)):
        d = tmp_path / f"f{len(sizes)}"
        d.mkdir()
        mp_checks.setup(str(d) + "/")
        mp_checks.config(**kw)
        import board as fake

        fake.pins["pin0"] = 0
        c = mp_checks.boot()
        import ml_body

        c.s[5] = 0xFFFFFFFF if delta > 127 else 1000
        c.act = 63 if delta > 127 else 0
        for i in range(len(c.h)):
            c.h[i] = delta
        c.hn = len(c.h)
        sizes.append(13 + ml_body.build(c, 0))
    return sizes[0], sizes[1]


@pytest.mark.hil
@pytest.mark.bench
def test_footprint(board: EmulatedBoard, tmp_path: Path) -> None:
    files = full_profile_nrf51()
    config = render_config(id=1, key=bytes(16), gen=1, interval=5, rx_window_ms=500)
    size = sum(len(v) for v in files.values())
    source = sum(len(v) for v in bundle("rp2").values()) - len(bundle("rp2")["board.py"])
    print(f"\nfirmware files for nrf51: {len(files)} files, {size} bytes "
          f"(shrunk from {source} bytes of source + board file)")
    board.flash({**files, "config.txt": config.encode()})
    main = files["main.py"]
    board.remove_file("main.py")
    fs_left = int(board.exec(FS_PROBE, timeout=60).strip())
    print(f"filesystem left after firmware + config: {fs_left} bytes "
          "(the two 62-byte state records need 2 chunks of 128 bytes)")
    low = None
    for name, mods in SETS.items():
        board.reset(wait_for_repl=True)
        out = board.exec(PROBE.format(mods=mods), timeout=60).split("\n")
        print(f"heap, {name}: " + "; ".join(x.strip() for x in out if x.strip()))
        free = [int(x.split()[1]) for x in out if x.strip() and x.split()[1].isdigit()]
        low = min([low, *free] if low is not None else free)
        assert free and free[0] > 8000, out  # the REPL starts with ~8.5 KB
    print(f"heap low-water mark seen: {low} bytes free")
    typical, worst = frame_sizes(tmp_path)
    print(f"reading frame: typical {typical} bytes, worst {worst} bytes (limit 51)")
    assert typical <= 50 and worst <= 51
    # a full boot: main.py back on the board, if the filesystem takes it
    try:
        board.flash({"main.py": main})
    except BoardError as exc:
        print(f"full boot on nrf51: main.py does not fit the filesystem ({exc!s:.80})")
        return
    board.reset()
    print(f"full boot on nrf51: {board.read(4096, timeout=8.0)[:300]!r}")
