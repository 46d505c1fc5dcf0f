"""Host side of the module firmware: the files to put on a board, and config.txt.
(CPython; the on-board MicroPython sources it processes are the package data
`meterlink.firmware.mp`, `firmware/meterlink/firmware/mp/`, called `mp/` below.)

The firmware itself is MicroPython in `mp/`; `bundle()` maps on-board file names to
their contents, `render_config()`/`parse_config()` write and check config.txt with
the very rules the firmware applies at boot (`mp/ml_cfg.py`, loaded here).
"""

from __future__ import annotations

import importlib.util
import re
import threading
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from meterlink.bundler.features import BOARD_FEATURES, check_features
from meterlink.bundler.features import bundle_features as bundle_features  # what it ships
from meterlink.bundler.lowering import FLAGS, lower_features
from meterlink.bundler.minify import rename_locals, shrink

__all__ = [
    "BOARD_PINS",
    "CHUNK_BYTES",
    "CONFIG_KEYS",
    "FEATURE_FILES",
    "FIELDS",
    "FIRMWARE_VERSION",
    "MAINTENANCE_PIN",
    "NRF51_BOOT",
    "NRF51_CONFIG",
    "NRF51_CONFIG_PHASE",
    "NRF51_NAMES",
    "NRF51_ROLES",
    "NRF51_RUN",
    "SUPPORTED_BOARDS",
    "ConfigError",
    "bundle",
    "chunk_texts",
    "chunked",
    "is_loaded",
    "lower_fields",
    "lowered_source",
    "nrf51_loader",
    "parse_config",
    "render_config",
    "split_chunks",
    "symbol_map",
]



def _source_dir() -> Path:
    """The folder of the on-board sources, the package `meterlink.firmware.mp`. It has no
    __init__.py (no host module among them), so it is found on its namespace path: not
    through importlib.resources, which on Python 3.11 fails on the placeholder entry an
    editable install adds to that path."""
    spec = importlib.util.find_spec("meterlink.firmware.mp")
    for entry in (spec.submodule_search_locations or ()) if spec else ():
        folder = Path(entry)
        if (folder / "fields.py").is_file():
            return folder.resolve()
    raise RuntimeError("the on-board sources (meterlink.firmware.mp) are not installed")


MP_DIR = _source_dir()  # the on-board sources
SUPPORTED_BOARDS = ("nrf51", "rp2")

# The on-board files by role (mp/lean/), the same on both boards (the names say nRF51,
# the board they were made for). Boot phase 1 imports NRF51_CONFIG;
# phases 2 and 3 load their files, in these orders, a chunk at a time into one
# namespace (lean/main.py says why), so those are stored as chunks (see chunked())
# under names without ".py". On the board each file is "ml_n" and one letter (short
# names are fewer bytes in main.py's heap); symbols.symbol_map() maps them back.
NRF51_CONFIG = "config"
NRF51_BOOT = ("crc", "aes", "boot")
# air and at_modem: feature files (FEATURE_FILES), loaded after what they call
NRF51_RUN = ("state", "counting", "loop", "uplink", "ack", "window", "downlink", "aes", "seal",
             "run", "air", "at_modem", "crc")
# Boot phase 1's one loaded file: it imports NRF51_CONFIG and names its read() as the
# function main.py calls (lean/main.py: code in main.py stays in the heap, code
# loaded is freed).
NRF51_CONFIG_PHASE = ("config_phase",)
NRF51_ROLES = (NRF51_CONFIG, *NRF51_BOOT, *(r for r in NRF51_RUN if r not in NRF51_BOOT),
               *NRF51_CONFIG_PHASE)  # fmt: skip
_ONBOARD_PREFIX = "ml_n"  # as lean/main.py's ld() builds the names
# The letters of the files the board has run since 1.0. main.py's chr(n) interns each
# letter as a string on the board (a qstr, kept for good), so the set of letters is
# part of the heap budget: with letters derived from the role names instead, the run
# phase with the footprint benchmark's probes failed to load (MemoryError allocating
# 472 bytes in ld()), while these load. A new role takes the first letter of its name
# that no role has.
_KEPT_LETTERS = {"config": "c", "crc": "k", "aes": "x", "boot": "b", "state": "d",
                 "counting": "p", "loop": "l", "ack": "a", "uplink": "v", "seal": "s",
                 "run": "m"}  # fmt: skip


def _onboard_letters(roles: tuple[str, ...]) -> dict[str, str]:
    taken = {r: _KEPT_LETTERS[r] for r in roles if r in _KEPT_LETTERS}
    for role in roles:
        if role in taken:
            continue
        letter = next((c for c in role if c.isalpha() and c not in taken.values()), None)
        if letter is None:
            raise ValueError(f"no free letter for nRF51 file {role!r}; rename the role")
        taken[role] = letter
    return {role: taken[role] for role in roles}


_LETTER = _onboard_letters(NRF51_ROLES)
NRF51_NAMES: dict[str, str] = {  # role -> on-board file name
    role: _ONBOARD_PREFIX + letter + (".py" if role == NRF51_CONFIG else "")
    for role, letter in _LETTER.items()
}
_LOADED = tuple(NRF51_NAMES[r] for r in NRF51_ROLES if r != NRF51_CONFIG)
_LEAN = {"lean/main.py": "main.py", "ml_cfg.py": "ml_cfg.py"} | {
    f"lean/{role}.py": name for role, name in NRF51_NAMES.items()
}
# A source file only some features use -> that feature, or those features: bundled
# (and, for the nRF51, in its load order) only when one of them is on. The nRF51's
# battery() was such a file, but loading one more file cost more heap than the feature
# itself (the run phase failed to load with low_battery_alarm alone), so it is in
# counting.py.
FEATURE_FILES: dict[str, str | tuple[str, ...]] = {
    "lean/window.py": ("config_downlink", "time_downlink", "at_modem"),  # listen(), got()
    "lean/downlink.py": ("config_downlink", "time_downlink"),
    "lean/air.py": "duty_cycle_budget",  # airtime and the EU868 sub-band's budget
    "lean/at_modem.py": "at_modem",  # the AT-command LoRa modem (modem=1)
}


def _file_wanted(src: str, features: frozenset[str]) -> bool:
    """Whether source file `src` belongs in a bundle with `features` (FEATURE_FILES)."""
    needs = FEATURE_FILES.get(src)
    if needs is None:
        return True
    return bool(features & ({needs} if isinstance(needs, str) else set(needs)))


def _kept(roles: tuple[str, ...], features: frozenset[str]) -> tuple[str, ...]:
    """The nRF51 roles, in order, whose files a bundle with `features` holds."""
    return tuple(r for r in roles if _file_wanted(f"lean/{r}.py", features))


# Source file -> on-board name, per board: both boards run the lean sources (mp/lean/),
# in the same files under the same names; rp2 also has its glue file as the module
# `glue` (the nRF51's glue is inlined at each call site: meterlink.bundler.glue).
_PROFILE = {"nrf51": _LEAN, "rp2": _LEAN | {"lean/glue_rp2.py": "glue.py"}}


def _main_names(features: frozenset[str]) -> dict[str, str]:
    """Names in lean/main.py and config_phase.py the bundler fills in: the load orders
    (the files of the features left out are not loaded) and config.py's name."""
    def order(roles: tuple[str, ...]) -> str:
        return repr("".join(_LETTER[r] for r in _kept(roles, features)).encode())

    return {
        "RUN_FILES": order(NRF51_RUN),
        "BOOT_FILES": order(NRF51_BOOT),
        "CONFIG_FILES": order(NRF51_CONFIG_PHASE),
        "config": NRF51_NAMES[NRF51_CONFIG].removesuffix(".py"),
    }


def _read_fields() -> dict[str, str]:
    """mp/fields.py's `NAME = const(N)` lines: the firmware version and the nRF51
    build's state indexes, which the bundler inlines in every on-board file."""
    text = (MP_DIR / "fields.py").read_text()
    found = dict(re.findall(r"^([A-Z][A-Z0-9_]*) = const\((\d+)\)", text, re.M))
    if "FW_VERSION" not in found:
        raise RuntimeError("mp/fields.py has no `FW_VERSION = const(N)` line")
    return found


FIELDS: dict[str, str] = _read_fields()  # the feature flags as in the plain source: all 1
FIRMWARE_VERSION: int = int(FIELDS["FW_VERSION"])
_FIELDS_IMPORT = re.compile(r"^[ \t]*from fields import [^\n]*\n", re.M)
_FIELD_NAME = re.compile(r"\b(" + "|".join(sorted(FIELDS, key=len, reverse=True)) + r")\b")
if set(FLAGS) - set(FIELDS):
    raise RuntimeError(f"mp/fields.py lacks the feature flags {sorted(set(FLAGS) - set(FIELDS))}")


def _fields_for(features: frozenset[str]) -> dict[str, str]:
    return FIELDS | {flag: str(int(feature in features)) for flag, feature in FLAGS.items()}


def lower_fields(source: str, fields: dict[str, str] | None = None) -> str:
    """`source` with its `from fields import ...` lines blanked (line numbers kept) and
    each field name replaced by its number (as MicroPython's compiler does with a const
    in its own module): fields.py itself is never flashed. `fields` defaults to FIELDS."""
    values = FIELDS if fields is None else fields
    return _FIELD_NAME.sub(lambda m: values[m.group(1)], _FIELDS_IMPORT.sub("\n", source))


# Boards whose glue (mp/lean/glue_<board>.py) is inlined into the shared sources
# (meterlink.bundler.glue); on the others it is a module, `glue`, on the board.
_INLINED_GLUE = ("nrf51",)


def _glued(board: str, features: frozenset[str]) -> dict[str, str]:
    """The lean sources of `board` with `features`: the feature blocks lowered, then the
    board glue inlined; by source path (lean/...). Empty for a board whose glue is a
    module."""
    if board not in _INLINED_GLUE:
        return {}
    from meterlink.bundler.glue import glue_for, inline

    glue = glue_for(MP_DIR / "lean" / f"glue_{board}.py")

    # loaded into one namespace, in order
    phases = (_kept(NRF51_BOOT, features), _kept(NRF51_RUN, features))
    done: dict[str, tuple[str, set[str]]] = {}

    def lower(role: str) -> tuple[str, set[str]]:
        # board modules bound before this file in every phase that loads it
        if role not in done:
            bound: set[str] | None = None
            for p in sorted((p for p in phases if role in p), key=lambda p: p.index(role)):
                if bound == set():
                    break  # (and no cycle: crc.py is first in one phase, last in the other)
                here = set().union(*(lower(r)[1] for r in p[: p.index(role)]))
                bound = here if bound is None else bound & here
            src = f"lean/{role}.py"
            text = lower_features((MP_DIR / src).read_text(), features, f"mp/{src}")
            done[role] = inline(text, glue, bound or set(), src)
        return done[role]

    out = {f"lean/{role}.py": lower(role)[0] for role in _kept(NRF51_ROLES, features)}
    main = lower_features((MP_DIR / "lean/main.py").read_text(), features, "mp/lean/main.py")
    out["lean/main.py"] = inline(main, glue, set(), "lean/main.py")[0]
    return out


def lowered_source(src: str, features: frozenset[str] | set[str], board: str = "",
                   glued: dict[str, str] | None = None) -> str:  # fmt: skip
    """mp/`src` as a bundle with `features` holds it before minifying: the `if HAS_X:`
    blocks lowered (meterlink.bundler.lowering), the board glue inlined where `board`
    inlines it (meterlink.bundler.glue; `glued`: _glued()'s result, if at hand), then
    the fields inlined; the source's line numbers kept."""
    chosen = frozenset(features)
    if glued is None:
        glued = _glued(board, chosen) if board and src.startswith("lean/") else {}
    text = glued.get(src) or lower_features((MP_DIR / src).read_text(), chosen, f"mp/{src}")
    return lower_fields(text, _fields_for(chosen))


def bundle(board: str, features: frozenset[str] | set[str] | None = None) -> dict[str, bytes]:
    """On-board file name -> contents for `board` ("nrf51" or "rp2"), made with the
    optional `features` (meterlink.protocol.features; None: the board's own set,
    BOARD_FEATURES[board]). Raises ValueError for an unknown board, an unknown feature
    or one the board cannot take."""
    chosen = _chosen(board, features)
    # one at a time: ast.parse in two threads at once failed once on CPython 3.11
    # ("AST constructor recursion depth mismatch")
    with _BUNDLE_LOCK:
        return dict(_lowered(board, chosen)[0])


_BUNDLE_LOCK = threading.Lock()
_PHASE_SOURCES = {f"lean/{role}.py" for role in NRF51_CONFIG_PHASE}


def _chosen(board: str, features: frozenset[str] | set[str] | None) -> frozenset[str]:
    if board not in SUPPORTED_BOARDS:
        raise ValueError(
            f"unknown board {board!r}; supported boards: {', '.join(SUPPORTED_BOARDS)}"
        )
    if features is None:
        return BOARD_FEATURES[board]
    return check_features(board, features)


@cache
def _lowered(board: str, features: frozenset[str]) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The bundle and its symbol map (symbols.symbol_map), made in one pass."""
    from meterlink.bundler.symbols import FileSymbols, map_file

    files: dict[str, bytes] = {}
    symbols: dict[str, FileSymbols] = {}
    main_names = _main_names(features)
    glued = _glued(board, features)
    for src, name in _PROFILE[board].items():
        if not _file_wanted(src, features):
            continue  # the file of a feature this bundle leaves out
        lowered = lowered_source(src, features, board, glued)  # same lines as the source
        renamed: dict[str, dict[str, str]] = {}
        fill = main_names if name == "main.py" or src in _PHASE_SOURCES else None
        text = rename_locals(shrink(lowered, fill), renamed)
        symbols[name] = map_file(src, lowered, text, renamed, loaded=name in _LOADED)
        files[name] = (chunked(text) if name in _LOADED else text).encode()
    return files, {
        "board": board,
        "firmware_version": FIRMWARE_VERSION,
        "features": sorted(features),
        "files": symbols,
        "fields": {name: int(value) for name, value in _fields_for(features).items()},
    }


def symbol_map(board: str, features: frozenset[str] | set[str] | None = None) -> dict[str, Any]:
    """What the bundler renamed for `board` (with `features`, as bundle()), as JSON-ready
    data: on-board file name -> source file, per function its source line and local
    names, per chunk its first line, and the inlined field numbers
    (meterlink.bundler.symbols.translate uses it)."""
    chosen = _chosen(board, features)
    with _BUNDLE_LOCK:
        return _lowered(board, chosen)[1]


CHUNK_BYTES = 360  # statements are grouped into chunks up to this size


def chunked(source: str, limit: int = CHUNK_BYTES) -> str:
    """`source` (minified: one line per logical line) as the chunks main_nrf51.py's
    loader reads: each a 3-digit length then that many characters of whole top-level
    statements, grouped up to `limit` characters (a longer statement is one chunk)."""
    chunks = chunk_texts(source, limit)
    for chunk in chunks:
        if len(chunk) > 999 or not chunk.isascii():
            raise ValueError(
                f"cannot store as a chunk (ASCII, at most 999 characters): {chunk[:60]!r}"
            )
    return "".join(f"{len(chunk):03d}{chunk}" for chunk in chunks)


def chunk_texts(source: str, limit: int = CHUNK_BYTES) -> list[str]:
    """The chunks chunked() stores `source` as, without their length prefixes."""
    statements: list[str] = []
    for line in source.splitlines(keepends=True):
        if statements and line[:1] in (" ", ""):
            statements[-1] += line  # the body of the statement above
        else:
            statements.append(line)
    chunks: list[str] = []
    for stmt in statements:
        if chunks and len(chunks[-1]) + len(stmt) <= limit:
            chunks[-1] += stmt
        else:
            chunks.append(stmt)
    return chunks


def split_chunks(stored: str) -> list[str]:
    """The chunks of a file `chunked()` wrote, as main_nrf51.py's loader reads them."""
    out = []
    while stored:
        n = int(stored[:3])
        out.append(stored[3 : 3 + n])
        stored = stored[3 + n :]
    return out


def is_loaded(name: str) -> bool:
    """Whether on-board file `name` is stored as chunks (loaded, not imported)."""
    return name in _LOADED


def nrf51_loader() -> str:
    """The nRF51 main.py's loader `ld(name)` as source to run at a board's REPL, so that
    tools and tests load files exactly as the firmware does."""
    lines = bundle("nrf51")["main.py"].decode().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("def ld("))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    return "import gc\n" + "".join(lines[start:end])


class ConfigError(ValueError):
    """A config.txt value or line is wrong. `code` is the protocol's safe-mode error code
    (1 missing, 2 syntax, 3 invalid value); `key` names the offending key, if any."""

    def __init__(self, code: int, key: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.key = key


@cache
def _firmware_cfg() -> ModuleType:
    spec = importlib.util.spec_from_file_location("meterlink_fw_ml_cfg", MP_DIR / "ml_cfg.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("cannot load the firmware's ml_cfg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONFIG_KEYS: tuple[str, ...] = tuple(_firmware_cfg().KEYS)


# The input pins each board has, as config.txt names them (docs/firmware.md, "Boards
# and pins"); the firmware checks the same at boot (mp/lean/config.py: the micro:bit's
# pin names; mp/lean/glue_rp2.py: GPIO 0..28). pin8 of the micro:bit is the maintenance
# input (docs/protocol.md section 5), never a meter input.
BOARD_PINS: dict[str, frozenset[str]] = {
    "nrf51": frozenset(f"pin{n}" for n in (*range(8), *range(9, 17), 19, 20)),
    "rp2": frozenset(str(n) for n in range(29)),
}
MAINTENANCE_PIN = {"nrf51": "pin8"}


def parse_config(text: str | bytes, board: str | None = None) -> dict[str, Any]:
    """Parses config.txt exactly as the firmware does at boot. Returns every key with
    defaults filled in (`key` as 16 bytes); raises ConfigError naming the key. With
    `board`, a pin that board lacks is an error (code 3), as on the module."""
    cfg = _firmware_cfg()
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    try:
        result: dict[str, Any] = cfg.parse(cfg.as_text(data))
    except cfg.CfgError as exc:
        code, key, line = exc.args[0], exc.args[1], exc.args[2]
        raise ConfigError(code, key, f"config.txt: {_explain(code, key, line)}") from None
    if board is not None:
        pins = _board_pins(board)
        for name in cfg.PINS:
            value = result[name]
            if value and value not in pins:
                raise ConfigError(3, name, f"config.txt: {_explain_pin(board, name, value)}")
    return result


def _board_pins(board: str) -> frozenset[str]:
    if board not in BOARD_PINS:
        raise ValueError(
            f"unknown board {board!r}; supported boards: {', '.join(SUPPORTED_BOARDS)}"
        )
    return BOARD_PINS[board]


def _explain_pin(board: str, name: str, value: str) -> str:
    if value == MAINTENANCE_PIN.get(board):
        return (
            f"{name}={value}: {value} is the {board} board's maintenance input; "
            "wire the meter to another pin"
        )
    have = "pin0..pin7, pin9..pin16, pin19, pin20" if board == "nrf51" else "GPIO 0..28"
    return f"{name}={value}: the {board} board has no such pin; it has {have}"


def _explain(code: int, key: str | int | None, line: int) -> str:
    """The message for the firmware's (error code, key, line number)."""
    ints = {name: (lo, hi, default) for name, lo, hi, default in _firmware_cfg().INTS}
    if isinstance(key, int):
        return (
            f"line {line}: byte 0x{key:02x} is not plain text; config.txt is ASCII "
            "name=value lines (write it again with provisioning)"
        )
    if key is None:
        return f"line {line}: expected name=value"
    if code == 2:
        return f"line {line}: {key} is given twice; keep one line for it"
    if line:
        return f"line {line}: unknown name {key!r}; known names: {', '.join(CONFIG_KEYS)}"
    if key in ints:
        lo, hi, default = ints[key]
        need = "is required and must be" if default is None else "must be"
        return f"{key} {need} a decimal integer {lo}..{hi}"
    if key == "key":
        return "key is required and must be 32 hex digits (the 128-bit root key)"
    if key == "pins":
        return "pin_pulse, pin_dir and pin_tamper must be different pins"
    return f"{key} must be a pin name like pin0 (nrf51) or a GPIO number like 16 (rp2)"


def render_config(*, board: str | None = None, **values: Any) -> str:
    """config.txt text for these values (names as in docs/architecture.md). `key` may be
    16 bytes or 32 hex digits; pins are names ("pin0") or GPIO numbers; None or "" leaves
    an optional pin empty. The result is checked with parse_config (for `board`'s pins,
    if given)."""
    lines = ["# meterlink module configuration, written by provisioning"]
    for name, value in values.items():
        if name not in CONFIG_KEYS:
            raise ConfigError(
                3, name, f"unknown config key {name!r}; known keys: {', '.join(CONFIG_KEYS)}"
            )
        if value is None:
            text = ""
        elif name == "key" and isinstance(value, bytes | bytearray):
            if len(value) != 16:
                raise ConfigError(3, "key", f"key must be 16 bytes, got {len(value)}")
            text = bytes(value).hex()
        elif isinstance(value, bool):
            raise ConfigError(3, name, f"{name} must be an integer or text, not a bool")
        else:
            text = str(value)
        if "\n" in text or "\r" in text or "#" in text:
            raise ConfigError(3, name, f"{name} must not contain newlines or '#'")
        lines.append(f"{name}={text}")
    out = "\n".join(lines) + "\n"
    parse_config(out, board)
    return out
