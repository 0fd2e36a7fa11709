"""Follow-up cases of bad ratings (差评回访) and what was done on them."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Field, SQLModel

from fleet.auth.schema import added_columns
from fleet.models import UTCDateTime, utcnow

OPEN = "open"  # opened by a bad rating, nobody assigned yet
ASSIGNED = "assigned"
CALLED_BACK = "called_back"  # the resident was called back (or could not be reached)
RECTIFIED = "rectified"  # the cause was rectified or explained
CLOSED = "closed"
STATES = (OPEN, ASSIGNED, CALLED_BACK, RECTIFIED, CLOSED)
STATE_LABELS = {OPEN: "待分派", ASSIGNED: "已分派", CALLED_BACK: "已回访", RECTIFIED: "已整改", CLOSED: "已办结"}

REACHED = "reached"
UNREACHABLE = "unreachable"
CALLBACK_RESULTS = {REACHED: "已联系到群众", UNREACHABLE: "未能联系到"}
RECTIFY = "rectified"
EXPLAIN = "explained"
RESOLUTION_KINDS = {RECTIFY: "整改", EXPLAIN: "解释说明"}

APPEAL_PENDING = "pending"
APPEAL_UPHELD = "upheld"  # the rating is excluded
APPEAL_REJECTED = "rejected"
APPEAL_LABELS = {APPEAL_PENDING: "申诉待复核", APPEAL_UPHELD: "申诉成立（评价已剔除）", APPEAL_REJECTED: "申诉驳回"}


class FollowUpCase(SQLModel, table=True):
    __tablename__ = "followup_case"

    id: int | None = Field(default=None, primary_key=True)
    rating_event_id: int = Field(foreign_key="ratingevent.id", unique=True)
    # What the rating is bound to (国办发〔2019〕51号: service, window, staff, transaction, time).
    center_code: str = Field(max_length=12, index=True)
    window: int
    staff_no: str | None = None
    service: str
    ticket: str
    score: int
    # 差评原因 picked on the pad (protocol.messages.RATING_REASONS); it may arrive after the case opened.
    reason: str | None = Field(default=None, max_length=32)
    rated_at: datetime = Field(sa_type=UTCDateTime)
    called_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    due_on: date  # last working day to close it on time
    due_estimated: bool = False  # counted without holiday data for some year (see fleet.calendar)
    state: str = Field(default=OPEN, max_length=16, index=True)
    # The responsible person: a user account (assignee_user_id) and their name when assigned (assignee).
    # Cases assigned before assignees were accounts have only the free-text name, shown as it is.
    assignee: str | None = Field(default=None, max_length=64)
    assignee_user_id: int | None = Field(default=None, foreign_key="fleet_user.id")
    assigned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    callback_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    callback_result: str | None = Field(default=None, max_length=16)
    callback_note: str | None = None
    resolution_kind: str | None = Field(default=None, max_length=16)
    resolution_note: str | None = None
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_by: str | None = Field(default=None, max_length=64)
    closed_on_time: bool | None = None
    appeal_state: str | None = Field(default=None, max_length=16)
    appeal_reason: str | None = None
    appealed_by: str | None = Field(default=None, max_length=64)
    appealed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    review_note: str | None = None
    reviewed_by: str | None = Field(default=None, max_length=64)
    reviewed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    overdue_notified: bool = False
    # The phone number the resident left at the kiosk for this callback (fleet.cases.contact): sealed with
    # AES-GCM, bound to this case's id; shown only to the assignee, erased a set number of days after closing.
    callback_phone_sealed: str | None = Field(default=None, max_length=256)
    callback_phone_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    callback_phone_erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# Never in an answer or a page's data but through fleet.cases.contact.visible_phone.
SEALED_FIELDS = frozenset({"callback_phone_sealed"})

added_columns("followup_case", "assignee_user_id", "reason")
added_columns("followup_case", "callback_phone_sealed", "callback_phone_at", "callback_phone_erased_at")


class CaseAction(SQLModel, table=True):
    """The case's timeline: who did what, when (also in the audit log)."""

    __tablename__ = "followup_case_action"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="followup_case.id", index=True)
    at: datetime = Field(sa_type=UTCDateTime)
    username: str = Field(max_length=64)
    action: str = Field(max_length=32)  # opened, assign, callback, rectify, close, appeal, review
    note: str | None = None
