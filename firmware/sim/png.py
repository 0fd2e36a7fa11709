"""PNG pictures of the simulated panels, so a person can see what residents will see.

Pure Python with zlib (no Pillow): `panel_png()` turns a panel's mono
framebuffer into a PNG that looks like the real thing (round red LEDs with
gaps for a HUB12 strip, square pixels for an OLED), `encode_png()` writes
RGB rows, `decode_png()` reads back the 8-bit RGB/RGBA files (for tests).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from firmware.lib import framebuf_compat as framebuf

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

LOOK_LED = "led"
LOOK_OLED = "oled"
LOOKS = {
    # scale, lit colour, dark colour, background
    LOOK_LED: (6, (255, 48, 24), (52, 10, 8), (8, 8, 8)),
    LOOK_OLED: (4, (225, 240, 255), (12, 14, 20), (12, 14, 20)),
}


class PngError(ValueError):
    pass


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(width: int, height: int, rows: Sequence[bytes]) -> bytes:
    """An 8-bit RGB PNG of `height` rows of `width * 3` bytes each."""
    if len(rows) != height or any(len(row) != width * 3 for row in rows):
        raise PngError("rows do not match %dx%d RGB" % (width, height))
    raw = b"".join(b"\x00" + bytes(row) for row in rows)  # filter type 0 (none) on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, RGB rows) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    if not data.startswith(PNG_SIGNATURE):
        raise PngError("not a PNG")
    pos = len(PNG_SIGNATURE)
    idat = b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack_from(">I", data, pos + 8 + length)[0]:
            raise PngError("bad CRC in %r chunk" % kind)
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise PngError("only 8-bit RGB/RGBA non-interlaced PNGs are read")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    at = 0
    for _ in range(height):
        kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + _paeth(left, up, up_left)) & 0xFF
            elif kind != 0:
                raise PngError("unknown filter type %d" % kind)
        previous = line
        if channels == 4:
            rows.append(bytes(b for i, b in enumerate(line) if i % 4 != 3))
        else:
            rows.append(bytes(line))
    return width, height, rows


def pixels(buffer: bytes | bytearray, width: int, height: int, fmt: int) -> list[list[int]]:
    """The panel's pixels, rows of 0/1, read with the same byte layout as framebuf."""
    if fmt == framebuf.MONO_HLSB:
        row_bytes = (width + 7) // 8
        return [[(buffer[y * row_bytes + (x >> 3)] >> (7 - (x & 7))) & 1 for x in range(width)]
                for y in range(height)]
    if fmt == framebuf.MONO_VLSB:
        return [[(buffer[(y >> 3) * width + x] >> (y & 7)) & 1 for x in range(width)] for y in range(height)]
    fb = framebuf.FrameBuffer(bytearray(buffer), width, height, fmt)
    return [[fb.pixel(x, y) for x in range(width)] for y in range(height)]


def _cells(scale: int, lit: tuple[int, int, int], dark: tuple[int, int, int], background: tuple[int, int, int],
           round_dots: bool) -> tuple[list[bytes], list[bytes]]:
    """For each of the `scale` picture rows of one panel pixel: its bytes when lit and when dark."""
    on_rows, off_rows = [], []
    last = scale - 1
    for sy in range(scale):
        on, off = bytearray(), bytearray()
        for sx in range(scale):
            gap = round_dots and (sx == last or sy == last or (sx in (0, last - 1) and sy in (0, last - 1)))
            on += bytes(background if gap else lit)
            off += bytes(background if gap else dark)
        on_rows.append(bytes(on))
        off_rows.append(bytes(off))
    return on_rows, off_rows


def panel_png(buffer: bytes | bytearray, width: int, height: int, fmt: int, look: str = LOOK_LED) -> bytes:
    """A PNG of a panel's framebuffer as a resident would see it."""
    scale, lit, dark, background = LOOKS[look]
    on_rows, off_rows = _cells(scale, lit, dark, background, look == LOOK_LED)
    rows: list[bytes] = []
    for pixel_row in pixels(buffer, width, height, fmt):
        for sy in range(scale):
            on, off = on_rows[sy], off_rows[sy]
            rows.append(b"".join(on if p else off for p in pixel_row))
    return encode_png(width * scale, height * scale, rows)
