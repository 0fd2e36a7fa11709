"""Runs under the real MicroPython (unix port), not CPython: see test_micropython.py.

Usage: micropython micropython_scenario.py BROKER_PORT STATE_DIR UNUSED_PORT
Exercises the firmware against a real broker exactly as a board would run
it, and prints one 'ok NAME' line per check, then 'ALL OK'.
"""

import asyncio
import json
import sys

from firmware.lib import clock, config, mqtt
from firmware.lib.runtime import DeviceRuntime
from firmware.queue_display.app import QueueDisplayApp
from firmware.rating_pad.app import RatingPadApp
from protocol import identity, messages, topics

CENTER = "445202101001"


def check(name, condition):
    if not condition:
        print("FAIL", name)
        raise SystemExit(1)
    print("ok", name)


async def until(predicate, timeout_s=5):
    start = clock.ticks_ms()
    while not predicate():
        if clock.ticks_diff(clock.ticks_ms(), start) > timeout_s * 1000:
            return False
        await asyncio.sleep(0.02)
    return True


async def main(port, state_dir, dead_port):
    received = []

    def on_message(topic, payload, retained):
        received.append((topic, payload, retained))

    # A broker that is not there yet: the client keeps trying, then connects.
    late = mqtt.MQTTClient("mpy-late", "127.0.0.1", dead_port, keepalive=5, backoff_min_s=0.05,
                           backoff_max_s=0.2, log=None)
    late_task = asyncio.create_task(late.run())
    check("connect failure is recorded", await until(lambda: late.last_error and not late.up))
    late.port = port
    check("connects once the broker is reachable", await until(lambda: late.up))
    await late.disconnect()
    await late_task

    observer = mqtt.MQTTClient("mpy-observer", "127.0.0.1", port, keepalive=5, on_message=on_message,
                               backoff_min_s=0.1, backoff_max_s=0.5, log=None)
    await observer.subscribe("mpy/test/#", 1)
    await observer.subscribe(topics.subscription(topics.RATING_SUBMITTED, center=CENTER), 1)
    asyncio.create_task(observer.run())
    check("observer connects", await until(lambda: observer.up))

    await observer.publish("mpy/test/qos1", b"x" * 300, qos=1)
    check("qos1 round trip with a 2-byte remaining length",
          await until(lambda: any(t == "mpy/test/qos1" and len(p) == 300 for t, p, r in received)))

    mac = "02:00:00:00:00:31"
    cfg = config.from_dict({"center": CENTER, "window": 3, "role": messages.ROLE_RATING_PAD, "board": "unix",
                            "broker": {"host": "127.0.0.1", "port": port}, "health_interval_s": 1,
                            "keepalive_s": 2, "mac": mac})
    check("config has no errors", not cfg.errors)
    device_id = identity.device_id_from_mac(mac)
    pad = DeviceRuntime(cfg, RatingPadApp(3, device_id), state_dir, backoff_min_s=0.1, backoff_max_s=0.5,
                        log=None)
    task = asyncio.create_task(pad.run())
    check("pad runtime connects", await until(lambda: pad.client.up))
    check("pad refuses a press with nothing open", pad.press(5) is False)

    request = messages.make("rating_request", request_id="req-1", window=3, state=messages.REQUEST_OPEN,
                            ticket="A001", staff_no="1024", staff_name="张三", timeout_s=60)
    await observer.publish(topics.build(topics.RATING_REQUEST, center=CENTER, window=3),
                           messages.encode("rating_request", request), qos=1, retain=True)
    check("pad opens on request", await until(lambda: pad.app.is_open))
    check("pad shows the prompt", "请对本次服务进行评价" in pad.lines)
    check("press sends", pad.press(5) is True)
    check("second press refused", pad.press(4) is False)
    rating_topic = topics.build(topics.RATING_SUBMITTED, center=CENTER, device=device_id)
    check("rating arrives", await until(lambda: any(t == rating_topic for t, p, r in received)))
    rating = [messages.decode("rating_submitted", p) for t, p, r in received if t == rating_topic][0]
    check("rating payload", rating["score"] == 5 and rating["ticket"] == "A001" and rating["window"] == 3)

    pad.client.abort()
    check("pad reconnects after abort", await until(lambda: pad.client.up and pad.client.reconnects == 1))
    check("no reopen after the retained request is re-delivered", not pad.app.is_open)

    display = QueueDisplayApp(3)
    display.on_display(messages.make("window_display", window=3, state=messages.DISPLAY_SERVING,
                                     ticket="A001", text="请A001号到3号窗口", call_seq=1), 0)
    check("display lines", display.lines() == ["A001", "请A001号到3号窗口"])

    await pad.stop()
    await task
    await observer.disconnect()
    print("session", pad.session)
    print("ALL OK")


port = int(sys.argv[1])
asyncio.run(main(port, sys.argv[2], int(sys.argv[3])))
print(json.dumps({"done": True}))
