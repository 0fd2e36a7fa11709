"""Health history: one HealthSample per accepted device heartbeat, kept for a bounded time and count.

The Device row holds the latest figures (fleet.presence.apply_health); this
table keeps how they changed, for the device page's chart. Retention is
bounded twice, per device: samples older than `max_age_s` and all but the
newest `max_samples` are deleted on every write, so a chatty device cannot
grow the table; `prune_all` (run by the ingest's sweep) also ages out devices
that have gone silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index, delete
from sqlmodel import Field, Session, SQLModel, col, select

from fleet.models import UTCDateTime


@dataclass(frozen=True)
class Retention:
    max_age_s: float = 3 * 24 * 3600
    max_samples: int = 3000


class HealthSample(SQLModel, table=True):
    __tablename__ = "health_sample"
    __table_args__ = (Index("ix_health_sample_device_at", "device_id", "at"),)

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


def record_sample(session: Session, device_id: str, center_code: str, payload: dict[str, Any], now: datetime,
                  retention: Retention) -> HealthSample:
    """Store one validated heartbeat and prune this device's history to `retention` (the caller commits)."""
    sample = HealthSample(
        device_id=device_id, center_code=center_code, at=now, session=payload["session"],
        uptime_s=payload["uptime_s"], free_heap=payload.get("free_heap"), rssi=payload.get("rssi"),
        reconnects=payload.get("reconnects"), last_error=payload.get("last_error"),
    )
    session.add(sample)
    session.flush()
    prune_device(session, device_id, now, retention)
    return sample


def prune_device(session: Session, device_id: str, now: datetime, retention: Retention) -> None:
    cutoff = now - timedelta(seconds=retention.max_age_s)
    session.exec(delete(HealthSample).where(col(HealthSample.device_id) == device_id,
                                            col(HealthSample.at) < cutoff))
    # The id of the oldest sample to keep; everything of this device before it goes.
    oldest_kept = session.exec(
        select(HealthSample.id).where(HealthSample.device_id == device_id)
        .order_by(col(HealthSample.id).desc())
        .offset(retention.max_samples - 1).limit(1)
    ).first()
    if oldest_kept is not None:
        session.exec(delete(HealthSample).where(col(HealthSample.device_id) == device_id,
                                                col(HealthSample.id) < oldest_kept))


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
