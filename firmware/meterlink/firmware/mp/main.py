# Boot entry. Runs the firmware; on an unexpected error it re-enables Ctrl-C,
# waits a minute (tools can reach the REPL) and resets: never a tight crash loop.
import board
try:
    import ml_main
    ml_main.main()
except Exception as e:
    board.kbd_intr(3)
    import sys
    sys.print_exception(e)
    board.sleep_ms(60000)
    board.reset()
