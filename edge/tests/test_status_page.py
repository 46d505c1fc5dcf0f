"""The HTTP server: /healthz, /metrics, /api/status, and the status page rendered by a real
headless Chromium (screenshot kept in artifacts/gateway-status-page.png)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from meterlink.protocol import AlarmFlags, encode_rxinfo_datagram
from meterlink.protocol.features import ALL_FEATURES

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.headers["Content-Type"], r.read().decode()


def _chromium(url: str, screenshot: Path) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: run `make setup` (Debian package chromium)")
    profile = tempfile.mkdtemp(prefix="chromium-")
    common = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
              "--window-size=1200,900", "--virtual-time-budget=3000"]
    try:
        subprocess.run([*common, f"--screenshot={screenshot}", url], check=True,
                       capture_output=True, timeout=120)
        dom = subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True,
                             timeout=120).stdout.decode()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return dom


def test_http_endpoints_and_status_page_in_chromium(broker, fleet, write_config,
                                                   running_gateway, until, tmp_path):
    cfg = write_config(broker_port=broker.port)
    dev, other = fleet.devices[0], fleet.devices[1]

    async def main() -> tuple[str, dict, str, str]:
        async with running_gateway(cfg) as gw:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                addr = ("127.0.0.1", gw.udp_ports["net"])
                s.sendto(encode_rxinfo_datagram(dev.reading(), -67, 30), addr)
                s.sendto(encode_rxinfo_datagram(other.alarm(AlarmFlags.BURST), -99, -8), addr)
                s.sendto(b"\x02garbage", addr)
            assert await until(lambda: gw.metrics.published.total() >= 2)
            base = f"http://127.0.0.1:{gw.http_port}"
            code, ctype, health = await asyncio.to_thread(_get, base + "/healthz")
            assert code == 200 and json.loads(health)["status"] == "ok"
            _, ctype, metrics = await asyncio.to_thread(_get, base + "/metrics")
            assert ctype.startswith("text/plain")
            _, _, status = await asyncio.to_thread(_get, base + "/api/status")
            shot = tmp_path / "status.png"
            dom = await asyncio.to_thread(_chromium, base + "/", shot)
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(shot, ARTIFACTS / "gateway-status-page.png")
            return metrics, json.loads(status), dom, str(shot)

    metrics, status, dom, shot = asyncio.run(main())
    assert 'meterlink_frames_total{outcome="accepted",reason="reading"} 1' in metrics
    link_errors = [ln for ln in metrics.splitlines()
                   if ln.startswith("meterlink_link_errors_total{")]
    assert len(link_errors) == 1 and link_errors[0].endswith('receiver="net"} 1')
    assert "meterlink_broker_connected 1" in metrics
    assert "meterlink_publish_latency_seconds_count 2" in metrics
    modules = {m["device_id"]: m for m in status["modules"]}
    assert modules[dev.device_id]["register"] == dev.register
    assert modules[other.device_id]["alarms"] == ["burst"]
    assert status["broker"]["connected"] is True
    # what the browser rendered from /api/status
    assert f'id="module-{dev.device_id}"' in dom
    row = dom.split(f'id="module-{dev.device_id}"', 1)[1].split("</tr>", 1)[0]
    assert f">{dev.register}<" in row and "-67 dBm" in row
    # what the key file says the module's firmware takes (docs/gateway.md, "Commands")
    assert modules[dev.device_id]["board"] == "rp2"
    assert modules[dev.device_id]["firmware_version"] == 0x0100
    assert modules[dev.device_id]["features"] == sorted(ALL_FEATURES)
    assert "rp2 1.0 (at_modem, burst_alarm, config_downlink" in row
    assert ">burst<" in dom and ">connected<" in dom
    assert Path(shot).stat().st_size > 10_000


def test_http_rejects_unknown_paths_and_methods(write_config, running_gateway):
    cfg = write_config()

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            r, w = await asyncio.open_connection("127.0.0.1", gw.http_port)
            w.write(b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await r.read()).startswith(b"HTTP/1.1 405")
            r, w = await asyncio.open_connection("127.0.0.1", gw.http_port)
            w.write(b"GET /nope HTTP/1.1\r\n\r\n")
            assert (await r.read()).startswith(b"HTTP/1.1 404")
            r, w = await asyncio.open_connection("127.0.0.1", gw.http_port)
            w.write(b"\x00\x01garbage\r\n\r\n")
            assert (await r.read()).startswith(b"HTTP/1.1 400")

    asyncio.run(main())
