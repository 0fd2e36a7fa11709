"""Device firmware (MicroPython on ESP32) and its simulator (CPython)."""
