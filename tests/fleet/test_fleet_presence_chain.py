"""Presence across the whole chain: the firmware (CPython twin) on a real center Mosquitto, the edge agent
program relaying to a real county Mosquitto, the fleet's ingest storing it.

Two defects of the session counter are shown here end to end: a board whose session file was lost comes back
at session 1 and must be seen online (not dropped as "older" by the edge and the fleet), and a forged birth
with the largest session must not make the edge and the fleet ignore everything the real board says later.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_testkit import wait_for
from sqlmodel import Session

from firmware.lib import config as config_file
from firmware.lib.runtime import DeviceRuntime
from firmware.queue_display.app import QueueDisplayApp
from firmware.sim.hardware import SimPanel
from fleet.ingest import SUSPECT, Ingest
from fleet.models import Device
from fleet.presence import REASON_WILL
from protocol import identity, messages, topics
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.loop import LoopThread
from tests.support.mqtt import Recorder
from tests.support.processes import Program
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

MAC = "02:00:00:00:01:03"
DEVICE = identity.device_id_from_mac(MAC)
PRESENCE = topics.build(topics.DEVICE_PRESENCE, center=CENTER_CODE, device=DEVICE)


class Board:
    """One queue display running the real firmware runtime on the test's event loop thread."""

    def __init__(self, loop: LoopThread, port: int, state_dir: Path) -> None:
        self.loop = loop
        self.port = port
        self.state_dir = state_dir
        self.runtime: DeviceRuntime | None = None
        self.task: Any = None

    def boot(self) -> DeviceRuntime:
        """Power on: a new runtime (as after a reset) on the same state folder (the board's flash)."""
        cfg = config_file.from_dict({"center": CENTER_CODE, "window": 3, "role": messages.ROLE_QUEUE_DISPLAY,
                                     "board": "test", "broker": {"host": "127.0.0.1", "port": self.port},
                                     "keepalive_s": 60, "health_interval_s": 0.3, "mac": MAC})
        assert not cfg.errors
        self.runtime = DeviceRuntime(cfg, QueueDisplayApp(3), str(self.state_dir), panel=SimPanel(),
                                     backoff_min_s=0.05, backoff_max_s=0.5, log=None)
        self.task = asyncio.run_coroutine_threadsafe(self.runtime.run(), self.loop.loop)
        wait_for(lambda: self.loop.call(lambda: self.runtime.client.up and self.runtime.presence.birth_sent),
                 "the board to connect and send its birth")
        return self.runtime

    def reconnect(self) -> int:
        """The Wi-Fi drops: the broker publishes the will, the board reconnects with the next session."""
        before = self.session
        self.loop.call(self.runtime.client.abort)
        wait_for(lambda: self.session > before and self.loop.call(lambda: self.runtime.presence.birth_sent),
                 "the board to reconnect")
        return self.session

    def power_cut(self) -> None:
        """The connection dies without DISCONNECT and the board stops: the broker publishes its will."""
        self.loop.call(lambda: self.runtime.client.abort(stop=True))
        self.task.result(10)

    def stop(self) -> None:
        """A clean shutdown: the board publishes its offline itself."""
        if self.task is not None and not self.task.done():
            self.loop.run(self.runtime.stop())
            self.task.result(10)

    @property
    def session(self) -> int:
        return self.loop.call(lambda: self.runtime.session)

    @property
    def boot_id(self) -> str | None:
        return self.loop.call(lambda: getattr(self.runtime.presence, "boot", None))


@pytest.fixture
def chain(tmp_path: Path, broker_factory, fleet_settings, engine) -> Iterator[dict[str, Any]]:
    county_broker = broker_factory("county")
    center_broker = broker_factory("center")
    http_port = free_port()
    config = write_edge_config(tmp_path / "edge", center_broker.port, county_broker.port, http_port, printer="none")
    edge = Program(["-m", "edge_agent", "--config", str(config)], tmp_path / "edge.log",
                   f"http://127.0.0.1:{http_port}/api/health").start()
    settings = fleet_settings.model_copy(update={
        "ingest_enabled": True, "broker_port": county_broker.port,
        "heartbeat_timeout_s": 3600})  # no silence sweep: what the test sees comes from messages only
    ingest = Ingest(settings, engine)
    ingest.start()
    with LoopThread() as loop:
        board = Board(loop, center_broker.port, tmp_path / "board")
        try:
            wait_for(lambda: ingest.connected, "the ingest to connect")
            yield {"board": board, "engine": engine, "ingest": ingest, "edge": edge,
                   "edge_db": tmp_path / "edge" / "data" / "edge.sqlite3",
                   "center_broker": center_broker, "county_broker": county_broker,
                   "edge_health": f"http://127.0.0.1:{http_port}/api/health"}
        finally:
            board.stop()
            ingest.stop()
            edge.stop()


def at_fleet(engine) -> Device | None:
    with Session(engine) as session:
        return session.get(Device, DEVICE)


def at_edge(edge_db: Path) -> dict[str, Any] | None:
    """The edge agent's record of the board (its SQLite store, read as another process would)."""
    with sqlite3.connect(edge_db) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM devices WHERE device_id = ?", (DEVICE,)).fetchone()
    return dict(row) if row else None


def seen(chain: dict[str, Any], online: bool, session: int) -> bool:
    """Both the edge and the fleet hold the board as `online` in `session`."""
    device, edge = at_fleet(chain["engine"]), at_edge(chain["edge_db"])
    return bool(device and edge and device.online is online and device.session == session
                and bool(edge["online"]) is online and edge["session"] == session)


def test_a_board_that_lost_its_session_file_is_seen_online_again(chain) -> None:
    board: Board = chain["board"]
    board.boot()
    board.reconnect()
    board.reconnect()
    assert board.session == 3
    wait_for(lambda: seen(chain, True, 3), "the edge and the fleet to see session 3")

    board.power_cut()
    wait_for(lambda: seen(chain, False, 3), "the will of session 3 at the edge and the fleet")
    # The flash loses the counter (a torn write, a bad sector): the next boot starts again at session 1.
    (board.state_dir / "session").write_bytes(b"\xff\xff\x00garbage")
    board.boot()
    assert board.session == 1
    wait_for(lambda: seen(chain, True, 1), "the rebooted board online at the edge and the fleet")
    device = at_fleet(chain["engine"])
    assert device.boot == board.boot_id and at_edge(chain["edge_db"])["boot"] == board.boot_id

    # Its heartbeats, its own will and its next reconnection are those of the new boot and count.
    uptime = at_fleet(chain["engine"]).uptime_s
    wait_for(lambda: at_fleet(chain["engine"]).uptime_s != uptime or at_fleet(chain["engine"]).last_seen
             > device.last_seen, "a heartbeat of the new boot")
    assert at_fleet(chain["engine"]).online
    board.reconnect()
    wait_for(lambda: seen(chain, True, 2), "the reconnection of the new boot")
    board.power_cut()
    wait_for(lambda: seen(chain, False, 2), "the will of the new boot")
    assert at_fleet(chain["engine"]).offline_reason == REASON_WILL


@pytest.mark.parametrize("path", ["center broker", "county broker"])
def test_a_forged_birth_with_the_largest_session_cannot_freeze_presence(chain, path: str) -> None:
    board: Board = chain["board"]
    board.boot()
    wait_for(lambda: seen(chain, True, 1), "the board online")

    # A copy of the board's own birth (its boot id included), with the largest session the contract allows.
    reader = Recorder(chain["center_broker"].port, PRESENCE)
    forged = messages.decode("presence", wait_for(lambda: reader.on(PRESENCE), "the retained birth")[-1])
    reader.close()
    forged["session"] = messages.INT_MAX
    broker = chain["center_broker"] if path == "center broker" else chain["county_broker"]
    forger = Recorder(broker.port)
    forger.publish(PRESENCE, messages.encode("presence", forged), qos=1, retain=True)
    forger.close()

    # What the real board says afterwards wins: a reconnection, its heartbeats, its will.
    board.reconnect()
    wait_for(lambda: seen(chain, True, 2), "the board's next session at the edge and the fleet")
    last_seen = at_fleet(chain["engine"]).last_seen
    wait_for(lambda: at_fleet(chain["engine"]).last_seen > last_seen, "a heartbeat of session 2")
    board.stop()
    wait_for(lambda: seen(chain, False, 2), "the board's own offline at the edge and the fleet")
    assert at_fleet(chain["engine"]).offline_reason == REASON_WILL

    # The forgery was seen, and counted where it arrived: the edge does not relay it.
    suspect_at_edge = httpx.get(chain["edge_health"]).json()["center_broker"]["suspect_presence"]
    suspect_at_fleet = chain["ingest"].message_counts.snapshot().get((topics.DEVICE_PRESENCE, SUSPECT), 0)
    assert (suspect_at_edge, suspect_at_fleet) == ((1, 0) if path == "center broker" else (0, 1))
