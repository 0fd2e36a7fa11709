"""Tables of the center configuration: windows and roster (edited), versions (made), state (published, reported)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from fleet.models import UTCDateTime, utcnow


class CenterWindow(SQLModel, table=True):
    """One window of a center: its kind (protocol.messages.WINDOW_KINDS), the queue prefixes it serves, its staff."""

    __tablename__ = "center_window"
    __table_args__ = (UniqueConstraint("center_code", "number", name="uq_center_window"),)

    id: int | None = Field(default=None, primary_key=True)
    center_code: str = Field(max_length=12, index=True)
    number: int
    kind: str = Field(max_length=16)
    services: str = "[]"  # JSON list of queue prefixes
    staff_no: str = Field(default="", max_length=16)  # the window's own staff ("" none)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(max_length=64)


class RosterMember(SQLModel, table=True):
    """Someone on a center's staff roster: 工号, name, 职务, photo, the PIN hash of the staff sign-in, AB角."""

    __tablename__ = "center_roster"
    __table_args__ = (UniqueConstraint("center_code", "staff_no", name="uq_center_roster"),)

    id: int | None = Field(default=None, primary_key=True)
    center_code: str = Field(max_length=12, index=True)
    staff_no: str = Field(max_length=16)
    name: str = Field(max_length=32)
    title: str = Field(default="", max_length=32)
    photo: str = ""  # a data: URL (JPEG or PNG, at most PHOTO_MAX_BYTES)
    pin_hash: str = Field(default="", max_length=200)  # scrypt$salt$hash, as the edge's sign-in checks it
    windows: str = "[]"  # JSON list of window numbers they may sign in at; []: any
    stand_in_for: str = "[]"  # JSON list of 工号 they stand in for (AB角)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(max_length=64)


class CenterConfigVersion(SQLModel, table=True):
    """Every configuration made for a center, with who caused it; a roll-back is a new version of old content."""

    __tablename__ = "center_config_version"
    __table_args__ = (UniqueConstraint("center_code", "version", name="uq_center_config_version"),)

    id: int | None = Field(default=None, primary_key=True)
    center_code: str = Field(max_length=12, index=True)
    version: int
    content: str  # JSON: the sections of center_config (profile, items, services, windows, roster)
    # What the fleet's tables gave when this version was made: a new version is made when they give another.
    source_digest: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str = Field(max_length=64)
    cause: str | None = None  # e.g. "rollback to v3"


class CenterConfigState(SQLModel, table=True):
    """Per center: the latest version, what was published, and what the edge says is in force."""

    __tablename__ = "center_config_state"

    center_code: str = Field(primary_key=True, max_length=12)
    version: int = 0  # the latest version made (the one wanted in force)
    published_version: int = 0
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    problem: str | None = None  # why no version could be made or published now (missing glyphs, no edge key)
    in_force: int | None = None  # reported by the edge
    reported_version: int | None = None
    reported_status: str | None = Field(default=None, max_length=16)
    reported_error: str | None = None
    reported_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
