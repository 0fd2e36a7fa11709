"""Tables of firmware bundles, rollouts, their devices, and what each board reports of its firmware."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from fleet.models import UTCDateTime, utcnow
from fleet.rollouts.plan import PENDING, RUNNING


class FirmwareBundle(SQLModel, table=True):
    """A signed-off set of application files (provisioning/ota_bundle.py builds it); one per version label."""

    __tablename__ = "firmware_bundle"

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(max_length=32, unique=True)
    digest: str = Field(max_length=64, unique=True)  # sha256 of the manifest: what a board's desired names
    manifest: str  # JSON, as the board reads it
    roles: str = "[]"  # JSON list of the device roles it holds
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # zlib of the files, in manifest order
    size: int = 0  # bytes of the files, uncompressed
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=64)


class BundleDelivery(SQLModel, table=True):
    """The bundle last published (retained) to a center's edge: the fleet publishes 2 MB only when it changes."""

    __tablename__ = "bundle_delivery"

    center_code: str = Field(primary_key=True, max_length=12)
    digest: str = Field(max_length=64)
    published_at: datetime = Field(sa_type=UTCDateTime)


class FirmwareRollout(SQLModel, table=True):
    """Bringing one bundle to the devices under a division prefix, in waves (fleet/rollouts/plan.py)."""

    __tablename__ = "firmware_rollout"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    bundle_id: int = Field(foreign_key="firmware_bundle.id")
    version: str = Field(max_length=32)
    scope_prefix: str = Field(max_length=12, index=True)  # the county, a town or a center
    canary: str = "[]"  # JSON list of device ids, wave 0
    status: str = Field(default=RUNNING, max_length=16, index=True)
    reason: str | None = None  # why it halted, or who paused, aborted, rolled back
    failure_threshold_pct: int = 0
    max_in_flight: int = 10
    device_timeout_s: float = 900.0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RolloutDevice(SQLModel, table=True):
    """One device of a rollout."""

    __tablename__ = "firmware_rollout_device"
    __table_args__ = (Index("ix_firmware_rollout_device_wave", "rollout_id", "wave"),)

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="firmware_rollout.id")
    device_id: str = Field(max_length=16, index=True)
    center_code: str = Field(max_length=12)
    wave: int
    state: str = Field(default=PENDING, max_length=16)
    previous_version: str | None = Field(default=None, max_length=32)  # what it ran when the rollout began
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent: bool = False  # its firmware_desired reached the county broker (else the job sends it again)
    issued_at: int | None = None  # of the firmware_desired last sent (the board echoes it)
    reason: str | None = None  # why it failed, or why it is not sent yet


class DeviceFirmware(SQLModel, table=True):
    """What a board last reported of its firmware (firmware_status, retained)."""

    __tablename__ = "device_firmware"

    device_id: str = Field(primary_key=True, max_length=16)
    center_code: str = Field(max_length=12, index=True)
    state: str | None = Field(default=None, max_length=16)
    running: str | None = Field(default=None, max_length=32)
    running_sha256: str | None = Field(default=None, max_length=64)
    target: str | None = Field(default=None, max_length=32)
    staged: str | None = Field(default=None, max_length=32)
    failed: str | None = Field(default=None, max_length=32)
    error: str | None = None
    done_bytes: int | None = None
    total_bytes: int | None = None
    issued_at: int | None = None
    reported_at: datetime = Field(sa_type=UTCDateTime)
