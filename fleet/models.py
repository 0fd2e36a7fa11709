"""Database tables (SQLModel).

Times are timezone-aware UTC datetimes in Python (stored as naive UTC, since
SQLite has no time zone type); event times are the sender's Unix epoch seconds,
which makes "today in Asia/Shanghai" a simple range query.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Index, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel, col

from fleet.auth.schema import added_columns, added_indexes
from protocol.identity import county_code, town_code
from protocol.messages import BOOT_MAX_CHARS


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Center(SQLModel, table=True):
    """A service center (便民服务中心), known by its 12-digit division code."""

    code: str = Field(primary_key=True, max_length=12)
    county_code: str = Field(index=True, max_length=6)
    town_code: str = Field(index=True, max_length=9)
    edge_online: bool = False
    edge_session: int | None = None
    edge_boot: str | None = Field(default=None, max_length=BOOT_MAX_CHARS)  # boot id of edge_session
    edge_offline_reason: str | None = None
    edge_board: str | None = None
    edge_fw: str | None = None
    # Last time anything of this center arrived: it all comes through its edge agent.
    edge_last_seen: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @classmethod
    def new(cls, code: str, now: datetime) -> Center:
        """A center first seen at `now`; raises ProtocolError on a malformed code."""
        return cls(code=code, county_code=county_code(code), town_code=town_code(code), first_seen=now)


class Device(SQLModel, table=True):
    """A queue display or rating pad (or any device that announced itself)."""

    device_id: str = Field(primary_key=True, max_length=16)
    center_code: str = Field(foreign_key="center.code", index=True, max_length=12)
    role: str | None = None  # None until a birth says what it is
    window: int | None = None
    board: str | None = None
    fw: str | None = None
    mac: str | None = None
    contract: int | None = None
    online: bool = False
    session: int | None = None
    boot: str | None = Field(default=None, max_length=BOOT_MAX_CHARS)  # boot id of `session` (protocol.presence)
    offline_reason: str | None = None
    last_seen: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Latest heartbeat figures.
    uptime_s: float | None = None
    free_heap: int | None = None
    rssi: int | None = None
    reconnects: int | None = None
    last_error: str | None = None


# The devices that are offline, a few percent of a country's 3,000,000, and the centers whose edge is: the alert
# sweep and the overview read them through these partial indexes instead of scanning every device and center.
OFFLINE_DEVICES = col(Device.online).is_(False)
Index("ix_device_offline", Device.center_code, postgresql_where=OFFLINE_DEVICES, sqlite_where=OFFLINE_DEVICES)
added_indexes("device", "ix_device_offline")
OFFLINE_EDGES = col(Center.edge_online).is_(False)
Index("ix_center_edge_offline", Center.code, postgresql_where=OFFLINE_EDGES, sqlite_where=OFFLINE_EDGES)
added_indexes("center", "ix_center_edge_offline")

# Boot ids came with the contract's optional `boot` field; older databases get the columns on start.
added_columns("center", "edge_boot")
added_columns("device", "boot")
added_columns("ratingevent", "outcome")
added_columns("ratingevent", "reason")
added_columns("ratingevent", "case_no", "matter")
added_indexes("ratingevent", "ix_rating_event_rating_id")


class TicketEvent(SQLModel, table=True):
    """排队 ticket issued / called / finished, as the edge agent reported it."""

    __table_args__ = (
        # Event ids are unique per sending center; a re-delivered event is stored once.
        UniqueConstraint("center_code", "event_id", name="uq_ticket_event"),
        Index("ix_ticket_event_center_ts", "center_code", "ts"),
        Index("ix_ticket_event_ts", "ts"),  # today's events of every center (the overview's roll-up)
    )

    id: int | None = Field(default=None, primary_key=True)
    center_code: str = Field(foreign_key="center.code", max_length=12)
    event_id: str
    kind: str = Field(max_length=16)
    ticket: str
    service: str
    service_name: str | None = None
    window: int | None = None
    staff_no: str | None = None
    ts: float
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AttendanceEvent(SQLModel, table=True):
    """考勤: a staff member signed in or out at a window's caller, as the edge agent reported it."""

    __table_args__ = (
        UniqueConstraint("center_code", "event_id", name="uq_attendance_event"),
        Index("ix_attendance_event_center_ts", "center_code", "ts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    center_code: str = Field(foreign_key="center.code", max_length=12)
    event_id: str
    kind: str = Field(max_length=16)  # sign_in / sign_out
    window: int
    staff_no: str = Field(max_length=32)
    staff_name: str | None = None
    reason: str | None = Field(default=None, max_length=16)  # why a sign-out: signed_out, replaced, day_end
    ts: float
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RatingEvent(SQLModel, table=True):
    """A 好差评 rating bound to ticket, window, staff and service; score 0 is 未评价."""

    __table_args__ = (
        UniqueConstraint("center_code", "event_id", name="uq_rating_event"),
        Index("ix_rating_event_center_ts", "center_code", "ts"),
        Index("ix_rating_event_ts", "ts"),
        # A rating's second event (a 差评's reason) finds the rating by its rating_id.
        Index("ix_rating_event_rating_id", "center_code", "rating_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    center_code: str = Field(foreign_key="center.code", max_length=12)
    event_id: str
    rating_id: str
    ticket: str
    service: str
    window: int
    staff_no: str | None = None
    score: int
    # How an unanswered request ended, for score 0 the edge reports itself (skipped, pad_offline); NULL on a
    # pad's answer (1-5 rated, 0 未评价). Rating coverage (fleet/coverage.py) counts all four.
    outcome: str | None = Field(default=None, max_length=16)
    # A 差评's reason (protocol.messages.RATING_REASONS), picked on the pad after the score and brought by the
    # rating's second event (docs/protocol.md, rating_event); NULL when none was picked.
    reason: str | None = Field(default=None, max_length=32)
    # 办件编号 and 事项 when the window's business system asked for the rating (docs/protocol.md, rating_event):
    # the province's 好差评 system knows the rating by its case number (fleet.province).
    case_no: str | None = Field(default=None, max_length=64)
    matter: str | None = Field(default=None, max_length=200)
    ts: float
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
