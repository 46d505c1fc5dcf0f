"""`meterlink provision` and `meterlink devices`: put a module in service and keep the
device registry (SQLite) that the gateways' key files and the central system's exports
are made from."""
