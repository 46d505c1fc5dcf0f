# Entry for the MicroPython (WebAssembly) run of lean_checks: the port has a
# built-in utime, so the fake clock of tests/nrf51/utime.py is put in
# sys.modules over it (looked up first) before anything imports it, and the
# nRF51 board glue as `glue`; the downlinks test_wasm.py made; then every
# check runs on the sources of mp/lean/ (copied to /lib).
import sys


class _Module:
    pass


def fake(name, path=None):
    m = _Module()
    ns = {}
    with open('/lib/' + (path or name) + '.py') as f:
        exec(f.read(), ns)
    for k in ns:
        setattr(m, k, ns[k])
    sys.modules[name] = m


fake('utime')
import utime  # noqa: E402

fake('glue', 'glue_nrf51')  # the board glue the plain sources import (after utime)

assert hasattr(utime, 'clock'), 'the fake clock did not replace the built-in utime'
import json  # noqa: E402

import lean_checks  # noqa: E402

# the downlinks the checks send, made by the gateway's encoder on the host
# (test_wasm.py): [type, counter, body, key, the SLIP link frame], in hex
_made = {}
with open('/lib/downlinks.json') as f:
    for t, c, b, k, d in json.load(f):
        _made[(t, c, b, k)] = lean_checks.h2b(d)


def _hex(b):
    return ''.join(['{:02x}'.format(x) for x in b])  # noqa: UP032 (no f-strings on 1.9.2)


lean_checks.DOWN[0] = lambda t, c, b, k: _made[(t, c, _hex(b), _hex(k))]

print(sys.implementation)
if not lean_checks.run_all('/tmp/run', '/lib/'):
    raise SystemExit(1)

# the protocol vectors on the same sources (lean_vectors.py)
import lean_vectors  # noqa: E402


def _load(ns, roles):
    for r in roles:
        try:
            with open('/lib/' + r + '.py') as f:
                exec(f.read(), ns)
        except OSError:
            pass  # a file these sources do not have (yet)


with open('/lib/v2.json') as f:
    _doc = json.load(f)
print('lean vectors:', lean_vectors.run_all(_doc, lean_vectors.space(_load)))
