"""The host helper: bundle(), render_config()/parse_config(), FIRMWARE_VERSION, and the
minifier that makes the firmware fit the micro:bit filesystem."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlink.bundler import (
    CONFIG_KEYS,
    FEATURE_FILES,
    FIELDS,
    FIRMWARE_VERSION,
    MP_DIR,
    NRF51_BOOT,
    NRF51_NAMES,
    NRF51_ROLES,
    NRF51_RUN,
    SUPPORTED_BOARDS,
    ConfigError,
    bundle,
    bundle_features,
    chunked,
    is_loaded,
    lowered_source,
    nrf51_loader,
    parse_config,
    render_config,
    split_chunks,
)
from meterlink.bundler.minify import rename_locals, shrink
from meterlink.protocol.features import ALL_FEATURES

KEY = bytes(range(16))


def test_bundles_hold_main_and_prefixed_modules() -> None:
    assert SUPPORTED_BOARDS == ("nrf51", "rp2")
    # both boards run the lean sources, under the same on-board names; rp2 has its glue
    # as a module (glue.py), the nRF51 has it inlined
    rp2, nrf51 = bundle("rp2"), bundle("nrf51")
    for files in (rp2, nrf51):
        assert {"main.py", "ml_cfg.py", NRF51_NAMES["counting"], NRF51_NAMES["aes"]} <= set(files)
        assert "board.py" not in files and "ml_core.py" not in files
        assert all(n in ("main.py", "glue.py") or n.startswith("ml_") for n in files)
    assert "glue.py" in rp2 and "glue.py" not in nrf51
    assert b"from glue import" not in b"".join(nrf51.values())


def test_nrf51_bundle_is_shrunk_to_fit_the_filesystem() -> None:
    small = bundle("nrf51")
    # the micro:bit holds about 15,100 bytes; config.txt and the two records need ~600
    assert sum(map(len, small.values())) < 11_500
    source = sum(len((MP_DIR / f"lean/{r}.py").read_bytes()) for r in (*NRF51_BOOT, *NRF51_RUN)
                 if f"lean/{r}.py" not in FEATURE_FILES)  # fmt: skip
    assert sum(map(len, small.values())) < 0.6 * source
    assert b"#" not in small[NRF51_NAMES["counting"]]  # comments dropped
    assert b"#" not in bundle("rp2")[NRF51_NAMES["counting"]]  # rp2's is shrunk the same way


@pytest.mark.parametrize("features", [None, ALL_FEATURES - {"at_modem"}], ids=["nrf51", "all"])
def test_loaded_files_are_stored_as_chunks_of_whole_statements(features: frozenset[str] | None
                                                               ) -> None:  # fmt: skip

    files = bundle("nrf51", features=features)
    chosen = bundle_features("nrf51") if features is None else features
    for role in (*NRF51_BOOT, *NRF51_RUN):
        name = NRF51_NAMES[role]
        assert is_loaded(name)
        if name not in files:  # the file of a feature left out
            assert f"lean/{role}.py" in FEATURE_FILES
            continue
        chunks = split_chunks(files[name].decode())
        assert all(0 < len(c) <= 999 for c in chunks)
        for chunk in chunks:  # each compiles on its own
            compile(chunk, name, "exec")
        lowered = lowered_source(f"lean/{role}.py", chosen, "nrf51")
        source = rename_locals(shrink(lowered))
        assert "".join(chunks) == source


def test_nrf51_names_and_load_orders_come_from_the_named_lists() -> None:
    # one short on-board name per role: ml_n and a letter
    assert len(set(NRF51_NAMES.values())) == len(NRF51_ROLES) == len(NRF51_NAMES)
    for name in NRF51_NAMES.values():
        assert len(name.removesuffix(".py")) == 5 and name[:4] == "ml_n"
    # the letters of the build shipped since 1.0 are kept (they are interned on the board)
    assert NRF51_NAMES["state"] == "ml_nd" and NRF51_NAMES["config"] == "ml_nc.py"
    files = bundle("nrf51")
    main = files["main.py"].decode()
    run = "".join(NRF51_NAMES[r][4] for r in NRF51_RUN if NRF51_NAMES[r] in files)
    boot = "".join(NRF51_NAMES[r][4] for r in NRF51_BOOT if NRF51_NAMES[r] in files)
    # the files of 1.0, seal.py now before uplink.py (the run phase did not load with the
    # downlink work the other way round: MemoryError for a 496-byte block in seal.py)
    assert run == "dplvaxsmk" and boot == "kxb"
    # main.py picks the phase's order, loads its files and calls phase(); phase 1's one
    # loaded file imports config.py and names its read()
    config = NRF51_NAMES["config_phase"]
    assert config in files and NRF51_NAMES["config"] not in main
    assert (f"for n in(b'{run}' if 'rt'in os.listdir()else b'{boot}' if 'cf'in os.listdir()"
            f"else b'{config[4]}'):ld('ml_n'+chr(n))\n phase()or machine.reset()") in main
    imported = NRF51_NAMES["config"].removesuffix(".py")
    assert split_chunks(files[config].decode()) == [f"import {imported};phase={imported}.read\n"]
    assert files[NRF51_NAMES["run"]].decode().endswith("\nphase=run\n")
    assert files[NRF51_NAMES["boot"]].decode().endswith("\nphase=boot\n")
    # the state's field names never reach the board: the numbers are inlined
    for data in bundle("nrf51").values():
        assert b"fields" not in data and b"V_" not in data and b"S_" not in data


def test_no_two_letter_module_names_in_the_source_tree() -> None:
    import re

    names = [p.stem for p in MP_DIR.rglob("*.py")]
    assert not [n for n in names if re.fullmatch(r"ml_n[a-z]", n) or len(n) <= 2], names


def test_chunks_group_statements_up_to_the_limit() -> None:
    source = "a=1\nb=2\ndef f():\n return 3\nc=4\n"
    assert chunked(source, limit=8) == "008a=1\nb=2\n019def f():\n return 3\n004c=4\n"
    assert chunked(source) == f"{len(source):03d}{source}"
    parts = ["a=1\nb=2\n", "def f():\n return 3\n", "c=4\n"]
    assert split_chunks(chunked(source, limit=8)) == parts
    assert not is_loaded("main.py") and not is_loaded("ml_cfg.py")
    with pytest.raises(ValueError, match="at most 999"):
        chunked("x=" + "1" * 1000 + "\n")


def test_unknown_board_names_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="nrf51, rp2"):
        bundle("esp32")


def test_version_comes_from_fields_py_into_both_bundles() -> None:
    assert FIRMWARE_VERSION == 259  # 1.3: the nRF51 gained daily_status
    assert "FW_VERSION = const(259)" in (MP_DIR / "fields.py").read_text()
    for board in ("nrf51", "rp2"):  # the status frame's fw field
        assert b"10,259," in bundle(board)[NRF51_NAMES["counting"]]
    for board in ("nrf51", "rp2"):
        assert all(b"FW_VERSION" not in data for data in bundle(board).values())


def test_render_then_parse_round_trip() -> None:
    text = render_config(id=7, key=KEY, gen=3, register=1234, interval=60, pin_dir="pin1")
    c = parse_config(text)
    assert (c["id"], c["key"], c["gen"], c["register"], c["interval"]) == (7, KEY, 3, 1234, 60)
    assert (c["weight"], c["unit"], c["history"], c["pin_pulse"], c["pin_dir"]) == (
        1, 1, 12, "pin0", "pin1",
    )
    assert set(c) == set(CONFIG_KEYS)


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"id": 1, "gen": 1}, "key", "32 hex digits"),
        ({"key": KEY, "gen": 1}, "id", "required"),
        ({"id": 1, "key": KEY, "gen": 1, "history": 24}, "history", "1..23"),
        ({"id": 1, "key": KEY, "gen": 1, "unit": 3}, "unit", "0..2"),
        ({"id": 1, "key": KEY, "gen": 1, "pin_tamper": "pin0"}, "pins", "different"),
        ({"id": 1, "key": KEY, "gen": 1, "pin_dir": "left"}, "pin_dir", "pin name"),
        ({"id": 1, "key": KEY, "gen": 1, "colour": 2}, "colour", "unknown"),
        ({"id": 1, "key": KEY[:8], "gen": 1}, "key", "16 bytes"),
        ({"id": 1, "key": KEY, "gen": 1, "modem": 2}, "modem", "0..1"),
        ({"id": 1, "key": KEY, "gen": 1, "lora_sf": 13}, "lora_sf", "7..12"),
        ({"id": 1, "key": KEY, "gen": 1, "lora_freq": 915000000}, "lora_freq",
         "863000000..870000000"),
    ],
    ids=["no-key", "no-id", "history", "unit", "same-pin", "pin-name", "unknown", "short-key",
         "modem", "lora-sf", "lora-freq"],
)
def test_bad_values_name_the_key(values: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as e:
        render_config(**values)
    assert e.value.key == key and e.value.code == 3


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [("id=1\nid=2\n", 2, "given twice"), ("hello\n", 2, "name=value")],
)
def test_syntax_errors(text: str, code: int, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as e:
        parse_config(text)
    assert e.value.code == code


GOOD = "id=1\nkey=" + KEY.hex() + "\ngen=1\n"


@pytest.mark.parametrize(
    "data",
    [bytes(range(256))[::-7] * 3, GOOD.encode("utf-16"), GOOD.encode() + b"\xff\n",
     b"id=1\x00\n", "id=1\nunit=\u00e9\n"],
    ids=["random-bytes", "utf-16", "byte-0xff", "nul", "non-ascii-text"],
)  # fmt: skip
def test_garbage_is_unreadable_code_2(data: bytes | str) -> None:
    """Protocol 4.7: a file that is not plain text is unreadable (2), not a bad value."""
    with pytest.raises(ConfigError, match="not plain text") as e:
        parse_config(data)
    assert e.value.code == 2


@pytest.mark.parametrize(
    ("board", "pins", "key", "words"),
    [
        ("nrf51", {"pin_pulse": "pin25"}, "pin_pulse", "no such pin"),
        ("nrf51", {"pin_dir": "pin17"}, "pin_dir", "no such pin"),
        ("nrf51", {"pin_tamper": "16"}, "pin_tamper", "no such pin"),
        ("nrf51", {"pin_pulse": "pin8"}, "pin_pulse", "maintenance input"),
        ("rp2", {"pin_pulse": "29"}, "pin_pulse", "GPIO 0..28"),
        ("rp2", {"pin_pulse": "pin0"}, "pin_pulse", "no such pin"),
    ],
)
def test_a_pin_the_board_lacks_is_refused(
    board: str, pins: dict[str, str], key: str, words: str
) -> None:
    text = GOOD + "".join(f"{k}={v}\n" for k, v in pins.items())
    parse_config(text)  # the pin is well formed: only the board's pin list refuses it
    with pytest.raises(ConfigError, match=words) as e:
        parse_config(text, board)
    assert e.value.key == key and e.value.code == 3
    with pytest.raises(ConfigError, match=words):
        render_config(board=board, id=1, key=KEY, gen=1, **pins)


def test_every_pin_the_board_has_is_accepted() -> None:
    from meterlink.bundler import BOARD_PINS

    for board, pins in BOARD_PINS.items():
        for pin in sorted(pins):
            assert parse_config(GOOD + f"pin_pulse={pin}\n", board)["pin_pulse"] == pin


@given(
    dev=st.integers(0, 2**32 - 1),
    key=st.binary(min_size=16, max_size=16),
    register=st.integers(0, 2**32 - 1),
    interval=st.integers(1, 65535),
    history=st.integers(1, 23),
)
def test_any_valid_config_round_trips(
    dev: int, key: bytes, register: int, interval: int, history: int
) -> None:
    text = render_config(
        id=dev, key=key, gen=1, register=register, interval=interval, history=history
    )
    c = parse_config(text)
    assert (c["id"], c["key"], c["register"], c["interval"], c["history"]) == (
        dev, key, register, interval, history,
    )


def test_shrink_keeps_meaning() -> None:
    src = (
        "from micropython import const\n_N = const(3)  # three\n\n\nclass A:\n"
        "    def f(self, x):\n        # comment\n        return [x, 'a # b'] * _N\n"
    )
    out = shrink(src)
    assert "#" not in out.replace("'a # b'", "") and "const(3)" not in out
    ns: dict[str, object] = {}
    exec(out.replace("from micropython import const\n", ""), ns)
    assert ns["A"]().f(1) == [1, "a # b"] * 3  # type: ignore[operator]


def test_nrf51_loader_is_main_pys_and_loads_chunks(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    loader = nrf51_loader()
    assert loader.splitlines()[1].startswith("def ld(")
    assert loader.splitlines()[1] in bundle("nrf51")["main.py"].decode()
    (tmp_path / "ml_nq").write_text(chunked("x=1\ndef f():\n return x+1\n", limit=4))
    monkeypatch.chdir(tmp_path)
    names: dict[str, object] = {}
    exec(loader + "ld('ml_nq')\n", names)  # CPython runs the same loader
    assert names["f"]() == 2  # type: ignore[operator]




def test_the_state_indexes_are_declared_once_in_fields_py() -> None:
    """The state record's and the volatile array's field numbers are declared once, in
    fields.py: no on-board source declares one of its own."""
    own = {name for name in FIELDS if name[:2] in ("S_", "V_")}
    for src in sorted(MP_DIR.rglob("*.py")):
        if src.name == "fields.py":
            continue
        declared = re.findall(r"^\s*_?([A-Z][A-Z0-9_]*) = const\(", src.read_text(), re.M)
        assert not set(declared) & own, (src.name, set(declared) & own)
    for board in ("nrf51", "rp2"):  # inlined, never flashed
        assert all(b"S_REG" not in data for data in bundle(board).values())
