"""Rollouts: the JSON API and the 固件升级 pages (list and form, one rollout with its actions).

Scope: a rollout belongs to the division prefix it covers; a user sees it when that prefix lies in their part
of the county (else 404, as if unknown) and may act on it when they may change things there. Every change is
audited (fleet/rollouts/service.py).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from fleet import audit
from fleet.alerts.sweep import Job, Sweeper
from fleet.alerts.writes import WriteSessionDep
from fleet.auth.deps import AdminDep, CurrentUserDep, WriterDep
from fleet.auth.principal import CurrentUser
from fleet.db import write_session
from fleet.deps import NowDep, SessionDep
from fleet.devconfig.publisher import Publisher
from fleet.models import Device
from fleet.rollouts import plan, service
from fleet.rollouts.models import FirmwareBundle, FirmwareRollout, RolloutDevice
from fleet.web import audit_view
from fleet.web.i18n import EN, Translator, add_messages, request_lang, translator
from fleet.web.pages import render
from protocol import messages
from provisioning.errors import ProvisionError

ROLLOUT_INTERVAL_S = 5.0  # how often the job advances every rollout (starts, time-outs, halting)
Action = Literal["pause", "resume", "abort", "rollback"]
# A row id as SQLite holds one (64-bit); a larger one is 422, not a server error. PostgreSQL's 32-bit INTEGER
# is refused when the query runs (fleet.app.refuse_unholdable_value).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]

api = APIRouter(prefix="/api", tags=["rollouts"])
pages = APIRouter(include_in_schema=False)


class BundleOut(BaseModel):
    version: str
    digest: str
    roles: list[str]
    size: int
    created_at: datetime
    created_by: str


class BundleIn(BaseModel):
    version: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")


class RolloutIn(BaseModel):
    version: str = Field(min_length=1, max_length=32)
    scope: str = Field(pattern=r"^([0-9]{6}|[0-9]{9}|[0-9]{12})$")  # the county, a town or a center
    canary: list[str] = Field(min_length=1, max_length=50)
    name: str = Field(default="", max_length=100)
    failure_threshold_pct: int = Field(default=0, ge=0, le=100)
    max_in_flight: int = Field(default=10, ge=1, le=1000)
    device_timeout_s: float = Field(default=900.0, ge=10, le=7 * 86400)


class WaveOut(BaseModel):
    wave: int
    size: int
    counts: dict[str, int]
    failures_allowed: int


class TargetOut(BaseModel):
    device_id: str
    center_code: str
    wave: int
    state: str
    previous_version: str | None
    started_at: datetime | None
    finished_at: datetime | None
    sent: bool
    reason: str | None
    running: str | None
    staged: str | None
    failed: str | None
    error: str | None
    firmware_state: str | None
    reported_at: datetime | None


class RolloutOut(BaseModel):
    id: int
    name: str
    version: str
    scope_prefix: str
    canary: list[str]
    status: str  # running / paused / halted / aborted / completed / rolling_back / rolled_back
    reason: str | None
    failure_threshold_pct: int
    max_in_flight: int
    device_timeout_s: float
    created_at: datetime
    created_by: str
    updated_at: datetime
    finished_at: datetime | None
    devices: int
    counts: dict[str, int]  # pending / updating / succeeded / failed / rolling_back / rolled_back
    waves: list[WaveOut]
    targets: list[TargetOut] | None = None


class DeviceFirmwareOut(BaseModel):
    device_id: str
    center_code: str
    role: str | None
    window: int | None
    running: str | None
    staged: str | None
    failed: str | None
    error: str | None
    firmware_state: str | None
    reported_at: datetime | None


def _publisher(request: Request) -> Publisher | None:
    return getattr(request.app.state, "ingest", None)


def _bundle_out(row: FirmwareBundle) -> dict[str, Any]:
    return {"version": row.version, "digest": row.digest, "roles": json.loads(row.roles), "size": row.size,
            "created_at": row.created_at, "created_by": row.created_by}


def _visible(session: Session, user: CurrentUser, rollout_id: int) -> FirmwareRollout:
    rollout = session.get(FirmwareRollout, rollout_id)
    if rollout is None or not user.can_see(rollout.scope_prefix):
        raise HTTPException(status_code=404, detail=f"rollout {rollout_id} is unknown")
    return rollout


def _create(session: Session, request: Request, user: CurrentUser, body: RolloutIn, now: datetime) -> int:
    policy = plan.Policy(body.failure_threshold_pct, body.max_in_flight, body.device_timeout_s)
    try:
        rollout = service.create_rollout(session, user, service.RolloutRequest(
            body.version, body.scope, body.canary, body.name, policy), now)
    except PermissionError as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from exc
    except service.RolloutError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    session.commit()
    # The canary is told now, not at the job's next turn.
    service.advance(session, request.app.state.key_box, _publisher(request), rollout, now)
    session.commit()
    return rollout.id or 0


def _act(session: Session, request: Request, user: CurrentUser, rollout_id: int, action: str,
         now: datetime) -> FirmwareRollout:
    rollout = _visible(session, user, rollout_id)
    if not user.can_change(rollout.scope_prefix):
        raise HTTPException(status_code=403, detail=f"{user.username} may not change rollouts there")
    try:
        service.act(session, user, rollout, action, now)
    except service.RolloutError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    session.commit()
    if rollout.status in (plan.RUNNING, plan.ROLLOUT_ROLLING_BACK):
        service.advance(session, request.app.state.key_box, _publisher(request), rollout, now)
        session.commit()
    return rollout


@api.get("/firmware/bundles", response_model=list[BundleOut])
def get_bundles(user: CurrentUserDep, session: SessionDep) -> list[dict[str, Any]]:
    """The firmware bundles the fleet holds, newest first."""
    rows = session.exec(select(FirmwareBundle).order_by(col(FirmwareBundle.id).desc()))
    return [_bundle_out(row) for row in rows]


@api.post("/firmware/bundles", response_model=BundleOut, responses={403: {}, 409: {}, 422: {}, 503: {}})
def post_bundle(body: BundleIn, user: AdminDep, session: WriteSessionDep, now: NowDep) -> dict[str, Any]:
    """Build and keep a bundle of this fleet's own firmware tree under a new version label (county
    administrators); 409 when the label names another bundle already."""
    try:
        from provisioning.ota_bundle import build_bundle  # the one builder, shared with provisioning
    except ImportError as exc:  # a fleet installed without provisioning/
        raise HTTPException(status_code=503, detail=f"no bundle builder here: {exc}") from exc
    try:
        built = build_bundle(body.version, created_at=int(now.timestamp()))
    except ProvisionError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    try:
        row = service.store_bundle(session, built, user.username, now)
    except service.RolloutError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    audit.record(session, user, "firmware.bundle", target=f"bundle {row.version}",
                 detail={"version": row.version, "digest": row.digest, "size": row.size}, at=now)
    session.commit()
    return _bundle_out(row)


@api.get("/rollouts", response_model=list[RolloutOut])
def get_rollouts(user: CurrentUserDep, session: SessionDep) -> list[dict[str, Any]]:
    """Rollouts in the user's scope, newest first, with their counts per state (without devices)."""
    return [service.rollout_view(session, r, with_targets=False) for r in service.visible_rollouts(session, user)]


@api.post("/rollouts", response_model=RolloutOut, responses={403: {}, 409: {}, 422: {}})
def post_rollout(body: RolloutIn, request: Request, user: WriterDep, session: WriteSessionDep,
                 now: NowDep) -> dict[str, Any]:
    """Start a rollout of a bundle to every device of its roles under `scope`: the canary devices first, then
    the rest of their centers, their towns, the county; a wave with more failures than
    `failure_threshold_pct` of its devices halts it."""
    rollout_id = _create(session, request, user, body, now)
    return service.rollout_view(session, _visible(session, user, rollout_id))


@api.get("/rollouts/{rollout_id}", response_model=RolloutOut, responses={404: {}})
def get_rollout(rollout_id: RowId, user: CurrentUserDep, session: SessionDep) -> dict[str, Any]:
    """One rollout with its waves and every device: its state here, and its firmware as the board reports it."""
    return service.rollout_view(session, _visible(session, user, rollout_id))


@api.post("/rollouts/{rollout_id}/{action}", response_model=RolloutOut, responses={403: {}, 404: {}, 409: {}})
def post_action(rollout_id: RowId, action: Action, request: Request, user: WriterDep, session: WriteSessionDep,
                now: NowDep) -> dict[str, Any]:
    """pause (no device is started), resume, abort (for good), rollback (devices that took the version go back
    to the one they ran before); 409 when the rollout's state does not allow it."""
    rollout = _act(session, request, user, rollout_id, action, now)
    return service.rollout_view(session, rollout)


@api.get("/devices/{device_id}/firmware", response_model=DeviceFirmwareOut, responses={404: {}})
def get_device_firmware(device_id: str, user: CurrentUserDep, session: SessionDep) -> dict[str, Any]:
    """The firmware a device runs, has staged and last failed (with why), as it reported."""
    device = session.get(Device, device_id)
    if device is None or not user.can_see(device.center_code):
        raise HTTPException(status_code=404, detail=f"device {device_id} is unknown")
    return service.device_firmware(session, device)


# Pages -----------------------------------------------------------------------

# English of the rollout pages; words the dashboard has already ("状态", "设备", "中心" ...) keep its English.
add_messages(EN, {
    "固件升级": "Firmware updates", "新建升级": "New rollout", "固件包": "Bundle", "升级范围": "Scope",
    "试点设备": "Canary devices", "试点中心": "Canary centers", "试点乡镇": "Canary towns",
    "失败阈值（%）": "Failure threshold (%)", "同时升级台数": "Devices at once",
    "单台超时（秒）": "Per-device time-out (s)", "名称": "Name", "开始升级": "Start rollout", "设备数": "Devices",
    "待更新": "Pending", "更新中": "Updating", "成功": "Succeeded", "失败": "Failed", "回滚中": "Rolling back",
    "已回滚": "Rolled back", "进行中": "Running", "已暂停": "Paused", "已自动停止": "Halted", "已中止": "Aborted",
    "已完成": "Completed", "暂停": "Pause", "继续": "Resume", "中止": "Abort", "回滚": "Roll back",
    "批次": "Wave", "原版本": "Previous", "运行版本": "Running", "待切换版本": "Staged", "失败版本": "Failed",
    "设备固件": "Device firmware", "尚无升级任务。": "No rollouts yet.", "尚无固件包。": "No bundles yet.",
    "升级未开始：{detail}": "Rollout not started: {detail}", "操作未执行：{detail}": "Not done: {detail}",
    "允许失败": "Failures allowed", "创建人": "Created by", "创建时间": "Created", "固件": "Firmware",
    "构建固件包": "Build a bundle", "超时：{s} 秒内未回报结果": "Timed out: no verdict within {s} s",
    "已是此版本": "Already on this version",
    "未连接县级消息服务器，稍后重发": "Not connected to the county broker; sent later",
    "县级消息服务器未接收，稍后重发": "The county broker did not take it; sent later",
    "缺少设备密钥，稍后重发": "No device key; sent later",
    "中心尚未签发边缘网关密钥，稍后重发": "The center's edge has no key yet; sent later",
    "平台没有原版本 {v} 的固件包，无法回滚": "No bundle of its previous version {v}: cannot roll back",
    "{wave}失败 {failed} 台，超过允许的 {allowed} 台": "{wave}: {failed} failed, more than the {allowed} allowed",
    "{user}：{action}": "{user}: {action}", "固件包未构建：{detail}": "Bundle not built: {detail}",
    "用本平台的固件源码构建，版本号不可重复。": "Built from this fleet's firmware tree; a version label is used once.",
    "每批失败超过阈值即自动停止；试点设备先升级，再到其所在中心、乡镇、全县。":
        "A wave over its failure threshold halts the rollout by itself; canary devices first, then their centers, "
        "towns, the county.",
})


# The audit page names these actions and detail keys (fleet/web/audit_view.py shows unknown ones as stored).
audit_view.ACTION_LABELS.update({
    "rollout.create": "新建固件升级", "rollout.pause": "暂停固件升级", "rollout.resume": "继续固件升级",
    "rollout.abort": "中止固件升级", "rollout.rollback": "回滚固件升级", "rollout.halted": "固件升级自动停止",
    "rollout.completed": "固件升级完成", "rollout.rolled_back": "固件升级回滚完成", "firmware.bundle": "构建固件包",
})
audit_view.DETAIL_LABELS.update({
    "scope": "升级范围", "canary": "试点设备", "failure_threshold_pct": "失败阈值（%）",
    "max_in_flight": "同时升级台数", "device_timeout_s": "单台超时（秒）", "from": "原状态", "to": "新状态",
    "digest": "SHA-256", "size": "大小（字节）",
})
add_messages(EN, {
    "新建固件升级": "Start firmware rollout", "暂停固件升级": "Pause firmware rollout",
    "继续固件升级": "Resume firmware rollout", "中止固件升级": "Abort firmware rollout",
    "回滚固件升级": "Roll back firmware rollout", "固件升级自动停止": "Firmware rollout halted",
    "固件升级完成": "Firmware rollout completed", "固件升级回滚完成": "Firmware rollout rolled back",
    "原状态": "From", "新状态": "To", "大小（字节）": "Size (bytes)",
})


def _status_labels() -> dict[str, str]:
    return {**plan.ROLLOUT_LABELS}


# The fleet's own reasons (fleet/rollouts/service.py words them in English for the API and the log), as the
# pages say them; a board's own `error` is shown as the board worded it.
TARGET_REASONS = (
    (re.compile(r"^timeout: no verdict within (?P<s>\d+) s"), "超时：{s} 秒内未回报结果"),
    (re.compile(r"^already running$"), "已是此版本"),
    (re.compile(r"^not connected to the county broker$"), "未连接县级消息服务器，稍后重发"),
    (re.compile(r"^the county broker did not take"), "县级消息服务器未接收，稍后重发"),
    (re.compile(r"^no device key$"), "缺少设备密钥，稍后重发"),
    (re.compile(r"^center \d+ has no edge key"), "中心尚未签发边缘网关密钥，稍后重发"),
    (re.compile(r"^no bundle of its previous version (?P<v>.+)$"), "平台没有原版本 {v} 的固件包，无法回滚"),
)
ROLLOUT_REASON = re.compile(r"^(?P<action>pause|resume|abort|rollback) by (?P<user>.+)$")


def reason_message(reason: str | None) -> tuple[str, dict[str, str]]:
    """Why a device of a rollout is where it is: (message id, fields) for `_`; a reason the fleet does not
    word itself (the board's) comes back as it is, without fields."""
    for pattern, message in TARGET_REASONS:
        found = pattern.match(reason or "")
        if found:
            return message, found.groupdict()
    return reason or "", {}


def target_reason(reason: str | None, _: Translator) -> str:
    """reason_message in the page's language."""
    message, fields = reason_message(reason)
    return _(message, **fields)


def rollout_reason(view: dict[str, Any], _: Translator) -> str:
    """Why a rollout is in its state: the wave over its threshold, or who acted."""
    if view["status"] == plan.HALTED:
        for wave in view["waves"]:
            if wave["counts"][plan.FAILED] > wave["failures_allowed"]:
                return _("{wave}失败 {failed} 台，超过允许的 {allowed} 台", wave=_(plan.WAVE_LABELS[wave["wave"]]),
                         failed=wave["counts"][plan.FAILED], allowed=wave["failures_allowed"])
    found = ROLLOUT_REASON.match(view.get("reason") or "")
    if found:
        return _("{user}：{action}", user=found["user"], action=_(plan.ACTION_LABELS[found["action"]]))
    return ""


def _list_page(request: Request, user: CurrentUser, session: Session, error: str | None = None,
               status_code: int = 200) -> Response:
    rollouts = [service.rollout_view(session, r, with_targets=False) for r in service.visible_rollouts(session, user)]
    devices = session.exec(select(Device).where(user.scope_clause(Device.center_code),
                                                col(Device.role).in_(messages.DEVICE_ROLES))
                           .order_by(Device.center_code, Device.window, Device.device_id)).all()
    bundles = [_bundle_out(b) for b in session.exec(select(FirmwareBundle).order_by(col(FirmwareBundle.id).desc()))]
    response = render(request, "rollouts.html", {
        "rollouts": rollouts, "bundles": bundles, "devices": [service.device_firmware(session, d) for d in devices],
        "status_labels": _status_labels(), "target_labels": plan.TARGET_LABELS, "error": error,
        "default_scope": user.division_prefix or (devices[0].center_code[:6] if devices else ""),
    })
    response.status_code = status_code
    return response


@pages.get("/rollouts", response_class=HTMLResponse)
def rollouts_page(request: Request, user: CurrentUserDep, session: SessionDep) -> Response:
    return _list_page(request, user, session)


@pages.post("/rollouts")
async def rollout_form(request: Request, user: WriterDep, session: WriteSessionDep, now: NowDep) -> Response:
    form = await request.form()
    _ = translator(request_lang(request))

    def number(name: str, default: float) -> float:
        text = str(form.get(name) or "").strip()
        try:
            return float(text) if text else default
        except ValueError:
            return -1  # refused by RolloutIn below

    try:
        body = RolloutIn(version=str(form.get("version") or ""), scope=str(form.get("scope") or "").strip(),
                         canary=[str(v) for v in form.getlist("canary")], name=str(form.get("name") or ""),
                         failure_threshold_pct=int(number("failure_threshold_pct", 0)),
                         max_in_flight=int(number("max_in_flight", 10)),
                         device_timeout_s=number("device_timeout_s", 900))
        rollout_id = _create(session, request, user, body, now)
    except HTTPException as exc:
        session.rollback()
        return _list_page(request, user, session, _("升级未开始：{detail}", detail=str(exc.detail)), exc.status_code)
    except ValueError as exc:  # pydantic's ValidationError
        session.rollback()
        return _list_page(request, user, session, _("升级未开始：{detail}", detail=str(exc).splitlines()[0]), 422)
    return RedirectResponse(f"/rollouts/{rollout_id}", status_code=303)


def _detail_page(request: Request, user: CurrentUser, session: Session, rollout_id: int,
                 error: str | None = None, status_code: int = 200) -> Response:
    rollout = _visible(session, user, rollout_id)
    view = service.rollout_view(session, rollout)
    response = render(request, "rollout.html", {
        "r": view, "status_labels": _status_labels(), "target_labels": plan.TARGET_LABELS,
        "wave_labels": plan.WAVE_LABELS, "action_labels": plan.ACTION_LABELS, "error": error,
        "reason_text": rollout_reason(view, translator(request_lang(request))),
        "target_reason": lambda reason: target_reason(reason, translator(request_lang(request))),
        "actions": [a for a in (plan.PAUSE, plan.RESUME, plan.ABORT, plan.ROLL_BACK)
                    if rollout.status in plan.ALLOWED[a]] if user.can_change(rollout.scope_prefix) else [],
        "active": rollout.status in (*plan.ACTIVE, plan.ABORTED),
    })
    response.status_code = status_code
    return response


@pages.get("/rollouts/{rollout_id}", response_class=HTMLResponse)
def rollout_page(rollout_id: RowId, request: Request, user: CurrentUserDep, session: SessionDep) -> Response:
    return _detail_page(request, user, session, rollout_id)


@pages.post("/rollouts/{rollout_id}/{action}")
def action_form(rollout_id: RowId, action: Action, request: Request, user: WriterDep, session: WriteSessionDep,
                now: NowDep) -> Response:
    _ = translator(request_lang(request))
    try:
        _act(session, request, user, rollout_id, action, now)
    except HTTPException as exc:
        if exc.status_code != 409:
            raise
        session.rollback()
        return _detail_page(request, user, session, rollout_id, _("操作未执行：{detail}", detail=str(exc.detail)), 409)
    return RedirectResponse(f"/rollouts/{rollout_id}", status_code=303)


@pages.post("/rollouts/bundles")
async def bundle_form(request: Request, user: AdminDep, session: WriteSessionDep, now: NowDep) -> Response:
    """构建固件包: a bundle of this fleet's firmware tree under the version label typed (county administrators)."""
    form = await request.form()
    _ = translator(request_lang(request))
    try:
        post_bundle(BundleIn(version=str(form.get("version") or "").strip()), user, session, now)
    except HTTPException as exc:
        session.rollback()
        return _list_page(request, user, session, _("固件包未构建：{detail}", detail=str(exc.detail)), exc.status_code)
    except ValueError as exc:  # pydantic's ValidationError: not a version label
        session.rollback()
        return _list_page(request, user, session, _("固件包未构建：{detail}", detail=str(exc).splitlines()[0]), 422)
    return RedirectResponse("/rollouts#rollout-form", status_code=303)


def device_section(session: Session, device: dict[str, Any], user: CurrentUser) -> dict[str, Any]:
    """The device page's firmware block (registered in app.state.device_sections)."""
    row = session.get(Device, device["device_id"])
    assert row is not None  # the device page found it
    targets = session.exec(select(RolloutDevice, FirmwareRollout)
                           .join(FirmwareRollout, col(FirmwareRollout.id) == col(RolloutDevice.rollout_id))
                           .where(RolloutDevice.device_id == row.device_id)
                           .order_by(col(FirmwareRollout.id).desc()).limit(10)).all()
    return {"firmware": service.device_firmware(session, row), "target_labels": plan.TARGET_LABELS,
            "reason_message": reason_message,
            "rollouts": [{"rollout_id": r.id, "version": r.version, "state": t.state, "reason": t.reason}
                         for t, r in targets]}


# Wiring ------------------------------------------------------------------------

def rollout_job(app: FastAPI, now: datetime) -> None:
    with write_session(app.state.engine) as session:
        service.advance_all(session, app.state.key_box, getattr(app.state, "ingest", None), now)


def install_rollouts(app: FastAPI) -> None:
    """In create_app, after install_operations (the key box): the routers."""
    for router in (api, pages):
        app.include_router(router)
    app.state.device_sections = [*getattr(app.state, "device_sections", []),
                                 ("rollout_device_section.html", device_section)]
    app.state.rollout_jobs = None


def start_rollouts(app: FastAPI) -> None:
    """In the lifespan: the job that advances every rollout."""
    job = Job("rollouts", ROLLOUT_INTERVAL_S, lambda now: rollout_job(app, now))
    app.state.rollout_jobs = Sweeper([job], app.state.clock).start()


def stop_rollouts(app: FastAPI) -> None:
    if getattr(app.state, "rollout_jobs", None) is not None:
        app.state.rollout_jobs.stop()
        app.state.rollout_jobs = None
