# Run phase: the resident state (loaded first, so that this
# data lies at the bottom of the heap, below the code compiled after it),
# read from 'rt', which the boot phase (boot.py) wrote. 'rt' is removed once
# read.
import os
import struct
import machine
from glue import input_pin, no_pull, reader
from array import array
from glue import ctrl_c_off
from fields import *  # the state indexes (inlined by the bundler)
ctrl_c_off()  # first: no Ctrl-C from the UART (the radio)
# The run phase's namespace (main.py's, which every file is loaded into) ends
# with about 45 names; growing its table as they come needs 424 contiguous
# bytes late, when the heap has no such block: it is grown to that size first
# (ints as keys: no new names). Done here rather than in main.py, whose code
# stays in the heap while the firmware runs.
i = globals()
for d in range(40):
    i[d] = 0
for d in range(40):
    del i[d]

S = array('L', [0] * S_N)
V = array('L', [0] * V_N)
F = bytearray(80)  # the frame being built (a first try at a body may overrun 51), or received
B = bytearray(62)  # a record being written
A = bytearray(48)  # the alarm frame awaiting its ack
Q = [None, None, None, None]  # pulse, direction readers (or None), history, tamper
K = [None, None, None, None]  # K_enc, K_mic schedules, CMAC subkeys K1, K2


# The run phase starts here: 'rt', written by the boot phase (boot.py), holds
# S, V, the working keys (expanded), the pins and the history length. Removed once
# read; not whole (a cut while boot.py wrote it: it is short, and its parts are
# read as far as they go): boot again, from 'cf' or config.txt, instead of
# failing here at every boot.
f = open('rt', 'rb')
d = f.read(4 * (S_N + V_N))  # read in parts: the heap has no room for the whole file in one piece
for i in range(len(d) // 4):
    if i < S_N:
        S[i] = struct.unpack_from('<I', d, 4 * i)[0]
    else:
        V[i - S_N] = struct.unpack_from('<I', d, 4 * i)[0]
K[0] = f.read(176)  # the key schedules of K_enc, K_mic
K[1] = f.read(176)
K[2] = f.read(16)  # the CMAC subkeys
K[3] = f.read(16)
if HAS_DUTY_CYCLE_BUDGET:
    RADIO = f.read(16)  # modem, lora_freq, lora_sf, lora_power (boot.py)
d = f.read(5)  # the pulse and direction pins, the history length, the tamper pin
f.close()
os.remove('rt')
if HAS_DUTY_CYCLE_BUDGET:
    if len(RADIO) != 16:
        d = b''  # not whole: boot again (below)
if len(d) != 4 or len(K[1]) != 176:  # not whole (a cut): boot again
    machine.reset()
if HAS_DUTY_CYCLE_BUDGET:
    RADIO = struct.unpack('<4I', RADIO)
Q[0] = Q[3] = int  # no pulse input (safe mode): poll() reads 0, counts nothing
i = (0, 1)  # the pulse and direction inputs, and with tamper_alarm its input
if HAS_TAMPER_ALARM:
    i = (0, 1, 3)
for i in i:
    p = d[i]  # bound even in safe mode (no pins: 255)
    if p < 255:
        p = input_pin(p)
        no_pull(p)
        Q[i] = reader(p)
Q[2] = array('L', [0] * d[2])
del f, d, i, p, array
