"""The life of a follow-up case: opened by a bad rating, assigned, called back, rectified or explained,
closed; appealed and reviewed. Plain functions over a session (the caller commits).

Deadlines count WORKING days (fleet.calendar: public holidays and make-up working
days); a case not closed by its `due_on` is overdue.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from fleet.auth.models import User
from fleet.calendar import add_working_days
from fleet.cases.assignees import display_name
from fleet.cases.models import (
    APPEAL_PENDING,
    APPEAL_REJECTED,
    APPEAL_UPHELD,
    ASSIGNED,
    CALLBACK_RESULTS,
    CALLED_BACK,
    CLOSED,
    OPEN,
    RECTIFIED,
    RESOLUTION_KINDS,
    CaseAction,
    FollowUpCase,
)
from fleet.models import RatingEvent, TicketEvent
from fleet.satisfaction import CALL_LOOKBACK_S, RatingExclusion
from protocol.messages import BAD_SCORES, RATING_REASON_LABELS, TICKET_CALLED

SYSTEM = "system"


class CaseError(ValueError):
    """A step that does not fit the case's state (HTTP 409), with the reason in Chinese."""


def _log(session: Session, case: FollowUpCase, username: str, action: str, now: datetime,
         note: str | None = None) -> None:
    assert case.id is not None
    session.add(CaseAction(case_id=case.id, at=now, username=username, action=action, note=note))


def open_case(session: Session, rating: RatingEvent, now: datetime, tz: ZoneInfo,
              deadline_days: int) -> FollowUpCase | None:
    """The case of a bad rating, created once (None for a rating that is not 差评)."""
    if rating.score not in BAD_SCORES or rating.id is None:
        return None
    existing = session.exec(select(FollowUpCase).where(FollowUpCase.rating_event_id == rating.id)).first()
    if existing is not None:
        return existing
    rated_at = datetime.fromtimestamp(rating.ts, UTC)
    deadline = add_working_days(rated_at.astimezone(tz).date(), deadline_days)
    called = session.exec(select(TicketEvent.ts).where(
        TicketEvent.center_code == rating.center_code, TicketEvent.ticket == rating.ticket,
        TicketEvent.kind == TICKET_CALLED, TicketEvent.ts <= rating.ts,
        TicketEvent.ts >= rating.ts - CALL_LOOKBACK_S).order_by(col(TicketEvent.ts).desc())).first()
    case = FollowUpCase(rating_event_id=rating.id, center_code=rating.center_code, window=rating.window,
                        staff_no=rating.staff_no, service=rating.service, ticket=rating.ticket, score=rating.score,
                        reason=rating.reason, rated_at=rated_at,
                        called_at=None if called is None else datetime.fromtimestamp(called, UTC),
                        opened_at=now, due_on=deadline.day, due_estimated=deadline.estimated)
    session.add(case)
    session.flush()
    _log(session, case, SYSTEM, "opened", now, f"评分 {rating.score}")
    return case


def note_reason(session: Session, rating: RatingEvent, now: datetime) -> FollowUpCase | None:
    """A 差评's reason came after its case opened (the rating's second event): the case gets it too."""
    case = session.exec(select(FollowUpCase).where(FollowUpCase.rating_event_id == rating.id)).first()
    if case is None or case.reason is not None or rating.reason is None:
        return case
    case.reason = rating.reason
    session.add(case)
    _log(session, case, SYSTEM, "reason", now, RATING_REASON_LABELS.get(rating.reason, rating.reason))
    return case


def open_case_for_event(session: Session, center_code: str, event_id: str, now: datetime, tz: ZoneInfo,
                        deadline_days: int) -> FollowUpCase | None:
    """For the ingest: the stored rating event `event_id` of `center_code` opens its case if it is 差评."""
    rating = session.exec(select(RatingEvent).where(RatingEvent.center_code == center_code,
                                                    RatingEvent.event_id == event_id)).first()
    return None if rating is None else open_case(session, rating, now, tz, deadline_days)


def open_missing_cases(session: Session, now: datetime, tz: ZoneInfo, deadline_days: int) -> int:
    """Open a case for every bad rating that has none (a safety net behind the ingest); returns how many."""
    have = select(FollowUpCase.rating_event_id)
    missing = session.exec(select(RatingEvent).where(col(RatingEvent.score).in_(BAD_SCORES),
                                                     col(RatingEvent.id).not_in(have))).all()
    for rating in missing:
        open_case(session, rating, now, tz, deadline_days)
    return len(missing)


def is_overdue(case: FollowUpCase, today: date) -> bool:
    return case.state != CLOSED and today > case.due_on


def _require_open(case: FollowUpCase) -> None:
    if case.state == CLOSED:
        raise CaseError("工单已办结")


def assign(session: Session, case: FollowUpCase, assignee: User, username: str, now: datetime) -> None:
    """Make the user account `assignee` (checked by fleet.cases.assignees) responsible for the case."""
    _require_open(case)
    name = display_name(assignee)
    case.assignee, case.assignee_user_id, case.assigned_at = name[:64], assignee.id, now
    if case.state == OPEN:
        case.state = ASSIGNED
    session.add(case)
    note = name if name == assignee.username else f"{name}（{assignee.username}）"
    _log(session, case, username, "assign", now, note)


def record_callback(session: Session, case: FollowUpCase, result: str, note: str, username: str,
                    now: datetime) -> None:
    _require_open(case)
    if result not in CALLBACK_RESULTS:
        raise CaseError("回访结果无效")
    if not note.strip():
        raise CaseError("请填写回访情况")
    case.callback_at, case.callback_result, case.callback_note = now, result, note.strip()
    if case.state in (OPEN, ASSIGNED):
        case.state = CALLED_BACK
    session.add(case)
    _log(session, case, username, "callback", now, f"{CALLBACK_RESULTS[result]}：{note.strip()}")


def record_resolution(session: Session, case: FollowUpCase, kind: str, note: str, username: str,
                      now: datetime) -> None:
    """The cause was rectified (整改) or explained (解释说明)."""
    _require_open(case)
    if kind not in RESOLUTION_KINDS:
        raise CaseError("处理方式无效")
    if not note.strip():
        raise CaseError("请填写整改或解释情况")
    if case.callback_at is None:
        raise CaseError("请先记录回访")
    case.resolution_kind, case.resolution_note, case.resolved_at = kind, note.strip(), now
    case.state = RECTIFIED
    session.add(case)
    _log(session, case, username, "rectify", now, f"{RESOLUTION_KINDS[kind]}：{note.strip()}")


def close(session: Session, case: FollowUpCase, username: str, now: datetime, tz: ZoneInfo,
          note: str = "") -> None:
    """Close after callback and rectification/explanation (the result fed back to the resident)."""
    _require_open(case)
    if case.appeal_state == APPEAL_PENDING:
        raise CaseError("申诉待复核，暂不能办结")
    if case.state != RECTIFIED:
        raise CaseError("请先记录回访和整改（或解释）情况")
    _finish(case, username, now, tz)
    session.add(case)
    _log(session, case, username, "close", now, note.strip() or None)


def _finish(case: FollowUpCase, username: str, now: datetime, tz: ZoneInfo) -> None:
    case.state, case.closed_at, case.closed_by = CLOSED, now, username
    case.closed_on_time = now.astimezone(tz).date() <= case.due_on


def appeal(session: Session, case: FollowUpCase, reason: str, username: str, now: datetime) -> None:
    """申诉: the rating is claimed mistaken or malicious; a county administrator reviews it."""
    _require_open(case)
    if case.appeal_state in (APPEAL_PENDING, APPEAL_UPHELD):
        raise CaseError("已提交申诉")
    if not reason.strip():
        raise CaseError("请填写申诉理由")
    case.appeal_state, case.appeal_reason, case.appealed_by, case.appealed_at = APPEAL_PENDING, reason.strip(), \
        username, now
    session.add(case)
    _log(session, case, username, "appeal", now, reason.strip())


def review(session: Session, case: FollowUpCase, uphold: bool, note: str, username: str, now: datetime,
           tz: ZoneInfo) -> None:
    """复核: upheld excludes the rating from every rate and closes the case; rejected, the case goes on."""
    if case.appeal_state != APPEAL_PENDING:
        raise CaseError("没有待复核的申诉")
    if not note.strip():
        raise CaseError("请填写复核意见")
    case.review_note, case.reviewed_by, case.reviewed_at = note.strip(), username, now
    if uphold:
        case.appeal_state = APPEAL_UPHELD
        exclude_rating(session, case.rating_event_id, case.center_code, f"申诉成立：{note.strip()}", username, now,
                       case.id)
        _finish(case, username, now, tz)
    else:
        case.appeal_state = APPEAL_REJECTED
    session.add(case)
    _log(session, case, username, "review", now, ("申诉成立：" if uphold else "申诉驳回：") + note.strip())


def exclude_rating(session: Session, rating_event_id: int, center_code: str, reason: str, username: str,
                   now: datetime, case_id: int | None = None) -> RatingExclusion:
    row = session.get(RatingExclusion, rating_event_id)
    if row is None:
        row = RatingExclusion(rating_event_id=rating_event_id, center_code=center_code, reason=reason,
                              excluded_by=username, excluded_at=now, case_id=case_id)
        session.add(row)
    return row


def overdue_cases(session: Session, today: date) -> list[FollowUpCase]:
    return list(session.exec(select(FollowUpCase).where(FollowUpCase.state != CLOSED,
                                                        col(FollowUpCase.due_on) < today)))
