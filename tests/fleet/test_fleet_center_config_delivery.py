"""A center's configuration from the fleet to its edge and back, over real Mosquitto brokers.

The fleet's tables and its ingest (which publishes and records the edge's reports) on one side, a running
edge agent on the other: an edit in the fleet is applied at the edge and its version comes back; a window
removed while it serves finishes its ticket; a roll-back brings the earlier windows and staff back; an edge
that was offline catches up with the retained latest version when it returns.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from edge_agent.agent import EdgeAgent
from edge_agent.config import CenterConfig, load_config
from fleet.auth.principal import CLI_USER
from fleet.catalogue.service import revise_item
from fleet.centerconfig import service
from fleet.centerconfig.service import center_config_job
from fleet.db import write_session
from fleet.devconfig.keys import KeyBox
from fleet.ingest import Ingest
from fleet.registration.service import issue_edge_credentials
from tests.fleet.test_fleet_center_config import CENTER, seed_center
from tests.support.centers import write_edge_config
from tests.support.escpos_decoder import decode
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
BOX = KeyBox(b"k" * 32)


class RunningAgent:
    """The edge agent on its own event loop, as `python -m edge_agent` runs it; `call` runs on that loop."""

    def __init__(self, config: CenterConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.agent = EdgeAgent(config)
        asyncio.run_coroutine_threadsafe(self.agent.start(), self.loop).result(10)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        async def on_loop() -> Any:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(on_loop(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.agent.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def edge_config(tmp_path: Path, center_port: int, county_port: int, edge_key_hex: str) -> CenterConfig:
    path = write_edge_config(tmp_path / "edge", center_port, county_port, free_port())  # printing to a file
    path.write_text(path.read_text(encoding="utf-8").replace(
        f"[brokers.county]\nport = {county_port}\n",
        f'[brokers.county]\nport = {county_port}\nedge_key = "{edge_key_hex}"\n'), encoding="utf-8")
    return load_config(path)


@pytest.fixture
def county(fleet_settings, engine, broker_factory, tmp_path):
    """A county broker, the fleet's ingest on it, a center broker, and the center's edge credentials."""
    county_broker = broker_factory("county")
    center_broker = broker_factory("center")
    with write_session(engine) as session:
        issued = issue_edge_credentials(session, BOX, CLI_USER, CENTER, NOW)
        seed_center(session)
    ingest = Ingest(fleet_settings.model_copy(update={"ingest_enabled": True, "broker_port": county_broker.port}),
                    engine, box=BOX)
    ingest.start()
    wait_until(lambda: ingest.connected, what="the fleet's ingest connected to the county broker")
    try:
        yield ingest, edge_config(tmp_path, center_broker.port, county_broker.port, issued.edge_key_hex)
    finally:
        ingest.stop()


def deliver(engine, ingest: Ingest, change: Callable[[Session], Any] | None = None) -> int:
    """An edit in the fleet as its routes make it: the change, a new version, published at once."""
    with write_session(engine) as session:
        if change is not None:
            change(session)
        state = service.note_config(session, CENTER, NOW)
        assert service.publish(session, ingest, BOX, CENTER, NOW) == service.PUBLISHED
        return state.version


def applied(engine, version: int) -> bool:
    with Session(engine) as session:
        view = service.config_view(session, CENTER)
    return view["status"] == service.APPLIED and view["in_force"] == version


def test_an_edit_in_the_fleet_is_applied_live_and_a_serving_window_removed_finishes_its_ticket(county, engine):
    ingest, config = county
    running = RunningAgent(config)
    agent = running.agent
    try:
        wait_until(agent.uplink.connected.is_set, what="the edge connected to the county broker")
        first = deliver(engine, ingest)
        wait_until(lambda: applied(engine, first), what="the edge applied v1 and the fleet recorded it")
        assert [w.number for w in agent.config.windows] == [3]  # the TOML had windows 1-3
        assert agent.config.staff_member("1003").title == "社保专员"

        # 王芳 signs in at window 3 (with the PIN the county set) and calls A001.
        running.call(agent.sign_in.sign_in, 3, "1003", "246810", "127.0.0.1")
        number = running.call(agent.queue.issue_ticket, "A").ticket.number
        assert running.call(agent.queue.call_next, 3).number == number

        # A new 职务 for her, and window 3 moves to number 1: window 3 is removed while it serves.
        def edit(session: Session) -> None:
            service.save_window(session, CLI_USER, CENTER, 1, "general", ["A"], "", NOW)
            service.delete_window(session, CLI_USER, CENTER, 3, NOW)
            service.save_member(session, CLI_USER, CENTER, "1003", "王芳", "首席代办员", [1], [], NOW)

        second = deliver(engine, ingest, edit)
        wait_until(lambda: applied(engine, second), what="the edge applied v2 without a restart")
        assert agent.config.staff_member("1003").title == "首席代办员"
        assert agent.config.window(3).retiring and agent.config.window(1).services == ("A",)
        running.call(agent.queue.finish, 3)  # the removed window finishes its resident's ticket
        assert running.call(agent.store.query, "SELECT status FROM tickets WHERE number = ?", (number,)) == \
            [("finished",)]
        assert 3 not in [w["number"] for w in running.call(agent.snapshot)["windows"]]

        # Roll back to v1: window 3 and her old 职务 come back, as a new version.
        with write_session(engine) as session:
            third = service.rollback(session, CLI_USER, CENTER, first, NOW).version
            assert service.publish(session, ingest, BOX, CENTER, NOW) == service.PUBLISHED
        wait_until(lambda: applied(engine, third), what="the edge applied the roll-back")
        assert [w.number for w in agent.config.windows] == [3]
        assert agent.config.staff_member("1003").title == "社保专员"
    finally:
        running.stop()


def test_an_edge_that_was_offline_catches_up_and_runs_from_its_last_configuration(county, engine):
    ingest, config = county
    running = RunningAgent(config)
    try:
        wait_until(running.agent.uplink.connected.is_set, what="the edge connected to the county broker")
        first = deliver(engine, ingest)
        wait_until(lambda: applied(engine, first), what="the edge applied v1")
    finally:
        running.stop()

    # While the edge is away the county changes her 职务: published retained, pending.
    second = deliver(engine, ingest, lambda session: service.save_member(
        session, CLI_USER, CENTER, "1003", "王芳", "首席代办员", [], [], NOW))
    with Session(engine) as session:
        assert service.config_view(session, CENTER)["status"] == service.PENDING

    again = RunningAgent(config)
    try:
        # It starts from the configuration it kept (v1), with or without the county ...
        assert again.agent.center_configuration.version >= first
        assert [w.number for w in again.agent.config.windows] == [3]
        # ... and takes the retained v2 once connected.
        wait_until(lambda: applied(engine, second), what="the returning edge applied v2 and reported it")
        assert again.agent.config.staff_member("1003").title == "首席代办员"
    finally:
        again.stop()


def test_an_items_materials_edited_in_the_fleet_reach_the_kiosk_and_its_printed_notice(county, engine):
    ingest, config = county
    running = RunningAgent(config)
    agent = running.agent
    try:
        wait_until(agent.uplink.connected.is_set, what="the edge connected to the county broker")
        first = deliver(engine, ingest)
        wait_until(lambda: applied(engine, first), what="the edge applied v1")

        # The county revises the item's 申请材料 in its catalogue; the periodic job makes and sends the version.
        with write_session(engine) as session:
            revise_item(session, CLI_USER, "SB-001", {"name": "城乡居民养老保险参保登记", "materials": [
                {"name": "居民身份证", "originals": 1, "copies": 1}, {"name": "户口簿", "originals": 1, "copies": 0}]},
                now=NOW)
        center_config_job(engine, ingest, BOX, NOW)
        with Session(engine) as session:
            second = service.config_view(session, CENTER)["version"]
        assert second > first
        wait_until(lambda: applied(engine, second), what="the edge applied the catalogue's change")
        assert [m.name for m in agent.config.item("SB-001").materials] == ["居民身份证", "户口簿"]

        assert asyncio.run_coroutine_threadsafe(agent.print_notice("SB-001"), running.loop).result(10)
        printed = "\n".join(decode((config.data_dir / "printer.bin").read_bytes()).texts())
        assert "户口簿" in printed and "一次性告知书" in printed
    finally:
        running.stop()
