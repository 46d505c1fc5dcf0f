"""A command the module cannot take (its key-file entry lacks the feature) is refused when
it arrives, and one queued before the key file said so is dropped at load: logged,
counted, answered on `commands/<id>/reply`, never sent and deleted. Real Mosquitto, the
gateway's own SQLite outbox, a pty receiver."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import paho.mqtt.publish as publish

from meterlink.protocol import FrameType, LinkDecoder, LinkFrame, decode_frame, encode_rxinfo


def _log_events(path, event: str) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("event") == event:
            out.append(row)
    return out


def _replies(central, device_id: int) -> list[dict]:
    topic = f"meterlink/v1/commands/{device_id}/reply"
    return [m.json() for m in list(central.messages) if m.topic == topic]


async def _send(broker, device_id: int, body: object) -> None:
    payload = body if isinstance(body, str) else json.dumps(body)
    await asyncio.to_thread(publish.single, f"meterlink/v1/commands/{device_id}", payload,
                            qos=1, hostname=broker.host, port=broker.port)


async def _window(pty_pair, dev) -> list:
    """The downlinks the gateway sends in the window after one of dev's readings."""
    pty_pair.write(encode_rxinfo(dev.reading(), -70, 0))
    raw = await asyncio.to_thread(pty_pair.read_available, 1.5)
    return [decode_frame(f.payload, dev.key) for f in LinkDecoder().feed(raw)
            if isinstance(f, LinkFrame)]


def test_a_command_the_module_cannot_take_is_refused_on_arrival(
        broker, central, fleet, keys_file, write_config, pty_pair, running_gateway, until,
        tmp_path):
    lean, full, old = fleet.devices
    lean.board, lean.features = "nrf51", frozenset()  # the nRF51 build today
    old.features = None  # an entry written before features were recorded
    fleet.write_keys(keys_file)
    cfg = write_config(serial=[pty_pair.path], broker_port=broker.port)

    async def main() -> tuple[list, list]:
        async with running_gateway(cfg) as gw:
            assert await until(lambda: gw.status.broker_connected)
            assert await until(lambda: gw.receivers["rx0"].connected)
            await asyncio.sleep(0.3)  # SUBACK
            await _send(broker, lean.device_id, {"type": "config", "interval_s": 600,
                                                 "id": "c-1"})
            await _send(broker, lean.device_id, {"type": "time"})
            await _send(broker, old.device_id, {"type": "config", "leak_intervals": 48})
            await _send(broker, full.device_id, {"type": "config", "burst_pulses": 50,
                                                 "id": 7})
            await _send(broker, lean.device_id, {"type": "config", "colour": 1})
            assert await until(lambda: gw.metrics.commands.get(
                outcome="refused_unsupported") == 3)
            assert await until(lambda: gw.metrics.commands.get(outcome="queued") == 1)
            assert await until(lambda: gw.metrics.commands.get(outcome="invalid") == 1)
            assert await until(lambda: len(_replies(central, lean.device_id)) == 3)
            assert await until(lambda: len(_replies(central, full.device_id)) == 1)
            assert await until(lambda: len(_replies(central, old.device_id)) == 1)
            assert gw.downlink.pending(lean.device_id) == 0
            assert gw.downlink.pending(old.device_id) == 0
            stored = await gw.db.call(gw.db.outbox.pending_commands)
            assert [(d, k, ref) for _, d, k, _, ref in stored] == [(full.device_id, "config", "7")]
            # the refused module's next windows carry nothing; the capable one's the config
            lean_downs = await _window(pty_pair, lean)
            full_downs = await _window(pty_pair, full)
            assert await until(lambda: gw.metrics.downlinks_sent.get(kind="config") == 1)
            assert gw.metrics.downlinks_sent.get(kind="time") == 0
            assert await until(lambda: len(_replies(central, full.device_id)) == 2)
            return lean_downs, full_downs

    lean_downs, full_downs = asyncio.run(main())
    assert lean_downs == []
    assert [f.frame_type for f in full_downs] == [FrameType.CONFIG]
    assert full_downs[0].body.burst_pulses == 50

    config, time_, invalid = _replies(central, lean.device_id)
    assert config["outcome"] == "refused_unsupported" and config["id"] == "c-1"
    assert config["type"] == "config" and config["gateway_id"] == "gw-test"
    assert config["device_id"] == lean.device_id
    assert config["missing_features"] == ["config_downlink"]
    assert "nrf51" in config["error"] and "has no config_downlink" in config["error"]
    assert time_["missing_features"] == ["time_downlink"] and time_["type"] == "time"
    assert invalid["outcome"] == "invalid" and "colour" in invalid["error"]
    queued, sent = _replies(central, full.device_id)
    assert queued["outcome"] == "queued" and queued["id"] == 7 and queued["queued"] == 1
    assert sent["outcome"] == "sent" and sent["id"] == 7 and sent["type"] == "config"
    assert sent["counter"] == full_downs[0].counter and sent["receiver"] == "rx0"
    [unrecorded] = _replies(central, old.device_id)
    assert unrecorded["missing_features"] == ["config_downlink"]
    assert "export the key file again" in unrecorded["error"]

    log = tmp_path / "gateway.log"
    refused = _log_events(log, "command_refused")
    assert [r["device_id"] for r in refused] == [lean.device_id] * 2 + [old.device_id]
    assert all(r["level"] == "warning" and not r["was_queued"] for r in refused)
    [note] = _log_events(log, "keys_without_features")
    assert note["device_ids"] == [old.device_id] and note["assumed_features"] == []


def test_a_burst_threshold_needs_the_burst_alarm(fleet, keys_file, write_config,
                                                 running_gateway):
    """A config command setting burst thresholds, for a module that takes config
    downlinks but has no burst alarm, would be applied to nothing: refused."""
    from meterlink.edge.downlink import CommandRefused

    dev = fleet.devices[0]
    dev.features = frozenset({"config_downlink", "time_downlink"})
    fleet.write_keys(keys_file)

    async def main() -> None:
        async with running_gateway(write_config()) as gw:
            await gw.downlink.add_command(dev.device_id, b'{"type": "config", '
                                                         b'"leak_intervals": 9}')
            try:
                await gw.downlink.add_command(dev.device_id, b'{"type": "config", '
                                                             b'"burst_intervals": 3}')
            except CommandRefused as exc:
                assert exc.missing == ("burst_alarm",)
                assert "burst_intervals" in str(exc)
            else:
                raise AssertionError("a burst threshold was queued for a module without it")
            assert gw.downlink.pending(dev.device_id) == 1

    asyncio.run(main())


def test_commands_queued_before_the_key_file_said_so_are_dropped_at_load(
        broker, central, fleet, keys_file, write_config, pty_pair, running_gateway, until,
        tmp_path):
    dev, other, _ = fleet.devices
    cfg = write_config(serial=[pty_pair.path], broker_port=broker.port)

    async def queue_commands() -> None:  # the key file says nothing of missing features
        async with running_gateway(cfg) as gw:
            assert await until(lambda: gw.status.broker_connected)
            await asyncio.sleep(0.3)
            await _send(broker, dev.device_id, {"type": "config", "interval_s": 300,
                                                "id": "batch-9"})
            await _send(broker, dev.device_id, {"type": "time"})
            await _send(broker, other.device_id, {"type": "time"})
            assert await until(lambda: gw.metrics.commands.get(outcome="queued") == 3)

    asyncio.run(queue_commands())
    dev.board, dev.features = "nrf51", frozenset()  # re-exported: it is an nRF51 module
    fleet.write_keys(keys_file)
    before = len(_replies(central, dev.device_id))

    async def restart() -> list:
        async with running_gateway(cfg) as gw:
            assert gw.metrics.commands.get(outcome="refused_unsupported") == 2
            assert gw.downlink.pending(dev.device_id) == 0
            assert gw.downlink.pending(other.device_id) == 1
            stored = await gw.db.call(gw.db.outbox.pending_commands)
            assert [row[1] for row in stored] == [other.device_id]
            # the replies wait for the broker, then go out
            assert await until(lambda: len(_replies(central, dev.device_id)) == before + 2)
            assert await until(lambda: gw.receivers["rx0"].connected)
            return await _window(pty_pair, dev)

    assert asyncio.run(restart()) == []
    dropped = _replies(central, dev.device_id)[before:]
    assert [r["type"] for r in dropped] == ["config", "time"]
    assert [r["id"] for r in dropped] == ["batch-9", None]  # kept in the queue's table
    assert {r["outcome"] for r in dropped} == {"refused_unsupported"}
    log_rows = _log_events(tmp_path / "gateway.log", "command_refused")
    assert [r["was_queued"] for r in log_rows] == [True, True]
    assert [r["missing_features"] for r in log_rows] == [["config_downlink"],
                                                         ["time_downlink"]]


def test_a_key_file_reload_drops_what_the_module_cannot_take(
        fleet, keys_file, write_config, running_gateway, until, tmp_path):
    dev = fleet.devices[0]
    cfg = write_config()

    async def main() -> None:
        async with running_gateway(cfg) as gw:
            await gw.downlink.add_command(dev.device_id, b'{"type": "time"}')
            await gw.downlink.add_command(dev.device_id, b'{"type": "config", '
                                                         b'"interval_s": 60}')
            dev.features = frozenset({"config_downlink"})  # no time downlink after all
            fleet.write_keys(keys_file)
            os.kill(os.getpid(), signal.SIGHUP)
            assert await until(lambda: gw.metrics.commands.get(
                outcome="refused_unsupported") == 1)
            assert gw.downlink.pending(dev.device_id) == 1
            stored = await gw.db.call(gw.db.outbox.pending_commands)
            assert [row[2] for row in stored] == ["config"]
            assert len(gw.downlink.replies) == 1  # no broker: it waits
            device, reply = gw.downlink.replies.peek()
            assert device == str(dev.device_id) and reply["type"] == "time"
            # an entry without features: its config command goes too, and the note about
            # it is logged once however often the same file is reloaded
            dev.features = None
            fleet.write_keys(keys_file)
            for _ in range(2):
                os.kill(os.getpid(), signal.SIGHUP)
                await asyncio.sleep(0.2)
            assert await until(lambda: gw.metrics.registry_reloads.get(outcome="ok") == 3)
            assert await until(lambda: gw.downlink.pending(dev.device_id) == 0)

    asyncio.run(main())
    log = tmp_path / "gateway.log"
    assert len(_log_events(log, "keys_without_features")) == 1
    assert [r["missing_features"] for r in _log_events(log, "command_refused")] == [
        ["time_downlink"], ["config_downlink"]]


def test_check_config_warns_of_an_old_key_file(fleet, keys_file, write_config):
    import subprocess
    import sys
    from pathlib import Path

    meterlink = str(Path(sys.executable).with_name("meterlink"))
    cfg = write_config()
    ok = subprocess.run([meterlink, "gateway", "check-config", "--config", str(cfg)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "features" not in ok.stderr
    fleet.devices[1].features = None
    fleet.write_keys(keys_file)
    old = subprocess.run([meterlink, "gateway", "check-config", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert old.returncode == 0, old.stderr
    assert (f"1 device(s) without recorded features (the file was exported before they were "
            f"recorded, e.g. {fleet.devices[1].device_id})") in old.stderr
    assert "meterlink devices export-keys" in old.stderr


def test_the_window_never_carries_a_command_the_key_file_now_refuses(
        fleet, keys_file, write_config, pty_pair, running_gateway, until):
    """Even before the reload's own sweep has run, the answer to an uplink checks the
    queued command against the key file in use."""
    dev = fleet.devices[0]
    cfg = write_config(serial=[pty_pair.path])

    async def main() -> list:
        async with running_gateway(cfg) as gw:
            assert await until(lambda: gw.receivers["rx0"].connected)
            await gw.downlink.add_command(dev.device_id, b'{"type": "time"}')
            dev.board, dev.features = "nrf51", frozenset()
            fleet.write_keys(keys_file)
            gw.registry.load()  # the file in use changes; no sweep of the queue yet
            assert gw.downlink.pending(dev.device_id) == 1
            downs = await _window(pty_pair, dev)
            assert gw.metrics.commands.get(outcome="refused_unsupported") == 1
            assert gw.metrics.downlinks_sent.get(kind="time") == 0
            assert gw.downlink.pending(dev.device_id) == 0
            assert await gw.db.call(gw.db.outbox.pending_commands) == []
            return downs

    assert asyncio.run(main()) == []


def test_a_state_file_from_before_sender_ids_keeps_its_queued_commands(tmp_path):
    import sqlite3

    from meterlink.edge.outbox import Outbox

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE commands(id INTEGER PRIMARY KEY AUTOINCREMENT, device_id "
               "INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, created_at REAL "
               "NOT NULL)")
    db.execute("INSERT INTO commands(device_id, kind, body, created_at) VALUES "
               "(5, 'time', '{}', 1.0)")
    db.commit()
    db.close()
    outbox = Outbox(path, max_bytes=1 << 20, min_free_bytes=0, policy="drop_oldest_readings")
    try:
        assert outbox.pending_commands() == [(1, 5, "time", "{}", None)]
        outbox.add_command(5, "config", '{"interval_s": 60}', '"c-2"')
        assert outbox.pending_commands()[1][1:] == (5, "config", '{"interval_s": 60}', '"c-2"')
    finally:
        outbox.close()
