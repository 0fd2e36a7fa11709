"""The device simulator (CPython only).

Runs the real firmware runtime and apps (firmware/lib, queue_display,
rating_pad) against simulated hardware, each device with its own MQTT
connection, so a whole service center can be tried without boards:

    python -m firmware.sim --center 445202101001 --broker mqtt://127.0.0.1:1883 \\
        --windows 3 --state-dir .run/sim --http-port 8090
"""

from firmware.sim.center import (
    SimCredentials,
    SimulatedCenter,
    SimulatedDevice,
    load_credentials,
    sim_devices,
    sim_key,
    sim_mac,
)
from firmware.sim.hardware import SimButtons, SimNetwork, SimPanel, SimWatchdog

__all__ = ["SimButtons", "SimCredentials", "SimNetwork", "SimPanel", "SimWatchdog", "SimulatedCenter",
           "SimulatedDevice", "load_credentials", "sim_devices", "sim_key", "sim_mac"]
