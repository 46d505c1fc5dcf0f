# Boot phase 1 (neither 'rt' nor 'cf' on the board): the one file main.py
# loads, which then calls phase(), config.py's read() (config.txt to 'cf').
# config.py is imported, a module of its own, not loaded.
import config
phase = config.read
