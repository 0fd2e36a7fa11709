"""Tables of device configuration and commands."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from fleet.auth.schema import added_columns
from fleet.models import UTCDateTime, utcnow

COUNTY = "county"
TOWN = "town"
CENTER = "center"
DEVICE = "device"
SCOPES = (COUNTY, TOWN, CENTER, DEVICE)  # inheritance: device > center > town > county
SCOPE_LABELS = {COUNTY: "县", TOWN: "乡镇", CENTER: "中心", DEVICE: "设备"}


class ConfigRevision(SQLModel, table=True):
    """One change of the configuration at one scope for one device role; the latest one is in force."""

    __tablename__ = "config_revision"
    __table_args__ = (UniqueConstraint("scope", "scope_id", "role", "revision", name="uq_config_revision"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=8)
    scope_id: str = Field(max_length=16, index=True)  # division code (6/9/12 digits) or device id
    role: str = Field(max_length=16)
    revision: int
    config: str  # JSON object, valid for the role (protocol.messages.validate_config)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=64)
    note: str | None = None
    rollback_of: int | None = None  # the revision whose content this one restores


class DeviceConfigState(SQLModel, table=True):
    """Desired (what the fleet wants, versioned per device) against reported (what the device says)."""

    __tablename__ = "device_config_state"

    device_id: str = Field(primary_key=True, max_length=16)
    center_code: str = Field(max_length=12, index=True)
    role: str | None = Field(default=None, max_length=16)
    desired_version: int = 0  # 0: nothing desired yet
    desired_config: str = "{}"
    desired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    desired_by: str | None = Field(default=None, max_length=64)
    pushed_version: int = 0  # the version last published (retained) on the county broker
    pushed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    push_count: int = 0
    reported_version: int | None = None  # the version of the last report: applied, or rejected
    reported_status: str | None = Field(default=None, max_length=16)  # applied / rejected
    # The version running on the device (the report's in_force, or the last version reported applied):
    # still known after a rejection replaced the retained "applied" report.
    applied_version: int | None = None
    reported_error: str | None = None
    reported_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


added_columns("device_config_state", "applied_version")


class DeviceConfigVersion(SQLModel, table=True):
    """Every desired version of a device, with who caused it and when."""

    __tablename__ = "device_config_version"
    __table_args__ = (UniqueConstraint("device_id", "version", name="uq_device_config_version"),)

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=16, index=True)
    version: int
    config: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str = Field(max_length=64)
    cause: str | None = None  # e.g. "town 445202101 rev 3"


SENT = "sent"
NOT_SENT = "not_sent"  # the county broker was not reachable, or the device has no key
TIMED_OUT = "timed_out"
COMMAND_STATES = {SENT: "已发送", NOT_SENT: "未发送", TIMED_OUT: "超时", "done": "已执行", "rejected": "被拒绝",
                  "failed": "执行失败"}


class DeviceCommand(SQLModel, table=True):
    __tablename__ = "device_command"
    __table_args__ = (Index("ix_device_command_state_sent", "status", "sent_at"),)

    id: int | None = Field(default=None, primary_key=True)
    command_id: str = Field(max_length=64, unique=True)
    device_id: str = Field(max_length=16, index=True)
    center_code: str = Field(max_length=12, index=True)
    command: str = Field(max_length=16)
    args: str = "{}"
    issued_by: str = Field(max_length=64)
    sent_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default=SENT, max_length=16)
    error: str | None = None
    acked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    late: bool = False  # acknowledged after it had timed out


class DeviceKey(SQLModel, table=True):
    """A device's signing key, encrypted at rest (fleet.devconfig.keys); never shown, never logged."""

    __tablename__ = "device_key"

    device_id: str = Field(primary_key=True, max_length=16)
    encrypted: str  # "v1:" + base64(nonce + AES-GCM ciphertext), bound to the device id
    fingerprint: str = Field(max_length=16)  # first hex digits of SHA-256(key), to tell keys apart
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(max_length=64)
