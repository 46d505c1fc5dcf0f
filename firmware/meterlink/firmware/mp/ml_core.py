# The resident part of the firmware: state and its commits, pulse counting,
# intervals and alarm flags, and the main loop. Everything else (boot,
# bodies, crypto, link) is imported for one job and released (see drop()).
import gc
import sys
import struct
from array import array
from micropython import const
import board

FW = const(256)  # firmware version 1.0: major*256 + minor
_R = const(32)  # frame counters reserved ahead (protocol 3.4)
_COMMIT_N = const(10)  # commit after this many pulses ...
_COMMIT_GAP = const(300000)  # ... once the last commit is this old (ms)
_TRIES = const(8)  # alarm sends in total (protocol 6)
_LOWBAT = const(10)  # low battery below this %
_SAFE_MS = const(300000)  # status period in safe mode
# state fields, persisted by commit(): see docs/firmware.md
_SEQ = const(0)
_REG = const(2)  # register, pulses
_DEBT = const(3)  # reverse pulses not yet paid back by forward ones
_REV = const(4)  # reverse pulses, cumulative
_ISEQ = const(5)  # intervals closed since provisioning
_RSV = const(6)  # frame counters below this one may be used
_FLAGS = const(9)  # bit 0: committed by a clean stop
_OV = const(10)  # 10..14: downlink overrides (0: none)
_SIZE = const(62)


class Break(Exception):
    # the maintenance break: 8 or more consecutive 0x03 bytes on the UART
    pass


def crc16(b, n, c=0xFFFF):
    # CRC-16/IBM-3740 of b[0:n]
    for i in range(n):
        c ^= b[i] << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c


def drop(name):
    # release a module imported for one job (kept where memory allows)
    if not board.KEEP and name in sys.modules:
        del sys.modules[name]
    gc.collect()


class Core:
    def __init__(self):
        self.s = array('L', [0] * 15)  # the persisted state
        self.b = bytearray(_SIZE)  # a record being written
        self.f = bytearray(64)  # the frame being built or received
        self.a = bytearray(51)  # the pending alarm frame, resent as is
        self.an = 0  # its length (0: none)
        self.afc = self.tries = self.at = 0
        self.act = self.pend = self.raised = 0  # alarm flags
        self.err = 0  # safe-mode error code
        self.c3 = 0  # consecutive 0x03 bytes
        self.rp = self.rt = board.ZERO  # pulse and tamper inputs
        self.rd = None  # direction input
        self.lv = self.cand = self.tc = 0  # debouncer
        self.fi = self.ri = self.np = 0  # interval forward/reverse, since commit
        self.nz = self.bc = 0  # intervals with flow / at burst flow, in a row
        self.hp = self.hn = 0
        self.nd = 0  # intervals since the last periodic status
        self.want = 2  # status frame due: reason + 1 (boot)
        self.dev = 0
        self.key = bytes(16)
        self.w = self.unit = 1
        self.base = (900, 96, 100, 2, 10)
        self.rxw = 2000
        self.fc = 0
        self.time = None  # (unix time, ticks) from a time downlink

    def commit(self):
        # write the state with the next sequence number into the record file
        # not holding the newest copy; a cut mid-write leaves that file short
        # or empty, its CRC fails, and the other copy is loaded at boot
        s = self.s
        s[_SEQ] += 1
        b = self.b
        struct.pack_into('<15I', b, 0, *s)
        struct.pack_into('<H', b, _SIZE - 2, crc16(b, _SIZE - 2))
        f = open(board.FS + 'st' + str(s[_SEQ] & 1), 'wb')
        f.write(b)
        f.close()
        self.np = 0
        self.tcm = board.ticks_ms()

    def th(self, i):
        # effective interval (0), leak, burst pulses, burst intervals, backflow
        return self.s[_OV + i] or self.base[i]

    def poll(self):
        # sample the pulse input; a new level counts once it has been read in
        # two samples at least DEBOUNCE_MS apart. Idle cost: one pin read.
        v = self.rp()
        if v == self.lv:
            self.cand = 0
            return
        t = board.ticks_ms()
        if not self.cand:
            self.cand = 1
            self.tc = t
        elif board.ticks_diff(t, self.tc) >= board.DEBOUNCE_MS:
            self.lv = v
            self.cand = 0
            if v:
                self.edge(self.rd() if self.rd else 0)

    def edge(self, rev):
        # one pulse. Reverse pulses become a debt that forward pulses pay back
        # before the register moves again: backflow is never consumption.
        s = self.s
        if rev:
            s[_REV] += 1
            s[_DEBT] += 1
            self.ri += 1
        elif s[_DEBT]:
            s[_DEBT] -= 1
        else:
            s[_REG] += 1
            self.fi += 1
        self.np += 1

    def delta(self, k):
        # the k-th newest interval delta (k < hn)
        return self.h[(self.hp - 1 - k) % len(self.h)]

    def flags(self, f, mask):
        # set the alarm flags under mask to f; newly raised ones are pending
        self.pend |= f & mask & ~self.act
        self.act = (self.act & ~mask) | (f & mask)

    def brk(self, d):
        for v in d:
            self.c3 = self.c3 + 1 if v == 3 else 0
            if self.c3 >= 8:
                raise Break()

    def up(self, kind):
        # one uplink (0 reading, 1 alarm, 2 status, 3 alarm resend) and its
        # receive window; the modules it needs are loaded for it alone
        gc.collect()
        if kind < 3:
            import ml_body
            n = ml_body.build(self, kind)
            ml_body = None
            drop('ml_body')
        import ml_sec
        sec = ml_sec.Sec(self.dev, self.key)
        if kind < 3:
            if self.fc >= self.s[_RSV]:
                self.s[_RSV] = self.fc + _R
                self.commit()
            fc = self.fc
            self.fc += 1
            f = self.f
            n = sec.seal(f, 0x10 | kind, fc, n, self.poll)
            if kind == 1:
                self.a[0:n] = f[0:n]
                self.an = n
                self.afc = fc
                self.tries = 0
        else:
            f = self.a
            n = self.an
        if kind & 1:
            self.tries += 1
            w = self.rxw if self.tries >= _TRIES else 1000 << self.tries
            self.at = board.ticks_add(board.ticks_ms(), w)
        import ml_link
        ml_link.send(f, n)
        ml_link.listen(self, sec, self.rxw)
        sec = ml_sec = ml_link = None
        drop('ml_sec')
        drop('ml_link')

    def interval(self, t):
        # close the interval: history, alarms, commit, reading frame
        iv = self.th(0) * 1000
        self.t0 = board.ticks_add(self.t0, iv)
        if board.ticks_diff(t, self.t0) >= iv:
            self.t0 = t  # more than an interval late: restart the grid
        d = self.fi
        self.fi = 0
        h = self.h
        h[self.hp] = d
        self.hp = (self.hp + 1) % len(h)
        self.hn = min(self.hn + 1, len(h))
        self.s[_ISEQ] += 1
        self.nz = self.nz + 1 if d else 0
        self.bc = self.bc + 1 if d >= self.th(2) else 0
        f = 4 if self.ri >= self.th(4) else 0
        self.ri = 0
        if self.nz >= self.th(1):
            f |= 1
        if self.bc >= self.th(3):
            f |= 2
        if board.battery() < _LOWBAT:
            f |= 16
        self.flags(f, 23)
        self.commit()
        self.up(0)
        self.nd += 1
        if self.nd * self.th(0) >= 86400:
            self.nd = 0
            self.want = 1

    def check(self, t):
        # every 100 ms: tamper, backflow, then at most one alarm/status frame
        self.tk = t
        self.flags(8 if self.rt() else 0, 8)
        if self.ri >= self.th(4):
            self.flags(4, 4)
        if self.an:
            if board.ticks_diff(t, self.at) >= 0:
                if self.tries >= _TRIES:
                    self.done()
                else:
                    self.up(3)
        elif self.pend:
            self.raised = self.pend
            self.pend = 0
            self.up(1)
        elif self.want:
            self.up(2)
            self.want = 0

    def done(self):
        # the alarm frame was acked or sent _TRIES times
        self.an = 0
        self.act &= ~32  # the unexpected-reset alarm has been reported

    def step(self):
        # one pass of the main loop (tests call it directly)
        self.poll()
        d = board.read()
        if d:
            self.brk(d)
        t = board.ticks_ms()
        if board.ticks_diff(t, self.t0) >= self.th(0) * 1000:
            self.interval(t)
        elif self.np >= _COMMIT_N and board.ticks_diff(t, self.tcm) >= _COMMIT_GAP:
            self.commit()
        elif board.ticks_diff(t, self.tk) >= 100:
            self.check(t)

    def safe(self):
        # bad or missing config: a status frame with the error code every
        # _SAFE_MS, no counting; the maintenance break still works
        d = board.read()
        if d:
            self.brk(d)
        t = board.ticks_ms()
        if board.ticks_diff(t, self.t0) >= 0:
            self.t0 = board.ticks_add(t, _SAFE_MS)
            self.up(2)
        board.sleep_ms(5)


def main():
    board.kbd_intr(-1)
    c = Core()
    try:
        import ml_boot
        ml_boot.boot(c)
        ml_boot = None
        drop('ml_boot')
        while not c.err or c.err == 4:
            c.step()
            board.idle(c.an or c.want or c.pend)
        while True:
            c.safe()
    except (Break, KeyboardInterrupt):
        c.s[_FLAGS] = 1
        c.commit()
    finally:
        board.kbd_intr(3)
