"""--center-config: the center's own font (/font.bin): the board font (all of GB2312) plus the glyphs of its service
and staff names that GB2312 lacks (堃 and 喆 are in names, not in GB2312)."""

from __future__ import annotations

from pathlib import Path

from firmware.lib import font

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "edge_agent" / "sample-center.toml"
RARE = "堃喆专窗"  # a service name with characters beyond GB2312: not in the board font
BOARD_FONT = REPO / "firmware" / "fonts" / "board_font.bin"


def center_with_rare_service(tmp_path: Path) -> Path:
    text = SAMPLE.read_text(encoding="utf-8").replace('name = "民政业务"', f'name = "{RARE}"', 1)
    assert RARE in text
    path = tmp_path / "center.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_center_font_covers_its_names_and_a_rerun_copies_nothing(board, provision, device_args, tmp_path):
    board_font = font.from_bytes(BOARD_FONT.read_bytes())
    assert not board_font.has("堃") and not board_font.has("喆")  # else this test proves nothing
    center = center_with_rare_service(tmp_path)

    result = provision(*device_args(board.port, "--center-config", str(center)))
    assert result.status == 0, result.err
    on_board = font.from_bytes(board.files()["/font.bin"])
    assert all(on_board.has(char) for char in RARE + "张敏请号到窗口")  # its names and the firmware's texts
    assert all(on_board.has(char) for char in "不动产登记鑫淼")  # and the rest of GB2312, as on every board

    again = provision(*device_args(board.port, "--center-config", str(center)))
    assert again.status == 0 and "0 of" in again.out  # the same font: nothing to copy
    first, second = provision.read_records()[-2:]
    assert first["image_sha256"] == second["image_sha256"]


def test_a_missing_or_broken_center_config_stops_before_the_board_is_touched(board, provision, device_args,
                                                                             tmp_path):
    missing = provision(*device_args(board.port, "--center-config", str(tmp_path / "nope.toml")))
    assert missing.status == 1 and "--center-config" in missing.err and "cannot build" in missing.err
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n", encoding="utf-8")
    result = provision(*device_args(board.port, "--center-config", str(broken)))
    assert result.status == 1 and "--center-config" in result.err
    assert "/font.bin" not in board.files() and "/config.json" not in board.files()
