"""A center's windows and staff roster, and its configuration's delivery: the JSON API and the page.

API (tag center-config): GET /api/center-config (every center's status within scope),
GET /api/centers/{code}/center-config (status applied/pending/rejected, windows, roster, versions),
PUT/DELETE /api/centers/{code}/windows/{number}, PUT/DELETE /api/centers/{code}/roster/{staff_no},
POST /api/centers/{code}/center-config/rollback. Page: /centers/{code}/staffing (窗口与人员), with forms.

Every route keeps to the user's scope: a center outside it is 404, a read-only user may look but not change.
A change makes a new version and publishes it at once (the periodic job retries and notices changes of the
profile and the items made elsewhere).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from fleet.alerts.writes import WriteSessionDep
from fleet.auth.deps import CurrentUserDep, WriterDep, ensure_changeable, ensure_visible
from fleet.auth.principal import CurrentUser
from fleet.catalogue.service import center_services
from fleet.centerconfig import service
from fleet.centerconfig.messages_en import ENGLISH
from fleet.deps import NowDep, SessionDep
from fleet.web.i18n import EN, add_messages
from fleet.web.pages import render
from protocol import messages
from protocol.errors import ProtocolError
from protocol.identity import check_center_code

api = APIRouter(prefix="/api", tags=["center-config"])
pages = APIRouter(include_in_schema=False)


class WindowIn(BaseModel):
    kind: str = Field(max_length=16, description="general (综合受理), dedicated (专窗) or flexible (机动)")
    services: list[str] = Field(max_length=26, description="the queue prefixes the window serves")
    staff_no: str = Field("", max_length=16, description="the window's own staff; empty: none")


class MemberIn(BaseModel):
    name: str = Field(max_length=64)
    title: str = Field("", max_length=64, description="职务")
    windows: list[int] = Field([], max_length=999, description="where they may sign in; empty: any window")
    stand_in_for: list[str] = Field([], max_length=100, description="the 工号 they stand in for (AB角)")
    pin: str | None = Field(None, max_length=16, description="a new sign-in PIN (4-8 digits); absent: unchanged")
    photo: str | None = Field(None, max_length=80_000, description="a data: URL (JPEG/PNG); \"\" removes it")


class RollbackIn(BaseModel):
    version: int = Field(ge=1, le=messages.INT_MAX)


def _code(code: str) -> str:
    try:
        return check_center_code(code)
    except ProtocolError:
        raise HTTPException(status_code=404, detail=f"center {code} is unknown") from None


def _deliver(request: Request, session: Session, code: str, now: datetime, by: str) -> None:
    """The edit's new version, made and published in the edit's transaction (the job retries a failure)."""
    settings = request.app.state.settings
    service.note_config(session, code, now, by, settings.opening_hours)
    service.publish(session, request.app.state.ingest, request.app.state.key_box, code, now)


def _refused(exc: service.ConfigRefused) -> HTTPException:
    return HTTPException(status_code=422, detail=exc.errors)


@api.get("/center-config")
def list_center_configs(user: CurrentUserDep, session: SessionDep) -> list[dict[str, Any]]:
    """Per center run from the county (within the user's scope): applied / pending / rejected / none, versions."""
    return service.statuses(session, user)


@api.get("/centers/{code}/center-config")
def get_center_config(code: str, user: CurrentUserDep, session: SessionDep) -> dict[str, Any]:
    """Windows, roster and the configuration's delivery: applied / pending / rejected, versions."""
    ensure_visible(user, _code(code))
    return service.config_view(session, code)


@api.put("/centers/{code}/windows/{number}", responses={403: {}, 404: {}, 422: {}})
def put_window(code: str, number: int, body: WindowIn, request: Request, user: WriterDep,
               session: WriteSessionDep, now: NowDep) -> dict[str, Any]:
    ensure_changeable(user, _code(code))
    try:
        service.save_window(session, user, code, number, body.kind, body.services, body.staff_no, now)
    except service.ConfigRefused as exc:
        raise _refused(exc) from None
    _deliver(request, session, code, now, user.username)
    session.commit()
    return service.config_view(session, code)


@api.delete("/centers/{code}/windows/{number}", responses={403: {}, 404: {}})
def delete_window(code: str, number: int, request: Request, user: WriterDep, session: WriteSessionDep,
                  now: NowDep) -> dict[str, Any]:
    ensure_changeable(user, _code(code))
    if not service.delete_window(session, user, code, number, now):
        raise HTTPException(status_code=404, detail=f"window {number} is unknown")
    _deliver(request, session, code, now, user.username)
    session.commit()
    return service.config_view(session, code)


@api.put("/centers/{code}/roster/{staff_no}", responses={403: {}, 404: {}, 422: {}})
def put_member(code: str, staff_no: str, body: MemberIn, request: Request, user: WriterDep,
               session: WriteSessionDep, now: NowDep) -> dict[str, Any]:
    ensure_changeable(user, _code(code))
    try:
        service.save_member(session, user, code, staff_no, body.name, body.title, body.windows, body.stand_in_for,
                            now, pin=body.pin, photo=body.photo)
    except service.ConfigRefused as exc:
        raise _refused(exc) from None
    _deliver(request, session, code, now, user.username)
    session.commit()
    return service.config_view(session, code)


@api.delete("/centers/{code}/roster/{staff_no}", responses={403: {}, 404: {}})
def delete_member(code: str, staff_no: str, request: Request, user: WriterDep, session: WriteSessionDep,
                  now: NowDep) -> dict[str, Any]:
    ensure_changeable(user, _code(code))
    if not service.delete_member(session, user, code, staff_no, now):
        raise HTTPException(status_code=404, detail=f"staff {staff_no} is unknown")
    _deliver(request, session, code, now, user.username)
    session.commit()
    return service.config_view(session, code)


@api.post("/centers/{code}/center-config/rollback", responses={403: {}, 404: {}})
def post_rollback(code: str, body: RollbackIn, request: Request, user: WriterDep, session: WriteSessionDep,
                  now: NowDep) -> dict[str, Any]:
    """A new version with the content of an earlier one (its windows and roster come back as they were)."""
    ensure_changeable(user, _code(code))
    try:
        service.rollback(session, user, code, body.version, now, request.app.state.settings.opening_hours)
    except KeyError:
        raise HTTPException(status_code=404, detail=f"version {body.version} is unknown") from None
    service.publish(session, request.app.state.ingest, request.app.state.key_box, code, now)
    session.commit()
    return service.config_view(session, code)


# Pages ------------------------------------------------------------------------------------------------------

def _page(request: Request, user: CurrentUser, session: Session, code: str, errors: dict[str, str] | None = None,
          status: int = 200) -> Response:
    response = render(request, "staffing.html", {
        "view": service.config_view(session, code), "code": code, "errors": errors or {},
        "services": center_services(session, code), "kinds": service.WINDOW_KIND_LABELS,
        "status_labels": service.STATUS_LABELS, "can_change": user.can_change(code)})
    response.status_code = status
    return response


@pages.get("/centers/{code}/staffing", response_class=HTMLResponse)
def staffing_page(code: str, request: Request, user: CurrentUserDep, session: SessionDep) -> Response:
    ensure_visible(user, _code(code))
    return _page(request, user, session, code)


def _numbers(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.strip().isdigit()]


@pages.post("/centers/{code}/staffing/window")
async def window_form(code: str, request: Request, user: WriterDep, session: WriteSessionDep,
                      now: NowDep) -> Response:
    ensure_changeable(user, _code(code))
    form = await request.form()
    number = str(form.get("number", ""))
    try:
        if form.get("delete"):
            service.delete_window(session, user, code, int(number), now)
        else:
            if not number.isdigit():
                raise service.ConfigRefused({"number": "窗口号须为 1 至 999 的整数"})
            service.save_window(session, user, code, int(number), str(form.get("kind", "")),
                                [str(p) for p in form.getlist("services")], str(form.get("staff_no", "")), now)
    except service.ConfigRefused as exc:
        session.rollback()
        return _page(request, user, session, code, exc.errors, status=422)
    _deliver(request, session, code, now, user.username)
    session.commit()
    return RedirectResponse(f"/centers/{code}/staffing", status_code=303)


@pages.post("/centers/{code}/staffing/staff")
async def staff_form(code: str, request: Request, user: WriterDep, session: WriteSessionDep,
                     now: NowDep) -> Response:
    ensure_changeable(user, _code(code))
    form = await request.form()
    staff_no = str(form.get("staff_no", ""))
    try:
        if form.get("delete"):
            service.delete_member(session, user, code, staff_no, now)
        else:
            photo = str(form.get("photo", "")) or None
            service.save_member(session, user, code, staff_no, str(form.get("name", "")), str(form.get("title", "")),
                                _numbers([str(v) for v in form.getlist("windows")]),
                                [str(v) for v in form.getlist("stand_in_for")], now,
                                pin=str(form.get("pin", "")) or None, photo=photo)
    except service.ConfigRefused as exc:
        session.rollback()
        return _page(request, user, session, code, exc.errors, status=422)
    _deliver(request, session, code, now, user.username)
    session.commit()
    return RedirectResponse(f"/centers/{code}/staffing", status_code=303)


@pages.post("/centers/{code}/staffing/rollback")
async def rollback_form(code: str, request: Request, user: WriterDep, session: WriteSessionDep,
                        now: NowDep) -> Response:
    ensure_changeable(user, _code(code))
    form = await request.form()
    try:
        service.rollback(session, user, code, int(str(form.get("version", "0"))), now,
                         request.app.state.settings.opening_hours)
    except (KeyError, ValueError):
        raise HTTPException(status_code=404, detail="version is unknown") from None
    service.publish(session, request.app.state.ingest, request.app.state.key_box, code, now)
    session.commit()
    return RedirectResponse(f"/centers/{code}/staffing", status_code=303)


add_messages(EN, ENGLISH)
