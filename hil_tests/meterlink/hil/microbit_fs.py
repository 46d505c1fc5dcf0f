"""The micro:bit MicroPython filesystem read out of a flash image (power_cut()'s images),
as the firmware's `filesystem.c` (micro:bit v1.0.1, MicroPython 1.9.2) lays it out.

Why: after a power cut the harness can say what state the filesystem was left in
(files, unused and freed chunks, and whether a *sweep* was cut half way) without booting.

Layout: 128-byte chunks (a marker byte, 126 data bytes, a next-chunk byte) in the 1 KiB
pages between the end of the firmware's code and the last page below the end of flash,
plus one spare page, the first or the last, whose first byte is the persistent marker
0xFD. When no chunk is unused (0xFF) and no page is wholly freed (0x00), a write
*sweeps*: it moves every page one page towards the spare one (erase a page, copy the next
page's live chunks into it, and so on), then writes the marker at the other end. A cut
during a sweep leaves neither end marked; the next boot then marks the last page and
numbers the chunks from the first, so the chunks not yet moved are read one page off:
files lose their ends, follow links into other files, or vanish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from meterlink.hil.qemu import DEFAULT_MICROBIT_HEX, FLASH_SIZE, hex_records

PAGE = 1024  # NRF_FICR->CODEPAGESIZE on the nRF51822
CHUNK = 128
DATA_PER_CHUNK = CHUNK - 2
UNUSED, FREED, FILE_START, PERSISTENT = 0xFF, 0x00, 0xFE, 0xFD
MAX_CHUNKS = 240
APPENDED_SCRIPT = 0x3E000  # a script appended to the hex starts here with "MP"
END_OF_ROM = 0x3FC00  # the last page is not MicroPython's (seen: the spare page is 0x3F800)


def end_of_code(firmware_hex: Path = DEFAULT_MICROBIT_HEX) -> int:
    """The first address after the firmware's code and data (its hex's highest data
    below the appended-script area)."""
    return max(a + len(d) for a, d in hex_records(firmware_hex) if a < APPENDED_SCRIPT)


@dataclass
class FsImage:
    """What filesystem.c would make of one flash image."""

    first_page: int
    last_page: int
    spare: str  # "first", "last", or "none": neither end marked (see unmarked)
    chunks: int
    files: dict[str, bytes] = field(default_factory=dict)
    unused: int = 0
    freed: int = 0
    broken_links: list[str] = field(default_factory=list)  # chunk chains that do not agree

    @property
    def unmarked(self) -> bool:
        """Neither end carries the marker: QEMU's unerased flash (0x00 AND 0xFD stays
        0x00), or a sweep cut half way. The next sweep, or this boot, reads pages off."""
        return self.spare == "none"


def read_fs(image: bytes, firmware_hex: Path = DEFAULT_MICROBIT_HEX) -> FsImage:
    if len(image) != FLASH_SIZE:
        raise ValueError(f"flash image is {len(image)} bytes, expected {FLASH_SIZE}")
    end = APPENDED_SCRIPT if image[APPENDED_SCRIPT] == ord("M") else END_OF_ROM
    end = end // PAGE * PAGE - PAGE
    start = -(-(end - CHUNK * MAX_CHUNKS) // PAGE) * PAGE
    while start < end_of_code(firmware_hex):
        start += PAGE
    count = (end - start) // CHUNK
    if image[start] == PERSISTENT:
        spare, base = "first", start + PAGE
    elif image[end] == PERSISTENT:
        spare, base = "last", start
    else:  # what microbit_filesystem_init() then assumes (after marking the last page)
        spare, base = "none", start
    fs = FsImage(start, end, spare, count)

    def chunk(i: int) -> bytes:
        at = base + (i - 1) * CHUNK
        return image[at : at + CHUNK]

    for i in range(1, count + 1):
        marker = chunk(i)[0]
        fs.unused += marker == UNUSED
        fs.freed += marker == FREED
        if marker != FILE_START:
            continue
        c = chunk(i)
        end_offset, name_len = c[1], c[2]
        name = c[3 : 3 + name_len].decode("latin-1")
        out = bytearray()
        cur, off, seen = i, name_len + 2, {i}
        while True:  # microbit_file_read()
            data, nxt = chunk(cur)[1:-1], chunk(cur)[-1]
            want = DATA_PER_CHUNK - off
            if nxt == UNUSED:
                want = 0 if end_offset == UNUSED else min(want, end_offset - off)
            out += data[off : off + max(0, want)]
            if nxt == UNUSED or want < DATA_PER_CHUNK - off:
                break
            if not 1 <= nxt <= count or nxt in seen or chunk(nxt)[0] != cur:
                fs.broken_links.append(f"{name}: chunk {cur} -> {nxt}")
                if not 1 <= nxt <= count or nxt in seen:
                    break
            seen.add(nxt)
            cur, off = nxt, 0
        fs.files[name] = bytes(out)
    return fs
