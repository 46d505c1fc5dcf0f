# The resident state of the firmware: the persisted state and its commits,
# pulse counting and the interval history. The main loop is in ml_main;
# everything else (boot, bodies, crypto, link) is imported for one job and
# released (see drop()): the nRF51 heap cannot hold it all at once.
import gc
import sys
import struct
from array import array
from micropython import const
import board
from ml_record import crc as crc16, rec  # the nRF51 build's (mp/lean/crc.py, boot.py)
from fields import S_DEBT, S_N, S_OV, S_REG, S_REV, S_SEQ  # state record indexes (inlined by the bundler)

# a state record: S_N fields and their CRC (docs/firmware.md, "State record")
_SIZE = const(62)


def load(s):
    # fill s from the newer valid record (read by the nRF51 build's rec(), from
    # the current folder): 0 loaded, 1 none yet, 4 both corrupt
    a, ea = rec(0)
    b, eb = rec(1)
    if b and (not a or b[0] > a[0]):
        a = b
    if not a:
        return 4 if ea or eb else 1
    for i in range(S_N):
        s[i] = a[i]
    return 0


def drop(name):
    # release a module imported for one job (kept where memory allows). The
    # micro:bit's 1.9.2 has no sys.modules: there an import is for good.
    m = getattr(sys, 'modules', None)
    if m is not None and not board.KEEP and name in m:
        del m[name]
    gc.collect()


class Core:
    def __init__(self):
        self.s = array('L', [0] * S_N)  # the persisted state
        self.b = bytearray(_SIZE)  # a record being written
        self.f = bytearray(66)  # the frame being built or received (9-byte header)
        self.a = bytearray(51)  # the pending alarm frame, resent as is
        self.an = 0  # its length (0: none)
        self.afc = self.tries = self.at = 0
        self.act = self.pend = self.raised = 0  # alarm flags
        self.err = 0  # safe-mode error code
        self.rp = self.rt = board.ZERO  # pulse and tamper inputs
        self.rd = None  # direction input
        self.lv = self.cand = self.tc = 0  # debouncer
        self.fi = self.ri = self.np = 0  # interval forward/reverse, since commit
        self.rq = 0  # reverse pulses in the interval before (backflow spans both)
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
        s[S_SEQ] += 1
        b = self.b
        struct.pack_into('<15I', b, 0, *s)
        struct.pack_into('<H', b, _SIZE - 2, crc16(b, _SIZE - 2))
        f = open(board.FS + 'st' + str(s[S_SEQ] & 1), 'wb')
        f.write(b)
        f.close()
        self.np = 0
        self.tcm = board.ticks_ms()

    def th(self, i):
        # effective interval (0), leak, burst pulses, burst intervals, backflow
        return self.s[S_OV + i] or self.base[i]

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
            s[S_REV] += 1
            s[S_DEBT] += 1
            self.ri += 1
        elif s[S_DEBT]:
            s[S_DEBT] -= 1
        else:
            s[S_REG] += 1
            self.fi += 1
        self.np += 1

    def delta(self, k):
        # the k-th newest interval delta (k < hn)
        return self.h[(self.hp - 1 - k) % len(self.h)]

    def flags(self, f, mask):
        # set the alarm flags under mask to f; newly raised ones are pending
        self.pend |= f & mask & ~self.act
        self.act = (self.act & ~mask) | (f & mask)
