"""The ingest's inbox is bounded: a backlog waits at the broker, not in the fleet's memory, and none is lost.

After an outage every edge forwards its outbox at once (bench/fleet_catchup.py: a province's day of events).
paho acknowledges a QoS 1 message as soon as the callback has queued it, so with an unbounded inbox the
broker poured the whole backlog into the fleet's memory while the writer stored a few thousand a second.
Now a full inbox holds the network thread back: the broker keeps the rest (max_queued_messages) until the
writer has room.
"""

from __future__ import annotations

import threading

import pytest
from fleet_testkit import CENTER, wait_for
from sqlmodel import Session, func, select

import fleet.ingest as ingest_module
from fleet.ingest import Ingest
from fleet.models import TicketEvent
from protocol import topics

pytestmark = pytest.mark.broker

LIMIT = 40
EVENTS = 400


def ticket_event(n: int) -> dict:
    return {"v": 1, "event_id": f"{CENTER}-20260105-{n:04d}", "kind": "issued", "ticket": f"A{n:03d}",
            "service": "shebao", "ts": 1767576000.0 + n}


def stored(engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(TicketEvent)).one()


def test_a_backlog_waits_at_the_broker_while_the_writer_is_behind(fleet_settings, engine, county_broker,
                                                                  edge_factory, monkeypatch) -> None:
    monkeypatch.setattr(ingest_module, "INBOX_LIMIT", LIMIT, raising=False)
    store = ingest_module.handle_batch
    writer_may_go_on = threading.Event()
    stalled_batches = []

    def stalled(engine, batch, *args, **kwargs):  # a slow database: the writer holds its first batch
        if not writer_may_go_on.is_set():
            stalled_batches.append(len(batch))
            writer_may_go_on.wait(60)
        return store(engine, batch, *args, **kwargs)

    monkeypatch.setattr(ingest_module, "handle_batch", stalled)
    settings = fleet_settings.model_copy(update={"ingest_enabled": True, "broker_port": county_broker.port})
    ingest = Ingest(settings, engine)
    ingest.start()
    try:
        wait_for(lambda: ingest.connected, "the ingest to connect")
        edge = edge_factory(county_broker.port)
        for n in range(EVENTS):  # each one PUBACKed by the broker: it has them all
            edge.send(topics.TICKET_EVENT, ticket_event(n), center=CENTER)
        wait_for(lambda: ingest._inbox.full(), "the inbox to fill")
        assert ingest._inbox.qsize() == LIMIT  # the rest of the backlog stays at the broker
        assert sum(stalled_batches) < EVENTS // 2
        writer_may_go_on.set()
        wait_for(lambda: stored(engine) == EVENTS, "every event stored")
    finally:
        writer_may_go_on.set()
        ingest.stop()
