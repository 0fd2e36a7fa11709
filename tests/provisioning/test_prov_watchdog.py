"""Re-provisioning a board whose firmware runs: its hardware watchdog must not reset it mid-copy.

The ESP32's watchdog (machine.WDT, 30 s, started first thing by main.py) survives Ctrl-C and soft
resets. The virtual board runs the real main.py's start() at every boot (the hold check, then the
watchdog) and keeps the watchdog as the chip does; its time passes with the board's work
(ProgramClock: one second per program), so "30 s into a copy" is a number of programs, not a wait.
"""

from __future__ import annotations

import socket

from firmware.lib.hold import HOLD_FILE
from provisioning.image import build_image
from provisioning.testing.virtual_board import ProgramClock
from provisioning.transport import Board
from tests.support.waiting import wait_until

WATCHDOG_MAIN = b"""import machine, os
def start():
    try:
        os.stat("/hold")
        return None
    except OSError:
        return machine.WDT(timeout=5000)
"""


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_virtual_boards_watchdog_survives_ctrl_c_and_soft_resets_as_the_esp32s(board_factory):
    clock = ManualClock()
    board = board_factory(run_firmware=True, clock=clock)
    board.put_file("/main.py", WATCHDOG_MAIN)
    board.pull_cable()
    board.plug()  # power-on: main.py starts the watchdog, the firmware runs and feeds it
    assert board.firmware_running
    clock.now = 100.0  # long past 5 s: a running firmware feeds its watchdog
    with Board.connect(board.port) as connection:  # Ctrl-C, then a soft reset into the raw REPL
        assert not board.firmware_running and board.soft_resets == 1
        clock.now = 104.0
        assert connection.exec("print(6 * 7)", "asking") == b"42\r\n"
        connection.soft_reset()
        clock.now = 105.5  # 5.5 s after the last feed (the Ctrl-C): the watchdog resets the board
        wait_until(lambda: board.watchdog_resets == 1, what="the watchdog's reset")
    assert board.firmware_running  # and main.py started the firmware again
    resets = board.hard_resets
    with Board.connect(board.port) as connection:
        connection.exec("open('/hold', 'w').close()", "holding")
        connection.hard_reset()  # the only way to stop the watchdog: main.py then starts none
    wait_until(lambda: board.hard_resets == resets + 1, what="the reset")
    clock.now = 1000.0
    with Board.connect(board.port) as connection:
        assert connection.exec("print('still here')", "asking") == b"still here\r\n"
    assert board.watchdog_resets == 1 and not board.firmware_running


def test_reprovisioning_a_running_board_is_not_reset_by_its_watchdog_mid_copy(board_factory, provision, device_args):
    board = board_factory(run_firmware=True, clock=ProgramClock())
    first = provision(*device_args(board.port))
    assert first.status == 0, first.err
    wait_until(lambda: board.firmware_running, what="the firmware started by the restart")

    # The display's package instead of the pad's: far more than 30 programs of copying.
    second = provision(*device_args(board.port, role="queue_display", window=2))
    assert second.status == 0, second.out + second.err
    assert board.watchdog_resets == 0
    assert f"✓ stop firmware: {HOLD_FILE} written and the board reset" in second.out
    files = board.files()
    for item in build_image("queue_display", "esp32-devkitc-max7219").files:
        assert files.get(item.device_path) == item.data, item.device_path
    assert HOLD_FILE not in files
    wait_until(lambda: board.firmware_running, what="the new firmware started by the restart")


def test_a_run_that_fails_after_stopping_the_firmware_starts_it_again(board_factory, provision, device_args):
    board = board_factory(run_firmware=True, clock=ProgramClock())
    assert provision(*device_args(board.port)).status == 0
    wait_until(lambda: board.firmware_running, what="the firmware started by the restart")
    with socket.socket() as unused:  # a port nothing listens on: the fleet does not answer
        unused.bind(("127.0.0.1", 0))
        fleet = f"https://127.0.0.1:{unused.getsockname()[1]}"
    before = board.files()
    failed = provision(*device_args(board.port, "--fleet", fleet, "--token", "t0ken"))
    assert failed.status == 1 and "cannot reach the fleet" in failed.err
    assert "✓ stop firmware" in failed.out
    wait_until(lambda: board.firmware_running, what="the old firmware started again")
    assert board.files() == before and HOLD_FILE not in before
    assert board.watchdog_resets == 0
