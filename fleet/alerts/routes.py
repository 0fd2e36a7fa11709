"""Alerts: JSON API (/api/alerts, /api/centers/{code}/hours) and the /alerts page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlmodel import Session, col, select

from fleet import audit
from fleet.alerts.engine import acknowledge
from fleet.alerts.models import ACTIVE_STATES, STATES, Alert, CenterHours
from fleet.alerts.rules import RULE_LABELS
from fleet.alerts.writes import WriteSessionDep
from fleet.auth.deps import CurrentUserDep, WriterDep, ensure_changeable, ensure_visible
from fleet.auth.principal import CurrentUser
from fleet.calendar import OpeningHours
from fleet.centers.names import center_names
from fleet.deps import NowDep, SessionDep, SettingsDep
from fleet.web.pages import _render
from protocol.errors import ProtocolError
from protocol.identity import check_center_code

# Database row ids in paths: bounded, so a huge number is a 422 and not a database overflow.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]

class AlertOut(BaseModel):
    id: int
    key: str
    rule: str
    severity: str
    center_code: str
    center_name: str | None = None  # the center's profile name (fleet/centers), None until it has one
    device_id: str | None
    window: int | None
    state: str
    message: str
    reason: str
    opened_at: datetime
    last_active_at: datetime
    occurrences: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None


class HoursIn(BaseModel):
    hours: str  # 08:30-12:00,14:00-17:30
    open_on_rest_days: bool = False


class HoursOut(HoursIn):
    center_code: str
    own: bool  # False: the county default


api = APIRouter(prefix="/api", tags=["alerts"])
pages = APIRouter(include_in_schema=False)


def visible_alerts(session: Session, user: CurrentUser, state: str | None = None, limit: int = 500) -> list[Alert]:
    """Newest first; state None or 'active' = open + acknowledged."""
    query = select(Alert).where(user.scope_clause(Alert.center_code))
    if state in (None, "active"):
        query = query.where(col(Alert.state).in_(ACTIVE_STATES))
    elif state != "all":
        query = query.where(Alert.state == state)
    return list(session.exec(query.order_by(col(Alert.opened_at).desc(), col(Alert.id).desc()).limit(limit)))


def _check_state(state: str | None) -> None:
    if state not in (None, "active", "all", *STATES):
        raise HTTPException(status_code=422, detail=f"state must be active, all or one of {', '.join(STATES)}")


@api.get("/alerts", response_model=list[AlertOut])
def get_alerts(user: CurrentUserDep, session: SessionDep, state: str | None = None,
               limit: int = Query(500, ge=1, le=5000)) -> list[dict[str, Any]]:
    """Alerts in the user's scope: active (open + acknowledged) by default, or ?state=open/acknowledged/resolved/all."""
    _check_state(state)
    alerts = visible_alerts(session, user, state, limit)
    names = center_names(session, {alert.center_code for alert in alerts})
    return [{**alert.model_dump(), "center_name": names.get(alert.center_code)} for alert in alerts]


def _ack(session: Session, alert_id: RowId, user: CurrentUser, now: datetime) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None or not user.can_see(alert.center_code):
        raise HTTPException(status_code=404, detail=f"alert {alert_id} is unknown")
    ensure_changeable(user, alert.center_code)
    if not acknowledge(session, alert, user.username, now):
        raise HTTPException(status_code=409, detail=f"alert {alert_id} is {alert.state}, not open")
    audit.record(session, user, "alert.acknowledge", target=f"{alert.center_code} alert {alert.id}",
                 detail={"key": alert.key, "message": alert.message}, center_code=alert.center_code, at=now)
    session.commit()
    session.refresh(alert)
    return alert


@api.post("/alerts/{alert_id}/ack", response_model=AlertOut, responses={404: {}, 409: {}})
def post_ack(alert_id: RowId, user: WriterDep, session: WriteSessionDep, now: NowDep) -> Alert:
    """Acknowledge an open alert (someone is on it). It still resolves by itself when the condition clears."""
    return _ack(session, alert_id, user, now)


def _hours_out(session: Session, code: str, default: str) -> HoursOut:
    row = session.get(CenterHours, code)
    if row is None:
        return HoursOut(center_code=code, hours=default, open_on_rest_days=False, own=False)
    return HoursOut(center_code=code, hours=row.hours, open_on_rest_days=row.open_on_rest_days, own=True)


def _center_code(code: str) -> str:
    try:
        return check_center_code(code)
    except ProtocolError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


@api.get("/centers/{code}/hours", response_model=HoursOut, responses={404: {}, 422: {}})
def get_hours(code: str, user: CurrentUserDep, session: SessionDep, settings: SettingsDep) -> HoursOut:
    """A center's opening hours: alerts only open while it is open (working days, or every day if it says so)."""
    ensure_visible(user, _center_code(code))
    return _hours_out(session, code, settings.opening_hours)


@api.put("/centers/{code}/hours", response_model=HoursOut, responses={404: {}, 422: {}})
def put_hours(code: str, body: HoursIn, user: WriterDep, session: WriteSessionDep, settings: SettingsDep,
              now: NowDep) -> HoursOut:
    """Set a center's own opening hours."""
    ensure_changeable(user, _center_code(code))
    try:
        hours = OpeningHours.parse(body.hours, body.open_on_rest_days)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    row = session.get(CenterHours, code) or CenterHours(center_code=code, hours="")
    row.hours, row.open_on_rest_days, row.updated_at, row.updated_by = hours.text(), body.open_on_rest_days, now, \
        user.username
    session.add(row)
    audit.record(session, user, "center.hours", target=code,
                 detail={"hours": row.hours, "open_on_rest_days": row.open_on_rest_days}, center_code=code, at=now)
    session.commit()
    return _hours_out(session, code, settings.opening_hours)


@pages.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, user: CurrentUserDep, session: SessionDep, now: NowDep,
                state: str = "active") -> Response:
    _check_state(state)
    alerts = visible_alerts(session, user, state)
    context: dict[str, Any] = {"alerts": alerts, "state": state, "rule_labels": RULE_LABELS, "now": now}
    return _render(request, "alerts.html", context)


@pages.post("/alerts/{alert_id}/ack")
def alerts_ack_form(alert_id: RowId, user: WriterDep, session: WriteSessionDep, now: NowDep,
                    back: str = Form("active")) -> Response:
    _ack(session, alert_id, user, now)
    return RedirectResponse(f"/alerts?state={back if back in ('active', 'all', *STATES) else 'active'}",
                            status_code=303)
