"""One power-on of a board, under the real MicroPython (unix port): see test_fw_ota.py.

Usage: micropython ota_scenario.py BOARD_DIR ROLE [CUT]
BOARD_DIR holds config.json (the real file format) and state/ (the board's flash). The role's real main.py
is executed for its start(), enter_slot() and crashed(); only the wiring differs from a board's (no
Wi-Fi, no panel): the real runtime and app run against the real broker named in config.json, imported
from whatever set otaboot chose (the factory set is this repository, on MICROPYPATH).

Lines printed for the test (besides the firmware's log):
  STEP <name>   a step that changes flash is about to be taken (firmware/lib/ota.py, otaboot.py checkpoints)
  CUT <name>    the CUT-th step (1-based, counted over this power-on): the process stops there and waits to be
                killed (SIGKILL: a power cut, nothing more runs)
  BOOTED <fw>   the runtime is up, running firmware version <fw>
  RESET         the firmware reset the board (machine.reset): the process waits to be killed; the test powers
                the board on again
"""

import json
import sys
import time

BOARD_DIR = sys.argv[1]
ROLE = sys.argv[2]
CUT = int(sys.argv[3]) if len(sys.argv) > 3 else 0
STATE_DIR = BOARD_DIR + "/state"
steps = [0]


def hang(line):
    print(line)
    while True:  # the test kills the process: nothing after this point may touch the flash
        time.sleep(1)


def checkpoint(name):
    steps[0] += 1
    print("STEP %s" % name)
    if steps[0] == CUT:
        hang("CUT %s" % name)


class FakeWDT:
    def __init__(self, id=0, timeout=5000):
        pass

    def feed(self):
        pass


class FakeMachine:
    WDT = FakeWDT

    def reset(self):
        hang("RESET")


sys.modules["machine"] = FakeMachine()

with open("firmware/%s/main.py" % ROLE) as f:
    source = f.read()
main_py = {"__name__": "ota_scenario"}
exec(source, main_py)
main_py["STATE_DIR"] = STATE_DIR
main_py["OTA_DIR"] = STATE_DIR + "/ota"

from firmware.lib import otaboot as factory_otaboot  # noqa: E402  (the one main.py's enter_slot() uses)

factory_otaboot.checkpoint = checkpoint


def wire(watchdog):
    """main.py's main(), less the hardware: imported after enter_slot(), so from the chosen set."""
    import asyncio

    from firmware.lib import config as config_file
    from firmware.lib import ota, otaboot
    from firmware.lib.runtime import DeviceRuntime
    from protocol import identity, messages

    ota.checkpoint = checkpoint
    otaboot.checkpoint = checkpoint
    # A trial judged in a second, not half a minute; a fetch answered on the loopback asked again sooner.
    ota.Updater.TRIAL_HEALTHY_S = 1
    ota.Updater.FETCH_TIMEOUT_MS = 1000
    DeviceRuntime.OTA_RETRY_S = 1
    cfg = config_file.load(BOARD_DIR + "/config.json")
    if ROLE == messages.ROLE_QUEUE_DISPLAY:
        from firmware.queue_display.app import QueueDisplayApp

        app = QueueDisplayApp(cfg.window)
    else:
        from firmware.lib.runtime import rated_store
        from firmware.rating_pad.app import RatingPadApp

        app = RatingPadApp(cfg.window, identity.device_id_from_mac(cfg.mac), rated=rated_store(STATE_DIR))
    runtime = DeviceRuntime(cfg, app, STATE_DIR, watchdog=watchdog, reset=sys.modules["machine"].reset,
                            backoff_min_s=0.1, backoff_max_s=0.5)
    print("BOOTED %s" % json.dumps(runtime.updater.running_version()))
    asyncio.run(runtime.run())


try:
    watchdog = main_py["start"]()
    main_py["enter_slot"]()
    wire(watchdog)
    raise RuntimeError("the runtime stopped")
except KeyboardInterrupt:
    raise
except BaseException as exc:
    main_py["crashed"](exc, lambda seconds: None)
