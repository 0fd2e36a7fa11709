"""The audit log: every change, by whom, when, what and from where.

    from fleet import audit
    audit.record(session, user, "device.config", target=device_id, detail={"version": 8},
                 center_code=center_code)

An entry about a center names it in `center_code`, always explicitly: the
target is free text (a user name, a login attempt's name), and a name that
starts with 12 digits must not file its entries under that center.

Write it in the same transaction as the change itself, so a change and its
audit entry are committed (or rolled back) together.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Index, or_
from sqlmodel import Field, Session, SQLModel, col, select

from fleet.auth.principal import CurrentUser
from fleet.models import UTCDateTime, utcnow


class AuditEntry(SQLModel, table=True):
    __tablename__ = "fleet_audit"
    __table_args__ = (Index("ix_fleet_audit_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    username: str = Field(max_length=64)
    role: str | None = Field(default=None, max_length=16)
    via: str | None = Field(default=None, max_length=8)  # session / token / cli
    source: str | None = Field(default=None, max_length=64)  # client address
    action: str = Field(max_length=64, index=True)  # e.g. user.create, token.revoke, login
    target: str | None = Field(default=None, max_length=128)
    center_code: str | None = Field(default=None, max_length=12, index=True)  # for scoping the log
    detail: str | None = None  # JSON


def record(session: Session, user: CurrentUser | None, action: str, target: str | None = None,
           detail: dict[str, Any] | str | None = None, *, center_code: str | None = None,
           at: datetime | None = None) -> AuditEntry:
    """Add one audit entry to `session` (committed with the caller's change).

    `user` None means the system itself. `center_code`, the center the change is about, decides who may read
    the entry besides the county and the user who made it; it is never read from `target` (see above).
    """
    text = detail if isinstance(detail, str) or detail is None else json.dumps(detail, ensure_ascii=False,
                                                                                sort_keys=True, default=str)
    entry = AuditEntry(
        at=at or utcnow(),
        username=user.username if user else "system",
        role=user.role if user else None,
        via=user.via if user else None,
        source=user.source if user else None,
        action=action,
        target=target,
        center_code=center_code,
        detail=text,
    )
    session.add(entry)
    return entry


def visible_entries(session: Session, viewer: CurrentUser, limit: int = 200, offset: int = 0) -> list[AuditEntry]:
    """Newest first. A scoped user sees entries about their centers and their own actions."""
    query = select(AuditEntry)
    if viewer.division_prefix is not None:
        query = query.where(or_(viewer.scope_clause(AuditEntry.center_code), AuditEntry.username == viewer.username))
    query = query.order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc()).offset(offset).limit(limit)
    return list(session.exec(query).all())
