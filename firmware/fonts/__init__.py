"""The board font, for the programs that run beside the boards (CPython only: never copied to a board as code).

firmware/fonts/board_font.bin is what provisioning writes to every board as /font.bin (tools/make_font.py
--board): all of GB2312 and the firmware's own texts, read by firmware/lib/font.py glyph by glyph from flash.
The fleet checks the text it sends to the boards against it; the simulated boards draw with it.
"""

from pathlib import Path

BOARD_FONT = Path(__file__).resolve().parent / "board_font.bin"


def board_font_bytes() -> bytes:
    return BOARD_FONT.read_bytes()
