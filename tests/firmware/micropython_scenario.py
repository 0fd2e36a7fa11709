"""Runs under the real MicroPython (unix port), not CPython: see test_micropython.py.

Usage: micropython micropython_scenario.py BROKER_PORT STATE_DIR UNUSED_PORT
Exercises the firmware against a real broker exactly as a board would run
it, and prints one 'ok NAME' line per check, then 'ALL OK': the MQTT client,
a rating pad, a signed desired configuration, and a rating pressed while the
broker is unreachable that survives a reboot on the (unix port's) flash. The
observer plays the edge agent: it acknowledges each rating (rating_ack), and
only then may the pad forget it.
"""

import asyncio
import json
import sys

from firmware.lib import clock, config, mqtt
from firmware.lib.runtime import DeviceRuntime, rated_store
from firmware.queue_display.app import QueueDisplayApp
from firmware.rating_pad.app import RatingPadApp
from protocol import identity, messages, signing, topics

CENTER = "445202101001"
KEY = bytes(range(32))


def check(name, condition):
    if not condition:
        print("FAIL", name)
        raise SystemExit(1)
    print("ok", name)


async def until(predicate, timeout_s=10):  # the timeout only stops a hung run
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
                            # Longer than the run: the only reconnects are the ones it causes, so their
                            # count is exact.
                            "keepalive_s": 60, "mac": mac, "device_key": "000102030405060708090a0b0c0d0e0f"
                            "101112131415161718191a1b1c1d1e1f"})
    check("config has no errors", not cfg.errors)
    device_id = identity.device_id_from_mac(mac)

    def boot():
        app = RatingPadApp(3, device_id, rated=rated_store(state_dir, log=None))
        return DeviceRuntime(cfg, app, state_dir, backoff_min_s=0.1, backoff_max_s=0.5, log=None)

    await observer.subscribe(topics.build(topics.DEVICE_CONFIG_REPORTED, center=CENTER, device=device_id), 1)
    pad = boot()
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
    check("rating kept after its PUBACK, until the edge acknowledges it", len(pad.outbox) == 1)
    ack_topic = topics.build(topics.RATING_ACK, center=CENTER, device=device_id)

    async def acknowledge(rating):  # the edge agent, once the rating is in its database
        ack = messages.make("rating_ack", rating_id=rating["rating_id"], reason=rating.get("reason"),
                            status=messages.RATING_STORED)
        await observer.publish(ack_topic, messages.encode("rating_ack", ack), qos=1)

    await acknowledge(rating)
    check("outbox emptied once the edge acknowledged", await until(lambda: len(pad.outbox) == 0))

    pad.client.abort()
    check("pad reconnects after abort", await until(lambda: pad.client.up and pad.client.reconnects == 1))
    check("no reopen after the retained request is re-delivered", not pad.app.is_open)

    # A signed desired configuration: verified (HMAC-SHA256 on MicroPython's hashlib), applied, reported.
    reported_topic = topics.build(topics.DEVICE_CONFIG_REPORTED, center=CENTER, device=device_id)
    desired = signing.make_signed("desired_config", KEY, device_id, version=2,
                                  config={"prompt_text": "请您评价", "rating_timeout_s": 30})
    await observer.publish(topics.build(topics.DEVICE_CONFIG_DESIRED, center=CENTER, device=device_id),
                           messages.encode("desired_config", desired), qos=1, retain=True)
    check("config report arrives", await until(lambda: any(t == reported_topic for t, p, r in received)))
    report = [messages.decode("reported_config", p) for t, p, r in received if t == reported_topic][-1]
    check("config applied", report["status"] == "applied" and report["version"] == 2 and report["in_force"] == 2)
    check("app uses the config", pad.app.prompt_text == "请您评价" and pad.app.timeout_s() == 30)
    forged = signing.make_signed("desired_config", bytes(32), device_id, version=3, config={"rating_timeout_s": 10})
    await observer.publish(topics.build(topics.DEVICE_CONFIG_DESIRED, center=CENTER, device=device_id),
                           messages.encode("desired_config", forged), qos=1)
    check("forged config reported rejected",
          await until(lambda: any(t == reported_topic and b"rejected" in p for t, p, r in received)))
    check("forged config not applied", pad.desired.version == 2 and pad.app.timeout_s() == 30)
    rejection = [messages.decode("reported_config", p) for t, p, r in received if t == reported_topic][-1]
    check("rejection says version 2 is in force", rejection["version"] == 3 and rejection["in_force"] == 2)

    # A rating pressed while the broker is unreachable, then a power cut: it waits on flash.
    request2 = messages.make("rating_request", request_id="req-2", window=3, state=messages.REQUEST_OPEN,
                             ticket="A002", timeout_s=60)
    await observer.publish(topics.build(topics.RATING_REQUEST, center=CENTER, window=3),
                           messages.encode("rating_request", request2), qos=1, retain=True)
    check("second request opens", await until(lambda: pad.app.is_open))
    pad.client.port = dead_port
    pad.client.abort()
    check("link down", await until(lambda: not pad.client.up))
    check("offline press accepted", pad.press(2) is True)
    check("rating stored on flash", len(pad.outbox) == 1)
    check("broker unreachable", await until(lambda: (pad.client.last_error or "").startswith("connect:")))
    pad.client.abort(stop=True)
    await task
    before = pad.session

    pad = boot()  # the reboot: same flash
    check("rating still on flash after reboot", len(pad.outbox) == 1)
    check("config version survives reboot", pad.desired.version == 2 and pad.app.prompt_text == "请您评价")
    check("rated request remembered", "req-2" in pad.app.rated)
    task = asyncio.create_task(pad.run())
    check("pad back online", await until(lambda: pad.client.up))
    check("session counts on across the reboot", pad.session == before + 1)
    check("stored rating delivered",
          await until(lambda: len([1 for t, p, r in received if t == rating_topic]) == 2))
    second = [messages.decode("rating_submitted", p) for t, p, r in received if t == rating_topic][1]
    await acknowledge(second)
    check("outbox emptied after the acknowledgement", await until(lambda: len(pad.outbox) == 0))
    check("stored rating payload", second["ticket"] == "A002" and second["score"] == 2)
    check("rated request not reopened", not pad.app.is_open)

    display = QueueDisplayApp(3)
    display.on_display(messages.make("window_display", window=3, state=messages.DISPLAY_SERVING,
                                     ticket="A001", text="请A001号到3号窗口", call_seq=1), 0)
    check("display lines", display.lines() == ["A001", "请A001号到3号窗口"])

    # A marker the pad publishes after everything it has sent: once it has arrived, so has any rating
    # the pad sent twice.
    await pad.client.publish("mpy/test/marker", b"after the ratings", qos=1)
    check("marker after the ratings", await until(lambda: any(t == "mpy/test/marker" for t, p, r in received)))
    check("each rating delivered once", len([1 for t, p, r in received if t == rating_topic]) == 2)
    await pad.stop()
    await task
    await observer.disconnect()
    print("session", pad.session)
    print("ALL OK")


port = int(sys.argv[1])
asyncio.run(main(port, sys.argv[2], int(sys.argv[3])))
print(json.dumps({"done": True}))
