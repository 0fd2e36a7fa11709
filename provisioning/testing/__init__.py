"""Simulated hardware for provisioning: a virtual ESP32 running real MicroPython on a pseudo-terminal."""
