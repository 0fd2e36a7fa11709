"""What the boards can show: the glyphs of their font (firmware/fonts/board_font.bin: all of GB2312 and the
firmware's texts, written to every board as /font.bin at provisioning; firmware.lib.font).

A queue display or rating pad draws each character from its bitmap font and shows a replacement box for one
the font lacks. Text the county sends to the devices (staff and service names, which the rating pad shows,
idle and prompt texts) is checked here first, and an edit with characters the font lacks is refused, naming
them: a resident must never read boxes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from firmware.lib import font


@lru_cache(maxsize=1)
def _board_characters() -> frozenset[int]:
    # The code points, read once: a Font searches its file on each lookup, and requests run in threads.
    return frozenset(font.from_bytes(Path(font.board_font_path()).read_bytes()).code_points())


def missing_glyphs(text: str) -> str:
    """The characters of `text` the boards' font cannot show, each once, in order ("" when it shows them all)."""
    board = _board_characters()
    missing: list[str] = []
    for char in text:
        if not char.isspace() and ord(char) not in board and char not in missing:
            missing.append(char)
    return "".join(missing)


def glyph_problem(what: str, text: str) -> str | None:
    """A refusal naming the characters of `text` (called `what`) the boards cannot show; None when they can."""
    missing = missing_glyphs(text)
    if not missing:
        return None
    return f"{what}「{text}」含设备字库没有的字：{missing}（设备无法显示，请改用其他文字）"
