# The main loop: interval ends, alarm and status frames and their retries,
# uplink sessions (each imports what it needs and releases it), safe mode.
import gc
from micropython import const
import board
import ml_core
from ml_core import drop
from fields import S_FLAGS, S_ISEQ, S_RSV  # state record indexes (inlined by the bundler)

_R = const(32)  # frame counters reserved ahead (protocol 3.4)
_COMMIT_N = const(10)  # commit after this many pulses ...
_COMMIT_GAP = const(300000)  # ... once the last commit is this old (ms)
_TRIES = const(8)  # alarm sends in total (protocol 6)
_LOWBAT = const(10)  # low battery below this %
_SAFE_MS = const(300000)  # status period in safe mode


def up(c, kind):
    # one uplink (0 reading, 1 alarm, 2 status, 3 alarm resend) and its
    # receive window; the modules it needs are loaded for it alone. 0 when
    # the sub-band's duty-cycle budget has no room for it now (nothing sent)
    import ml_air
    if not ml_air.ok(c, c.an if kind == 3 else 51):
        return 0
    gc.collect()
    if kind < 3:
        if kind:
            # alarm and status frames carry the register too: commit it first,
            # so no frame shows a register a power cut can take back
            c.commit()
        import ml_body
        n = ml_body.build(c, kind)
        ml_body = None
        drop('ml_body')
    import ml_sec
    sec = ml_sec.Sec(c.dev, c.key)
    ml_sec = None
    if kind < 3:
        if c.fc >= c.s[S_RSV]:
            c.s[S_RSV] = c.fc + _R
            c.commit()
        fc = c.fc
        c.fc += 1
        f = c.f
        n = sec.seal(f, 0x20 | kind, fc, n, c.poll)  # protocol version 2
        if kind == 1:
            for i in range(n):  # no slice assignment on 1.9.2
                c.a[i] = f[i]
            c.an = n
            c.afc = fc
            c.tries = 0
    else:
        f = c.a
        n = c.an
    if kind & 1:
        c.tries += 1
        w = c.rxw if c.tries >= _TRIES else 1000 << c.tries
        c.at = board.ticks_add(board.ticks_ms(), w)
    if c.modem:  # the window opens when the modem reports TX done
        import ml_at
        if ml_at.send(c, f, n):
            ml_at.listen(c, sec, c.rxw)
        ml_at = None
    else:
        import ml_link
        ml_link.send(f, n)
        ml_link.listen(c, sec, c.rxw)
        ml_link = None
    sec = None
    for m in ('ml_at', 'ml_link', 'ml_dl', 'ml_sec', 'ml_aes'):
        drop(m)
    return 1


def interval(c, t):
    # close the interval: history, alarms, commit, reading frame
    iv = c.th(0) * 1000
    c.t0 = board.ticks_add(c.t0, iv)
    if board.ticks_diff(t, c.t0) >= iv:
        c.t0 = t  # more than an interval late: restart the grid
    d = c.fi
    c.fi = 0
    h = c.h
    h[c.hp] = d
    c.hp = (c.hp + 1) % len(h)
    c.hn = min(c.hn + 1, len(h))
    c.s[S_ISEQ] += 1
    c.nz = c.nz + 1 if d else 0
    c.bc = c.bc + 1 if d >= c.th(2) else 0
    f = 4 if c.ri + c.rq >= c.th(4) else 0  # this interval and the one before
    c.rq = c.ri
    c.ri = 0
    if c.nz >= c.th(1):
        f |= 1
    if c.bc >= c.th(3):
        f |= 2
    if board.battery() < _LOWBAT:
        f |= 16
    c.flags(f, 23)
    c.commit()
    up(c, 0)  # no budget: skipped, its deltas go with the next readings
    c.nd += 1
    if c.nd * c.th(0) >= 86400:
        c.nd = 0
        c.want = 1


def check(c, t):
    # every 100 ms: tamper, backflow, then at most one alarm/status frame
    c.tk = t
    c.flags(8 if c.rt() else 0, 8)
    if c.ri + c.rq >= c.th(4):
        c.flags(4, 4)
    if c.an:
        if board.ticks_diff(t, c.at) >= 0:
            # 8 sends, and never once 64 later counters are used: a gateway
            # would take it for a replay (protocol 3.5)
            if c.tries >= _TRIES or c.fc - c.afc > 63:
                done(c)
            elif not up(c, 3):  # no budget: delayed, never dropped
                c.at = board.ticks_add(t, 1000)
    elif c.pend:
        c.raised = c.pend
        c.pend = 0
        if not up(c, 1):
            c.pend = c.raised  # waits for the budget
    elif c.want:
        if up(c, 2):
            c.want = 0


def done(c):
    # the alarm frame was acked or sent _TRIES times
    c.an = 0
    c.act &= ~32  # the unexpected-reset alarm has been reported


def step(c):
    # one pass of the main loop (tests call it directly)
    c.poll()
    board.read()  # dropped: what the radio sent outside a receive window
    t = board.ticks_ms()
    if board.ticks_diff(t, c.t0) >= c.th(0) * 1000:
        interval(c, t)
    elif c.np >= _COMMIT_N and board.ticks_diff(t, c.tcm) >= _COMMIT_GAP:
        c.commit()
    elif board.ticks_diff(t, c.tk) >= 100:
        check(c, t)


def safe(c):
    # bad or missing config: a status frame with the error code every
    # _SAFE_MS, no counting; maintenance is Ctrl-C on the USB console
    board.read()  # dropped: nothing from the radio is acted on
    t = board.ticks_ms()
    if board.ticks_diff(t, c.t0) >= 0:
        c.t0 = board.ticks_add(t, _SAFE_MS)
        up(c, 2)
    board.sleep_ms(5)


def main():
    board.kbd_intr(-1)
    c = ml_core.Core()
    try:
        import ml_boot
        ml_boot.boot(c)
        ml_boot = None
        drop('ml_boot')
        while not c.err or c.err == 4:
            step(c)
            # a frame about to go keeps the CPU up; an alarm waiting for its
            # resend does not (its receive window is inside up()), nor a status
            # frame queued behind it
            board.idle(c.pend or (c.want and not c.an))
        while True:
            safe(c)
    except KeyboardInterrupt:  # Ctrl-C on the USB console (rp2; no radio path)
        c.s[S_FLAGS] = 1
        c.commit()
    finally:
        board.kbd_intr(3)
