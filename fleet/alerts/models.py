"""Tables of the alerts: the alerts themselves, device drops (for flapping), opening hours, center health,
messages of devices under a center they do not belong to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint, literal_column
from sqlmodel import Field, SQLModel, col

from fleet.auth.schema import added_columns, added_indexes
from fleet.centers.models import CenterHours  # noqa: F401  (opening hours live in the center registry)
from fleet.models import UTCDateTime, utcnow

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
STATES = (OPEN, ACKNOWLEDGED, RESOLVED)
ACTIVE_STATES = (OPEN, ACKNOWLEDGED)

CRITICAL = "critical"
WARNING = "warning"


class Alert(SQLModel, table=True):
    """One problem of one subject (a device, a center's edge, its printer ...), from open to resolved.

    `key` names the subject (device:<id>, edge:<center>, component:<center>:printer ...): while an
    alert of a key is active no second one opens, and a condition that comes back within the reopen
    window reopens the same alert (occurrences + 1) instead of paging again.
    """

    __tablename__ = "alert"
    __table_args__ = (
        Index("ix_alert_key_state", "key", "state"),
        # Every sweep rewrites last_active_at of every active alert (a country's some 90,000): with room left in
        # each page PostgreSQL updates them in place (HOT), not as new rows in every index (1.3 s -> 0.3 s).
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=128)
    rule: str = Field(max_length=32, index=True)
    severity: str = Field(default=WARNING, max_length=16)
    center_code: str = Field(max_length=12, index=True)
    device_id: str | None = Field(default=None, max_length=16)
    window: int | None = None
    state: str = Field(default=OPEN, max_length=16, index=True)
    message: str  # Chinese, short: 设备离线
    reason: str = ""  # Chinese, the facts: 离线 25 分钟（连接断开）
    opened_at: datetime = Field(sa_type=UTCDateTime)
    last_active_at: datetime = Field(sa_type=UTCDateTime)  # the condition was last seen true
    occurrences: int = 1  # times the condition came back while this alert covered it
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: str | None = Field(default=None, max_length=64)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# The sweep's alerts resolved within the reopen window, not a scan of every alert ever resolved; partial, so
# that opening an alert costs no entry in it (the sweep's query spells RESOLVED_ONLY alike, with no parameter).
RESOLVED_ONLY = Alert.__table__.c.state == literal_column(f"'{RESOLVED}'")
Index("ix_alert_resolved_at", Alert.__table__.c.resolved_at, postgresql_where=RESOLVED_ONLY, sqlite_where=RESOLVED_ONLY)
added_indexes("alert", "ix_alert_resolved_at")


class DeviceDrop(SQLModel, table=True):
    """A device lost its connection once (will, heartbeat timeout, or a reconnect we only saw afterwards)."""

    __tablename__ = "device_drop"
    __table_args__ = (Index("ix_device_drop_device_at", "device_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=16)
    center_code: str = Field(max_length=12)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    reason: str = Field(max_length=32)


class CenterHealthReport(SQLModel, table=True):
    """The latest edge_health summary of a center (retained on the county broker)."""

    __tablename__ = "center_health_report"

    center_code: str = Field(primary_key=True, max_length=12)
    ready: bool = True
    summary: str  # the payload, JSON
    ts: float  # when the edge made it
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Whether the summary names a problem: a reason, or anything the alert rules make a condition of (at any
    # time: the rules' durations are the engine's business). False for most of a country's 600,000 centers at
    # any moment, whose summaries the sweep and the overview then need not read; NULL: stored before this
    # column, read as before.
    notable: bool | None = None


# The reports the sweep and the overview read: not a scan of a country's 600,000 summaries.
NOTABLE_REPORTS = col(CenterHealthReport.notable).is_not(False)
Index("ix_center_health_report_notable", CenterHealthReport.center_code, postgresql_where=NOTABLE_REPORTS,
      sqlite_where=NOTABLE_REPORTS)
added_columns("center_health_report", "notable")
added_indexes("center_health_report", "ix_center_health_report_notable")


class MisplacedDevice(SQLModel, table=True):
    """Messages of a device that arrived under a center it does not belong to: dropped by the ingest, kept here.

    One row per device and center the messages came from; the alert sweep raises `device_misplaced` while
    such messages keep arriving (fleet.alerts.rules.misplaced_conditions).
    """

    __tablename__ = "misplaced_device"
    __table_args__ = (UniqueConstraint("device_id", "center_code"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=16)
    center_code: str = Field(max_length=12)  # where the messages came from
    home_center: str = Field(max_length=12)  # where the device is registered (or, never registered, first seen)
    role: str | None = Field(default=None, max_length=16)  # as its home center knows it
    window: int | None = None
    topic: str = Field(max_length=32)  # the latest message's topic name
    count: int = 0
    first_at: datetime = Field(sa_type=UTCDateTime)
    last_at: datetime = Field(sa_type=UTCDateTime, index=True)
