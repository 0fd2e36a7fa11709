"""Configuration, device keys and commands: JSON API, the /config page, the device page's section."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from fleet import audit
from fleet.alerts.writes import WriteSessionDep
from fleet.auth.deps import CurrentUserDep, WriterDep, ensure_changeable
from fleet.auth.principal import CurrentUser
from fleet.deps import NowDep, SessionDep, SettingsDep
from fleet.devconfig import commands as cmd
from fleet.devconfig import config as cfg
from fleet.devconfig import form
from fleet.devconfig.keys import DeviceKeyError, KeyBox, parse_key_hex, set_key
from fleet.devconfig.models import COMMAND_STATES, SCOPE_LABELS, SCOPES, ConfigRevision, DeviceConfigState, DeviceKey
from fleet.devconfig.publisher import Publisher
from fleet.models import Device
from fleet.settings import Settings
from fleet.web.i18n import EN, add_messages, request_lang, translator
from fleet.web.labels import role_label
from fleet.web.pages import _render
from protocol import messages

# English of the messages of templates/config_in_force.html (the version in force on a device).
add_messages(EN, {"生效版本": "Version in force", "v{n} 生效中": "v{n} in force", "默认配置生效中": "defaults in force",
                  "生效版本未知": "version in force unknown"})

Translate = form.Translate
Scope = Literal["county", "town", "center", "device"]
Role = Literal["queue_display", "rating_pad"]


class RevisionOut(BaseModel):
    scope: str
    scope_id: str
    role: str
    revision: int
    config: dict[str, Any]
    created_at: datetime
    created_by: str
    note: str | None
    rollback_of: int | None


class ConfigIn(BaseModel):
    config: dict[str, Any]
    note: str | None = Field(default=None, max_length=500)


class RollbackIn(BaseModel):
    revision: int = Field(ge=1, le=2**31)


class ChangeOut(BaseModel):
    revision: RevisionOut
    devices_changed: list[str]
    pushed: list[str]
    no_key: list[str]  # waiting for provisioning to register the device's key


class DeviceConfigOut(BaseModel):
    device_id: str
    status: str  # applied / pending / rejected / unconfigured
    desired_version: int
    desired_config: dict[str, Any]
    desired_at: datetime | None
    desired_by: str | None
    pushed_version: int
    pushed_at: datetime | None
    reported_version: int | None
    reported_status: str | None
    reported_error: str | None
    reported_at: datetime | None
    applied_version: int | None  # in force on the device, also after it rejected reported_version
    has_key: bool
    key_fingerprint: str | None
    versions: list[dict[str, Any]]


class DeviceStatusOut(BaseModel):
    device_id: str
    center_code: str
    role: str | None
    window: int | None
    status: str
    desired_version: int
    reported_version: int | None
    reported_error: str | None
    applied_version: int | None  # in force on the device, also after it rejected reported_version
    has_key: bool


class KeyIn(BaseModel):
    key_hex: str = Field(min_length=32, max_length=256)


class KeyOut(BaseModel):
    device_id: str
    has_key: bool
    fingerprint: str | None  # never the key itself


class CommandIn(BaseModel):
    # Any text: the names and their arguments are checked by protocol.messages.check_command_args (422).
    command: str = Field(max_length=32, json_schema_extra={"enum": list(messages.COMMANDS)})
    args: dict[str, Any] = Field(default_factory=dict)


class CommandOut(BaseModel):
    command_id: str
    device_id: str
    command: str
    args: dict[str, Any]
    issued_by: str
    sent_at: datetime
    status: str  # sent / not_sent / done / rejected / failed / timed_out
    error: str | None
    acked_at: datetime | None
    late: bool


api = APIRouter(prefix="/api", tags=["configuration"])
pages = APIRouter(include_in_schema=False)


def key_box(request: Request) -> KeyBox:
    return request.app.state.key_box


def publisher(request: Request) -> Publisher | None:
    return getattr(request.app.state, "ingest", None)


def _revision_out(row: ConfigRevision) -> dict[str, Any]:
    return {**row.model_dump(exclude={"id"}), "config": json.loads(row.config)}


def _command_out(row: Any) -> dict[str, Any]:
    return {**row.model_dump(exclude={"id", "center_code"}), "args": json.loads(row.args)}


def scope_visible(user: CurrentUser, session: Session, scope: str, scope_id: str) -> bool:
    """A scope inside the user's part of the county, or one it inherits from (county, own town)."""
    code = cfg.scope_center(session, scope, scope_id)
    if code is None:
        return False
    prefix = user.division_prefix
    return prefix is None or code.startswith(prefix) or (scope != "device" and prefix.startswith(code))


def _checked_scope(session: Session, user: CurrentUser, scope: str, scope_id: str) -> str:
    try:
        cfg.check_scope(scope, scope_id)
    except cfg.ConfigError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    if not scope_visible(user, session, scope, scope_id):
        raise HTTPException(status_code=404, detail=f"{scope} {scope_id} is unknown")
    code = cfg.scope_center(session, scope, scope_id)
    ensure_changeable(user, code)
    return code or scope_id


def change_scope(session: Session, user: CurrentUser, settings: Settings, box: KeyBox, pub: Publisher | None,
                 scope: str, scope_id: str, role: str, config: dict[str, Any] | None, now: datetime,
                 note: str | None = None, rollback_to: int | None = None) -> dict[str, Any]:
    """Set (or roll back) a scope's configuration, audit, commit, then publish to the devices under it."""
    code = _checked_scope(session, user, scope, scope_id)
    try:
        if rollback_to is not None:
            revision, changed = cfg.rollback(session, scope, scope_id, role, rollback_to, user.username, now)
        else:
            revision, changed = cfg.set_scope_config(session, scope, scope_id, role, config or {}, user.username,
                                                     now, note)
    except cfg.ConfigError as exc:
        session.rollback()
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    audit.record(session, user, "config.rollback" if rollback_to is not None else "config.set",
                 target=f"{scope} {scope_id} {role}",
                 detail={"revision": revision.revision, "config": json.loads(revision.config),
                         "rollback_of": rollback_to, "devices": len(changed)},
                 center_code=code if len(code) == 12 else None, at=now)
    session.commit()
    result = cfg.push_pending(session, box, pub, now, settings.config_repush_s, changed)
    session.commit()
    return {"revision": _revision_out(revision), "devices_changed": changed, "pushed": result.pushed,
            "no_key": result.no_key}


def _device(session: Session, user: CurrentUser, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None or not user.can_see(device.center_code):
        raise HTTPException(status_code=404, detail=f"device {device_id} is unknown")
    return device


def visible_scopes(session: Session, user: CurrentUser) -> list[dict[str, Any]]:
    latest: dict[tuple[str, str, str], ConfigRevision] = {}
    counts: dict[tuple[str, str, str], int] = {}
    for row in session.exec(select(ConfigRevision).order_by(col(ConfigRevision.revision))):
        key = (row.scope, row.scope_id, row.role)
        latest[key] = row
        counts[key] = counts.get(key, 0) + 1
    order = {scope: n for n, scope in enumerate(SCOPES)}
    rows = [{**_revision_out(row), "revisions": counts[key]} for key, row in latest.items()
            if scope_visible(user, session, row.scope, row.scope_id)]
    return sorted(rows, key=lambda r: (order[r["scope"]], r["scope_id"], r["role"]))


def device_statuses(session: Session, user: CurrentUser, center: str | None = None) -> list[dict[str, Any]]:
    query = select(Device).where(user.scope_clause(Device.center_code), col(Device.role).in_(messages.DEVICE_ROLES))
    if center:
        query = query.where(Device.center_code == center)
    devices = session.exec(query.order_by(Device.center_code, Device.window, Device.device_id)).all()
    states = {s.device_id: s for s in session.exec(select(DeviceConfigState))}
    keyed = set(session.exec(select(DeviceKey.device_id)).all())
    out = []
    for device in devices:
        state = states.get(device.device_id)
        out.append({"device_id": device.device_id, "center_code": device.center_code, "role": device.role,
                    "window": device.window, "status": cfg.status_of(state),
                    "desired_version": state.desired_version if state else 0,
                    "reported_version": state.reported_version if state else None,
                    "reported_error": state.reported_error if state else None,
                    "applied_version": state.applied_version if state else None,
                    "has_key": device.device_id in keyed})
    return out


@api.get("/config/scopes", response_model=list[RevisionOut])
def get_scopes(user: CurrentUserDep, session: SessionDep) -> list[dict[str, Any]]:
    """The configuration in force at every scope the user can see (latest revision of each)."""
    return visible_scopes(session, user)


@api.get("/config/{scope}/{scope_id}/{role}", response_model=list[RevisionOut], responses={404: {}, 422: {}})
def get_revisions(scope: Scope, scope_id: str, role: Role, user: CurrentUserDep,
                  session: SessionDep) -> list[dict[str, Any]]:
    """Every revision of one scope's configuration for one role, newest first, with who and when."""
    try:
        cfg.check_scope(scope, scope_id)
    except cfg.ConfigError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    if not scope_visible(user, session, scope, scope_id):
        raise HTTPException(status_code=404, detail=f"{scope} {scope_id} is unknown")
    return [_revision_out(r) for r in cfg.revisions(session, scope, scope_id, role)]


@api.put("/config/{scope}/{scope_id}/{role}", response_model=ChangeOut, responses={403: {}, 404: {}, 422: {}})
def put_config(scope: Scope, scope_id: str, role: Role, body: ConfigIn, request: Request, user: WriterDep,
               session: WriteSessionDep, settings: SettingsDep, now: NowDep) -> dict[str, Any]:
    """A new revision of a scope's configuration (keys per role: protocol CONFIG_SCHEMAS); pushed at once."""
    return change_scope(session, user, settings, key_box(request), publisher(request), scope, scope_id, role,
                        body.config, now, body.note)


@api.post("/config/{scope}/{scope_id}/{role}/rollback", response_model=ChangeOut,
          responses={403: {}, 404: {}, 422: {}})
def post_rollback(scope: Scope, scope_id: str, role: Role, body: RollbackIn, request: Request, user: WriterDep,
                  session: WriteSessionDep, settings: SettingsDep, now: NowDep) -> dict[str, Any]:
    """Roll back in one action: a new revision with the content of an earlier one."""
    return change_scope(session, user, settings, key_box(request), publisher(request), scope, scope_id, role,
                        None, now, rollback_to=body.revision)


@api.get("/config/devices", response_model=list[DeviceStatusOut])
def get_device_statuses(user: CurrentUserDep, session: SessionDep, center: str | None = None) -> list[dict]:
    """Per device: applied / pending / rejected / unconfigured."""
    return device_statuses(session, user, center)


@api.get("/devices/{device_id}/config", response_model=DeviceConfigOut, responses={404: {}})
def get_device_config(device_id: str, user: CurrentUserDep, session: SessionDep) -> dict[str, Any]:
    _device(session, user, device_id)
    return cfg.device_config_view(session, device_id)


@api.get("/devices/{device_id}/key", response_model=KeyOut, responses={404: {}})
def get_key_info(device_id: str, user: CurrentUserDep, session: SessionDep) -> dict[str, Any]:
    """Whether the fleet holds the device's signing key (its fingerprint; never the key)."""
    _device(session, user, device_id)
    row = session.get(DeviceKey, device_id)
    return {"device_id": device_id, "has_key": row is not None, "fingerprint": row.fingerprint if row else None}


@api.put("/devices/{device_id}/key", response_model=KeyOut, responses={403: {}, 404: {}, 422: {}})
def put_key(device_id: str, body: KeyIn, request: Request, user: WriterDep, session: WriteSessionDep,
            settings: SettingsDep, now: NowDep) -> dict[str, Any]:
    """Register the device's key (hex, at least 16 bytes), as provisioning wrote it to the device."""
    device = _device(session, user, device_id)
    ensure_changeable(user, device.center_code)
    try:
        row = set_key(session, key_box(request), device_id, parse_key_hex(body.key_hex), user.username, now)
    except DeviceKeyError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    audit.record(session, user, "device.key", target=f"{device.center_code} {device_id}",
                 detail={"fingerprint": row.fingerprint}, center_code=device.center_code, at=now)
    session.commit()
    cfg.push_pending(session, key_box(request), publisher(request), now, settings.config_repush_s, [device_id])
    session.commit()
    return {"device_id": device_id, "has_key": True, "fingerprint": row.fingerprint}


def issue_command(session: Session, request: Request, user: CurrentUser, device_id: str, command: str,
                  args: dict[str, Any], now: datetime) -> Any:
    device = _device(session, user, device_id)
    ensure_changeable(user, device.center_code)
    try:
        row = cmd.send_command(session, key_box(request), publisher(request), device, command, args,
                               user.username, now)
    except cmd.CommandError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    audit.record(session, user, "device.command", target=f"{device.center_code} {device_id}",
                 detail={"command": command, "args": json.loads(row.args), "command_id": row.command_id,
                         "status": row.status}, center_code=device.center_code, at=now)
    session.commit()
    return row


@api.post("/devices/{device_id}/commands", response_model=CommandOut, responses={403: {}, 404: {}, 422: {}})
def post_command(device_id: str, body: CommandIn, request: Request, user: WriterDep, session: WriteSessionDep,
                 now: NowDep) -> dict[str, Any]:
    """Send a signed command (reboot; identify/test_pattern {"seconds"}; brightness {"level"}); it times out
    without an acknowledgement."""
    return _command_out(issue_command(session, request, user, device_id, body.command, body.args, now))


@api.get("/devices/{device_id}/commands", response_model=list[CommandOut], responses={404: {}})
def get_commands(device_id: str, user: CurrentUserDep, session: SessionDep) -> list[dict[str, Any]]:
    _device(session, user, device_id)
    return [_command_out(row) for row in cmd.recent_commands(session, device_id)]


# Pages -----------------------------------------------------------------------

def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A revision as the page shows it: its values labelled (fleet/devconfig/form.py), not JSON."""
    return {**row, "shown": form.shown_values(row["role"], row["config"])}


def _scope_options(devices: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What the scope field suggests: the user's devices, centers, towns and counties."""
    options: dict[str, str] = {}
    for d in devices:
        options[d["device_id"]] = f"{d['center_code']} {d['window'] or ''} {d['role']}"
    for code in sorted({d["center_code"] for d in devices}):
        options.setdefault(code[:6], "county")
        options.setdefault(code[:9], "town")
        options.setdefault(code, "center")
    return [{"value": value, "label": label} for value, label in options.items()]


def _config_page(request: Request, user: CurrentUser, session: Session, scope: str | None, scope_id: str | None,
                 role: str | None, error: str | None = None, field_errors: dict[str, str] | None = None,
                 values: dict[str, str] | None = None, note: str | None = None, status_code: int = 200) -> Response:
    history = []
    if scope and scope_id and role and role in messages.CONFIG_SCHEMAS:
        try:
            cfg.check_scope(scope, scope_id)
            if scope_visible(user, session, scope, scope_id):
                history = [_shown(_revision_out(r)) for r in cfg.revisions(session, scope, scope_id, role)]
        except cfg.ConfigError:
            history = []
    form_role = role if role in messages.CONFIG_SCHEMAS else messages.ROLE_QUEUE_DISPLAY
    if values is None:  # the form starts from what is in force at the chosen scope
        values = form.form_values(form_role, history[0]["config"]) if history else {}
    devices = device_statuses(session, user)
    response = _render(request, "config.html", {
        "scopes": [_shown(row) for row in visible_scopes(session, user)], "devices": devices,
        "history": history, "selected": {"scope": scope, "scope_id": scope_id, "role": role},
        "scope_labels": SCOPE_LABELS, "status_labels": cfg.STATUS_LABELS, "form_fields": form.all_form_fields(),
        "form_role": form_role, "values": values, "field_errors": field_errors or {}, "note": note,
        "scope_options": _scope_options(devices), "roles": messages.DEVICE_ROLES, "error": error,
    })
    response.status_code = status_code
    return response


@pages.get("/config", response_class=HTMLResponse)
def config_page(request: Request, user: CurrentUserDep, session: SessionDep, scope: str | None = None,
                scope_id: str | None = None, role: str | None = None) -> Response:
    return _config_page(request, user, session, scope, scope_id, role)


def _form_refusal(session: Session, user: CurrentUser, scope: str, scope_id: str, role: str,
                  _: Translate) -> str | None:
    """Why the form's scope cannot take this role's configuration, in the page's language; None if it can."""
    problem = form.scope_problem(scope, scope_id, _)
    if problem is not None:
        return problem
    if scope == "device":
        device = session.get(Device, scope_id)
        if device is None or not user.can_see(device.center_code):
            return _("设备 {device} 不存在或不在您的管理范围内", device=scope_id)
        if device.role != role:
            return _("设备 {device} 是{actual}，不能保存{role}的配置", device=scope_id,
                     actual=_(role_label(device.role)), role=_(role_label(role)))
    elif not scope_visible(user, session, scope, scope_id):
        return _("{scope} 不存在或不在您的管理范围内", scope=scope_id)
    return None


@pages.post("/config")
async def config_form(request: Request, user: WriterDep, session: WriteSessionDep, settings: SettingsDep,
                      now: NowDep) -> Response:
    """The form: labelled fields of the role's schema, or a rollback; refusals in the page's language."""
    posted = await request.form()
    _ = translator(request_lang(request))
    scope, scope_id, role = (str(posted.get(name) or "").strip() for name in ("scope", "scope_id", "role"))
    rollback_to = str(posted.get("rollback_to") or "").strip()
    note = str(posted.get("note") or "").strip() or None
    where = f"/config?scope={scope}&scope_id={scope_id}&role={role}"
    values = {name: str(value) for name, value in posted.items() if name.startswith(f"{role}.")}

    def refused(message: str, field_errors: dict[str, str] | None = None) -> Response:
        return _config_page(request, user, session, scope, scope_id, role, _("配置未保存：{detail}", detail=message),
                            field_errors, values, note, status_code=422)

    if role not in messages.CONFIG_SCHEMAS:
        return refused(_("未知的设备类型"))
    problem = _form_refusal(session, user, scope, scope_id, role, _)
    if problem is not None:
        return refused(problem)
    if rollback_to:
        known = {r.revision for r in cfg.revisions(session, scope, scope_id, role)}
        if not rollback_to.isdigit() or int(rollback_to) not in known:
            return refused(_("没有第 {n} 版", n=rollback_to))
        change_scope(session, user, settings, key_box(request), publisher(request), scope, scope_id, role, None,
                     now, rollback_to=int(rollback_to))
        return RedirectResponse(where, status_code=303)
    config, field_errors = form.config_from_form(role, posted, _)
    if field_errors:
        return refused("；".join(field_errors.values()), field_errors)
    try:
        change_scope(session, user, settings, key_box(request), publisher(request), scope, scope_id, role, config,
                     now, note)
    except HTTPException as exc:
        if exc.status_code != 422:
            raise
        return refused(_("配置无效：{detail}", detail=str(exc.detail)))
    return RedirectResponse(where + "#config-form", status_code=303)


@pages.post("/devices/{device_id}/commands")
async def command_form(device_id: str, request: Request, user: WriterDep, session: WriteSessionDep,
                       now: NowDep) -> Response:
    form = await request.form()
    command = str(form.get("command") or "")
    args: dict[str, Any] = {}
    for name in ("seconds", "level"):
        value = str(form.get(name) or "").strip()
        if value:
            args[name] = int(value) if value.lstrip("-").isdigit() else value
    issue_command(session, request, user, device_id, command, args, now)
    return RedirectResponse(f"/devices/{device_id}#device-commands", status_code=303)


def device_section(session: Session, device: dict[str, Any], user: CurrentUser) -> dict[str, Any]:
    """The device page's configuration and commands block (registered in app.state.device_sections)."""
    view = cfg.device_config_view(session, device["device_id"])
    role = device.get("role") or ""
    view = {**view, "versions": [{**v, "shown": form.shown_values(role, v["config"])} for v in view["versions"]]}
    return {"config_view": view, "config_status_labels": cfg.STATUS_LABELS,
            "commands": [_command_out(r) for r in cmd.recent_commands(session, device["device_id"])],
            "command_labels": cmd.COMMAND_LABELS, "command_states": COMMAND_STATES, "role": role,
            "can_change": user.can_change(device["center_code"]) and device.get("role") in messages.DEVICE_ROLES}
