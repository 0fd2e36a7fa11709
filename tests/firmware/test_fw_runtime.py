"""DeviceRuntime against a real Mosquitto: birth, will, sessions, health, dispatch, stale-will repair."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fw_helpers import CENTER, KEEPALIVE_S, Recorder, run, until

from firmware.lib import config
from firmware.lib.runtime import DeviceRuntime
from firmware.queue_display.app import QueueDisplayApp
from firmware.rating_pad.app import RatingPadApp
from firmware.sim.hardware import SimPanel
from protocol import identity, messages, topics
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

MAC = "02:00:00:00:00:03"
DEVICE = identity.device_id_from_mac(MAC)
PRESENCE = topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=DEVICE)
HEALTH = topics.build(topics.DEVICE_HEALTH, center=CENTER, device=DEVICE)
DISPLAY = topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=3)


def make_runtime(port: int, state_dir: Path, role: str = messages.ROLE_QUEUE_DISPLAY,
                 health_interval_s: float = 30) -> DeviceRuntime:
    cfg = config.from_dict({"center": CENTER, "window": 3, "role": role, "board": "test",
                            "broker": {"host": "127.0.0.1", "port": port}, "keepalive_s": KEEPALIVE_S,
                            "health_interval_s": health_interval_s, "mac": MAC})
    assert not cfg.errors
    app = QueueDisplayApp(3) if role == messages.ROLE_QUEUE_DISPLAY else RatingPadApp(3, DEVICE)
    return DeviceRuntime(cfg, app, str(state_dir), panel=SimPanel(), backoff_min_s=0.05, backoff_max_s=0.5,
                         log=None)


def presences(recorder: Recorder) -> list[dict]:
    return [messages.decode("presence", p) for p in recorder.payloads(PRESENCE)]


def test_birth_will_and_session_across_reconnects_and_reboots(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        observer = Recorder(center_broker.port, PRESENCE)
        runtime = make_runtime(center_broker.port, tmp_path)
        task = asyncio.create_task(runtime.run())
        await until(lambda: presences(observer), what="birth")
        birth = presences(observer)[0]
        assert birth["state"] == "online" and birth["session"] == 1
        assert birth["role"] == "queue_display" and birth["window"] == 3 and birth["mac"] == "020000000003"
        assert birth["board"] == "test" and birth["contract"] == 1

        runtime.client.abort()  # abrupt: the broker publishes the will of session 1
        await until(lambda: len(presences(observer)) >= 3, what="will then new birth")
        will, rebirth = presences(observer)[1:3]
        assert (will["state"], will["session"]) == ("offline", 1)
        assert (rebirth["state"], rebirth["session"]) == ("online", 2)

        await runtime.stop()  # graceful: an explicit offline, then DISCONNECT
        await task
        await until(lambda: len(presences(observer)) >= 4, what="offline on stop")
        assert (presences(observer)[3]["state"], presences(observer)[3]["session"]) == ("offline", 2)

        rebooted = make_runtime(center_broker.port, tmp_path)  # same state dir: the counter survived
        task = asyncio.create_task(rebooted.run())
        await until(lambda: len(presences(observer)) >= 5, what="birth after reboot")
        assert presences(observer)[4]["session"] == 3
        await rebooted.stop()
        await task
        observer.close()

    run(scenario())


def test_health_heartbeat(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        observer = Recorder(center_broker.port, HEALTH)
        runtime = make_runtime(center_broker.port, tmp_path, health_interval_s=0.2)
        task = asyncio.create_task(runtime.run())
        await until(lambda: len(observer.payloads(HEALTH)) >= 2, what="two heartbeats")
        health = messages.decode("health", observer.payloads(HEALTH)[-1])
        assert health["session"] == 1
        assert health["reconnects"] == 0
        assert health["uptime_s"] >= 0
        runtime.client.abort()
        await until(lambda: runtime.client.reconnects == 1 and runtime.client.up, what="reconnect")
        count = len(observer.payloads(HEALTH))
        await until(lambda: len(observer.payloads(HEALTH)) > count, what="heartbeat after reconnect")
        health = messages.decode("health", observer.payloads(HEALTH)[-1])
        assert health["session"] == 2 and health["reconnects"] == 1 and health["last_error"] == "aborted"
        await runtime.stop()
        await task
        observer.close()

    run(scenario())


def test_stale_will_is_repaired_with_a_new_birth(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = make_runtime(center_broker.port, tmp_path)
        task = asyncio.create_task(runtime.run())
        observer = Recorder(center_broker.port, PRESENCE)
        await until(lambda: runtime.client.up and runtime.presence.birth_sent, what="device up")
        await runtime.stop()
        await task
        task = asyncio.create_task(runtime.run())  # session 2
        await until(lambda: runtime.client.up and runtime.presence.birth_sent and runtime.session == 2,
                    what="device up again")
        # The will of session 1 turns up late (broker session takeover) and is retained.
        stale = messages.make("presence", state="offline", session=1, boot=runtime.presence.boot,
                              role="queue_display", window=3)
        observer.publish(PRESENCE, messages.encode("presence", stale), qos=1, retain=True)
        await until(lambda: runtime.presence.repairs == 1, what="repair")
        checker = Recorder(center_broker.port, PRESENCE)
        await until(lambda: checker.on(PRESENCE), what="retained presence")
        await until(lambda: messages.decode("presence", checker.on(PRESENCE)[-1][0])["state"] == "online",
                    what="retained presence back to online")
        retained = messages.decode("presence", checker.on(PRESENCE)[-1][0])
        assert retained["session"] == 2
        # A will from a newer session of this boot (another board with a cloned MAC?) is not fought over.
        newer = messages.make("presence", state="offline", session=9, boot=runtime.presence.boot,
                              role="queue_display")
        observer.publish(PRESENCE, messages.encode("presence", newer), qos=1, retain=True)
        marker = topics.build(topics.DEVICE_HEALTH, center=CENTER, device="dev-020000000099")
        marker_rec = Recorder(center_broker.port, marker)
        observer.publish(marker, b"{}")
        await until(lambda: marker_rec.on(marker), what="marker")
        assert runtime.presence.repairs == 1
        await runtime.stop()
        await task
        for rec in (observer, checker, marker_rec):
            rec.close()

    run(scenario())


def test_display_follows_messages_and_drops_malformed_ones(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = make_runtime(center_broker.port, tmp_path)
        publisher = Recorder(center_broker.port)
        task = asyncio.create_task(runtime.run())
        await until(lambda: runtime.client.up, what="device up")
        panel = runtime.panel
        assert panel.lines == ["3号窗口", "欢迎光临"]
        publisher.publish(DISPLAY, b"not json")
        publisher.publish(DISPLAY, b'{"v": 1, "window": 3, "state": "dancing"}')
        call = messages.make("window_display", window=3, state="serving", ticket="A001", text="请A001号到3号窗口",
                             call_seq=1)
        publisher.publish(DISPLAY, messages.encode("window_display", call), retain=True)
        await until(lambda: panel.lines == ["A001", "请A001号到3号窗口"], what="call on the panel")
        assert runtime.dropped == 2
        assert runtime.client.reconnects == 0 and runtime.client.up
        assert runtime.app.blinking
        paused = messages.make("window_display", window=3, state="paused", ticket="", text="", call_seq=1)
        publisher.publish(DISPLAY, messages.encode("window_display", paused), retain=True)
        await until(lambda: panel.lines == ["3号窗口", "暂停服务"], what="paused")
        await runtime.stop()
        await task
        publisher.close()

    run(scenario())


def test_rating_queued_while_offline_is_sent_after_reconnect(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = make_runtime(center_broker.port, tmp_path, role=messages.ROLE_RATING_PAD)
        rating_topic = topics.build(topics.RATING_SUBMITTED, center=CENTER, device=DEVICE)
        request_topic = topics.build(topics.RATING_REQUEST, center=CENTER, window=3)
        publisher = Recorder(center_broker.port)
        request = messages.make("rating_request", request_id="req-9", window=3, state="open", ticket="A009")
        publisher.publish(request_topic, messages.encode("rating_request", request), retain=True)
        publisher.close()
        task = asyncio.create_task(runtime.run())
        await until(lambda: runtime.app.is_open, what="request open")
        observer = Recorder(center_broker.port, rating_topic)
        runtime.client.port = free_port()  # the network to the edge is out: nothing listens there
        runtime.client.abort()
        await until(lambda: not runtime.client.up, what="link down")
        assert runtime.press(4) is True  # the resident does not wait for the network
        await until(lambda: runtime.client.last_error.startswith("connect:"), what="a failed reconnect")
        assert observer.payloads(rating_topic) == []
        runtime.client.port = center_broker.port  # the network is back
        await until(lambda: observer.payloads(rating_topic), what="queued rating delivered", timeout=15)
        rating = messages.decode("rating_submitted", observer.payloads(rating_topic)[0])
        assert (rating["request_id"], rating["ticket"], rating["score"]) == ("req-9", "A009", 4)
        await runtime.stop()
        await task
        observer.close()

    run(scenario())


def test_health_reports_rssi_and_a_broken_config_and_the_network_is_kept_up(center_broker, tmp_path: Path) -> None:
    from firmware.lib import netlink
    from firmware.sim.hardware import SimNetwork

    async def scenario() -> None:
        (tmp_path / "config.json").write_text('{"center": "445202101001", "window": 3, "health_interval_s": "x"}')
        cfg = config.load(str(tmp_path / "config.json"))  # one bad field: its default is used, and it is said
        cfg.broker_host, cfg.broker_port, cfg.mac = "127.0.0.1", center_broker.port, MAC
        cfg.health_interval_s = 0.2
        network = SimNetwork(MAC, rssi=-61)
        runtime = DeviceRuntime(cfg, QueueDisplayApp(3), str(tmp_path), panel=SimPanel(), backoff_min_s=0.05,
                                backoff_max_s=0.5, log=None, network=network, tick_ms=20)
        runtime.network.grace_ms = 100
        observer = Recorder(center_broker.port, HEALTH)
        task = asyncio.create_task(runtime.run())
        await until(lambda: observer.payloads(HEALTH), what="a heartbeat")
        health = messages.decode("health", observer.payloads(HEALTH)[0])
        assert health["rssi"] == -61 and "health_interval_s" in health["last_error"]
        network.up = False  # the access point goes away
        await until(lambda: network.reconnects >= 1, what="the supervisor kicks the driver")
        assert not runtime.network.up
        network.up = True
        await until(lambda: runtime.network.up, what="network back")
        assert isinstance(runtime.network, netlink.LinkSupervisor)
        await runtime.stop()
        await task
        observer.close()

    run(scenario())
