"""Board I/O for MicroPython modules, real or emulated: the raw-REPL transport over
mpremote (`transport`), verified file transfer (`files`) and the errors they raise
(`errors`). Production code: provisioning uses it on real modules, and the HIL
harness uses it on emulated ones; it imports neither."""
