"""Tables of the reports: which monthly report went to which webhook (so it is sent once, across restarts)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from fleet.models import UTCDateTime


class MonthlyReportDelivery(SQLModel, table=True):
    """One month's report to one webhook target. The row is written (claimed) before the report is sent and
    marked sent after the target took it: a restart finds it and sends nothing twice; a claim left by a
    fleet that stopped while sending is taken again after `fleet.reports.monthly.CLAIM_S`."""

    __tablename__ = "monthly_report_delivery"

    month: str = Field(primary_key=True, max_length=7)  # 2026-11
    target: str = Field(primary_key=True, max_length=64)  # fleet.reports.monthly.target_key: no URL, no secret
    claimed_at: datetime = Field(sa_type=UTCDateTime)
    attempts: int = 0  # rounds of delivery tried (each round retries as every notification does)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
