"""`provision device` shows the board check's warnings (strapping pins) before the board is set up."""

from __future__ import annotations


def test_a_board_with_strapping_pins_in_use_is_shown_with_what_each_straps(board, provision, device_args):
    run = provision(*device_args(board.port, "--board", "esp32-ethernet-kit-max7219", "--dry-run",
                                 role="queue_display"))
    assert run.status == 0, run.err
    warnings = [line.strip() for line in run.out.splitlines() if line.startswith("  ! board ")]
    assert [w.split(": ")[1] for w in warnings] == ["roles.queue_display.ethernet.power",
                                                     "roles.queue_display.ethernet.ref_clk"]
    assert "GPIO0 is a strapping pin (low at reset starts the ROM download mode" in warnings[1]
    # the usual boards use none
    assert "! board" not in provision(*device_args(board.port, "--dry-run")).out
