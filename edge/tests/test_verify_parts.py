"""Replay guard, deduplicator, messages, metrics and rate-limited logs."""

from __future__ import annotations

import io
import json
from datetime import datetime

from meterlink.edge.dedupe import Deduplicator
from meterlink.edge.logs import Logger, RateLimitedLog
from meterlink.edge.messages import alarm_names, build_body, final_payload, iso
from meterlink.edge.metrics import GatewayMetrics
from meterlink.edge.registry import Device as RegDevice
from meterlink.edge.replay import ReplayGuard
from meterlink.protocol import decode_frame


def test_replay_guard_tells_duplicates_from_replays():
    g = ReplayGuard()
    assert g.check(1, 10, b"a") == "new"
    g.accept(1, 10, b"a")
    assert g.check(1, 10, b"a") == "duplicate"
    assert g.check(1, 10, b"b") == "replay"
    assert g.check(1, 9, b"c") == "new"  # late, inside the window
    g.accept(1, 200, b"z")
    assert g.check(1, 100, b"c") == "replay"  # below the window
    hi, bitmap, _ = g.accept(1, 201, b"y")
    restored = ReplayGuard({1: (hi, bitmap)}, {1: g.digests(1)})
    assert restored.check(1, 201, b"y") == "duplicate" and restored.check(1, 200, b"q") == "replay"
    assert len(g.digests(1)) <= 64


def test_deduplicator_is_bounded_and_keeps_the_best_signal():
    now = [0.0]
    d = Deduplicator(window_s=10, max_entries=100, clock=lambda: now[0])
    s = d.new(1, 1, False, "a", -90)
    assert s.add("b", -70) and s.best_receiver == "b" and s.receivers == ["a", "b"]
    assert not s.add("b", -75)
    for c in range(2, 10_000):
        d.new(1, c, False, "a", -80)
    assert len(d) <= 101
    now[0] = 100.0
    assert d.get(1, 9_999) is None and len(d) == 0


def test_reading_body_has_absolute_timestamps(fleet):
    dev = fleet.devices[0]
    frame = decode_frame(dev.reading(deltas=(5, 6), age_s=30), dev.key)
    reg = RegDevice(dev.device_id, dev.key, "WM-1")
    kind, body = build_body(frame, reg, "gw", 1_700_000_000.0)
    assert kind == "reading" and body["key"] == f"{dev.device_id}:1"
    ends = [datetime.fromisoformat(i["end"].replace("Z", "+00:00")).timestamp()
            for i in body["intervals"]]
    assert ends == [1_700_000_000.0 - 30, 1_700_000_000.0 - 930]
    payload = json.loads(final_payload(json.dumps(body), -77, '["a","b"]'))
    assert payload["rssi"] == -77 and payload["receivers"] == ["a", "b"]
    assert json.loads(final_payload(json.dumps(body), None, "[]"))["rssi"] is None
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert alarm_names(1 | 8 | 32) == ["leak", "tamper", "unexpected_reset"]


def test_metrics_render_prometheus_text():
    m = GatewayMetrics()
    m.frames.inc(outcome="rejected", reason='bad"mic')
    m.publish_latency.observe(0.02)
    text = m.render()
    assert 'meterlink_frames_total{outcome="rejected",reason="bad\\"mic"} 1' in text
    assert 'meterlink_publish_latency_seconds_bucket{le="0.025"} 1' in text
    assert 'meterlink_publish_latency_seconds_bucket{le="0.01"} 0' in text
    assert "# TYPE meterlink_publish_latency_seconds histogram" in text


def test_metrics_text_parses_with_the_reference_parser():
    """The hand-written exposition read back by prometheus_client's own text parser:
    label values with backslash, quote and newline come back as they went in, HELP text
    with both too, and a labelled histogram yields cumulative buckets, sum and count per
    label set (the unlabelled gateway histograms keep their zero series)."""
    from prometheus_client.parser import text_string_to_metric_families

    from meterlink.edge.metrics import Registry

    m = GatewayMetrics()
    nasty = 'a\\b"c\nd'
    m.frames.inc(outcome="rejected", reason=nasty)
    m.link_errors.inc(3, receiver="net", reason="bad_crc")
    r = m.registry
    help_nasty = r.counter("meterlink_test_help_total", "back\\slash and\nnewline")
    help_nasty.inc()
    lat = r.histogram("meterlink_test_latency_seconds", "latency by kind", (0.1, 1.0),
                      labelled=True)
    for v in (0.05, 0.5, 5.0):
        lat.observe(v, kind="reading")
    lat.observe(0.2, kind='al"arm')
    families = {f.name: f for f in text_string_to_metric_families(m.render())}

    frames = {tuple(sorted(s.labels.items())): s.value
              for s in families["meterlink_frames"].samples}
    assert frames == {(("outcome", "rejected"), ("reason", nasty)): 1.0}
    assert families["meterlink_test_help"].documentation == "back\\slash and\nnewline"
    errors = families["meterlink_link_errors"].samples
    assert [(s.labels, s.value) for s in errors] == [
        ({"receiver": "net", "reason": "bad_crc"}, 3.0)]

    hist = families["meterlink_test_latency_seconds"]
    assert hist.type == "histogram"
    got = {(s.name, s.labels.get("kind"), s.labels.get("le")): s.value for s in hist.samples}
    assert got[("meterlink_test_latency_seconds_bucket", "reading", "0.1")] == 1
    assert got[("meterlink_test_latency_seconds_bucket", "reading", "1")] == 2
    assert got[("meterlink_test_latency_seconds_bucket", "reading", "+Inf")] == 3
    assert got[("meterlink_test_latency_seconds_count", "reading", None)] == 3
    assert got[("meterlink_test_latency_seconds_sum", "reading", None)] == 5.55
    assert got[("meterlink_test_latency_seconds_bucket", 'al"arm', "1")] == 1
    assert got[("meterlink_test_latency_seconds_count", 'al"arm', None)] == 1
    assert lat.get(kind="reading") == (3, 5.55) and lat.count == 4
    assert not any(k[1] is None and k[2] is not None for k in got)  # no empty series

    pub = families["meterlink_publish_latency_seconds"]
    assert [s.value for s in pub.samples if s.name.endswith("_count")] == [0]
    assert Registry().render() == "\n"


def test_rate_limited_log_counts_what_it_suppresses():
    out = io.StringIO()
    now = [0.0]
    rl = RateLimitedLog(Logger("info", out), per_minute=3, clock=lambda: now[0])
    written = sum(rl.log("warning", "frame_rejected", n=i) for i in range(100))
    assert written == 3
    now[0] = 60.0
    assert rl.log("warning", "frame_rejected", n=100)
    last = json.loads(out.getvalue().splitlines()[-1])
    assert last["suppressed_since_last"] == 97 and last["event"] == "frame_rejected"


def test_rate_limited_log_keeps_to_its_limit_in_every_60_s_window():
    """Issue 14: a token bucket let 59 lines out in the first minute against a limit of 30.
    Frames arrive every 0.25 s for 5 minutes; no 60 s window may hold more than 30 lines."""
    out = io.StringIO()
    now = [0.0]
    rl = RateLimitedLog(Logger("info", out), per_minute=30, clock=lambda: now[0])
    written: list[float] = []
    for i in range(1200):
        now[0] = i * 0.25
        if rl.log("warning", "frame_rejected", n=i):
            written.append(now[0])
    worst = max(sum(1 for t in written if start <= t < start + 60)
                for start in (x * 0.25 for x in range(1200)))
    print(f"\n{len(written)} lines in 300 s, at most {worst} in any 60 s window (limit 30)")
    assert worst <= 30
    assert len(written) >= 5 * 30 - 30  # the limit is used, not starved
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert sum(x.get("suppressed_since_last", 0) for x in lines) + len(lines) <= 1200


def test_window_limit_works_as_a_logging_filter():
    import logging

    from meterlink.edge.logs import WindowLimit

    logger = logging.getLogger("meterlink.test.window")
    logger.propagate = False
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.addFilter(WindowLimit(5, 60.0))
    for i in range(50):
        logger.warning("rejected %d", i)
    assert len(records) == 5
    assert records[0].suppressed_since_last == 0  # type: ignore[attr-defined]


def test_link_level_rejects_are_logged_within_the_same_limit(write_config, running_gateway,
                                                             until, tmp_path):
    import asyncio
    import socket

    from meterlink.protocol import encode_rxinfo_datagram

    cfg = write_config(extra="[log]\nrejects_per_minute = 4")
    good = encode_rxinfo_datagram(b"\x00" * 20, -70, 0)
    bad_crc = good[:-1] + bytes([good[-1] ^ 0xFF])

    async def main() -> float:
        async with running_gateway(cfg) as gw:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for _ in range(20):
                    s.sendto(bad_crc, ("127.0.0.1", gw.udp_ports["net"]))
            assert await until(lambda: gw.metrics.link_errors.total() >= 20)
            return gw.metrics.frames.get(outcome="rejected", reason="bad_crc")

    assert asyncio.run(main()) == 20
    lines = [json.loads(x) for x in (tmp_path / "gateway.log").read_text().splitlines()]
    rejected = [x for x in lines if x["event"] == "frame_rejected"]
    assert len(rejected) == 4
    assert all(x["layer"] == "link" and x["reason"] == "bad_crc" for x in rejected)


def test_gateway_views_work_before_run(write_config):
    """Every part exists once the Gateway is constructed: the status, health and metrics
    views answer before `run()` (nothing is started, no SQLite call on the caller's
    thread beyond opening the outbox)."""
    from meterlink.edge.app import Gateway
    from meterlink.edge.config import load_config

    gw = Gateway(load_config(write_config()), log=Logger("info", io.StringIO()))
    try:
        snap = gw.snapshot()
        assert snap["backlog"] == {"messages": 0, "bytes": 0, "oldest_age_s": 0.0}
        assert [r["name"] for r in snap["receivers"]] == ["net"]
        code, _, body = gw._health()
        assert code == 200 and json.loads(body)["outbox_writable"] is True
        assert "meterlink_pending_frames 0" in gw._metrics()[2].decode()
    finally:
        gw.close()


def test_udp_receiver_reads_the_kernels_drop_counter():
    """A receiver paused by the gate, flooded while the loop is busy: the kernel drops
    what its buffer cannot hold and the receiver reports that count (SO_RXQ_OVFL and
    the drops column of /proc/net/udp); once reopened, every datagram held is delivered or
    (readings past a quarter-full queue) counted as shed."""
    import asyncio
    import socket

    from meterlink.edge.ingress import Gate, UdpReceiver, proc_udp_drops
    from meterlink.protocol import encode_rxinfo_datagram

    heard: list[object] = []

    async def main() -> tuple[int, int | None, int, int]:
        gate = Gate()
        rx = UdpReceiver("net", "127.0.0.1", 0, heard.append, lambda *a: None, gate)
        port = await rx.start()
        gate.close()
        datagram = encode_rxinfo_datagram(b"\x00" * 20, -70, 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(30_000):  # the loop does not run meanwhile: nothing is read
                s.sendto(datagram, ("127.0.0.1", port))
        assert rx.sock is not None
        drops, proc = rx.kernel_drops, proc_udp_drops(rx.sock)
        gate.open()
        await asyncio.sleep(0.3)
        rx.close()
        return drops, proc, len(heard), rx.shed

    drops, proc, delivered, shed = asyncio.run(main())
    print(f"\n30000 sent to a paused receiver: kernel drops {drops} (/proc/net/udp: {proc}); "
          f"of those held, {shed} readings shed (the queue was over a quarter full), "
          f"{delivered} delivered")
    assert drops > 0 and drops == proc
    assert delivered + shed + drops == 30_000


def test_status_reports_the_thresholds_the_module_applies():
    from meterlink.protocol import FrameType, Status, encode_frame

    key = bytes(range(16))
    body = Status(battery_pct=90, fw_version=0x0200, resets=1, reason=0, interval_s=600,
                  leak_intervals=48, burst_pulses=100, burst_intervals=2, backflow_pulses=10)
    frame = decode_frame(encode_frame(FrameType.STATUS, 7, 3, body, key), key)
    kind, out = build_body(frame, RegDevice(7, key, "WM-7"), "gw", 1_700_000_000.0)
    assert kind == "status" and out["interval_s"] == 600
    assert (out["leak_intervals"], out["burst_pulses"], out["burst_intervals"],
            out["backflow_pulses"]) == (48, 100, 2, 10)


def test_gateway_command_logging_is_json_and_lets_mqtt_client_warnings_through(write_config):
    """`configure_logging` (what `meterlink gateway run` calls) puts one JSON object per
    line on the stream for every `meterlink` logger; the MQTT client the forwarder builds
    writes to a child at WARNING, so aiomqtt's pending-calls and queue-full warnings
    appear while its debug chatter does not."""
    import asyncio
    import logging

    from meterlink.edge.app import Gateway
    from meterlink.edge.config import load_config
    from meterlink.edge.logs import configure_logging

    async def client_logger(gw: Gateway) -> logging.Logger:
        return gw.forwarder._client_for()._logger  # aiomqtt needs a running loop

    out = io.StringIO()
    root = configure_logging("debug", out)
    try:
        gw = Gateway(load_config(write_config()))
        try:
            client_log = asyncio.run(client_logger(gw))
            client_log.debug("Sending PINGREQ")
            client_log.warning("There are %d pending publish calls.", 50)
            client_log.warning("Message queue is full. Discarding message.")
            gw.log.info("stopping", backlog=0)
        finally:
            gw.close()
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        root.setLevel(logging.NOTSET)
        root.propagate = True
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    library = [x for x in lines if x["event"] == "library"]
    assert [x["msg"] for x in library] == ["There are 50 pending publish calls.",
                                           "Message queue is full. Discarding message."]
    assert all(x["level"] == "warning" and x["logger"] == "meterlink.edge.mqtt"
               for x in library)
    stopping = [x for x in lines if x["event"] == "stopping"]
    assert stopping and stopping[0]["backlog"] == 0 and stopping[0]["level"] == "info"
    assert set(stopping[0]) == {"ts", "level", "event", "backlog"}
