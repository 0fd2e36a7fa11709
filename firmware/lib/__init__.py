"""Runtime shared by every device role: MQTT link, presence, config, wiring.

Pure code only: nothing here imports `machine` or `network`, so it runs
unchanged on MicroPython and CPython (the simulator and the tests).
"""
