"""Tables of the county's catalogue of service items (事项清单) and of who handles which item.

An item is never edited in place: every change adds a `CatalogueItemVersion` with the next version number and
the old rows stay, so the guide a resident was told last month can still be read (and a center's configuration
names the versions it carries).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from fleet.models import UTCDateTime, utcnow

KIND_IMMEDIATE = "immediate"  # 即办件: done while the resident waits
KIND_PROMISED = "promised"  # 承诺件: done within the promised number of working days
KIND_LABELS = {KIND_IMMEDIATE: "即办件", KIND_PROMISED: "承诺件"}


class CatalogueItemVersion(SQLModel, table=True):
    """One version of one item's 办事指南."""

    __tablename__ = "fleet_catalogue_item"
    __table_args__ = (UniqueConstraint("code", "version", name="uq_fleet_catalogue_item_version"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, index=True)  # 事项编码, unique in the fleet, kept by every version
    version: int
    # Who keeps the item: "" the whole fleet, a 6-digit county or a 9-digit town (a town's own item). Only
    # users whose scope covers it may change it; it may be enabled only under it.
    owner_prefix: str = Field(default="", max_length=12, index=True)
    name: str = Field(max_length=128)
    basis: str = ""  # 办理依据
    conditions: str = ""  # 受理条件
    materials_json: str = "[]"  # 申请材料: [{"name", "originals", "copies", "note"}]
    legal_days: int = 0  # 办理时限 (法定), working days; 0 = 即时办结
    promised_days: int = 0  # 承诺时限, working days; 0 = 即时办结
    fee: str = Field(default="不收费", max_length=256)  # 收费标准
    fee_basis: str = ""  # 收费依据
    kind: str = Field(default=KIND_IMMEDIATE, max_length=16)  # 办件类型
    location: str = Field(default="", max_length=256)  # 办理地点
    phone: str = Field(default="", max_length=64)  # 咨询电话
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(default="system", max_length=64)


class ItemEnablement(SQLModel, table=True):
    """A town (9 digits, for all its centers) or a center (12 digits) handles an item under a queue prefix.

    A center's own row wins over its town's: it maps the item to another prefix, or `enabled` False turns off
    an item its town handles.
    """

    __tablename__ = "fleet_item_enablement"

    scope_code: str = Field(primary_key=True, max_length=12)
    item_code: str = Field(primary_key=True, max_length=32)
    prefix: str = Field(default="", max_length=1)  # the edge's service (A → A001) tickets of the item go to
    enabled: bool = True
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    changed_by: str = Field(default="system", max_length=64)


class QueueServiceName(SQLModel, table=True):
    """The name residents see for a queue prefix (A → 社保业务), set by a town for its centers or by a center."""

    __tablename__ = "fleet_queue_service_name"

    scope_code: str = Field(primary_key=True, max_length=12)  # 9-digit town or 12-digit center
    prefix: str = Field(primary_key=True, max_length=1)
    name: str = Field(max_length=32)
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    changed_by: str = Field(default="system", max_length=64)
