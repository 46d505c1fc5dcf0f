# Entry for the MicroPython (WebAssembly) run of mp_checks: prints the
# implementation, runs every check, raises if any fails.
import sys

import mp_checks

print(sys.implementation)
if not mp_checks.run_all('/tmp/run'):
    raise SystemExit(1)
