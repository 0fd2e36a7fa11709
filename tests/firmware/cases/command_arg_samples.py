"""Command arguments both sides must judge alike: the device (firmware.lib.commands, under CPython and
MicroPython) and the fleet (fleet.devconfig.commands, before signing). Plain data, MicroPython-safe.

tests/firmware/cases/test_case_commands.py runs every sample through the device's CommandGate;
tests/fleet/test_fleet_config.py runs the same samples through the fleet and compares the two.
"""

# (command, args, checked args): accepted, and completed with defaults.
GOOD = (
    ("reboot", None, {}),
    ("reboot", {"seconds": 5}, {}),  # an argument the command does not take is ignored
    ("identify", None, {"seconds": 10}),
    ("identify", {"seconds": 1}, {"seconds": 1}),
    ("test_pattern", {"seconds": 300}, {"seconds": 300}),
    ("brightness", {"level": 0}, {"level": 0}),
    ("brightness", {"level": 100}, {"level": 100}),
)

# (command, args, text the reason must contain): refused by both sides.
BAD = (
    ("brightness", None, "args.level is required"),
    ("brightness", {}, "args.level is required"),
    ("brightness", {"level": 101}, "args.level must be an integer 0..100, got 101"),
    ("brightness", {"level": -1}, "args.level must be an integer 0..100, got -1"),
    ("brightness", {"level": "80"}, "args.level must be an integer 0..100"),
    ("brightness", {"level": True}, "args.level must be an integer 0..100, got True"),
    ("identify", {"seconds": 0}, "args.seconds must be an integer 1..300, got 0"),
    ("identify", {"seconds": 301}, "args.seconds must be an integer 1..300, got 301"),
    ("test_pattern", {"seconds": False}, "args.seconds must be an integer 1..300, got False"),
    ("test_pattern", {"seconds": [5]}, "args.seconds must be an integer 1..300"),
    ("format_flash", None, "'format_flash'"),
)
