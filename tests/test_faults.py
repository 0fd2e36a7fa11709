"""Faults at the edge, all in one run (issue 19's done-when): a full disk, a county broker restart, a paused fleet.

One center runs as its programs run in the field: the fleet and the edge agent as subprocesses, the three windows'
displays and pads as the real firmware under CPython with simulated hardware, two real Mosquitto brokers. The
edge's data directory is a real 8 MB filesystem (tests/support/disk.py) that fills up for a while; the county
broker is restarted (without persistence, the harder case: what it held is gone) while the disk is full; the
fleet is then stopped with SIGSTOP for longer than its heartbeat time-out while the center goes on working.

Afterwards, without restarting anything: every ticket and every rating is stored once at the fleet, every request
refused during the fault was a clear 503, the edge's health and the fleet's alert named the disk while it was full,
no device that kept talking was dropped, and the voice cache stayed small although every call was a new one (a
WAV per call, as before, would have filled this disk by itself).
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from edge_agent import voice
from firmware.sim.center import SimulatedCenter
from fleet.presence import REASON_HEARTBEAT
from protocol import topics
from tests.edge.test_voice import needs_espeak
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.disk import SmallDisk
from tests.support.loop import LoopThread
from tests.support.mqtt import Recorder
from tests.support.processes import Program
from tests.support.staff import Caller, signed_in
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = [pytest.mark.broker, needs_espeak]

HEARTBEAT_TIMEOUT_S = 10
DEVICE_HEALTH_EVERY_S = 2
REFUSALS = {"/api/tickets": "暂时无法取号", "next": "存储空间已满"}
VOICE_CACHE_LIMIT = 2_000_000  # bytes: the pieces (about 0.3 MB) and the call being played (about 0.55 MB)


@pytest.fixture
def data_disk(tmp_path):
    disk = SmallDisk(tmp_path / "edge" / "data", size_mb=8).mount()
    yield disk
    disk.unmount()


class Center:
    """The edge's HTTP side as the kiosk and the callers use it; every answer is kept to be judged at the end."""

    def __init__(self, base: str, devices: SimulatedCenter, loop: LoopThread) -> None:
        self.base, self.devices, self.loop = base, devices, loop
        self.issued: list[str] = []
        self.answers: list[tuple[str, int, str]] = []  # (what, status, detail)
        self.callers: dict[int, Caller] = {}

    def _keep(self, what: str, response: httpx.Response) -> httpx.Response:
        detail = response.json().get("detail", "") if response.status_code >= 400 else ""
        self.answers.append((what, response.status_code, str(detail)))
        return response

    def take_ticket(self, service: str) -> httpx.Response:
        response = self._keep("/api/tickets", httpx.post(f"{self.base}/api/tickets", json={"service": service},
                                                         timeout=10))
        if response.status_code == 200:
            self.issued.append(response.json()["number"])
        return response

    def caller(self, window: int) -> Caller:
        if window not in self.callers:
            # The PINs are given once: giving them again signs the other windows out.
            self.callers[window] = signed_in(self.base, window, pins_set=bool(self.callers))
        return self.callers[window]

    def press(self, window: int, action: str) -> httpx.Response:
        return self._keep(action, self.caller(window).press(action))

    def call_and_finish(self, window: int) -> str:
        """下一位 then 办结: the window's pad asks for the rating (left open for the caller to press)."""
        called = self.press(window, "next")
        called.raise_for_status()
        self.press(window, "finish").raise_for_status()
        pad = self.devices.pad(window)
        wait_until(lambda: self.loop.call(lambda: pad.app.is_open), 30, f"window {window}'s pad to ask")
        return called.json()["ticket"]

    def rate(self, window: int, score: int = 5) -> None:
        assert self.loop.call(self.devices.pad(window).press, score) is True

    def serve(self, window: int) -> str:
        ticket = self.call_and_finish(window)
        self.rate(window)
        return ticket

    def health(self) -> dict:
        return httpx.get(f"{self.base}/api/health", timeout=10).json()

    def close(self) -> None:
        for caller in self.callers.values():
            caller.client.close()


class FleetDatabase:
    """What the fleet stored, read as another client of its database would."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def rows(self, sql: str, **params) -> list[tuple]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]

    def issued_tickets(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT ticket FROM ticketevent WHERE center_code = :c AND kind = 'issued'",
                                        c=CENTER_CODE)]

    def pad_rating_ids(self) -> list[str]:
        """The ratings pads sent (the edge's own records of requests it closed unanswered have no score)."""
        return [r[0] for r in self.rows("SELECT rating_id FROM ratingevent WHERE center_code = :c AND score > 0",
                                        c=CENTER_CODE)]

    def storage_alerts(self) -> list[tuple[str, str, str]]:
        return self.rows("SELECT state, message, severity FROM alert WHERE center_code = :c AND rule = 'storage'",
                         c=CENTER_CODE)

    def heartbeat_drops(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT device_id FROM device_drop WHERE reason = :r", r=REASON_HEARTBEAT)]

    def devices_online(self) -> list[tuple[str, bool]]:
        return [(r[0], bool(r[1])) for r in self.rows("SELECT device_id, online FROM device WHERE center_code = :c",
                                                      c=CENTER_CODE)]


def edge_ratings(data_dir: Path) -> list[tuple[str, int]]:
    """(rating_id, score) of every rating a pad sent that the edge stored (one per ticket)."""
    db = sqlite3.connect(f"file:{data_dir / 'edge.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT rating_id, score FROM ratings").fetchall()
    finally:
        db.close()


def test_a_full_disk_a_county_broker_restart_and_a_paused_fleet_lose_nothing(tmp_path, broker_factory, data_disk,
                                                                             fleet_database_url) -> None:
    county_broker = broker_factory("county")
    center_broker = broker_factory("center")
    fleet_port, edge_port = free_port(), free_port()
    fleet = Program(
        ["-m", "fleet", "--database-url", fleet_database_url, "--broker", f"mqtt://127.0.0.1:{county_broker.port}",
         "--port", str(fleet_port), "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT_S)],
        tmp_path / "fleet.log", f"http://127.0.0.1:{fleet_port}/healthz",
        env={"FLEET_SWEEP_INTERVAL_S": "1", "FLEET_ALERT_SWEEP_INTERVAL_S": "1"}).start()
    # Calls are spoken (real espeak-ng pieces; the player is `true`: no sound card here) into data/voice.
    config = write_edge_config(tmp_path / "edge", center_broker.port, county_broker.port, edge_port, printer="none",
                               voice='enabled = true\nkiosk = false\nplayer = ["true"]', storage="min_free_mb = 1")
    edge = Program(["-m", "edge_agent", "--config", str(config)], tmp_path / "edge.log",
                   f"http://127.0.0.1:{edge_port}/api/health").start()
    stored = FleetDatabase(fleet_database_url)
    with LoopThread() as loop:
        devices = SimulatedCenter(CENTER_CODE, "127.0.0.1", center_broker.port, [1, 2, 3], tmp_path / "devices",
                                  health_interval_s=DEVICE_HEALTH_EVERY_S, backoff_max_s=2, log=lambda *a: None)
        loop.run(devices.start())
        loop.run(devices.wait_online(30))
        center = Center(f"http://127.0.0.1:{edge_port}", devices, loop)
        try:
            run_the_faults(center, data_disk, county_broker, fleet, edge, stored)
        finally:
            center.close()
            loop.run(devices.stop())
            edge.stop()
            fleet.stop()
            stored.engine.dispose()


def heartbeats(recorder: Recorder) -> dict[str, int]:
    """How many heartbeats each device has sent through the county broker since the recorder subscribed."""
    counts: dict[str, int] = {}
    for topic, _payload, _retained in list(recorder.messages):
        counts[topic] = counts.get(topic, 0) + 1
    return counts


def run_the_faults(center: Center, data_disk: SmallDisk, county_broker, fleet: Program, edge: Program,
                   stored: FleetDatabase) -> None:
    # A normal morning: tickets for both services, three windows serving, every resident rating.
    for service in "ABABAB":
        center.take_ticket(service).raise_for_status()
    served = [center.serve(1), center.serve(3), center.serve(1)]
    wait_until(lambda: sorted(stored.issued_tickets()) == sorted(center.issued), 60, "the morning at the county")
    wait_until(lambda: len(stored.devices_online()) == 6 and all(o for _d, o in stored.devices_online()), 60,
               "the center's six devices online at the county")

    # Window 2 finishes a resident, whose pad asks for the rating: then the edge's disk fills up.
    served.append(center.call_and_finish(2))
    data_disk.fill()
    center.rate(2)  # pressed while the edge cannot store it: the pad keeps it until the edge acknowledges it
    for service in "AB":
        assert center.take_ticket(service).status_code == 503
    assert center.press(1, "next").status_code == 503
    storage = wait_until(lambda: (s := center.health()["storage"])["state"] == "disk_full" and s, 30,
                         "the edge's health to name the full disk")
    assert storage["ok"] is False and storage["free_bytes"] == 0
    wait_until(lambda: [(s, m) for s, m, _sev in stored.storage_alerts() if s == "open"]
               == [("open", "边缘网关存储空间已满")], 60, "the fleet's alert naming the edge's full disk")

    # The county broker restarts meanwhile (no persistence: whatever it held for the fleet is gone).
    county_broker.stop()
    assert center.take_ticket("A").status_code == 503
    county_broker.start()

    # The disk is freed; nothing is restarted.
    data_disk.free()
    wait_until(lambda: center.health()["storage"]["state"] == "ok", 30, "the edge's storage to recover")

    # The fleet stops (SIGSTOP) while the center goes on: tickets, calls, ratings, the devices' heartbeats.
    device_health = Recorder(county_broker.port, topics.subscription(topics.DEVICE_HEALTH))
    fleet.process.send_signal(signal.SIGSTOP)
    try:
        for service in "ABABABABAB":
            center.take_ticket(service).raise_for_status()
        served += [center.serve(window) for window in (1, 2, 3, 1, 2, 3, 1, 2, 3, 1)]
        # Longer than a heartbeat time-out has passed for the fleet: every device sent that many heartbeats since.
        beats = HEARTBEAT_TIMEOUT_S // DEVICE_HEALTH_EVERY_S + 2
        wait_until(lambda: len(counts := heartbeats(device_health)) == 6 and min(counts.values()) >= beats, 120,
                   "every device's heartbeats, for longer than the fleet's time-out, while the fleet is stopped")
        # The rating pressed during the full disk is stored at the edge by now (the pad sent it again).
        wait_until(lambda: len([r for r in edge_ratings(data_disk.path) if r[1] > 0]) == len(served), 60,
                   "every rating, the one pressed during the full disk too, stored at the edge")
    finally:
        fleet.process.send_signal(signal.SIGCONT)
        device_health.close()

    # Afterwards: everything at the county, once.
    wait_until(lambda: sorted(stored.issued_tickets()) == sorted(center.issued), 120, "every ticket at the county")
    at_edge = sorted(rating_id for rating_id, _score in edge_ratings(data_disk.path))
    wait_until(lambda: sorted(stored.pad_rating_ids()) == at_edge, 120, "every pad's rating at the county")
    assert len(set(center.issued)) == len(center.issued) == 6 + 10
    assert len(stored.issued_tickets()) == len(center.issued), "a ticket stored twice at the county"
    assert len(at_edge) == len(served), "a resident's rating lost at the edge"  # the county's list equals it: once
    wait_until(lambda: center.health()["county_uplink"]["outbox"] == 0, 60, "the edge's outbox to drain")

    # Every refusal during the fault was a 503 that says why; nothing failed in any other way.
    refused = [(what, detail) for what, status, detail in center.answers if status != 200]
    assert [status for _what, status, _detail in center.answers if status != 200] == [503] * 4
    for what, detail in refused:
        assert REFUSALS[what] in detail, (what, detail)

    # The disk's alert closed by itself; no device that kept talking was dropped by the paused fleet.
    wait_until(lambda: [s for s, _m, _sev in stored.storage_alerts()] == ["resolved"], 60,
               "the fleet's disk alert to resolve")
    assert stored.heartbeat_drops() == []
    assert all(online for _device, online in stored.devices_online())
    assert edge.process.poll() is None and fleet.process.poll() is None

    # The voice cache: every call was a new number, and yet it holds only pieces and the call being played.
    voice_dir = data_disk.path / "voice"
    calls = [f for f in voice_dir.rglob("*.wav") if f.name == voice.CALL_FILE]
    size = sum(f.stat().st_size for f in voice_dir.rglob("*") if f.is_file())
    assert len(calls) == 1 and size < VOICE_CACHE_LIMIT, (len(calls), size)
