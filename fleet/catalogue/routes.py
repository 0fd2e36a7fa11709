"""The catalogue's JSON API (/api/catalogue/...) and pages (/catalogue...).

Rules live in fleet.catalogue.service; here: scope answers (404 outside it, 403 for a read-only user or an item
kept above the user's scope), the forms, and the English of the pages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from fleet.alerts.writes import WriteSessionDep
from fleet.auth.deps import CurrentUserDep, WriterDep, ensure_visible
from fleet.auth.principal import CurrentUser
from fleet.catalogue import service
from fleet.catalogue.models import KIND_LABELS, CatalogueItemVersion
from fleet.deps import NowDep, SessionDep
from fleet.web.i18n import EN, add_messages, request_lang, translator
from fleet.web.pages import render

api = APIRouter(prefix="/api/catalogue", tags=["catalogue"])
pages = APIRouter(include_in_schema=False)

ItemCode = Annotated[str, Path(min_length=1, max_length=32)]
ScopeCode = Annotated[str, Path(pattern=r"^([0-9]{9}|[0-9]{12})$")]
PREFIXES = tuple(chr(c) for c in range(ord("A"), ord("Z") + 1))


class MaterialIn(BaseModel):
    name: str = Field(max_length=128)
    originals: int = 1
    copies: int = 0
    note: str = Field("", max_length=256)


class GuideIn(BaseModel):
    """An item's 办事指南; every field as service.check_guide checks it."""

    name: str = Field(max_length=128)
    basis: str = Field("", max_length=4000)  # 办理依据
    conditions: str = Field("", max_length=4000)  # 受理条件
    materials: list[MaterialIn] = Field(default_factory=list, max_length=service.MAX_MATERIALS)  # 申请材料
    legal_days: int = 0  # 办理时限, working days; 0 = 即时办结
    promised_days: int = 0  # 承诺时限
    fee: str = Field("不收费", max_length=256)  # 收费标准
    fee_basis: str = Field("", max_length=1000)  # 收费依据
    kind: str = "immediate"  # immediate 即办件 / promised 承诺件
    location: str = Field("", max_length=256)  # 办理地点
    phone: str = Field("", max_length=64)  # 咨询电话


class ItemIn(GuideIn):
    code: str = Field(max_length=32, description="事项编码, unique in the fleet")
    owner_prefix: str | None = Field(None, max_length=9, description="'' the fleet, a county or a town; "
                                                                      "default: the user's scope")


class ItemOut(GuideIn):
    code: str
    version: int
    owner_prefix: str
    created_at: datetime
    created_by: str


class VersionOut(BaseModel):
    version: int
    created_at: datetime
    created_by: str


class ItemDetail(ItemOut):
    versions: list[VersionOut]


class EnablementIn(BaseModel):
    prefix: str = Field("", max_length=1, description="the queue prefix (A → A001) tickets of the item go to")
    enabled: bool = True


class ServiceNameIn(BaseModel):
    name: str = Field(max_length=32)


def item_out(row: CatalogueItemVersion) -> dict[str, Any]:
    return {**service.item_dict(row), "owner_prefix": row.owner_prefix, "created_at": row.created_at,
            "created_by": row.created_by}


def _refused(exc: Exception) -> HTTPException:
    if isinstance(exc, service.CatalogueError):
        return HTTPException(422, exc.problems)
    if isinstance(exc, PermissionError):
        return HTTPException(403, "not yours to change: an item is changed by users whose scope covers its keeper")
    return HTTPException(404, f"item {exc} is unknown")


# -- JSON API -------------------------------------------------------------------------------------------------

@api.get("/items", response_model=list[ItemOut])
def list_items(user: CurrentUserDep, session: SessionDep, q: Annotated[str, Query(max_length=64)] = "") -> list:
    """The items in sight (the current version of each), searched by name or code."""
    return [item_out(row) for row in service.visible_items(session, user, q)]


@api.post("/items", response_model=ItemOut)
def create_item(body: ItemIn, user: WriterDep, session: WriteSessionDep, now: NowDep) -> dict:
    guide = body.model_dump(exclude={"code", "owner_prefix"})
    try:
        row = service.create_item(session, user, body.code, guide, body.owner_prefix, now)
    except (service.CatalogueError, PermissionError) as exc:
        raise _refused(exc) from None
    return item_out(row)


@api.get("/items/{code}", response_model=ItemDetail)
def get_item(code: ItemCode, user: CurrentUserDep, session: SessionDep) -> dict:
    row = service.visible_item(session, user, code)
    if row is None:
        raise HTTPException(404, f"item {code} is unknown")
    versions = [{"version": v.version, "created_at": v.created_at, "created_by": v.created_by}
                for v in service.history(session, code)]
    return {**item_out(row), "versions": versions}


@api.get("/items/{code}/versions/{version}", response_model=ItemOut)
def get_version(code: ItemCode, version: Annotated[int, Path(ge=1, le=2**31 - 1)], user: CurrentUserDep,
                session: SessionDep) -> dict:
    row = service.version_of(session, code, version) if service.visible_item(session, user, code) else None
    if row is None:
        raise HTTPException(404, f"item {code} has no version {version}")
    return item_out(row)


@api.put("/items/{code}", response_model=ItemOut)
def revise_item(code: ItemCode, body: GuideIn, user: WriterDep, session: WriteSessionDep, now: NowDep) -> dict:
    """Save the guide as the item's next version (the earlier ones stay readable)."""
    try:
        row = service.revise_item(session, user, code, body.model_dump(), now)
    except (service.CatalogueError, PermissionError, LookupError) as exc:
        raise _refused(exc) from None
    return item_out(row)


def scope_view(session: Session, user: CurrentUser, scope_code: str) -> dict[str, Any]:
    """A town's or a center's choices: every item in sight at that scope with its row there (and, for a center,
    its town's), the prefixes' names, and for a center what it handles in the end."""
    own = service.enablements(session, scope_code)
    town = service.enablements(session, scope_code[:9]) if len(scope_code) == 12 else {}
    rows = []
    for item in service.visible_items(session, user):
        if not scope_code.startswith(item.owner_prefix):
            continue
        mine, inherited = own.get(item.code), town.get(item.code)
        rows.append({"code": item.code, "name": item.name, "version": item.version,
                     "own": {"prefix": mine.prefix, "enabled": mine.enabled} if mine else None,
                     "town": {"prefix": inherited.prefix, "enabled": inherited.enabled} if inherited else None})
    named = service.service_names(session, scope_code)
    view: dict[str, Any] = {"scope": scope_code, "items": rows,
                            "services": [{"prefix": p, "name": n} for p, n in sorted(named.items())]}
    if len(scope_code) == 12:
        view["center_items"] = service.center_items(session, scope_code)
    return view


@api.get("/scopes/{scope_code}")
def get_scope(scope_code: ScopeCode, user: CurrentUserDep, session: SessionDep) -> dict:
    ensure_visible(user, scope_code)
    return scope_view(session, user, scope_code)


@api.put("/scopes/{scope_code}/items/{item_code}")
def enable_item(scope_code: ScopeCode, item_code: ItemCode, body: EnablementIn, user: WriterDep,
                session: WriteSessionDep, now: NowDep) -> dict:
    """The town (for its centers) or the center handles the item under `prefix`; `enabled` false at a center
    turns off an item its town handles."""
    ensure_visible(user, scope_code)
    try:
        row = service.set_enablement(session, user, scope_code, item_code, body.prefix, body.enabled, now)
    except (service.CatalogueError, PermissionError, LookupError) as exc:
        raise _refused(exc) from None
    return {"scope": row.scope_code, "item": row.item_code, "prefix": row.prefix, "enabled": row.enabled}


@api.delete("/scopes/{scope_code}/items/{item_code}")
def clear_item(scope_code: ScopeCode, item_code: ItemCode, user: WriterDep, session: WriteSessionDep) -> dict:
    """Forget the scope's choice: a center follows its town again, a town stops handling the item."""
    ensure_visible(user, scope_code)
    try:
        cleared = service.clear_enablement(session, user, scope_code, item_code)
    except (service.CatalogueError, PermissionError) as exc:
        raise _refused(exc) from None
    return {"scope": scope_code, "item": item_code, "cleared": cleared}


@api.put("/scopes/{scope_code}/services/{prefix}")
def name_service(scope_code: ScopeCode, prefix: Annotated[str, Path(pattern="^[A-Z]$")], body: ServiceNameIn,
                 user: WriterDep, session: WriteSessionDep, now: NowDep) -> dict:
    """Name a queue prefix (A → 社保业务) for a town's centers or one center; an empty name removes it."""
    ensure_visible(user, scope_code)
    try:
        service.set_service_name(session, user, scope_code, prefix, body.name, now)
    except (service.CatalogueError, PermissionError) as exc:
        raise _refused(exc) from None
    return {"scope": scope_code, "prefix": prefix, "name": body.name.strip()}


@api.get("/centers/{center_code}/items")
def items_of_center(center_code: Annotated[str, Path(pattern=r"^[0-9]{12}$")], user: CurrentUserDep,
                    session: SessionDep) -> dict:
    """What the center's configuration carries: its items with their guides and its queue services."""
    ensure_visible(user, center_code)
    return {"items": service.center_items(session, center_code),
            "services": service.center_services(session, center_code)}


# -- pages ----------------------------------------------------------------------------------------------------

def _guide_from_form(posted: Any) -> dict[str, Any]:
    guide: dict[str, Any] = {key: str(posted.get(key) or "") for key in ("name", *service.TEXT_FIELDS, "kind")}
    for key in ("legal_days", "promised_days"):
        value = str(posted.get(key) or "0").strip()
        guide[key] = int(value) if value.isdigit() else value
    guide["materials"] = service.materials_from_text(str(posted.get("materials") or ""))
    return guide


def _item_page(request: Request, user: CurrentUser, session: Session, code: str, *, version: int | None = None,
               error: list[str] | None = None, posted: dict[str, Any] | None = None,
               status_code: int = 200) -> Response:
    current = service.visible_item(session, user, code)
    if current is None:
        raise HTTPException(404, f"item {code} is unknown")
    shown = service.version_of(session, code, version) if version else current
    if shown is None:
        raise HTTPException(404, f"item {code} has no version {version}")
    form = posted or {**service.guide_of(current),
                      "materials": service.materials_to_text(service.materials_of(current))}
    response = render(request, "catalogue_item.html", {
        "item": shown, "current": current, "guide": service.guide_of(shown), "history": service.history(session, code),
        "can_change": service.can_change_item(user, current.owner_prefix), "form": form, "error": error,
        "kind_labels": KIND_LABELS, "new": False})
    response.status_code = status_code
    return response


@pages.get("/catalogue", response_class=HTMLResponse)
def catalogue_page(request: Request, user: CurrentUserDep, session: SessionDep,
                   q: Annotated[str, Query(max_length=64)] = "") -> Response:
    return render(request, "catalogue.html", {
        "items": service.visible_items(session, user, q), "q": q, "kind_labels": KIND_LABELS,
        "materials_of": service.materials_of})


@pages.get("/catalogue/new", response_class=HTMLResponse)
def new_item_page(request: Request, user: WriterDep) -> Response:
    return render(request, "catalogue_item.html", {
        "new": True, "can_change": True, "form": {"owner_prefix": user.division_prefix or "", "kind": "immediate"},
        "error": None, "kind_labels": KIND_LABELS})


@pages.post("/catalogue/new")
async def new_item_form(request: Request, user: WriterDep, session: WriteSessionDep, now: NowDep) -> Response:
    posted = await request.form()
    code, owner = str(posted.get("code") or ""), str(posted.get("owner_prefix") or "").strip()
    try:
        service.create_item(session, user, code, _guide_from_form(posted), owner, now)
    except (service.CatalogueError, PermissionError) as exc:
        _ = translator(request_lang(request))
        problems = exc.problems if isinstance(exc, service.CatalogueError) else [_("您不能在该范围新建事项")]
        response = render(request, "catalogue_item.html", {
            "new": True, "can_change": True, "form": dict(posted), "error": problems, "kind_labels": KIND_LABELS})
        response.status_code = 422
        return response
    return RedirectResponse(f"/catalogue/items/{code.strip()}", status_code=303)


@pages.get("/catalogue/items/{code}", response_class=HTMLResponse)
def item_page(code: ItemCode, request: Request, user: CurrentUserDep, session: SessionDep,
              version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> Response:
    return _item_page(request, user, session, code, version=version)


@pages.post("/catalogue/items/{code}")
async def item_form(code: ItemCode, request: Request, user: WriterDep, session: WriteSessionDep,
                    now: NowDep) -> Response:
    posted = await request.form()
    try:
        service.revise_item(session, user, code, _guide_from_form(posted), now)
    except LookupError:
        raise HTTPException(404, f"item {code} is unknown") from None
    except PermissionError:
        raise HTTPException(403, "not yours to change") from None
    except service.CatalogueError as exc:
        return _item_page(request, user, session, code, error=exc.problems, posted=dict(posted), status_code=422)
    return RedirectResponse(f"/catalogue/items/{code}", status_code=303)


@pages.get("/catalogue/scopes/{scope_code}", response_class=HTMLResponse)
def scope_page(scope_code: ScopeCode, request: Request, user: CurrentUserDep, session: SessionDep) -> Response:
    ensure_visible(user, scope_code)
    return render(request, "catalogue_scope.html", {**scope_view(session, user, scope_code),
                                                     "can_change": user.can_change(scope_code),
                                                     "prefixes": PREFIXES, "error": None})


@pages.post("/catalogue/scopes/{scope_code}")
async def scope_form(scope_code: ScopeCode, request: Request, user: WriterDep, session: WriteSessionDep,
                     now: NowDep) -> Response:
    """One item's row (item, prefix, state: on / off / inherit) or one prefix's name."""
    ensure_visible(user, scope_code)
    posted = await request.form()
    item_code, prefix = str(posted.get("item") or ""), str(posted.get("prefix") or "").strip().upper()
    state = str(posted.get("state") or "")
    try:
        if posted.get("service_name") is not None:
            service.set_service_name(session, user, scope_code, prefix, str(posted.get("service_name")), now)
        elif state == "inherit":
            service.clear_enablement(session, user, scope_code, item_code)
        else:
            service.set_enablement(session, user, scope_code, item_code, prefix, state != "off", now)
    except (service.CatalogueError, PermissionError, LookupError) as exc:
        session.rollback()
        response = render(request, "catalogue_scope.html", {
            **scope_view(session, user, scope_code), "can_change": user.can_change(scope_code),
            "prefixes": PREFIXES, "error": _refused(exc).detail})
        response.status_code = 422
        return response
    return RedirectResponse(f"/catalogue/scopes/{scope_code}", status_code=303)


add_messages(EN, {
    "事项清单": "Service catalogue", "办事指南": "Service guide", "事项编码": "Item code", "事项名称": "Item name",
    "办件类型": "Type", "即办件": "Immediate", "承诺件": "Promised", "办理依据": "Legal basis",
    "受理条件": "Conditions", "申请材料": "Materials", "办理时限": "Legal time limit",
    "承诺时限": "Promised time limit",
    "收费标准": "Fee", "收费依据": "Fee basis", "办理地点": "Where", "咨询电话": "Enquiries phone",
    "版本": "Version", "归属": "Kept by", "全部": "Everyone", "搜索": "Search", "新建事项": "New item",
    "保存为新版本": "Save as a new version", "历史版本": "Versions", "修改人": "By", "时间": "Time",
    "查看": "View", "当前版本": "current", "编辑办事指南": "Edit the guide", "创建": "Create",
    "每行一项：名称 | 原件份数 | 复印件份数 | 备注": "One a line: name | originals | copies | note",
    "工作日，0 为即时办结": "working days, 0 = done at once", "原件": "originals", "复印件": "copies",
    "保存未成功：": "Not saved: ", "启用事项": "Items handled", "乡镇或中心代码": "Town or center code",
    "打开": "Open", "排队业务": "Queue service", "本级": "Here", "乡镇": "Town", "启用": "On", "停用": "Off",
    "沿用乡镇": "As the town", "未启用": "Not handled", "业务名称": "Service name", "保存": "Save",
    "本中心办理的事项": "Items this center handles", "暂无事项。": "No items yet.", "份": "",
    "您不能在该范围新建事项": "You cannot create items for that scope", "即时办结": "done at once",
    "{n}个工作日": "{n} working days", "排队业务名称": "Queue service names", "状态": "State",
})
