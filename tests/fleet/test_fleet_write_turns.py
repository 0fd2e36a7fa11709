"""Writers on SQLite take turns: a busy ingest does not starve the sweep or the web's writes.

SQLite's busy handler polls: a writer waiting for the lock sleeps and tries again, and one that commits and
begins again at once (the ingest catching up, batch after batch) can keep it from ever getting in. The
heartbeat sweep then failed with "database is locked" after the busy timeout (seen in `bench/fleet_ingest.py`).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.exc import OperationalError

import fleet.db
from fleet.db import create_db_engine, init_db, write_session
from fleet.ingest import handle_batch
from fleet.models import Center
from protocol import topics
from protocol.identity import device_id_from_mac

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def heartbeats(devices: int) -> list[tuple[str, bytes]]:
    payload = json.dumps({"v": 1, "session": 1, "uptime_s": 10.0, "free_heap": 60000}).encode()
    return [(topics.build(topics.DEVICE_HEALTH, center=f"445202101{n % 50 + 1:03d}",
                          device=device_id_from_mac(n.to_bytes(6, "big"))), payload) for n in range(devices)]


def test_a_busy_ingest_lets_another_writer_in(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(fleet.db, "BUSY_TIMEOUT_MS", 200)  # a shorter wait shows starvation sooner
    engine = create_db_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    init_db(engine)
    batch = heartbeats(500)
    handle_batch(engine, batch, NOW)  # the devices are known: every later batch takes the fast path
    stop = threading.Event()
    batches = []

    def ingest() -> None:
        while not stop.is_set():
            handle_batch(engine, batch, NOW)
            batches.append(1)

    writer = threading.Thread(target=ingest)
    writer.start()
    refused = []
    try:
        for _ in range(40):
            try:
                with write_session(engine) as session:
                    session.execute(update(Center).values(edge_online=True))
            except OperationalError as exc:
                refused.append(str(exc.orig))
    finally:
        stop.set()
        writer.join()
        engine.dispose()
    assert len(batches) > 0
    assert refused == []
