# The firmware version and the nRF51 build's state tables, declared once.
# The nRF51 build keeps its state in two arrays indexed by these numbers (an
# attribute or a dict entry per field costs heap the board does not have):
# S, the persisted record (docs/firmware.md, "State record"), and V, the
# volatile state. Sources use the names (`V[V_ACT]`); the bundler inlines
# the numbers for the nRF51 (this file is not flashed there), the symbol map
# (meterlink.bundler.symbols) names them back.
from micropython import const

FW_VERSION = const(259)  # firmware version 1.3: major*256 + minor

# The optional features (meterlink.protocol.features), one flag each. Sources test
# them only as a whole statement, `if HAS_X:` (optionally with `else:`); the bundler
# sets each to 1 or 0 for the board's feature list (meterlink.bundler.features) and
# drops the blocks a bundle leaves out. As written here, in the plain source (CPython
# and WebAssembly runs), every feature is on.
HAS_BURST_ALARM = const(1)
HAS_TAMPER_ALARM = const(1)
HAS_LOW_BATTERY_ALARM = const(1)
HAS_CONFIG_DOWNLINK = const(1)
HAS_TIME_DOWNLINK = const(1)
HAS_DAILY_STATUS = const(1)
HAS_SAFE_MODE_REPEAT = const(1)
HAS_AT_MODEM = const(1)
HAS_DUTY_CYCLE_BUDGET = const(1)
HAS_STATUS_DETAIL = const(1)

# S: the persisted record, 15 unsigned 32-bit fields and a CRC
S_SEQ = const(0)  # record sequence number (the newer of the two files wins)
S_GEN = const(1)  # provisioning generation (config.txt `gen`)
S_REG = const(2)  # register, pulses
S_DEBT = const(3)  # reverse pulses not yet paid back by forward ones
S_REV = const(4)  # reverse pulses, cumulative
S_ISEQ = const(5)  # interval sequence number
S_RSV = const(6)  # frame counters reserved up to (protocol 3.4)
S_DLC = const(7)  # last downlink counter
S_RESETS = const(8)  # resets since provisioning
S_FLAGS = const(9)  # bit 0: the last stop was clean (maintenance)
S_OV = const(10)  # 10..14: downlink overrides (0: none)
S_N = const(15)

# V: the volatile state of the nRF51 run phase
V_LEVEL = const(0)  # debouncer: level, candidate, its time
V_CAND = const(1)
V_TCAND = const(2)
V_FWD = const(3)  # forward / reverse pulses in this interval
V_REVN = const(4)
V_NPULSE = const(5)  # pulses since the last commit
V_NFLOW = const(6)  # intervals in a row with flow
V_REVPREV = const(7)  # reverse pulses in the interval before
V_HPOS = const(8)  # history ring: next slot, entries
V_HLEN = const(9)
V_ACT = const(10)  # alarm flags: active, pending (raised, not yet sent), raised
V_PEND = const(11)
V_RAISED = const(12)
V_ALEN = const(13)  # pending alarm frame: length (0: none), its counter, sends,
V_AFC = const(14)  # next send (ticks)
V_TRIES = const(15)
V_ANEXT = const(16)
V_FC = const(17)  # next frame counter
V_T0 = const(18)  # end of the current interval (ticks)
V_TCHECK = const(19)  # last 100 ms check (ticks)
V_NBURST = const(20)  # intervals in a row at burst flow (burst_alarm)
V_TCOMMIT = const(21)  # last commit (ticks)
V_DEV = const(22)  # device id
V_ERR = const(23)  # safe-mode error code (4: the store was corrupt, still counting)
V_WEIGHT = const(24)  # 24..29: weight, unit, interval, leak_intervals,
V_UNIT = const(25)  # rx_window_ms, backflow_pulses from config.txt
V_INTERVAL = const(26)
V_LEAK = const(27)
V_RXW = const(28)
V_BACKFLOW = const(29)
V_BURST = const(30)  # burst_pulses (burst_alarm)
V_WANT = const(31)  # a status frame is due: 1 the boot status (reason 1), 2 another (0)
V_BURSTN = const(32)  # burst_intervals (burst_alarm)
V_NDAY = const(33)  # intervals since the last daily status (daily_status)
V_TIME = const(34)  # the last time downlink (protocol 4.6): unix time, and the ticks
V_TTICKS = const(35)  # it arrived at (lean/downlink.py)
V_N = const(36)  # the size of V (and of its part of 'rt')
