"""Ingest against a real Mosquitto: what an edge agent publishes lands in the database."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from fleet_testkit import CENTER, DISPLAY, OTHER_CENTER, PAD, wait_for
from sqlmodel import Session, func, select

from fleet.ingest import Ingest, subscriptions, sweep_silent_devices
from fleet.models import Center, Device, RatingEvent, TicketEvent, utcnow
from fleet.presence import REASON_HEARTBEAT, REASON_WILL
from protocol import messages, topics

pytestmark = pytest.mark.broker


@pytest.fixture
def start_ingest(fleet_settings, engine, county_broker):
    started: list[Ingest] = []

    def start(clock: Callable[[], datetime] = utcnow, **overrides) -> Ingest:
        settings = fleet_settings.model_copy(
            update={"ingest_enabled": True, "broker_port": county_broker.port, **overrides})
        ingest = Ingest(settings, engine, clock=clock)
        ingest.start()
        started.append(ingest)
        wait_for(lambda: ingest.connected, "the ingest to connect")
        return ingest

    yield start
    for ingest in started:
        ingest.stop()


def device(engine, device_id: str) -> Device | None:
    with Session(engine) as session:
        return session.get(Device, device_id)


def center(engine, code: str = CENTER) -> Center | None:
    with Session(engine) as session:
        return session.get(Center, code)


def count(engine, model) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_subscriptions_share_streams_but_not_retained_presence() -> None:
    filters = subscriptions("fleet-ingest")
    assert topics.subscription(topics.DEVICE_PRESENCE) in filters
    assert topics.subscription(topics.EDGE_PRESENCE) in filters
    for name in (topics.DEVICE_HEALTH, topics.TICKET_EVENT, topics.RATING_EVENT):
        assert topics.shared("fleet-ingest", topics.subscription(name)) in filters


def test_births_register_the_center_and_its_devices(start_ingest, engine, county_broker, edge_factory) -> None:
    start_ingest()
    edge = edge_factory(county_broker.port)
    edge.edge_birth(session=3)
    edge.birth(DISPLAY, "queue_display", session=1, window=3)
    edge.birth(PAD, "rating_pad", session=2, window=3)
    edge.health(PAD, session=2, uptime_s=42)

    pad = wait_for(lambda: (d := device(engine, PAD)) and d.uptime_s == 42 and d, "the pad's heartbeat")
    assert pad.online and pad.role == "rating_pad" and pad.window == 3 and pad.center_code == CENTER
    display = device(engine, DISPLAY)
    assert display.online and display.role == "queue_display" and display.fw == "1.0.0"
    known = wait_for(lambda: (c := center(engine)) and c.edge_online and c, "the edge birth")
    assert (known.county_code, known.town_code, known.edge_session) == ("445202", "445202101", 3)


def test_retained_presence_is_read_at_start_up(start_ingest, engine, county_broker, edge_factory) -> None:
    edge = edge_factory(county_broker.port)
    edge.edge_birth(center=OTHER_CENTER)
    edge.birth(DISPLAY, "queue_display", session=4, window=1, center=OTHER_CENTER)

    start_ingest()  # subscribes after the (retained) births were published

    display = wait_for(lambda: device(engine, DISPLAY), "the retained birth")
    assert display.online and display.center_code == OTHER_CENTER
    wait_for(lambda: (c := center(engine, OTHER_CENTER)) and c.edge_online, "the retained edge birth")


def test_wills_and_stale_wills(start_ingest, engine, county_broker, edge_factory) -> None:
    start_ingest()
    edge = edge_factory(county_broker.port)
    edge.birth(DISPLAY, "queue_display", session=1, window=2)
    edge.birth(DISPLAY, "queue_display", session=2, window=2)
    edge.will(DISPLAY, "queue_display", session=1)  # the old connection's will, relayed late
    edge.birth(PAD, "rating_pad", session=1, window=2)  # published after the stale will: a marker

    wait_for(lambda: device(engine, PAD), "the marker birth")
    display = device(engine, DISPLAY)
    assert display.online and display.session == 2

    edge.will(DISPLAY, "queue_display", session=2)
    display = wait_for(lambda: (d := device(engine, DISPLAY)) and not d.online and d, "the will")
    assert display.offline_reason == REASON_WILL


def test_events_are_stored_once(start_ingest, engine, county_broker, edge_factory) -> None:
    start_ingest()
    edge = edge_factory(county_broker.port)
    now = time.time()
    edge.ticket("t-1", now)
    edge.ticket("t-1", now)  # redelivered by the edge's store-and-forward
    edge.rating("r-1", now, score=1)
    edge.rating("r-1", now, score=1)
    edge.ticket("t-2", now, kind="called")

    wait_for(lambda: count(engine, TicketEvent) == 2, "both tickets")
    wait_for(lambda: count(engine, RatingEvent) == 1, "the rating")
    with Session(engine) as session:
        events = session.exec(select(TicketEvent).order_by(TicketEvent.event_id)).all()
        assert [(e.event_id, e.kind, e.center_code, e.service_name) for e in events] == [
            ("t-1", "issued", CENTER, "社保业务"), ("t-2", "called", CENTER, "社保业务")]
        rating = session.exec(select(RatingEvent)).one()
        assert (rating.score, rating.window, rating.staff_no, rating.ticket) == (1, 3, "0007", "A001")
    assert center(engine) is not None  # any message of a center registers it


def test_malformed_messages_are_logged_and_dropped(start_ingest, engine, county_broker, edge_factory,
                                                   caplog) -> None:
    caplog.set_level(logging.WARNING, logger="fleet.ingest")
    start_ingest()
    edge = edge_factory(county_broker.port)
    presence_topic = topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=DISPLAY)
    bad_center_topic = topics.subscription(topics.TICKET_EVENT).replace("+", "not-a-center")
    bad_device_topic = topics.subscription(topics.DEVICE_HEALTH, center=CENTER).replace("+", "printer-7")

    edge.raw(presence_topic, b"{not json", retain=True)
    edge.raw(presence_topic, b'{"v": 1, "state": "online", "session": 1}')  # a birth without role, board...
    edge.raw(bad_center_topic, b'{"v": 1}')
    edge.raw(bad_device_topic, b'{"v": 1, "session": 1, "uptime_s": 1}')
    edge.ticket("t-after", time.time())

    wait_for(lambda: count(engine, TicketEvent) == 1, "the valid event after the malformed ones")
    assert device(engine, DISPLAY) is None
    dropped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dropped message")]
    assert len(dropped) == 4
    assert "not JSON" in dropped[0]
    assert "missing field 'role'" in dropped[1]
    assert "center code must be 12 digits" in dropped[2]
    assert "device id must look like" in dropped[3]


class SteppedClock:
    """The ingest's clock, moved only by the test: its sweep thread runs on, but time passes when we say."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_silent_device_times_out(start_ingest, engine, county_broker, edge_factory) -> None:
    clock = SteppedClock()
    ingest = start_ingest(clock=clock)
    timeout = ingest.settings.heartbeat_timeout_s
    clock.advance(timeout)  # the ingest has listened for a whole timeout: silence now means something
    edge = edge_factory(county_broker.port)
    edge.edge_birth()
    edge.birth(DISPLAY, "queue_display", session=1, window=1)  # ...and then nothing: a power cut
    wait_for(lambda: (d := device(engine, DISPLAY)) and d.online and center(engine).edge_online, "the births")

    clock.advance(timeout - 1)
    assert ingest.sweep() == []  # silent, but not yet for a whole timeout
    assert device(engine, DISPLAY).online

    clock.advance(2)  # the sweep thread sees it at its next round
    display = wait_for(lambda: (d := device(engine, DISPLAY)) and not d.online and d, "the heartbeat timeout")
    assert display.offline_reason == REASON_HEARTBEAT

    edge.health(DISPLAY, session=1)  # it was only the uplink: the same connection talks again
    wait_for(lambda: device(engine, DISPLAY).online, "the device back online")


def test_devices_behind_an_offline_edge_are_not_timed_out(start_ingest, engine, county_broker,
                                                          edge_factory) -> None:
    start_ingest()
    edge = edge_factory(county_broker.port)
    edge.edge_birth(session=2)
    edge.birth(DISPLAY, "queue_display", session=1, window=1)
    edge.edge_will(session=2)  # the county broker lost the edge: its will
    wait_for(lambda: (c := center(engine)) and c.edge_session == 2 and not c.edge_online, "the edge's will")

    an_hour_later = utcnow() + timedelta(hours=1)
    assert sweep_silent_devices(engine, an_hour_later, timeout=90) == []
    assert device(engine, DISPLAY).online  # as last reported; the API and dashboard say 未知

    edge.edge_birth(session=3)  # back: now silence counts
    wait_for(lambda: center(engine).edge_online, "the edge's birth")
    assert sweep_silent_devices(engine, an_hour_later, timeout=90) == [DISPLAY]


def test_ingest_survives_a_broker_restart(start_ingest, engine, county_broker, edge_factory) -> None:
    ingest = start_ingest()
    assert ingest.connects == 1
    county_broker.restart()
    wait_for(lambda: ingest.connects == 2 and ingest.connected, "the ingest to reconnect", timeout=20)
    edge = edge_factory(county_broker.port)
    edge.ticket("t-after-restart", time.time())
    wait_for(lambda: count(engine, TicketEvent) == 1, "an event after the restart")


def test_a_batch_stores_everything_once_and_a_conflict_costs_only_itself(engine) -> None:
    from fleet.ingest import DROPPED, DUPLICATE, STORED, handle_batch

    center = "445202101001"
    topic = topics.build(topics.TICKET_EVENT, center=center)

    def event(n: int) -> bytes:
        return messages.encode("ticket_event", messages.make(
            "ticket_event", event_id=f"e-{n}", kind="issued", ticket=f"A{n:03d}", service="A", ts=1_795_400_000 + n))

    first = handle_batch(engine, [(topic, event(1)), (topic, event(2))])
    assert first == [STORED, STORED]
    # A re-sent event, a malformed message and a new event in one batch.
    second = handle_batch(engine, [(topic, event(2)), (topic, b"not json"), (topic, event(3))])
    assert second == [DUPLICATE, DROPPED, STORED]
    with Session(engine) as session:
        stored = sorted(e.event_id for e in session.exec(select(TicketEvent)).all())
    assert stored == ["e-1", "e-2", "e-3"]


def ticket_event(event_id: str) -> tuple[str, bytes]:
    return (topics.build(topics.TICKET_EVENT, center=CENTER),
            messages.encode("ticket_event", messages.make("ticket_event", event_id=event_id, kind="issued",
                                                          ticket="A001", service="A", ts=1_795_400_000)))


def heartbeat(device_id: str, free_heap: int) -> tuple[str, bytes]:
    return (topics.build(topics.DEVICE_HEALTH, center=CENTER, device=device_id),
            messages.encode("health", messages.make("health", session=1, uptime_s=60, free_heap=free_heap)))


REFUSED_HEAP = 666  # a valid heartbeat value that refuse_heap makes the database refuse


def refuse_heap(engine) -> None:
    """The database refuses to store a device with free_heap REFUSED_HEAP, as it would a value out of its
    column's range (the contract keeps such values out; this stands for whatever else a database refuses)."""
    table = Device.__tablename__
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            for event in ("INSERT", "UPDATE"):
                connection.exec_driver_sql(
                    f"CREATE TRIGGER refuse_heap_{event.lower()} BEFORE {event} ON {table} "
                    f"WHEN NEW.free_heap = {REFUSED_HEAP} BEGIN SELECT RAISE(ABORT, 'value out of range'); END")
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse_heap() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.free_heap = {REFUSED_HEAP} THEN "
                "RAISE EXCEPTION 'value out of range' USING ERRCODE = 'numeric_value_out_of_range'; END IF; "
                "RETURN NEW; END $$")
            connection.exec_driver_sql(f"CREATE TRIGGER refuse_heap BEFORE INSERT OR UPDATE ON {table} "
                                       "FOR EACH ROW EXECUTE FUNCTION refuse_heap()")


def health_samples(engine) -> list[tuple[str, int | None]]:
    from fleet.health_history import HealthSample

    with Session(engine) as session:
        return [(s.device_id, s.free_heap) for s in session.exec(select(HealthSample).order_by(HealthSample.id))]


def not_stored_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()]


@pytest.mark.parametrize("devices_known", [True, False], ids=["known-devices", "new-devices"])
def test_a_message_the_database_refuses_costs_only_itself_in_a_batch(engine, caplog, devices_known) -> None:
    from fleet.ingest import APPLIED, ERROR, STORED, handle_batch

    caplog.set_level(logging.WARNING, logger="fleet.ingest")
    if devices_known:  # their heartbeats take the batch's fast path, without a savepoint each
        assert handle_batch(engine, [heartbeat(DISPLAY, 1000), heartbeat(PAD, 1000)]) == [APPLIED, APPLIED]
    before = health_samples(engine)
    refuse_heap(engine)
    bad = heartbeat(DISPLAY, REFUSED_HEAP)

    outcomes = handle_batch(engine, [ticket_event("e-1"), bad, ticket_event("e-2"), heartbeat(PAD, 2000)])

    assert outcomes == [STORED, ERROR, STORED, APPLIED]
    with Session(engine) as session:
        assert sorted(e.event_id for e in session.exec(select(TicketEvent))) == ["e-1", "e-2"]
        assert session.get(Device, PAD).free_heap == 2000
        display = session.get(Device, DISPLAY)
        assert display is None or display.free_heap == 1000
    assert health_samples(engine) == before + [(PAD, 2000)]
    [line] = not_stored_lines(caplog)
    assert repr(bad[0]) in line


def test_a_nul_character_is_dropped_by_the_contract_and_the_rest_of_the_batch_stored(engine, caplog) -> None:
    """PostgreSQL cannot store NUL characters in text, so the contract refuses them before any database."""
    from fleet.ingest import APPLIED, DROPPED, STORED, handle_batch

    assert handle_batch(engine, [heartbeat(PAD, 1000)]) == [APPLIED]
    topic_text, _ = ticket_event("e-nul")
    with_nul = (topic_text, json.dumps({"v": 1, "event_id": "e-nul", "kind": "issued", "ticket": "A\u0000",
                                        "service": "A", "ts": 1_795_400_000}).encode())

    outcomes = handle_batch(engine, [ticket_event("e-1"), with_nul, heartbeat(PAD, 2000), ticket_event("e-2")])

    assert outcomes == [STORED, DROPPED, APPLIED, STORED]
    with Session(engine) as session:
        assert sorted(e.event_id for e in session.exec(select(TicketEvent))) == ["e-1", "e-2"]
        assert session.get(Device, PAD).free_heap == 2000


def test_storing_one_by_one_drops_only_the_message_the_database_refuses(engine, caplog) -> None:
    """What handle_batch falls back to when a batch cannot be committed at all."""
    from fleet.ingest import APPLIED, ERROR, STORED, handle_message

    caplog.set_level(logging.WARNING, logger="fleet.ingest")
    refuse_heap(engine)
    bad = heartbeat(DISPLAY, REFUSED_HEAP)
    batch = [ticket_event("e-1"), bad, ticket_event("e-2"), heartbeat(PAD, 2000)]

    assert [handle_message(engine, topic_text, raw) for topic_text, raw in batch] == [STORED, ERROR, STORED, APPLIED]
    with Session(engine) as session:
        assert sorted(e.event_id for e in session.exec(select(TicketEvent))) == ["e-1", "e-2"]
        assert session.get(Device, PAD).free_heap == 2000
    assert health_samples(engine) == [(PAD, 2000)]
    [line] = not_stored_lines(caplog)
    assert repr(bad[0]) in line


def refuse_event(engine, event_id: str) -> None:
    """A constraint of the database other than the events' unique key (as NOT NULL or a foreign key would)
    refuses to store the event `event_id`."""
    table = TicketEvent.__tablename__
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse_event BEFORE INSERT ON {table} WHEN NEW.event_id = '{event_id}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by a constraint'); END")
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.event_id = '{event_id}' THEN "
                "RAISE EXCEPTION 'refused by a constraint' USING ERRCODE = 'not_null_violation'; END IF; "
                "RETURN NEW; END $$")
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse_event BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_event()")


def test_only_an_event_that_is_stored_is_acknowledged_as_a_duplicate(engine, fleet_settings, caplog) -> None:
    from fleet.acks import AckBatcher
    from fleet.ingest import DUPLICATE, ERROR, STORED, handle_batch, handle_message

    caplog.set_level(logging.WARNING, logger="fleet.ingest")
    assert handle_batch(engine, [ticket_event("e-0")]) == [STORED]
    refuse_event(engine, "e-refused")
    ingest = Ingest(fleet_settings, engine)  # not started: store_batch is what its writer thread calls
    acked: list[str] = []
    ingest.acks = AckBatcher(lambda _topic, raw: acked.extend(messages.decode("event_ack", raw)["event_ids"]),
                             lambda _center: bytes(32))  # the center's edge key

    ingest.store_batch([ticket_event("e-0"), ticket_event("e-refused"), ticket_event("e-1"), ticket_event("e-1")])
    ingest.acks.flush()

    assert sorted(acked) == ["e-0", "e-1", "e-1"]  # never e-refused: its edge keeps it and sends it again
    counts = ingest.message_counts.snapshot()
    assert (counts[(topics.TICKET_EVENT, DUPLICATE)], counts[(topics.TICKET_EVENT, ERROR)],
            counts[(topics.TICKET_EVENT, STORED)]) == (2, 1, 1)
    assert handle_message(engine, *ticket_event("e-refused")) == ERROR  # also when stored on its own
    with Session(engine) as session:
        assert sorted(e.event_id for e in session.exec(select(TicketEvent))) == ["e-0", "e-1"]
    lines = not_stored_lines(caplog)
    assert len(lines) == 2 and all("refused by a constraint" in line for line in lines)


def nested_payload(depth: int = 5000) -> bytes:
    """Valid JSON, well under the size limit, nested deeper than CPython's json parser can recurse."""
    return b'{"v": 1, "event_id": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}"


def oversized_event(event_id: str) -> tuple[str, bytes]:
    """A valid ticket event made bigger than messages.MAX_PAYLOAD_BYTES by a field the contract keeps."""
    topic_text, raw = ticket_event(event_id)
    payload = json.loads(raw)
    payload["padding"] = "x" * messages.MAX_PAYLOAD_BYTES
    return topic_text, json.dumps(payload).encode()


def test_a_nested_or_oversized_payload_costs_only_itself_in_a_batch(engine, fleet_settings, caplog) -> None:
    """Deep nesting once raised RecursionError out of handle_batch and failed all 100 messages of the batch;
    an oversized payload was stored. Each is now a protocol error: dropped, counted, logged."""
    from fleet.ingest import DROPPED, STORED

    caplog.set_level(logging.WARNING, logger="fleet.ingest")
    topic_text, _ = ticket_event("deep")
    ingest = Ingest(fleet_settings, engine)  # not started: store_batch is what its writer thread calls

    ingest.store_batch([ticket_event("e-1"), (topic_text, nested_payload()), ticket_event("e-2"),
                        oversized_event("e-big"), ticket_event("e-3")])

    with Session(engine) as session:
        assert sorted(e.event_id for e in session.exec(select(TicketEvent))) == ["e-1", "e-2", "e-3"]
    counts = ingest.message_counts.snapshot()
    assert (counts[(topics.TICKET_EVENT, STORED)], counts[(topics.TICKET_EVENT, DROPPED)]) == (3, 2)
    dropped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dropped message")]
    assert len(dropped) == 2
    assert "too deeply nested" in dropped[0]
    assert f"more than {messages.MAX_PAYLOAD_BYTES} bytes" in dropped[1]


def test_nested_and_oversized_payloads_through_the_broker(start_ingest, engine, county_broker,
                                                          edge_factory) -> None:
    ingest = start_ingest()
    edge = edge_factory(county_broker.port)
    topic_text, _ = ticket_event("deep")
    now = time.time()

    edge.ticket("t-1", now)
    edge.raw(topic_text, nested_payload())
    edge.ticket("t-2", now)
    edge.raw(*oversized_event("t-big"))
    edge.ticket("t-3", now)

    wait_for(lambda: count(engine, TicketEvent) == 3, "the three valid events")
    from fleet.ingest import DROPPED, STORED

    counts = wait_for(lambda: (c := ingest.message_counts.snapshot()).get((topics.TICKET_EVENT, STORED)) == 3
                      and c, "the three valid events counted")
    assert counts[(topics.TICKET_EVENT, DROPPED)] == 2
    with Session(engine) as session:
        assert sorted(e.event_id for e in session.exec(select(TicketEvent))) == ["t-1", "t-2", "t-3"]
