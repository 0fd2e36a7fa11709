"""JSON API under /api, plus /healthz. Documented by OpenAPI at /docs and /openapi.json.

Every /api route needs a logged-in user or `Authorization: Bearer <API token>`
and answers within the user's scope: lists are filtered, and a center or
device outside it is 404, as if it did not exist.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from fleet import audit
from fleet.auth.deps import CurrentUserDep, ensure_visible
from fleet.centers.names import center_names, clean_query
from fleet.deps import NowDep, SessionDep, SettingsDep
from fleet.health_history import device_history
from fleet.models import Device
from fleet.overview import center_summaries, center_summary, count_centers, count_devices, list_devices
from protocol.errors import ProtocolError
from protocol.identity import check_center_code

log = logging.getLogger(__name__)


class DeviceOut(BaseModel):
    device_id: str
    center_code: str
    center_name: str | None = None  # the center's profile name (fleet/centers), None until it has one
    role: str | None
    window: int | None
    board: str | None
    fw: str | None
    mac: str | None
    contract: int | None
    online: bool  # as last reported
    status: str  # online / offline / unknown (online, but its center's edge agent is offline) / awaiting (never seen)
    session: int | None
    offline_reason: str | None
    last_seen: datetime | None
    updated: datetime
    uptime_s: float | None
    free_heap: int | None
    rssi: int | None
    reconnects: int | None
    last_error: str | None


class CenterOut(BaseModel):
    code: str
    name: str | None = None  # its profile's name (统一标识), None until someone writes it (fleet/centers)
    town_name: str | None = None  # the town's name in the imported division list
    county_code: str
    town_code: str
    edge_online: bool
    edge_session: int | None
    edge_offline_reason: str | None
    edge_fw: str | None
    edge_last_seen: datetime | None
    first_seen: datetime
    devices_online: int
    devices_unknown: int  # reported online, but behind an offline edge agent
    devices_awaiting: int  # registered, never seen online (待上线): not in devices_total
    devices_total: int  # devices seen at least once: online + offline + unknown
    day: date  # the calendar day (county time zone) the *_today counts are for
    tickets_today: int  # tickets issued (取号)
    ratings_today: int  # ratings given, score 1..5
    unrated_today: int  # rating requests that timed out unrated (未评价)
    bad_ratings_today: int  # 差评: score 1 or 2


class CenterDetail(CenterOut):
    devices: list[DeviceOut]


class HealthSampleOut(BaseModel):
    at: datetime  # when the fleet received the heartbeat (UTC)
    session: int
    uptime_s: float
    free_heap: int | None
    rssi: int | None
    reconnects: int | None
    last_error: str | None


class AuditEntryOut(BaseModel):
    at: datetime
    username: str
    role: str | None
    via: str | None
    source: str | None
    action: str
    target: str | None
    center_code: str | None
    detail: str | None


class UserOut(BaseModel):
    username: str
    role: str
    division_prefix: str | None  # None: the whole county
    can_write: bool


class HealthOut(BaseModel):
    status: str  # ok / error
    database: str  # ok / error (what went wrong is logged, never answered)
    ingest: str  # connected / disconnected / disabled


class ErrorOut(BaseModel):
    detail: str


NOT_FOUND = {404: {"model": ErrorOut, "description": "unknown, or outside the user's scope"}}
UNAUTHORIZED = {401: {"model": ErrorOut, "description": "no valid session or API token"}}

router = APIRouter(prefix="/api", responses=UNAUTHORIZED)

# Lists a page at a time: ?limit=&offset=, the total in X-Total-Count.
CENTERS_LIMIT, CENTERS_MAX = 500, 5000
DEVICES_LIMIT, DEVICES_MAX = 1000, 10000
TOTAL_HEADER = "X-Total-Count"
PAGED = {200: {"headers": {TOTAL_HEADER: {"description": "how many match, over all pages",
                                          "schema": {"type": "integer"}}}},
         422: {"description": "limit, offset or prefix out of range"}}
Prefix = Annotated[str | None, Query(pattern=r"^[0-9]{1,12}$",
                                     description="only centers whose division code starts with this (4452, 445202101)")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="how many to skip")]


@router.get("/me", response_model=UserOut, tags=["users"])
def get_me(user: CurrentUserDep) -> UserOut:
    """Who the session or token belongs to, and their scope."""
    return UserOut(username=user.username, role=user.role, division_prefix=user.division_prefix,
                   can_write=user.can_write)


@router.get("/centers", response_model=list[CenterOut], tags=["centers"], responses=PAGED)
def get_centers(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep, response: Response,
                prefix: Prefix = None, offset: Offset = 0,
                limit: Annotated[int, Query(ge=1, le=CENTERS_MAX, description="page size")] = CENTERS_LIMIT,
                q: Annotated[str | None, Query(max_length=64, description="part of a code, a center's name or its "
                                                                           "town's name")] = None,
                ) -> list[dict]:
    """Centers in the user's scope (under `prefix`, matching `q`) by division code, with their names, edge state,
    device counts and today's counts: `limit` of them from `offset`; X-Total-Count says how many there are."""
    q = clean_query(q)
    response.headers[TOTAL_HEADER] = str(count_centers(session, user, prefix, q))
    return center_summaries(session, now, settings.tz, user, prefix, limit=limit, offset=offset, q=q)


@router.get("/centers/{code}", response_model=CenterDetail, tags=["centers"],
            responses={**NOT_FOUND, 422: {"model": ErrorOut, "description": "not a 12-digit division code"}})
def get_center(code: str, user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep) -> dict:
    """One center with its devices."""
    try:
        check_center_code(code)
    except ProtocolError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    ensure_visible(user, code)
    summary = center_summary(session, code, now, settings.tz)
    if summary is None:
        raise HTTPException(status_code=404, detail=f"center {code} is unknown")
    summary["devices"] = list_devices(session, code)
    return summary


@router.get("/devices", response_model=list[DeviceOut], tags=["devices"], responses=PAGED)
def get_devices(user: CurrentUserDep, session: SessionDep, response: Response, center: str | None = None,
                prefix: Prefix = None, offset: Offset = 0,
                limit: Annotated[int, Query(ge=1, le=DEVICES_MAX, description="page size")] = DEVICES_LIMIT,
                ) -> list:
    """Devices in the user's scope, optionally of one center or under a division `prefix`, by center, window,
    role and id: `limit` of them from `offset`; X-Total-Count says how many there are."""
    response.headers[TOTAL_HEADER] = str(count_devices(session, center, user, prefix))
    devices = list_devices(session, center, user, prefix, limit=limit, offset=offset)
    names = center_names(session, {device["center_code"] for device in devices})
    return [{**device, "center_name": names.get(device["center_code"])} for device in devices]


@router.get("/devices/{device_id}/health", response_model=list[HealthSampleOut], tags=["devices"],
            responses=NOT_FOUND)
def get_device_health(device_id: str, user: CurrentUserDep, session: SessionDep, now: NowDep,
                      hours: float = Query(24, gt=0, le=24 * 31)) -> list:
    """The device's heartbeats of the last `hours`, oldest first (as long as the retention keeps them)."""
    device = session.get(Device, device_id)
    if device is None or not user.can_see(device.center_code):
        raise HTTPException(status_code=404, detail=f"device {device_id} is unknown")
    return device_history(session, device_id, since=now - timedelta(hours=hours))


@router.get("/audit", response_model=list[AuditEntryOut], tags=["audit"])
def get_audit(user: CurrentUserDep, session: SessionDep, limit: int = Query(100, ge=1, le=1000),
              offset: int = Query(0, ge=0, le=1_000_000)) -> list:
    """Audit entries the user may read, newest first."""
    return audit.visible_entries(session, user, limit=limit, offset=offset)


health_router = APIRouter(tags=["service"])


@health_router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def healthz(request: Request, session: SessionDep) -> JSONResponse:
    """200 while the database answers; says whether the ingest is connected to the county broker. No login."""
    ingest = request.app.state.ingest
    body = {
        "status": "ok",
        "database": "ok",
        "ingest": "disabled" if ingest is None else ("connected" if ingest.connected else "disconnected"),
    }
    try:
        session.connection().exec_driver_sql("SELECT 1")
    except Exception:
        # Anyone may ask (no login): the driver's words (paths, host and user names) go to the log only.
        log.exception("/healthz: the database does not answer")
        body.update(status="error", database="error")
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
