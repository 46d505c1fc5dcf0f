"""Finding the Pico's UF2 and bootrom by pinned SHA-256, and the one-line skip where
there is none (a fresh clone without shared/firmware/)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from meterlink.hil import rp2_firmware as fw


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No shared/ folder, an empty cache, no environment override."""
    monkeypatch.setattr(fw, "shared_dir", lambda: tmp_path / "no-shared" / "firmware")
    monkeypatch.setattr(fw, "CACHE", tmp_path / "cache")
    monkeypatch.delenv("METERLINK_RP2_UF2", raising=False)
    monkeypatch.delenv("METERLINK_RP2_UF2_SHA256", raising=False)
    return tmp_path


def test_nothing_found_says_how_to_get_it_in_one_line(nowhere: Path) -> None:
    with pytest.raises(fw.FirmwareMissing) as err:
        fw.find_uf2()
    text = str(err.value)
    assert "\n" not in text and "METERLINK_RP2_UF2" in text and "make setup" in text


def test_a_file_whose_checksum_is_not_pinned_is_refused(
    nowhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = nowhere / "other.uf2"
    fake.write_bytes(b"\0" * 512)
    monkeypatch.setenv("METERLINK_RP2_UF2", str(fake))
    with pytest.raises(fw.FirmwareMissing, match="not pinned"):
        fw.find_uf2()
    # pinning its checksum accepts it
    monkeypatch.setenv("METERLINK_RP2_UF2_SHA256", hashlib.sha256(fake.read_bytes()).hexdigest())
    assert fw.find_uf2() == fake


def test_fetch_sends_no_request_while_the_official_checksum_is_unpinned(
    nowhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("fetch() tried the network")

    monkeypatch.setattr(fw.urllib.request, "urlopen", no_network)
    with pytest.raises(fw.FirmwareMissing, match="not pinned"):
        fw.fetch()
    assert fw.main(["fetch"]) == 0  # make setup goes on; the rp2 tests will be skipped


def test_bootrom_extracted_from_its_word_list_and_checked(
    nowhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fw, "_bootrom_sources", lambda: [("bad.mjs", "x = [0x1, 0x2]")])
    with pytest.raises(fw.FirmwareMissing, match="bootrom"):
        fw.find_bootrom()
    real = fw._words_to_bytes("x = [" + ", ".join(f"0x{i:08x}" for i in range(8)) + "]")
    assert len(real) == fw.BOOTROM_BYTES and real[4:8] == b"\1\0\0\0"
