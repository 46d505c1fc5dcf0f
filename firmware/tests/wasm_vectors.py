# Entry for the MicroPython (WebAssembly) run of the protocol vectors.
import json

import mp_checks
import vector_checks

mp_checks.setup('/tmp/run/')
with open('/lib/v2.json') as f:
    doc = json.load(f)
print('vectors passed:', vector_checks.run_all(doc))
