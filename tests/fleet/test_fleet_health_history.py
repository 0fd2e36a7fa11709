"""Health history: a HealthSample per accepted heartbeat, bounded by age and count per device."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fleet_testkit import CENTER, DISPLAY, PAD
from sqlmodel import Session, col, func, select

from fleet.db import write_session
from fleet.health_history import HealthSample, Retention, device_history, prune_all
from fleet.ingest import APPLIED, IGNORED, handle_message
from protocol import topics

T0 = datetime(2024, 5, 2, 8, 0, tzinfo=UTC)


def heartbeat(engine, device: str, session: int, at: datetime, retention: Retention | None = None,
              **fields) -> str:
    payload = {"v": 1, "session": session, "uptime_s": 10, **fields}
    return handle_message(engine, topics.build(topics.DEVICE_HEALTH, center=CENTER, device=device),
                          json.dumps(payload).encode(), at, retention)


def birth(engine, device: str, session: int) -> None:
    payload = {"v": 1, "state": "online", "session": session, "role": "queue_display", "board": "b", "fw": "1",
               "contract": 1, "window": 1}
    handle_message(engine, topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=device),
                   json.dumps(payload).encode(), T0)


def samples(engine, device: str) -> list[HealthSample]:
    with Session(engine) as session:
        return device_history(session, device)


def test_each_accepted_heartbeat_is_kept_with_its_figures(engine) -> None:
    birth(engine, DISPLAY, 2)
    assert heartbeat(engine, DISPLAY, 2, T0, free_heap=61440, rssi=-63, reconnects=1, last_error="OSError: 113")
    assert heartbeat(engine, DISPLAY, 2, T0 + timedelta(seconds=30), free_heap=60000) == APPLIED
    assert heartbeat(engine, DISPLAY, 1, T0 + timedelta(seconds=40)) == IGNORED  # an older session: stale
    kept = samples(engine, DISPLAY)
    assert [(s.at, s.free_heap, s.rssi) for s in kept] == [(T0, 61440, -63),
                                                            (T0 + timedelta(seconds=30), 60000, None)]
    assert (kept[0].center_code, kept[0].session, kept[0].reconnects, kept[0].last_error) == \
        (CENTER, 2, 1, "OSError: 113")


def test_malformed_heartbeats_store_nothing(engine) -> None:
    topic = topics.build(topics.DEVICE_HEALTH, center=CENTER, device=DISPLAY)
    assert handle_message(engine, topic, b'{"v": 1, "session": 1}', T0) == "dropped"  # no uptime_s
    assert handle_message(engine, topic, b"\xff not json", T0) == "dropped"
    assert samples(engine, DISPLAY) == []


def test_retention_keeps_the_newest_samples_per_device(engine) -> None:
    retention = Retention(max_age_s=3600, max_samples=5)
    for i in range(8):
        heartbeat(engine, DISPLAY, 1, T0 + timedelta(seconds=10 * i), retention, uptime_s=i)
        heartbeat(engine, PAD, 1, T0 + timedelta(seconds=10 * i), retention)
    assert [s.uptime_s for s in samples(engine, DISPLAY)] == [3, 4, 5, 6, 7]
    assert len(samples(engine, PAD)) == 5

    # An hour and a half later: the next heartbeat ages out this device's old samples ...
    later = T0 + timedelta(minutes=90)
    heartbeat(engine, DISPLAY, 1, later, retention, uptime_s=99)
    assert [s.uptime_s for s in samples(engine, DISPLAY)] == [99]
    assert len(samples(engine, PAD)) == 5
    # ... and the sweep's prune ages out those of devices that went silent.
    with write_session(engine) as session:
        assert prune_all(session, later, retention) == 5
    assert samples(engine, PAD) == []
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(HealthSample)).one() == 1


def test_history_since_and_limit(engine) -> None:
    for i in range(6):
        heartbeat(engine, DISPLAY, 1, T0 + timedelta(minutes=i), uptime_s=i)
    with Session(engine) as session:
        assert [s.uptime_s for s in device_history(session, DISPLAY, since=T0 + timedelta(minutes=4))] == [4, 5]
        assert [s.uptime_s for s in device_history(session, DISPLAY, limit=2)] == [4, 5]
        assert session.exec(select(HealthSample).where(col(HealthSample.device_id) == PAD)).all() == []
