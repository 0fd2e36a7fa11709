"""Tables of the center registry: profiles, opening hours, the division list, the rollout target."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from fleet.models import UTCDateTime, utcnow

LEVEL_TOWN = "town"  # 乡镇（街道）便民服务中心
LEVEL_VILLAGE = "village"  # 村（社区）便民服务站
CENTER_LEVELS = (LEVEL_TOWN, LEVEL_VILLAGE)

# Division levels, as the 12-digit code says (统计用区划代码: 2 province, 2 city, 2 county, 3 town, 3 village).
DIVISION_PROVINCE = "province"
DIVISION_CITY = "city"
DIVISION_COUNTY = "county"
DIVISION_TOWN = "town"
DIVISION_VILLAGE = "village"


class CenterProfile(SQLModel, table=True):
    """What the county keeps about one center: its unified name (统一标识), level, where it is, how to reach it.

    A profile may exist before the center's edge ever connects (a center being built counts in the rollout as
    planned), and a center may report before anyone wrote its profile (then it has no name yet).
    """

    __tablename__ = "center_profile"

    center_code: str = Field(primary_key=True, max_length=12)
    name: str = Field(max_length=64, index=True)
    level: str = Field(max_length=16)  # LEVEL_TOWN / LEVEL_VILLAGE
    address: str = Field(default="", max_length=200)
    consult_phone: str = Field(default="", max_length=32)  # 咨询电话
    complaint_phone: str = Field(default="", max_length=32)  # 投诉电话
    contact_name: str = Field(default="", max_length=32)  # 联系人
    contact_phone: str = Field(default="", max_length=32)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str | None = Field(default=None, max_length=64)


class CenterHours(SQLModel, table=True):
    """A center's own opening hours (else Settings.opening_hours on working days).

    The one place opening hours live: the alerts open only within them, attendance counts late and early
    against them, and the center's profile shows and edits them (fleet.alerts.models re-exports this class).
    """

    __tablename__ = "center_hours"

    center_code: str = Field(primary_key=True, max_length=12)
    hours: str = Field(max_length=200)  # 08:30-12:00,14:00-17:30
    open_on_rest_days: bool = False
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str | None = Field(default=None, max_length=64)


class Division(SQLModel, table=True):
    """One administrative division of the statistics bureau's list (统计用区划代码和城乡划分代码)."""

    __tablename__ = "division"

    code: str = Field(primary_key=True, max_length=12)
    name: str = Field(max_length=100, index=True)
    level: str = Field(max_length=16, index=True)  # derived from the code: DIVISION_*
    urban_rural: str | None = Field(default=None, max_length=3)  # 城乡分类代码 (111 主城区 ... 220 村庄), villages
    imported_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    imported_by: str | None = Field(default=None, max_length=64)


class RolloutTarget(SQLModel, table=True):
    """The share of towns and villages the county means to cover with a center or station (one row)."""

    __tablename__ = "rollout_target"

    id: int = Field(default=1, primary_key=True)
    target_pct: float = 100.0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str | None = Field(default=None, max_length=64)
