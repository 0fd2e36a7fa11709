"""Follow-up cases and satisfaction: JSON API and the /cases pages.

Every change is audited and needs a writer whose scope holds the case's center;
the review of an appeal (复核) needs a county administrator.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from fleet import audit
from fleet.alerts.evaluate import hours_lookup
from fleet.alerts.writes import WriteSessionDep
from fleet.attendance import attendance_days
from fleet.auth.deps import CurrentUserDep, WriterDep, ensure_changeable
from fleet.auth.models import User
from fleet.auth.principal import CurrentUser
from fleet.cases import service, suspicious_page
from fleet.cases.assignees import AssigneeError, assignable_users, assignee_name, assignee_names, find_assignee
from fleet.cases.contact import PhoneView, contact_box, visible_phone
from fleet.cases.models import (
    APPEAL_LABELS,
    CALLBACK_RESULTS,
    CLOSED,
    RESOLUTION_KINDS,
    SEALED_FIELDS,
    STATE_LABELS,
    CaseAction,
    FollowUpCase,
)
from fleet.cases.names import ACTION_LABELS, case_names
from fleet.coverage import rating_coverage
from fleet.deps import NowDep, SessionDep, SettingsDep
from fleet.models import RatingEvent
from fleet.overview import day_bounds, local_day
from fleet.satisfaction import GROUPINGS, satisfaction_rates, suspicious_ratings
from fleet.settings import Settings
from fleet.web.pages import _render
from protocol.messages import RATING_LABELS, RATING_REASON_LABELS

CASE_FILTERS = ("active", "overdue", "closed", "all")


# Database row ids in paths: bounded, so a huge number is a 422 and not a database overflow.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]

class CaseOut(BaseModel):
    id: int
    rating_event_id: RowId
    center_code: str
    window: int
    staff_no: str | None
    staff_name: str | None = None  # from the center's staff directory (edge_health), None if never named
    service: str
    service_name: str | None = None  # from the center's ticket events, None if never named
    ticket: str
    score: int
    reason: str | None  # 差评原因, one of protocol.messages.RATING_REASONS; None when none was picked (yet)
    rated_at: datetime
    called_at: datetime | None
    opened_at: datetime
    due_on: date
    due_estimated: bool
    overdue: bool
    state: str
    assignee: str | None  # the name given at assignment (or, for old cases, free text)
    assignee_user_id: int | None  # the responsible user account
    assignee_name: str | None  # that account's current display name
    callback_at: datetime | None
    callback_result: str | None
    callback_note: str | None
    resolution_kind: str | None
    resolution_note: str | None
    closed_at: datetime | None
    closed_by: str | None
    closed_on_time: bool | None
    appeal_state: str | None
    appeal_reason: str | None
    review_note: str | None


class ActionOut(BaseModel):
    at: datetime
    username: str
    action: str
    note: str | None


class CaseDetail(CaseOut):
    actions: list[ActionOut]


class AssignIn(BaseModel):
    assignee: str = Field(min_length=1, max_length=64,
                          description="user name of an active account whose scope covers the case's center")


class CallbackIn(BaseModel):
    result: Literal["reached", "unreachable"]
    note: str = Field(min_length=1, max_length=2000)


class ResolutionIn(BaseModel):
    kind: Literal["rectified", "explained"]
    note: str = Field(min_length=1, max_length=2000)


class CloseIn(BaseModel):
    note: str = Field(default="", max_length=2000)


class AppealIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class ReviewIn(BaseModel):
    uphold: bool
    note: str = Field(min_length=1, max_length=2000)


class ExcludeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class RateRow(BaseModel):
    by: str
    key: list[str]
    rated: int
    unrated: int
    excluded: int
    by_score: dict[str, int]
    good: int
    bad: int
    satisfaction_rate: float | None
    bad_rate: float | None
    average: float | None


class CoverageRow(BaseModel):
    by: str
    key: list[str]
    served: int
    rated: int
    timeout: int  # 未评价: the pad asked, the resident pressed nothing
    skipped: int  # staff finished the next resident before the pad answered
    pad_offline: int
    pending: int  # the edge has not reported how the request ended yet
    coverage: float | None  # 评价覆盖率, rated / served in percent


api = APIRouter(prefix="/api", tags=["cases"])
pages = APIRouter(include_in_schema=False)
pages.include_router(suspicious_page.router)


def _today(now: datetime, settings: Settings) -> date:
    return local_day(now, settings.tz)


def case_dict(case: FollowUpCase, today: date, names: dict[int, str]) -> dict[str, Any]:
    """A case for the API and the pages; `names`: assignee_names() of the cases shown."""
    return {**case.model_dump(exclude=set(SEALED_FIELDS)), "overdue": service.is_overdue(case, today),
            "assignee_name": assignee_name(case, names)}


def case_dicts(session: Session, cases: list[FollowUpCase], today: date) -> list[dict[str, Any]]:
    names = assignee_names(session, cases)
    named = case_names(session, cases)  # the staff member and the service by name (fleet/cases/names.py)
    return [{**case_dict(c, today, names), **named[c.id]} for c in cases]


def visible_cases(session: Session, user: CurrentUser, which: str, today: date, limit: int = 500) -> list[FollowUpCase]:
    query = select(FollowUpCase).where(user.scope_clause(FollowUpCase.center_code))
    if which == "active":
        query = query.where(FollowUpCase.state != CLOSED)
    elif which == "overdue":
        query = query.where(FollowUpCase.state != CLOSED, col(FollowUpCase.due_on) < today)
    elif which == "closed":
        query = query.where(FollowUpCase.state == CLOSED)
    return list(session.exec(query.order_by(col(FollowUpCase.opened_at).desc(), col(FollowUpCase.id).desc())
                             .limit(limit)))


def _case(session: Session, case_id: RowId, user: CurrentUser) -> FollowUpCase:
    case = session.get(FollowUpCase, case_id)
    if case is None or not user.can_see(case.center_code):
        raise HTTPException(status_code=404, detail=f"case {case_id} is unknown")
    return case


def _actions(session: Session, case_id: RowId) -> list[CaseAction]:
    return list(session.exec(select(CaseAction).where(CaseAction.case_id == case_id)
                             .order_by(col(CaseAction.at), col(CaseAction.id))))


def act(session: Session, case_id: RowId, user: CurrentUser, now: datetime, settings: Settings, action: str,
        fields: dict[str, Any]) -> FollowUpCase:
    """Apply one step to a case, audit it and commit; 404/403 by scope, 409 when it does not fit."""
    case = _case(session, case_id, user)
    ensure_changeable(user, case.center_code)
    tz = settings.tz
    try:
        if action == "assign":
            assignee = _assignee(session, fields["assignee"], case.center_code)
            service.assign(session, case, assignee, user.username, now)
        elif action == "callback":
            service.record_callback(session, case, fields["result"], fields["note"], user.username, now)
        elif action == "rectification":
            service.record_resolution(session, case, fields["kind"], fields["note"], user.username, now)
        elif action == "close":
            service.close(session, case, user.username, now, tz, fields.get("note", ""))
        elif action == "appeal":
            service.appeal(session, case, fields["reason"], user.username, now)
        elif action == "review":
            if not user.is_admin:
                raise HTTPException(status_code=403, detail="only a county administrator reviews appeals")
            service.review(session, case, bool(fields["uphold"]), fields["note"], user.username, now, tz)
        else:
            raise HTTPException(status_code=404, detail=f"no action {action}")
    except service.CaseError as exc:
        session.rollback()
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    audit.record(session, user, f"case.{action}", target=f"{case.center_code} case {case.id}",
                 detail={**fields, "state": case.state}, center_code=case.center_code, at=now)
    session.commit()
    session.refresh(case)
    return case


def _assignee(session: Session, username: str, center_code: str) -> User:
    """The account to assign; a 422 shaped like FastAPI's validation errors when it may not be."""
    try:
        return find_assignee(session, username, center_code)
    except AssigneeError as exc:
        raise HTTPException(status_code=422, detail=[{"type": "value_error", "loc": ["body", "assignee"],
                                                      "msg": str(exc), "input": username}]) from exc


def _detail(session: Session, case: FollowUpCase, today: date) -> dict[str, Any]:
    return {**case_dicts(session, [case], today)[0], "actions": _actions(session, case.id or 0)}


@api.get("/cases", response_model=list[CaseOut])
def get_cases(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
              which: Literal["active", "overdue", "closed", "all"] = "active",
              limit: int = Query(500, ge=1, le=5000)) -> list[dict[str, Any]]:
    """Follow-up cases of bad ratings (差评) in the user's scope."""
    today = _today(now, settings)
    return case_dicts(session, visible_cases(session, user, which, today, limit), today)


@api.get("/cases/{case_id}", response_model=CaseDetail, responses={404: {}})
def get_case(case_id: RowId, user: CurrentUserDep, session: SessionDep, settings: SettingsDep,
             now: NowDep) -> dict[str, Any]:
    return _detail(session, _case(session, case_id, user), _today(now, settings))


def _post(case_id: RowId, action: str, body: BaseModel, user: CurrentUser, session: Session, settings: Settings,
          now: datetime) -> dict[str, Any]:
    case = act(session, case_id, user, now, settings, action, body.model_dump())
    return _detail(session, case, _today(now, settings))


CHANGE = {"response_model": CaseDetail, "responses": {403: {}, 404: {}, 409: {}}}


@api.post("/cases/{case_id}/assign", **CHANGE)
def post_assign(case_id: RowId, body: AssignIn, user: WriterDep, session: WriteSessionDep, settings: SettingsDep,
                now: NowDep) -> dict[str, Any]:
    """Assign the responsible person."""
    return _post(case_id, "assign", body, user, session, settings, now)


@api.post("/cases/{case_id}/callback", **CHANGE)
def post_callback(case_id: RowId, body: CallbackIn, user: WriterDep, session: WriteSessionDep, settings: SettingsDep,
                  now: NowDep) -> dict[str, Any]:
    """Record the callback to the resident (reached or not, and what was said)."""
    return _post(case_id, "callback", body, user, session, settings, now)


@api.post("/cases/{case_id}/rectification", **CHANGE)
def post_rectification(case_id: RowId, body: ResolutionIn, user: WriterDep, session: WriteSessionDep,
                       settings: SettingsDep, now: NowDep) -> dict[str, Any]:
    """Record the rectification (整改) or the explanation (解释说明); needs the callback first."""
    return _post(case_id, "rectification", body, user, session, settings, now)


@api.post("/cases/{case_id}/close", **CHANGE)
def post_close(case_id: RowId, body: CloseIn, user: WriterDep, session: WriteSessionDep, settings: SettingsDep,
               now: NowDep) -> dict[str, Any]:
    """Close the case: needs the callback and the rectification or explanation, and no pending appeal."""
    return _post(case_id, "close", body, user, session, settings, now)


@api.post("/cases/{case_id}/appeal", **CHANGE)
def post_appeal(case_id: RowId, body: AppealIn, user: WriterDep, session: WriteSessionDep, settings: SettingsDep,
                now: NowDep) -> dict[str, Any]:
    """Appeal the rating as mistaken or malicious (申诉)."""
    return _post(case_id, "appeal", body, user, session, settings, now)


@api.post("/cases/{case_id}/review", **CHANGE)
def post_review(case_id: RowId, body: ReviewIn, user: WriterDep, session: WriteSessionDep, settings: SettingsDep,
                now: NowDep) -> dict[str, Any]:
    """Review an appeal (复核; county administrators): upheld excludes the rating and closes the case."""
    return _post(case_id, "review", body, user, session, settings, now)


def _range(since: date | None, until: date | None, now: datetime, settings: Settings) -> tuple[float, float]:
    today = _today(now, settings)
    first = since or today - timedelta(days=29)
    last = until or today
    if last < first:
        raise HTTPException(status_code=422, detail="until is before since")
    if first.year < 2000 or last.year > 2100:
        raise HTTPException(status_code=422, detail="dates must lie between 2000 and 2100")
    return day_bounds(first, settings.tz)[0], day_bounds(last, settings.tz)[1]


@api.get("/satisfaction", response_model=list[RateRow], tags=["satisfaction"])
def get_satisfaction(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
                     by: Literal["county", "town", "center", "window", "staff", "service"] = "center",
                     since: date | None = None, until: date | None = None) -> list[dict[str, Any]]:
    """Satisfaction (满意率 = 非常满意+满意+基本满意 over ratings given) per group, days since..until
    (default: the last 30 days). Excluded ratings (申诉成立) count nowhere; 未评价 is counted apart."""
    assert by in GROUPINGS
    start, end = _range(since, until, now, settings)
    return satisfaction_rates(session, by, start, end, user)


@api.get("/coverage", response_model=list[CoverageRow], tags=["satisfaction"])
def get_coverage(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
                 by: Literal["county", "town", "center", "window", "staff", "service"] = "center",
                 since: date | None = None, until: date | None = None) -> list[dict[str, Any]]:
    """Rating coverage (评价覆盖率 = rated / served) per group, days since..until (default: the last 30 days),
    with how the other requests ended: 未评价, skipped by staff, pad offline."""
    start, end = _range(since, until, now, settings)
    return rating_coverage(session, by, start, end, settings.tz, user)


class AttendanceDay(BaseModel):
    center_code: str
    staff_no: str
    staff_name: str
    day: str
    windows: list[int]
    first_in: float | None
    last_out: float | None
    present_min: int
    late: bool  # 迟到: the day's first sign-in after the center opened (plus 5 minutes' grace)
    late_min: int
    left_early: bool  # 早退: the day's last sign-out before it closed (minus the grace), not by the day's end
    early_min: int


@api.get("/attendance", response_model=list[AttendanceDay], tags=["attendance"])
def get_attendance(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
                   since: date | None = None, until: date | None = None) -> list[dict[str, Any]]:
    """考勤 per center, staff member and day, days since..until (default: the last 30 days), from the edges'
    sign-ins and sign-outs, against each center's opening hours."""
    start, end = _range(since, until, now, settings)
    return attendance_days(session, start, min(end, now.timestamp()), settings.tz, hours_lookup(session, settings),
                           user)


@api.get("/satisfaction/suspicious", response_model=list[dict[str, Any]], tags=["satisfaction"])
def get_suspicious(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
                   since: date | None = None, until: date | None = None) -> list[dict[str, Any]]:
    """Ratings to look at: given implausibly soon after the call (`quick`), or bursts of top marks (`burst`)."""
    start, end = _range(since, until, now, settings)
    return suspicious_ratings(session, start, end, settings.rating_quick_s, settings.rating_burst_count,
                              settings.rating_burst_window_s, user)


@api.post("/ratings/{rating_event_id}/exclude", response_model=dict[str, Any], tags=["satisfaction"],
          responses={403: {}, 404: {}})
def post_exclude(rating_event_id: RowId, body: ExcludeIn, user: WriterDep, session: WriteSessionDep,
                 now: NowDep) -> dict[str, Any]:
    """Exclude a rating from every rate after review (county administrators), e.g. a flagged burst."""
    rating = session.get(RatingEvent, rating_event_id)
    if rating is None or not user.can_see(rating.center_code):
        raise HTTPException(status_code=404, detail=f"rating {rating_event_id} is unknown")
    if not user.is_admin:
        raise HTTPException(status_code=403, detail="only a county administrator excludes ratings")
    service.exclude_rating(session, rating_event_id, rating.center_code, body.reason, user.username, now)
    audit.record(session, user, "rating.exclude", target=f"{rating.center_code} rating {rating.event_id}",
                 detail={"reason": body.reason, "score": rating.score}, center_code=rating.center_code, at=now)
    session.commit()
    return {"rating_event_id": rating_event_id, "excluded": True}


# Pages -----------------------------------------------------------------------

def _labels() -> dict[str, Any]:
    return {"state_labels": STATE_LABELS, "appeal_labels": APPEAL_LABELS, "callback_results": CALLBACK_RESULTS,
            "resolution_kinds": RESOLUTION_KINDS, "rating_labels": RATING_LABELS,
            "reason_labels": RATING_REASON_LABELS}


@pages.get("/cases", response_class=HTMLResponse)
def cases_page(request: Request, user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
               which: str = "active") -> Response:
    if which not in CASE_FILTERS:
        raise HTTPException(status_code=422, detail="unknown filter")
    today = _today(now, settings)
    cases = case_dicts(session, visible_cases(session, user, which, today), today)
    start, end = _range(None, None, now, settings)
    rates = satisfaction_rates(session, "center", start, end, user)
    return _render(request, "cases.html", {"cases": cases, "which": which, "rates": rates, **_labels()})


def _case_page(request: Request, session: Session, case: FollowUpCase, today: date, error: str | None = None,
               status_code: int = 200, user: CurrentUser | None = None) -> Response:
    # The callback phone is opened for the case's assignee alone (fleet.cases.contact).
    phone = visible_phone(contact_box(request.app.state.settings), case, user) if user else PhoneView("hidden")
    response = _render(request, "case.html", {"case": _detail(session, case, today), "error": error, "phone": phone,
                                             "assignable": assignable_users(session, case.center_code),
                                             "action_labels": ACTION_LABELS,
                                             **_labels()})
    response.status_code = status_code
    return response


@pages.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(case_id: RowId, request: Request, user: CurrentUserDep, session: SessionDep, settings: SettingsDep,
              now: NowDep) -> Response:
    return _case_page(request, session, _case(session, case_id, user), _today(now, settings), user=user)


FORM_FIELDS = {"assign": ("assignee",), "callback": ("result", "note"), "rectification": ("kind", "note"),
               "close": ("note",), "appeal": ("reason",), "review": ("uphold", "note")}


@pages.post("/cases/{case_id}/{action}")
async def case_form(case_id: RowId, action: str, request: Request, user: WriterDep, session: WriteSessionDep,
                    settings: SettingsDep, now: NowDep) -> Response:
    if action not in FORM_FIELDS:
        raise HTTPException(status_code=404, detail=f"no action {action}")
    form = await request.form()
    fields: dict[str, Any] = {name: str(form.get(name) or "") for name in FORM_FIELDS[action]}
    if action == "review":
        fields["uphold"] = fields["uphold"] == "1"
    try:
        act(session, case_id, user, now, settings, action, fields)
    except HTTPException as exc:
        if exc.status_code not in (409, 422):
            raise
        detail = exc.detail[0]["msg"] if isinstance(exc.detail, list) else str(exc.detail)
        return _case_page(request, session, _case(session, case_id, user), _today(now, settings), detail,
                          exc.status_code, user)
    return RedirectResponse(f"/cases/{case_id}", status_code=303)
