"""Health history: one HealthSample per accepted device heartbeat, kept for a bounded time and count.

The Device row holds the latest figures (fleet.presence.apply_health); this
table keeps how they changed, for the device page's chart. Retention is
bounded twice, per device: samples older than `max_age_s` and all but the
newest `max_samples` are deleted on every write, so a chatty device cannot
grow the table; `prune_all` (run by the ingest's sweep) also ages out devices
that have gone silent.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Index, bindparam, delete, insert
from sqlmodel import Field, Session, SQLModel, col, select

from fleet.models import UTCDateTime


@dataclass(frozen=True)
class Retention:
    max_age_s: float = 3 * 24 * 3600
    max_samples: int = 3000


class HealthSample(SQLModel, table=True):
    __tablename__ = "health_sample"
    __table_args__ = (
        Index("ix_health_sample_device_at", "device_id", "at"),
        # The retention's "newest max_samples by id" walks this index instead of sorting the history.
        Index("ix_health_sample_device_id", "device_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=16)
    center_code: str = Field(max_length=12)
    at: datetime = Field(sa_type=UTCDateTime, index=True)  # when the fleet received it
    session: int
    uptime_s: float
    free_heap: int | None = None
    rssi: int | None = None
    reconnects: int | None = None
    last_error: str | None = None


def _sample_fields(device_id: str, center_code: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {"device_id": device_id, "center_code": center_code, "at": now, "session": payload["session"],
            "uptime_s": payload["uptime_s"], "free_heap": payload.get("free_heap"), "rssi": payload.get("rssi"),
            "reconnects": payload.get("reconnects"), "last_error": payload.get("last_error")}


def record_sample(session: Session, device_id: str, center_code: str, payload: dict[str, Any], now: datetime,
                  retention: Retention) -> HealthSample:
    """Store one validated heartbeat and prune this device's history to `retention` (the caller commits)."""
    sample = HealthSample(**_sample_fields(device_id, center_code, payload, now))
    session.add(sample)
    session.flush()
    prune_device(session, device_id, now, retention)
    return sample


class SampleBatch:
    """The heartbeats of a batch of messages: one INSERT for all, then each device's history pruned once.

    At commit the table holds exactly what `record_sample` for each would leave (new ids are
    always greater than stored ones, and the batch shares one `now`).
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, device_id: str, center_code: str, payload: dict[str, Any], now: datetime) -> None:
        self.rows.append(_sample_fields(device_id, center_code, payload, now))

    def __len__(self) -> int:
        return len(self.rows)

    def write(self, session: Session, now: datetime, retention: Retention) -> None:
        if not self.rows:
            return
        session.flush()
        self.write_rows(session.connection(), now, retention)

    def write_rows(self, connection: Connection, now: datetime, retention: Retention) -> None:
        """`write` on a connection whose ORM session (if any) has nothing pending for these devices."""
        if not self.rows:
            return
        connection.execute(insert(HealthSample), self.rows)
        prune_histories(connection, list(dict.fromkeys(row["device_id"] for row in self.rows)), now, retention)
        self.rows = []


def prune_device(session: Session, device_id: str, now: datetime, retention: Retention) -> None:
    prune_devices(session, [device_id], now, retention)


def prune_devices(session: Session, device_ids: Collection[str], now: datetime, retention: Retention) -> None:
    """Prune these devices' histories to `retention` (see prune_histories), after the session's pending writes."""
    if not device_ids:
        return
    session.flush()
    prune_histories(session.connection(), device_ids, now, retention)


def prune_histories(connection: Connection, device_ids: Collection[str], now: datetime,
                    retention: Retention) -> None:
    """Prune these devices' histories to `retention`: older than max_age_s, or beyond the newest max_samples.

    Two statements for any number of devices (the second runs once per device, as one executemany).
    """
    if not device_ids:
        return
    cutoff = now - timedelta(seconds=retention.max_age_s)
    connection.execute(delete(HealthSample).where(col(HealthSample.device_id).in_(list(device_ids)),
                                                  col(HealthSample.at) < cutoff))
    # Everything of a device before the oldest sample to keep (None, deleting nothing, while it has fewer).
    oldest_kept = (select(HealthSample.id).where(HealthSample.device_id == bindparam("device"))
                   .order_by(col(HealthSample.id).desc())
                   .offset(retention.max_samples - 1).limit(1).scalar_subquery())
    beyond = delete(HealthSample).where(col(HealthSample.device_id) == bindparam("device"),
                                        col(HealthSample.id) < oldest_kept)
    connection.execute(beyond, [{"device": device_id} for device_id in device_ids])


def prune_all(session: Session, now: datetime, retention: Retention) -> int:
    """Delete every sample older than the retention age; returns how many."""
    cutoff = now - timedelta(seconds=retention.max_age_s)
    result = session.exec(delete(HealthSample).where(col(HealthSample.at) < cutoff))
    return result.rowcount or 0


def device_history(session: Session, device_id: str, since: datetime | None = None,
                   limit: int = 3000) -> list[HealthSample]:
    """The device's samples, oldest first (the newest `limit` of them)."""
    query = select(HealthSample).where(HealthSample.device_id == device_id)
    if since is not None:
        query = query.where(col(HealthSample.at) >= since)
    newest = session.exec(query.order_by(col(HealthSample.at).desc(), col(HealthSample.id).desc())
                          .limit(limit)).all()
    return list(reversed(newest))
