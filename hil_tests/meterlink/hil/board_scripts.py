"""MicroPython 1.9.2 scripts that the harness self-tests and demos flash onto boards."""

# Counts rising edges on pin0 by polling (this firmware has no pin interrupts) and prints
# each new count; prints "ready" once polling has started.
PULSE_COUNTER = b"""from microbit import pin0
import utime
pin0.set_pull(pin0.NO_PULL)
n = 0
last = pin0.read_digital()
print('ready')
while True:
    v = pin0.read_digital()
    if v and not last:
        n += 1
        print('count', n)
    last = v
    utime.sleep_ms(1)
"""

# Rewrites three files in a loop, each with 200 'x' and the loop index; does nothing if
# pin2 is high at boot (a maintenance jumper), so the files can be inspected after a cut.
WRITE_LOOP = b"""from microbit import pin2
pin2.set_pull(pin2.NO_PULL)
i = 0
print('ready')
while not pin2.read_digital():
    f = open('log%d.txt' % (i % 3), 'w')
    f.write('x' * 200 + str(i))
    f.close()
    i += 1
    print('w', i)
"""
