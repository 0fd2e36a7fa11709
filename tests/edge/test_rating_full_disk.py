"""A rating pressed while the edge cannot store it is not lost (issue 19).

The fault run: during a full-disk minute a pad's rating (A720, 5 stars) reached the edge, could not be
written, and was never sent again: the pad forgot it at the broker's PUBACK. Here the real edge agent runs
on a real 4 MB filesystem that fills up (tests/support/disk.py), the rating pad is the firmware's twin
(DeviceRuntime with RatingPadApp under CPython) on a real Mosquitto, and the pad's clock is driven, so its
acknowledgement time-out passes when the test says.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from firmware.lib import clock
from firmware.lib import config as device_config
from firmware.lib.runtime import DeviceRuntime, rated_store
from firmware.rating_pad.app import RatingPadApp
from firmware.sim.hardware import SimPanel
from protocol import identity, messages, topics
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.disk import SmallDisk
from tests.support.loop import LoopThread
from tests.support.processes import Program
from tests.support.staff import signed_in
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

PAD_MAC = "02:00:00:00:03:02"
PAD = identity.device_id_from_mac(PAD_MAC)
RATING_TOPIC = topics.build(topics.RATING_SUBMITTED, center=CENTER_CODE, device=PAD)


class DrivenTicks:
    """The firmware's millisecond clock, moved only by the test (the asyncio loops still run in real time)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now_ms = clock.ticks_ms()
        monkeypatch.setattr(clock, "ticks_ms", lambda: self.now_ms)

    def advance(self, ms: int) -> None:
        self.now_ms = clock.ticks_add(self.now_ms, ms)


class CountyRatings:
    """What the fleet would receive: the edge's rating events on the county broker."""

    def __init__(self, port: int) -> None:
        self.events: dict[str, dict] = {}  # event_id -> rating_event (the edge re-sends until the fleet acks)
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="county-ratings")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(topics.subscription(topics.RATING_EVENT), qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, message) -> None:
        event = json.loads(message.payload)
        with self.lock:
            self.events[event["event_id"]] = event

    def of(self, rating_id: str) -> list[dict]:
        with self.lock:
            return [e for e in self.events.values() if e["rating_id"] == rating_id]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def pad_runtime(port: int, state_dir: Path) -> DeviceRuntime:
    cfg = device_config.from_dict({"center": CENTER_CODE, "window": 3, "role": messages.ROLE_RATING_PAD,
                                   "board": "test", "broker": {"host": "127.0.0.1", "port": port},
                                   "keepalive_s": 60, "mac": PAD_MAC})
    app = RatingPadApp(3, PAD, rated=rated_store(str(state_dir), log=None))
    return DeviceRuntime(cfg, app, str(state_dir), panel=SimPanel(), backoff_min_s=0.05, backoff_max_s=0.5,
                         log=None)


def stored_ratings(data_dir: Path) -> list[tuple[str, int]]:
    """(rating_id, score) of every rating in the edge's database, read as another process would."""
    db = sqlite3.connect(f"file:{data_dir / 'edge.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT rating_id, score FROM ratings").fetchall()
    finally:
        db.close()


def failures_to_store_a_rating(agent: Program) -> int:
    """How often the edge could not handle a rating message (its database refused the write)."""
    return sum(1 for line in agent.log().splitlines()
               if "could not be handled" in line and RATING_TOPIC in line)


@pytest.fixture
def data_disk(tmp_path):
    disk = SmallDisk(tmp_path / "edge" / "data", size_mb=4).mount()
    yield disk
    disk.unmount()


def test_a_rating_the_edge_could_not_store_is_sent_again_and_stored_once(tmp_path, broker_factory, data_disk,
                                                                        monkeypatch) -> None:
    ticks = DrivenTicks(monkeypatch)
    center = broker_factory("center")
    county = broker_factory("county")
    at_county = CountyRatings(county.port)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # A 4 MB disk: the floor under which the edge warns of low space is set below what it has free.
    config = write_edge_config(tmp_path / "edge", center.port, county.port, port, printer="none",
                               storage="min_free_mb = 1")
    agent = Program(["-m", "edge_agent", "--config", str(config)], tmp_path / "edge.log", f"{base}/api/health")
    agent.start()
    pad = pad_runtime(center.port, tmp_path / "pad")  # the pad's own flash is not the edge's disk
    try:
        with LoopThread() as loop:
            running = asyncio.run_coroutine_threadsafe(pad.run(), loop.loop)
            try:
                rate_through_a_full_disk(loop, pad, ticks, agent, base, data_disk, at_county)
            finally:
                loop.run(pad.stop())
                running.result(10)
        assert agent.process.poll() is None
    finally:
        agent.stop()
        at_county.close()


def rate_through_a_full_disk(loop: LoopThread, pad: DeviceRuntime, ticks: DrivenTicks, agent: Program, base: str,
                             data_disk: SmallDisk, at_county: CountyRatings) -> None:
    timeout_ms = DeviceRuntime.RATING_ACK_TIMEOUT_S * 1000
    wait_until(lambda: pad.client.up, 30, "the pad on the center broker")

    # A resident served at window 3: the pad asks for the rating.
    caller = signed_in(base, 3)
    ticket = httpx.post(f"{base}/api/tickets", json={"service": "A"}, timeout=10).json()["number"]
    assert caller.press("next").json()["ticket"] == ticket
    caller.press("finish").raise_for_status()
    wait_until(lambda: pad.app.is_open, 30, "the pad to open the rating")

    # The edge's disk fills up; the resident presses 非常满意 on the pad.
    data_disk.fill()
    assert loop.call(pad.press, 5)
    wait_until(lambda: failures_to_store_a_rating(agent) >= 1, 30,
               "the rating to reach the edge, which cannot store it")
    # The broker has it (PUBACK) but the edge does not: the pad keeps it.
    assert len(pad.outbox) == 1, "the pad forgot a rating the edge never stored"

    # Still full at its time-out: sent again, still not stored, still kept.
    loop.call(ticks.advance, timeout_ms)
    wait_until(lambda: failures_to_store_a_rating(agent) >= 2, 30, "the rating sent again")
    assert len(pad.outbox) == 1

    # The disk is freed: the next re-send is stored, acknowledged, and the pad forgets it.
    data_disk.free()
    wait_until(lambda: httpx.get(f"{base}/api/health", timeout=10).json()["storage"]["state"] == "ok", 30,
               "the edge's storage to recover")
    loop.call(ticks.advance, timeout_ms)
    wait_until(lambda: len(pad.outbox) == 0, 30, "the rating stored and acknowledged")
    [(rating_id, score)] = stored_ratings(data_disk.path)
    assert rating_id.startswith(PAD) and score == 5

    # Exactly once: the acknowledged rating is not sent again, at the edge or on to the county.
    later = pad.uptime_ms + 2 * timeout_ms
    loop.call(ticks.advance, 2 * timeout_ms)
    wait_until(lambda: pad.uptime_ms >= later, 30, "the pad's ticker to see two more time-outs pass")
    wait_until(lambda: at_county.of(rating_id), 30, "the rating at the county")
    assert stored_ratings(data_disk.path) == [(rating_id, score)]
    [event] = at_county.of(rating_id)
    assert (event["ticket"], event["window"], event["score"]) == (ticket, 3, 5)
    assert loop.call(lambda: pad.awaiting.resends) == 2

    caller.close()
