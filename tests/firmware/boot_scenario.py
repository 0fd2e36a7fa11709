"""Boots a role's main.py on fake hardware and reports what happened. Runs under MicroPython (unix port)
and CPython.

Usage: <python> boot_scenario.py ROLE CASE [HOLD_FILE | OTA_DIR]
ROLE: queue_display or rating_pad. CASE:
  import  a module main.py imports runs out of memory (MemoryError) while being imported
  wlan    wlan.active(True) raises OSError (the ESP32's Wi-Fi driver failing to start)
  ctrl_c  Ctrl-C on the console during the boot
  hold    provisioning's hold file is present (HOLD_FILE, an existing file, stands in for /provisioning.hold)
  ota     main.py's OTA_DIR is OTA_DIR (prepared by the test: a bundle staged there), Wi-Fi as in `wlan`
The fake `machine` and `network` (in sys.modules before main.py runs) record what the firmware does to
them; the pause before the reset is recorded instead of slept. Prints the log of main.py, then one JSON
line: {"events": [...], "ended": "reset" | "KeyboardInterrupt" | "returned" | <exception>, "order": [...]},
"order" holding every pin set up with a value (["pin", gpio, value]) and the watchdog's start (["wdt"]).
"""

import json
import sys

ROLE = sys.argv[1]
CASE = sys.argv[2]
events = []
order = []  # the pins driven with a value and the watchdog's start, in the order they happened


class Reset(BaseException):
    """machine.reset() does not return: neither does ours."""


class FakeWDT:
    def __init__(self, id=0, timeout=5000):
        events.append(["wdt", timeout])
        order.append(["wdt"])

    def feed(self):
        pass


class FakePin:
    IN = 1
    OUT = 2
    PULL_UP = 3

    def __init__(self, *args, **kwargs):
        if "value" in kwargs:
            order.append(["pin", args[0], kwargs["value"]])

    def value(self, *args):
        return 1


class FakeMachine:
    WDT = FakeWDT
    Pin = FakePin

    def reset(self):
        events.append(["reset"])
        raise Reset()


class FakeWLAN:
    def __init__(self, interface=0):
        pass

    def active(self, on=None):
        events.append(["wlan.active", on])
        if CASE in ("wlan", "ota"):
            raise OSError(-1, "ESP_ERR_WIFI_NOT_INIT")
        if CASE == "ctrl_c":
            raise KeyboardInterrupt()
        return bool(on)

    def config(self, *args, **kwargs):
        if args == ("mac",):
            return b"\x02\x00\x00\x00\x00\x09"
        events.append(["wlan.config", sorted(kwargs)])
        return None

    def isconnected(self):
        return False

    def connect(self, *args):
        pass


class FakeNetwork:
    STA_IF = 0
    WLAN = FakeWLAN

    def hostname(self, name):
        events.append(["hostname", name])


class OutOfMemory:
    """A module that runs out of memory while it is imported (the first name taken from it)."""

    def __getattr__(self, name):
        raise MemoryError("memory allocation failed, allocating 4096 bytes")


sys.modules["machine"] = FakeMachine()
sys.modules["network"] = FakeNetwork()
if CASE == "import":
    sys.modules["firmware.lib.runtime"] = OutOfMemory()
if CASE == "hold":
    from firmware.lib import hold

    hold.HOLD_FILE = sys.argv[3]

with open("firmware/%s/main.py" % ROLE) as f:
    source = f.read()
main_globals = {"__name__": "boot_scenario"}
exec(source, main_globals)
if CASE == "ota":
    main_globals["OTA_DIR"] = sys.argv[3]

ended = "returned"
try:
    main_globals["boot"](pause=lambda seconds: events.append(["pause", seconds]))
except Reset:
    ended = "reset"
except KeyboardInterrupt:
    ended = "KeyboardInterrupt"
except BaseException as exc:
    ended = repr(exc)
print(json.dumps({"events": events, "ended": ended, "order": order}))
