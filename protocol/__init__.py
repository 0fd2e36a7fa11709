"""The one MQTT contract shared by firmware, edge agent and fleet.

Written in the subset of Python that runs on both CPython and MicroPython:
no typing, no dataclasses, no f-string format specs beyond the basics, no
named regex groups. Provisioning copies this package onto every device.
"""

CONTRACT_VERSION = 1
