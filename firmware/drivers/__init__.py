"""Hardware drivers (MicroPython only): the one place besides main.py/boot.py
that may import `machine` and `network`. Each has a simulated twin in
firmware/sim/hardware.py with the same methods.
"""
