"""The registry's JSON API and pages: profiles, the division list, rollout coverage.

API (tag centers): GET/PUT /api/centers/{code}/profile, GET /api/registry, GET /api/divisions,
POST /api/divisions/import (text/csv body), GET /api/registry/coverage, PUT /api/registry/coverage/target.
Pages: /registry (search by name or code), /registry/{code} (the profile form), /registry-coverage (rollout
coverage, the list import and the target; not the firmware rollouts of fleet/rollouts).

Every route keeps to the user's scope: a center outside it is 404; a town operator edits only their town's
centers; importing the list and setting the target are the county administrator's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from fleet import audit
from fleet.alerts.writes import WriteSessionDep
from fleet.auth.deps import AdminDep, CurrentUserDep, WriterDep, ensure_changeable, ensure_visible
from fleet.auth.principal import CurrentUser
from fleet.centers.divisions import DivisionListError, import_divisions, parse_division_list
from fleet.centers.listing import list_registry
from fleet.centers.messages_en import ENGLISH
from fleet.centers.models import CENTER_LEVELS, Division
from fleet.centers.names import clean_query
from fleet.centers.profile import FIELD_LABELS, LEVEL_LABELS, ProfileRefused, center_profile, save_profile
from fleet.centers.rollout import rollout_coverage, set_rollout_target
from fleet.deps import NowDep, SessionDep, SettingsDep
from fleet.web.i18n import EN, add_messages
from fleet.web.pages import render
from protocol.errors import ProtocolError
from protocol.identity import check_center_code

REGISTRY_LIMIT, REGISTRY_MAX = 1000, 10_000  # rows of GET /api/registry a page
REGISTRY_SHOWN = 1000  # rows of the /registry page: a county has a few hundred; more is a search to narrow
MAX_LIST_BYTES = 20 * 1024 * 1024  # a province's full list is about 10 MB; a county's a few hundred KB

api = APIRouter(prefix="/api", tags=["centers"])
pages = APIRouter(include_in_schema=False)

Level = Annotated[str | None, Query(pattern="^(town|village)?$", description="town (中心), village (站); empty: both")]
SearchText = Annotated[str | None, Query(max_length=64, description="part of a code, a center's or a town's name")]


class ProfileIn(BaseModel):
    name: str = Field(max_length=200)
    level: str = Field(max_length=16)  # town / village
    address: str = Field("", max_length=400)
    consult_phone: str = Field("", max_length=64)
    complaint_phone: str = Field("", max_length=64)
    contact_name: str = Field("", max_length=64)
    contact_phone: str = Field("", max_length=64)
    opening_hours: str = Field("", max_length=400)  # 08:30-12:00,14:00-17:30; empty: the county default
    open_on_rest_days: bool = False


class ProfileOut(BaseModel):
    code: str
    registered: bool  # False: nobody has described this center yet
    name: str
    level: str
    address: str
    consult_phone: str
    complaint_phone: str
    contact_name: str
    contact_phone: str
    opening_hours: str
    open_on_rest_days: bool
    own_hours: bool  # False: the county default
    updated_at: datetime | None
    updated_by: str | None


class RegistryRowOut(BaseModel):
    code: str
    name: str | None
    level: str
    registered: bool
    seen: bool  # its edge agent has reported
    edge_online: bool
    edge_last_seen: datetime | None
    online_today: bool
    town_code: str
    town_name: str | None
    address: str
    consult_phone: str
    complaint_phone: str
    contact_name: str
    contact_phone: str


class DivisionOut(BaseModel):
    code: str
    name: str
    level: str
    urban_rural: str | None


class ImportOut(BaseModel):
    counties: list[str]
    counts: dict[str, int]


class CoverageFigures(BaseModel):
    towns_total: int
    towns_with_center: int
    towns_online_today: int
    villages_total: int
    villages_with_station: int
    villages_online_today: int
    town_coverage_pct: float | None
    village_coverage_pct: float | None
    covered_pct: float | None  # (towns with a center + villages with a station) / (towns + villages)
    online_pct: float | None  # the same with what was online today
    meets_target: bool


class CountyCoverageOut(CoverageFigures):
    code: str | None  # the county's division code, when the scope holds one county
    name: str | None


class VillageCoverageOut(BaseModel):
    code: str
    name: str
    station: str | None  # the code of its station, None: no station
    station_name: str | None
    online_today: bool


class TownCenterOut(BaseModel):
    code: str
    name: str | None
    online_today: bool


class TownCoverageOut(CoverageFigures):
    code: str  # the town's 12-digit division code
    town_code: str  # its 9 digits, as Center.town_code
    name: str
    centers: list[TownCenterOut]
    has_center: bool
    center_online_today: bool
    villages: list[VillageCoverageOut]


class UnmatchedCenterOut(BaseModel):
    code: str
    name: str | None
    level: str
    online_today: bool


class CoverageOut(BaseModel):
    target_pct: float
    county: CountyCoverageOut
    towns: list[TownCoverageOut]
    unmatched: list[UnmatchedCenterOut]  # centers that match no division of the list
    divisions: int  # towns and villages listed in scope


class TargetIn(BaseModel):
    target_pct: float = Field(ge=0, le=100)


class TargetOut(BaseModel):
    target_pct: float


def _code(code: str) -> str:
    try:
        return check_center_code(code)
    except ProtocolError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


def _refusal(exc: ProfileRefused | DivisionListError) -> JSONResponse:
    errors = exc.errors
    return JSONResponse({"detail": str(exc), "errors": errors}, status_code=422)


@api.get("/centers/{code}/profile", response_model=ProfileOut, responses={404: {}, 422: {}})
def get_profile(code: str, user: CurrentUserDep, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """A center's profile (name, level, address, phones, contact, opening hours); defaults until someone writes it."""
    ensure_visible(user, _code(code))
    return center_profile(session, code, settings.opening_hours)


@api.put("/centers/{code}/profile", response_model=ProfileOut, responses={403: {}, 404: {}, 422: {}})
def put_profile(code: str, body: ProfileIn, user: WriterDep, session: WriteSessionDep, settings: SettingsDep,
                now: NowDep) -> Any:
    """Write a center's profile (also one planned, not yet connected); 422 names every refused field in Chinese."""
    ensure_changeable(user, _code(code))
    try:
        saved = save_profile(session, user, code, body.model_dump(), now, settings.opening_hours)
    except ProfileRefused as exc:
        return _refusal(exc)
    session.commit()
    return saved


@api.get("/registry", response_model=list[RegistryRowOut], responses={422: {}})
def get_registry(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep, response: Response,
                 q: SearchText = None, level: Level = None, offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                 limit: Annotated[int, Query(ge=1, le=REGISTRY_MAX)] = REGISTRY_LIMIT) -> list[dict[str, Any]]:
    """Every center in scope, described or only seen, with names beside codes, by code; `q` searches codes and
    names. `limit` of them from `offset`; X-Total-Count says how many there are."""
    rows = list_registry(session, now, settings.tz, user.division_prefix, clean_query(q), level or None)
    response.headers["X-Total-Count"] = str(len(rows))
    return rows[offset:offset + limit]


@api.get("/divisions", response_model=list[DivisionOut], responses={422: {}})
def get_divisions(user: CurrentUserDep, session: SessionDep, q: SearchText = None, level: Annotated[
        str | None, Query(pattern="^(province|city|county|town|village)$")] = None) -> list[Division]:
    """The imported divisions in scope (and the province, city and county above it), by code."""
    query = select(Division).order_by(col(Division.code))
    if user.division_prefix:
        query = query.where(user.scope_clause(Division.code) | col(Division.level).in_(("province", "city",
                                                                                        "county")))
    q = clean_query(q)
    if q:
        query = query.where(col(Division.code).contains(q, autoescape=True) |
                            col(Division.name).contains(q, autoescape=True))
    if level:
        query = query.where(Division.level == level)
    return list(session.exec(query.limit(50_000)).all())


def _import(session: Session, user: CurrentUser, raw: bytes, now: datetime) -> ImportOut:
    if len(raw) > MAX_LIST_BYTES:
        raise DivisionListError([f"文件超过 {MAX_LIST_BYTES // (1024 * 1024)} MB"])
    result = import_divisions(session, parse_division_list(raw), user.division_prefix, user.username, now)
    audit.record(session, user, "divisions.import", target=",".join(result.counties),
                 detail={"counties": result.counties, "count": sum(result.counts.values()),
                         **{f"count_{level}": n for level, n in result.counts.items()}}, at=now)
    session.commit()
    return ImportOut(counties=result.counties, counts=result.counts)


@api.post("/divisions/import", response_model=ImportOut, responses={403: {}, 422: {}},
          openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}})
async def post_divisions(request: Request, user: AdminDep, session: WriteSessionDep, now: NowDep) -> Any:
    """Import the statistics bureau's list (CSV `code,name` or `code,urban_rural,name`, UTF-8 or GBK): it replaces
    the divisions of every county it names. County administrators only; every bad line is named at once."""
    raw = await request.body()
    try:
        return _import(session, user, raw, now)
    except DivisionListError as exc:
        return _refusal(exc)


@api.get("/registry/coverage", response_model=CoverageOut)
def get_rollout(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep) -> dict[str, Any]:
    """Rollout coverage of the towns and villages in scope: centers and stations, online today, against the target."""
    return rollout_coverage(session, now, settings.tz, user.division_prefix)


@api.put("/registry/coverage/target", response_model=TargetOut, responses={403: {}, 422: {}})
def put_target(body: TargetIn, user: AdminDep, session: WriteSessionDep, now: NowDep) -> TargetOut:
    """Set the county's target coverage in percent (county administrators)."""
    target = set_rollout_target(session, user, body.target_pct, now)
    session.commit()
    return TargetOut(target_pct=target)


# Pages ------------------------------------------------------------------------------------------------------

@pages.get("/registry", response_class=HTMLResponse)
def registry_page(request: Request, user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
                  q: SearchText = None, level: Level = None, code: str | None = None) -> Response:
    if code is not None:  # 新增或编辑中心: open the profile of a typed code
        return RedirectResponse(f"/registry/{_code(code.strip())}", status_code=303)
    q = clean_query(q)
    rows = list_registry(session, now, settings.tz, user.division_prefix, q, level or None)
    return render(request, "registry.html", {"rows": rows[:REGISTRY_SHOWN], "total": len(rows), "q": q or "",
                                             "level": level or "",
                                             "level_labels": LEVEL_LABELS, "levels": CENTER_LEVELS})


def _profile_page(request: Request, user: CurrentUser, profile: dict[str, Any], errors: dict[str, str],
                  saved: bool, status: int = 200) -> Response:
    response = render(request, "registry_profile.html", {
        "profile": profile, "errors": errors, "saved": saved, "level_labels": LEVEL_LABELS, "levels": CENTER_LEVELS,
        "field_labels": FIELD_LABELS, "can_change": user.can_change(profile["code"])})
    response.status_code = status
    return response


@pages.get("/registry/{code}", response_class=HTMLResponse)
def profile_page(code: str, request: Request, user: CurrentUserDep, session: SessionDep, settings: SettingsDep,
                 saved: bool = False) -> Response:
    ensure_visible(user, _code(code))
    return _profile_page(request, user, center_profile(session, code, settings.opening_hours), {}, saved)


@pages.post("/registry/{code}")
async def profile_form(code: str, request: Request, user: WriterDep, session: WriteSessionDep,
                       settings: SettingsDep, now: NowDep) -> Response:
    ensure_changeable(user, _code(code))
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    try:
        save_profile(session, user, code, values, now, settings.opening_hours)
    except ProfileRefused as exc:
        session.rollback()
        shown = center_profile(session, code, settings.opening_hours)  # what is stored, with what was typed
        shown.update({key: value for key, value in values.items() if key in FIELD_LABELS and key != "opening_hours"})
        shown["open_on_rest_days"] = values.get("open_on_rest_days") == "on"
        if values.get("opening_hours", "").strip():
            shown["opening_hours"], shown["own_hours"] = values["opening_hours"], True
        else:
            shown["own_hours"] = False
        return _profile_page(request, user, shown, exc.errors, False, status=422)
    session.commit()
    return RedirectResponse(f"/registry/{code}?saved=1", status_code=303)


@pages.get("/registry-coverage", response_class=HTMLResponse)
def rollout_page(request: Request, user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
                 imported: int | None = None) -> Response:
    return _rollout_page(request, user, session, settings.tz, now, imported=imported)


def _rollout_page(request: Request, user: CurrentUser, session: Session, tz: Any, now: datetime,
                  errors: list[str] | None = None, imported: int | None = None, status: int = 200) -> Response:
    response = render(request, "coverage_rollout.html", {
        "coverage": rollout_coverage(session, now, tz, user.division_prefix), "errors": errors or [],
        "imported": imported, "level_labels": LEVEL_LABELS, "now": now})
    response.status_code = status
    return response


@pages.post("/registry-coverage/import")
async def rollout_import_form(request: Request, user: AdminDep, session: WriteSessionDep, settings: SettingsDep,
                              now: NowDep, division_list: Annotated[UploadFile, File()]) -> Response:
    raw = await division_list.read(MAX_LIST_BYTES + 1)
    try:
        result = _import(session, user, raw, now)
    except DivisionListError as exc:
        session.rollback()
        return _rollout_page(request, user, session, settings.tz, now, errors=exc.errors, status=422)
    return RedirectResponse(f"/registry-coverage?imported={sum(result.counts.values())}", status_code=303)


@pages.post("/registry-coverage/target")
def rollout_target_form(user: AdminDep, session: WriteSessionDep, now: NowDep,
                        target_pct: Annotated[float, Form(ge=0, le=100)]) -> Response:
    set_rollout_target(session, user, target_pct, now)
    session.commit()
    return RedirectResponse("/registry-coverage", status_code=303)


add_messages(EN, ENGLISH)
