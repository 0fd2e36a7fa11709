"""Nothing is lost between a center and the county, whatever happens in between.

The county broker is down while the center keeps issuing tickets; the edge
agent is SIGKILLed in the middle of a burst and restarted; then the county
comes back. The fleet must end up with exactly one event per ticket the
center issued: none lost, none twice. Real Mosquitto, the real programs.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy

from protocol import topics
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.processes import Program
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

EVENTS = 1000
BURST = 400  # tickets asked for at once, 8 at a time; the agent is SIGKILLed after the first 50


_clients = threading.local()


def take_ticket(base: str) -> str | None:
    if not hasattr(_clients, "client"):
        _clients.client = httpx.Client(timeout=10)  # one connection per thread, as a kiosk keeps its own
    try:
        return _clients.client.post(f"{base}/api/tickets", json={"service": "A"}).json()["number"]
    except (httpx.HTTPError, KeyError, ValueError):
        return None  # the agent was killed under this request: it may or may not have been issued


def edge_tickets(db) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT number FROM tickets ORDER BY id")]


def unforwarded_issued_events(db) -> list[str]:
    """The tickets whose `issued` event waits in the edge's outbox (rows leave it only on the county's PUBACK)."""
    ticket_events = topics.build(topics.TICKET_EVENT, center=CENTER_CODE)
    with sqlite3.connect(db) as conn:
        payloads = [row[0] for row in conn.execute("SELECT payload FROM outbox WHERE topic = ?", (ticket_events,))]
    return [event["ticket"] for event in map(json.loads, payloads) if event["kind"] == "issued"]


def fleet_issued_events(engine) -> list[str]:
    with engine.connect() as conn:
        return [row[0] for row in conn.exec_driver_sql("SELECT ticket FROM ticketevent WHERE kind = 'issued'")]


def test_a_thousand_events_survive_a_county_outage_and_a_killed_agent(tmp_path, broker_factory, fleet_database_url):
    county = broker_factory("county", persistent=True)  # as a county runs it: sessions survive a restart
    center = broker_factory("center")
    fleet_port, edge_port = free_port(), free_port()
    fleet_db = sqlalchemy.create_engine(fleet_database_url)
    fleet = Program(["-m", "fleet", "--database-url", fleet_database_url, "--broker",
                     f"mqtt://127.0.0.1:{county.port}", "--port", str(fleet_port)],
                    tmp_path / "fleet.log", f"http://127.0.0.1:{fleet_port}/healthz").start()
    config = write_edge_config(tmp_path / "edge", center.port, county.port, edge_port, printer="none")
    edge_db = tmp_path / "edge" / "data" / "edge.sqlite3"
    edge = Program(["-m", "edge_agent", "--config", str(config)], tmp_path / "edge.log",
                   f"http://127.0.0.1:{edge_port}/api/health")
    base = f"http://127.0.0.1:{edge_port}"
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{fleet_port}/healthz").json()["ingest"] == "connected",
                   what="the fleet subscribed on the county broker")
        edge.start()
        county.stop()  # the village network is down

        first = [take_ticket(base) for _ in range(EVENTS // 2)]
        assert None not in first
        with ThreadPoolExecutor(8) as pool:
            burst = [pool.submit(take_ticket, base) for _ in range(BURST)]
            wait_until(lambda: sum(f.done() for f in burst) >= 50, what="the burst under way")
            answered_before_kill = [f.result() for f in burst if f.done()]
            edge.stop(signal.SIGKILL)  # power cut in the middle of the burst
        assert edge.process.returncode == -signal.SIGKILL
        answered = [f.result() for f in burst if f.result()]
        # The database as the kill left it, before the agent starts again. The kill came mid-burst: tickets
        # were answered before it, the burst had not ended (not all of it was issued), and nothing issued
        # had reached the county (it is down): every event still waited in the outbox.
        issued = edge_tickets(edge_db)
        assert len(answered_before_kill) >= 50 and None not in answered_before_kill
        assert len(issued) < len(first) + BURST, "the kill came after the burst: nothing was proven"
        assert sorted(unforwarded_issued_events(edge_db)) == sorted(issued)
        assert set(first + answered) <= set(issued)  # every ticket a resident got is still there
        edge.start()
        assert edge_tickets(edge_db) == issued  # the restart issued nothing of its own, nor lost anything
        while len(issued) < EVENTS:
            assert take_ticket(base) is not None
            issued = edge_tickets(edge_db)
        assert len(issued) == EVENTS and len(set(issued)) == EVENTS  # never a duplicate number

        county.start()  # the network is back
        wait_until(lambda: len(fleet_issued_events(fleet_db)) >= EVENTS, 300, "all events at the county")
        wait_until(lambda: httpx.get(f"{base}/api/health").json()["county_uplink"]["outbox"] == 0,
                   what="the outbox drained")
        at_county = fleet_issued_events(fleet_db)
        assert sorted(at_county) == sorted(issued)  # exactly those events: none lost, none twice
    finally:
        edge.stop()
        fleet.stop()
        fleet_db.dispose()
