"""The simulator's PNG pictures of the panels: valid PNGs that show the framebuffer's pixels."""

from __future__ import annotations

import io
import zlib

import pytest

from firmware.lib import framebuf_compat as framebuf
from firmware.sim import png
from tests.support.aio import run_async


def test_encode_then_decode_gives_the_same_rows() -> None:
    rows = [bytes(c for x in range(5) for c in (x * 40, y * 60, (x + y) % 256)) for y in range(4)]
    data = png.encode_png(5, 4, rows)
    assert data.startswith(png.PNG_SIGNATURE)
    assert png.decode_png(data) == (5, 4, rows)


def test_pillow_reads_our_png_as_we_wrote_it() -> None:
    image_module = pytest.importorskip("PIL.Image")
    rows = [bytes([255, 0, 0, 0, 255, 0]), bytes([0, 0, 255, 255, 255, 255])]
    image = image_module.open(io.BytesIO(png.encode_png(2, 2, rows)))
    assert image.size == (2, 2) and image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 0, 0) and image.getpixel((1, 1)) == (255, 255, 255)


def test_decoder_undoes_every_png_filter() -> None:
    # Rows filtered with Sub, Up, Average and Paeth by hand: the decoder must give back the originals.
    original = [bytes([10, 20, 30, 40, 50, 60]), bytes([15, 25, 35, 45, 55, 65]), bytes([1, 2, 3, 4, 5, 6]),
                bytes([200, 100, 50, 25, 12, 6])]
    raw = bytearray()
    previous = bytes(6)
    for kind, row in zip((1, 2, 3, 4), original, strict=True):
        raw.append(kind)
        for i, value in enumerate(row):
            left = row[i - 3] if i >= 3 else 0
            up = previous[i]
            up_left = previous[i - 3] if i >= 3 else 0
            predictor = {1: left, 2: up, 3: (left + up) >> 1, 4: png._paeth(left, up, up_left)}[kind]
            raw.append((value - predictor) & 0xFF)
        previous = row
    header = png.struct.pack(">IIBBBBB", 2, 4, 8, 2, 0, 0, 0)
    data = (png.PNG_SIGNATURE + png._chunk(b"IHDR", header) + png._chunk(b"IDAT", zlib.compress(bytes(raw)))
            + png._chunk(b"IEND", b""))
    assert png.decode_png(data) == (2, 4, original)


def test_a_corrupt_png_is_refused() -> None:
    data = bytearray(png.encode_png(1, 1, [b"\x01\x02\x03"]))
    data[20] ^= 0xFF  # inside IHDR
    with pytest.raises(png.PngError, match="CRC"):
        png.decode_png(bytes(data))
    with pytest.raises(png.PngError, match="not a PNG"):
        png.decode_png(b"GIF89a")
    with pytest.raises(png.PngError):
        png.encode_png(2, 1, [b"\x00\x00\x00"])


def cell_colour(rows: list[bytes], scale: int, px: int, py: int) -> tuple[int, ...]:
    x, y = px * scale + scale // 2, py * scale + scale // 2  # the middle of the panel pixel's cell
    return tuple(rows[y][3 * x:3 * x + 3])


@pytest.mark.parametrize("fmt", [framebuf.MONO_HLSB, framebuf.MONO_VLSB])
def test_panel_png_shows_each_lit_pixel_as_a_lit_cell(fmt: int) -> None:
    buf = bytearray(16 * 8 // 8)
    fb = framebuf.FrameBuffer(buf, 16, 8, fmt)
    fb.pixel(3, 2, 1)
    fb.pixel(15, 7, 1)
    for look in (png.LOOK_LED, png.LOOK_OLED):
        scale, lit, dark, _ = png.LOOKS[look]
        width, height, rows = png.decode_png(png.panel_png(buf, 16, 8, fmt, look))
        assert (width, height) == (16 * scale, 8 * scale)

        assert cell_colour(rows, scale, 3, 2) == lit and cell_colour(rows, scale, 15, 7) == lit
        assert cell_colour(rows, scale, 4, 2) == dark and cell_colour(rows, scale, 0, 0) == dark


def test_control_page_serves_each_devices_panel_as_png(tmp_path) -> None:
    import asyncio

    from firmware.sim.center import SimulatedCenter
    from firmware.sim.web import ControlServer
    from tools.mosquitto import free_port

    async def get(port: int, path: str) -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return head, body

    async def scenario() -> None:
        center = SimulatedCenter("445202101001", "127.0.0.1", 1, [2], tmp_path, log=None)  # never connects
        center.display(2).runtime.refresh()
        server = ControlServer(center, free_port())
        await server.start()
        try:
            head, body = await get(server.port, f"/screen/{center.display(2).device_id}.png")
            assert b"200 OK" in head and b"image/png" in head
            width, height, _ = png.decode_png(body)
            assert (width, height) == (128 * 6, 16 * 6)
            head, _ = await get(server.port, "/screen/dev-000000000000.png")
            assert b"404" in head
            head, page = await get(server.port, "/")
            assert f'src="/screen/{center.pad(2).device_id}.png"'.encode() in page
        finally:
            await server.stop()

    run_async(scenario())
