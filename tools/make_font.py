"""Make the panels' subset font from GNU Unifont: `python -m tools.make_font`.

A board has no room (and MicroPython no code) for a full CJK font, so each
center gets a small file with only the glyphs its texts need, read by
firmware/lib/font.py (format described there). The texts are:

- every Chinese string literal of the firmware that runs on boards and of
  protocol/messages.py (暂停服务, 请对本次服务进行评价, the five rating labels, ...),
  found by reading their source, so a new UI string cannot be forgotten;
- the center's own texts from its edge config (center name, service names,
  staff names and numbers of the windows and of [[staff]]);
- printable ASCII (ticket numbers, window numbers) and U+FFFD, the
  replacement glyph drawn for anything missing;
- any `--text` given.

Unifont (Debian package `unifont`) is /usr/share/unifont/unifont.hex, lines
`CODEPOINT:HEX`, 32 hex digits for an 8x16 glyph, 64 for a 16x16 one, rows
top to bottom, leftmost pixel in the top bit: framebuf.MONO_HLSB as it is.

    python -m tools.make_font                       # firmware/lib/default_font.bin from the sample center
    python -m tools.make_font --center /etc/service-center/center.toml --out /tmp/font.bin --text 午休中
    python -m tools.make_font --board               # firmware/fonts/board_font.bin: all of GB2312 as well

The board font (--board) is what provisioning writes to every board as /font.bin: every character of GB2312
(the 7,445 of the national standard: 6,763 hanzi and 682 symbols) besides the texts above, so a new staff
member's name, a new service or a county-set idle text shows without a visit with a USB cable. The fleet
refuses text with a character outside it (fleet/centerconfig/glyphs.py). About 270 KB on flash; the board
reads it glyph by glyph and searches its index on flash (firmware/lib/font.py), so it costs no heap.
"""

from __future__ import annotations

import argparse
import ast
import struct
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UNIFONT_HEX = Path("/usr/share/unifont/unifont.hex")
SAMPLE_CENTER = REPO / "edge_agent" / "sample-center.toml"
DEFAULT_OUT = REPO / "firmware" / "lib" / "default_font.bin"
BOARD_FONT = REPO / "firmware" / "fonts" / "board_font.bin"  # firmware.lib.font.board_font_path()

MAGIC = b"SCF1"
HEIGHT = 16
WIDE_FLAG = 0x8000
REPLACEMENT = 0xFFFD
ASCII = "".join(chr(c) for c in range(0x20, 0x7F))

# Sources whose Chinese string literals are shown on a panel. Drivers, main.py and the simulator print
# only to the console; protocol/messages.py holds the rating labels.
TEXT_SOURCES = ("firmware/queue_display", "firmware/rating_pad", "firmware/lib", "protocol/messages.py")


class FontBuildError(Exception):
    pass


# --- which characters ----------------------------------------------------------------------------------


def _docstring_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def source_texts(sources: Iterable[str] = TEXT_SOURCES, base: Path = REPO) -> list[str]:
    """Every non-ASCII string literal (not docstrings) in the given files and folders, in file order."""
    texts: list[str] = []
    for source in sources:
        root = base / source
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for path in files:
            if "__pycache__" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            docstrings = _docstring_ids(tree)
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                        and not node.value.isascii()):
                    texts.append(node.value)
    return texts


def center_texts(path: Path) -> list[str]:
    """What a center's edge config (TOML) puts on its panels: names of the center, services and staff."""
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    texts: list[str] = []

    def add(table: object, *keys: str) -> None:
        if isinstance(table, dict):
            for key in keys:
                value = table.get(key)
                if isinstance(value, str):
                    texts.append(value)

    add(raw.get("center"), "name")
    for service in raw.get("services", []):
        add(service, "name")
    for window in raw.get("windows", []):
        add(window, "staff_name", "staff_no")
    for member in raw.get("staff", []):
        add(member, "name", "staff_no")
    return texts


def code_points(texts: Iterable[str]) -> list[int]:
    """The sorted characters of the texts, with printable ASCII and the replacement glyph always in."""
    wanted = {ord(c) for c in ASCII} | {REPLACEMENT}
    for text in texts:
        for char in text:
            if ord(char) >= 0x20:
                wanted.add(ord(char))
    beyond = sorted(c for c in wanted if c > 0xFFFF)
    if beyond:
        raise FontBuildError("characters outside the Basic Multilingual Plane are not supported: "
                             + " ".join("U+%X" % c for c in beyond))
    return sorted(wanted)


# --- glyphs -------------------------------------------------------------------------------------------


def read_unifont(path: Path, wanted: Iterable[int]) -> dict[int, bytes]:
    """{code point: rows} for the wanted code points found in a Unifont .hex file."""
    wanted = set(wanted)
    glyphs: dict[int, bytes] = {}
    with open(path, encoding="ascii") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            code_text, _, hex_text = line.partition(":")
            code = int(code_text, 16)
            if code not in wanted:
                continue
            if len(hex_text) not in (32, 64):
                raise FontBuildError("%s:%d: U+%04X is %d hex digits, not an 8x16 or 16x16 glyph"
                                     % (path, number, code, len(hex_text)))
            glyphs[code] = bytes.fromhex(hex_text)
    return glyphs


def build_font(glyphs: dict[int, bytes]) -> bytes:
    """The font file: header, sorted index, bitmaps (see firmware/lib/font.py)."""
    if len(glyphs) > 0xFFFF:
        raise FontBuildError("too many glyphs")
    index = bytearray()
    data = bytearray()
    for code in sorted(glyphs):
        rows = glyphs[code]
        units = len(data) // 16
        if units > 0x7FFF:
            raise FontBuildError("font bitmaps larger than 512 KiB")
        index += struct.pack("<HH", code, units | (WIDE_FLAG if len(rows) == 32 else 0))
        data += rows
    header = MAGIC + struct.pack("<HBB", len(glyphs), HEIGHT, 0)
    return bytes(header + index + data)


def make_font(texts: Iterable[str], unifont: Path = UNIFONT_HEX) -> tuple[bytes, list[int]]:
    """(font file bytes, code points Unifont lacks)."""
    wanted = code_points(texts)
    if not unifont.is_file():
        raise FontBuildError("%s not found: install the Debian package unifont (tools/install-system-deps.sh)"
                             % unifont)
    glyphs = read_unifont(unifont, wanted)
    missing = [c for c in wanted if c not in glyphs]
    return build_font(glyphs), missing


def gb2312_characters() -> str:
    """Every character GB2312 encodes (rows 0xA1-0xF7, cells 0xA1-0xFE), in the standard's order."""
    found = []
    for row in range(0xA1, 0xF8):
        for cell in range(0xA1, 0xFF):
            try:
                found.append(bytes((row, cell)).decode("gb2312"))
            except UnicodeDecodeError:
                continue  # an unassigned cell
    return "".join(found)


def default_texts(center: Path | None = SAMPLE_CENTER, extra: Iterable[str] = (), board: bool = False) -> list[str]:
    """The texts a font must cover: the firmware's, the center's (if any), `extra`, and with `board` all GB2312."""
    texts = source_texts()
    if center is not None:
        texts += center_texts(center)
    if board:
        texts.append(gb2312_characters())
    return texts + list(extra)


# --- command line -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.make_font", description=__doc__.splitlines()[0])
    parser.add_argument("--center", type=Path, default=SAMPLE_CENTER,
                        help="the center's edge config (TOML) whose names go in (default: the sample center)")
    parser.add_argument("--text", action="append", default=[], help="more text to cover (repeatable)")
    parser.add_argument("--unifont", type=Path, default=UNIFONT_HEX, help="Unifont .hex file")
    parser.add_argument("--board", action="store_true",
                        help="the board font: all of GB2312 as well (default --out firmware/fonts/board_font.bin)")
    parser.add_argument("--out", type=Path, help="font file to write (default firmware/lib/default_font.bin)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = BOARD_FONT if args.board else DEFAULT_OUT
    try:
        texts = default_texts(args.center, args.text, board=args.board)
        data, missing = make_font(texts, args.unifont)
    except (FontBuildError, OSError, tomllib.TOMLDecodeError) as exc:
        print("make_font: %s" % exc, file=sys.stderr)
        return 1
    if missing:
        print("make_font: Unifont has no glyph for %s" % " ".join("U+%04X" % c for c in missing), file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    count = struct.unpack_from("<H", data, 4)[0]
    print("make_font: %d glyphs, %d bytes -> %s" % (count, len(data), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
