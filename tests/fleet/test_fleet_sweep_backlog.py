"""A paused fleet marks no healthy device offline (issue 19): silence is judged by what the ingest has read.

The fault run stopped the fleet (SIGSTOP) for 60 s. When it continued, its heartbeat sweep ran before the
heartbeats that had piled up meanwhile were read, showed every display and pad offline for about 8 s and
recorded "heartbeat timeout" drops for devices that never went away. Here the ingest's network thread is
paused as SIGSTOP pauses it, against a real Mosquitto that holds what the devices send meanwhile, and the
ingest's clock is driven past a whole heartbeat timeout.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from fleet_testkit import CENTER, DISPLAY, PAD, wait_for
from sqlmodel import Session, col, select

import fleet.ingest as ingest_module
from fleet.alerts.models import DeviceDrop
from fleet.ingest import Ingest
from fleet.models import Device, utcnow
from fleet.presence import REASON_HEARTBEAT
from protocol import topics
from protocol.identity import device_id_from_mac

pytestmark = pytest.mark.broker

SILENT = device_id_from_mac("a4:cf:12:00:00:03")  # a pad whose power was cut: a birth, then nothing


class SteppedClock:
    """The ingest's clock, moved only by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def device(engine, device_id: str) -> Device:
    with Session(engine) as session:
        found = session.get(Device, device_id)
        assert found is not None, device_id
        return found


def drops(engine, device_id: str) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(DeviceDrop.reason).where(col(DeviceDrop.device_id) == device_id)).all())


@pytest.fixture
def ingest(fleet_settings, engine, county_broker):
    clock = SteppedClock()
    settings = fleet_settings.model_copy(update={"ingest_enabled": True, "broker_port": county_broker.port})
    running = Ingest(settings, engine, clock=clock)
    running.start()
    wait_for(lambda: running.connected, "the ingest to connect")
    yield running, clock
    running.stop()


def test_a_sweep_before_the_backlog_is_read_marks_no_device_offline(ingest, engine, county_broker,
                                                                    edge_factory) -> None:
    ingest, clock = ingest
    timeout = ingest.settings.heartbeat_timeout_s
    clock.advance(timeout)  # the ingest has listened for a whole timeout: silence means something
    edge = edge_factory(county_broker.port)
    edge.edge_birth()
    edge.birth(DISPLAY, "queue_display", session=1, window=1)
    edge.birth(PAD, "rating_pad", session=1, window=1)
    edge.birth(SILENT, "rating_pad", session=1, window=2)
    wait_for(lambda: all(device(engine, d).online for d in (DISPLAY, PAD, SILENT)), "the births")

    # The fleet is stopped: its network thread reads nothing more ...
    network = ingest._client
    network.loop_stop()
    # ... for longer than a heartbeat timeout, while the display and the pad go on sending heartbeats,
    # which the county broker holds for it (the silent pad sends none).
    clock.advance(timeout + 30)
    for _ in range(3):
        edge.health(DISPLAY, session=1)
        edge.health(PAD, session=1)

    # It continues, and its sweep runs before the backlog is read: nobody is silent as far as it knows.
    assert ingest.sweep() == []
    assert all(device(engine, d).online for d in (DISPLAY, PAD, SILENT))

    network.loop_start()
    # The backlog read, the pad that really went silent is found by the sweep thread ...
    silent = wait_for(lambda: (d := device(engine, SILENT)) and not d.online and d, "the silent pad timed out")
    assert silent.offline_reason == REASON_HEARTBEAT and drops(engine, SILENT) == [REASON_HEARTBEAT]
    # ... and the display and the pad that kept talking were never dropped.
    for talking in (DISPLAY, PAD):
        assert device(engine, talking).online and device(engine, talking).offline_reason is None
        assert drops(engine, talking) == []


def test_a_sweep_does_not_judge_beyond_what_the_writer_has_stored(ingest, engine, county_broker,
                                                                 edge_factory, monkeypatch) -> None:
    """The ingest's writer behind (a slow database): a heartbeat read from the broker but not yet stored does
    not leave its device silent either."""
    ingest, clock = ingest
    timeout = ingest.settings.heartbeat_timeout_s
    clock.advance(timeout)
    edge = edge_factory(county_broker.port)
    edge.edge_birth()
    edge.birth(DISPLAY, "queue_display", session=1, window=1)
    wait_for(lambda: device(engine, DISPLAY).online, "the birth")

    store = ingest_module.handle_batch
    writer_may_go_on = threading.Event()
    taken: list[list[str]] = []

    def stalled(engine, batch, *args, **kwargs):
        taken.append([topic for topic, _raw in batch])
        writer_may_go_on.wait(30)
        return store(engine, batch, *args, **kwargs)

    monkeypatch.setattr(ingest_module, "handle_batch", stalled)
    clock.advance(timeout + 30)
    edge.health(DISPLAY, session=1)
    health_topic = topics.build(topics.DEVICE_HEALTH, center=CENTER, device=DISPLAY)
    wait_for(lambda: any(health_topic in topics_ for topics_ in taken), "the writer to take the heartbeat")
    try:
        assert ingest.sweep() == []
        assert device(engine, DISPLAY).online
    finally:
        writer_may_go_on.set()

    # The writer caught up past the heartbeat: a sweep now knows the display talked, and keeps it online.
    now = clock.now
    wait_for(lambda: ingest.caught_up_at is not None and ingest.caught_up_at >= now, "the ingest to catch up")
    assert ingest.sweep() == []
    assert device(engine, DISPLAY).online and drops(engine, DISPLAY) == []
