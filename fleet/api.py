"""JSON API under /api, plus /healthz."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from fleet.deps import NowDep, SessionDep, SettingsDep
from fleet.overview import center_summaries, center_summary, list_devices
from protocol.errors import ProtocolError
from protocol.identity import check_center_code


class DeviceOut(BaseModel):
    device_id: str
    center_code: str
    role: str | None
    window: int | None
    board: str | None
    fw: str | None
    mac: str | None
    contract: int | None
    online: bool  # as last reported
    status: str  # online / offline / unknown (online, but its center's edge agent is offline)
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
    devices_total: int
    day: date  # the calendar day (county time zone) the *_today counts are for
    tickets_today: int  # tickets issued (取号)
    ratings_today: int  # ratings given, score 1..5
    unrated_today: int  # rating requests that timed out unrated (未评价)
    bad_ratings_today: int  # 差评: score 1 or 2


class CenterDetail(CenterOut):
    devices: list[DeviceOut]


router = APIRouter()


@router.get("/api/centers", response_model=list[CenterOut])
def get_centers(session: SessionDep, settings: SettingsDep, now: NowDep) -> list[dict]:
    return center_summaries(session, now, settings.tz)


@router.get("/api/centers/{code}", response_model=CenterDetail)
def get_center(code: str, session: SessionDep, settings: SettingsDep, now: NowDep) -> dict:
    try:
        check_center_code(code)
    except ProtocolError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    summary = center_summary(session, code, now, settings.tz)
    if summary is None:
        raise HTTPException(status_code=404, detail=f"center {code} is unknown")
    summary["devices"] = list_devices(session, code)
    return summary


@router.get("/api/devices", response_model=list[DeviceOut])
def get_devices(session: SessionDep, center: str | None = None) -> list:
    return list_devices(session, center)


@router.get("/healthz")
def healthz(request: Request, session: SessionDep) -> JSONResponse:
    """200 while the database answers; says whether the ingest is connected to the county broker."""
    ingest = request.app.state.ingest
    body = {
        "status": "ok",
        "database": "ok",
        "ingest": "disabled" if ingest is None else ("connected" if ingest.connected else "disconnected"),
    }
    try:
        session.connection().exec_driver_sql("SELECT 1")
    except Exception as exc:
        body.update(status="error", database=str(exc))
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
