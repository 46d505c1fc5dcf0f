"""The SQLite outbox: grouped commits, order, size policy, persistence, kill -9."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from meterlink.edge.outbox import Batch, Message, Outbox, OutboxError


def msg(counter: int, kind: str = "reading", device_id: int = 7, size: int = 100) -> Message:
    return Message(kind=kind, device_id=device_id, counter=counter,
                   topic=f"meterlink/v1/{kind}s/{device_id}",
                   body=json.dumps({"key": f"{device_id}:{counter}", "pad": "x" * size}),
                   rssi=-80, receivers='["rx"]', received_at=time.time())


def open_outbox(tmp_path, **kw) -> Outbox:
    args = {"max_bytes": 10**9, "min_free_bytes": 0, "policy": "drop_oldest_readings"} | kw
    return Outbox(tmp_path / "o.sqlite", **args)


def test_wal_commit_fetch_delete_in_order(tmp_path):
    ob = open_outbox(tmp_path)
    assert ob.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    res = ob.commit(Batch(messages=[msg(i) for i in range(1, 6)]))
    assert all(res.stored) and ob.count == 5
    rows = ob.fetch(0, 3)
    assert [m.counter for m in rows] == [1, 2, 3]
    ob.delete([rows[0].id, rows[1].id])
    assert [m.counter for m in ob.fetch(0, 10)] == [3, 4, 5] and ob.count == 3
    # the same device and counter is stored once
    ob.commit(Batch(messages=[msg(3)]))
    assert ob.count == 3
    ob.close()
    ob = open_outbox(tmp_path)
    assert ob.count == 3 and ob.bytes == sum(msg(i).size for i in (3, 4, 5))


def test_receivers_are_updated_and_replay_state_persists(tmp_path):
    ob = open_outbox(tmp_path)
    ob.commit(Batch(messages=[msg(1)], replay={7: (1, 2**63 | 1)}, seen=[(7, 1, b"d" * 16)],
                    receiver_updates=[(7, 1, -50, '["rx","rx2"]')]))
    m = ob.fetch(0, 1)[0]
    assert m.rssi == -50 and m.receivers == '["rx","rx2"]'
    ob.close()
    ob = open_outbox(tmp_path)
    assert ob.load_replay() == {7: (1, 2**63 | 1)}
    assert ob.load_seen() == {7: {1: b"d" * 16}}


def test_seen_digests_are_pruned_below_the_window(tmp_path):
    ob = open_outbox(tmp_path)
    for c in range(1, 200):
        ob.commit(Batch(replay={7: (c, 1)}, seen=[(7, c, b"x")]))
    assert len(ob.load_seen()[7]) <= 65


def test_drop_oldest_readings_never_drops_alarms(tmp_path):
    ob = open_outbox(tmp_path, max_bytes=4096)
    ob.commit(Batch(messages=[msg(1, "alarm")]))
    for c in range(2, 60):
        res = ob.commit(Batch(messages=[msg(c)]))
    assert res.full and ob.bytes <= 4096
    kept = [(m.kind, m.counter) for m in ob.fetch(0, 1000)]
    assert kept[0] == ("alarm", 1)
    readings = [c for k, c in kept if k == "reading"]
    assert readings == list(range(60 - len(readings), 60))
    for c in range(60, 70):  # alarms beyond the cap are still stored
        ob.commit(Batch(messages=[msg(c, "alarm")]))
    assert sum(1 for m in ob.fetch(0, 1000) if m.kind == "alarm") == 11


def test_refuse_readings_keeps_the_oldest(tmp_path):
    ob = open_outbox(tmp_path, max_bytes=4096, policy="refuse_readings")
    refused = 0
    for c in range(1, 60):
        refused += ob.commit(Batch(messages=[msg(c)])).refused
    counters = [m.counter for m in ob.fetch(0, 1000)]
    assert refused > 0 and counters == list(range(1, len(counters) + 1))


def test_sqlite_full_rolls_back_the_whole_batch(tmp_path):
    ob = open_outbox(tmp_path)
    ob.commit(Batch(messages=[msg(1)]))
    pages = ob.db.execute("PRAGMA page_count").fetchone()[0]
    ob.db.execute(f"PRAGMA max_page_count={pages}")
    with pytest.raises(OutboxError, match="commit failed"):
        ob.commit(Batch(messages=[msg(c, size=2000) for c in range(2, 50)],
                        replay={7: (49, 1)}))
    assert ob.count == 1 and len(ob.fetch(0, 100)) == 1 and ob.load_replay() == {}


def test_downlink_counter_never_repeats_across_reopen(tmp_path):
    ob = open_outbox(tmp_path)
    assert [ob.next_downlink_counter(9) for _ in range(3)] == [1, 2, 3]
    ob.close()
    assert open_outbox(tmp_path).next_downlink_counter(9) == 4


def test_not_a_database_is_a_clear_error(tmp_path):
    (tmp_path / "o.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OutboxError, match="move it away"):
        open_outbox(tmp_path)


WRITER = textwrap.dedent("""
    import sys, time
    from meterlink.edge.outbox import Batch, Message, Outbox
    ob = Outbox(sys.argv[1], max_bytes=10**9, min_free_bytes=0, policy="refuse_readings")
    c = 0
    while True:
        batch = Batch()
        for _ in range(20):
            c += 1
            batch.messages.append(Message("reading", 1, c, "t", '{"k":%d}' % c, None, "[]",
                                          time.time()))
        ob.commit(batch)
        print(c, flush=True)
""")


def test_kill9_while_committing_keeps_every_committed_batch(tmp_path):
    path = tmp_path / "o.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    last = 0
    for line in proc.stdout:
        last = int(line)
        if last >= 2000:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counters = [r[0] for r in db.execute("SELECT counter FROM outbox ORDER BY id")]
    assert counters[:last] == list(range(1, last + 1))  # every acknowledged commit is there
    assert len(counters) % 20 == 0  # and no half batch
