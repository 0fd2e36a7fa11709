"""The rules of a center's configuration, as plain functions (the caller commits, and checks scope).

- Windows (number, kind 综合受理/专窗/机动, the queue prefixes served, its own staff) and the roster (工号, name,
  职务, photo, the sign-in PIN's hash, the windows they may sign in at, whom they stand in for: AB角) are edited
  here, every change audited. A name the boards' font cannot show is refused, naming the characters.
- A center is run from the county once it has a window here. Its configuration is its profile
  (fleet.centers.profile), its items and queue services (fleet.catalogue.service), its windows and roster.
  Whenever what these give changes, `note_config` makes a new version (`CenterConfigVersion`); the job also
  notices edits made elsewhere (a profile, an item's materials) within seconds.
- `publish` sends the latest version, signed with the center's edge key, retained (protocol topic
  center_config), so an edge that is offline gets it when it returns; it is published again every
  `repush_s` in case the broker lost its retained copy.
- The edge answers with center_config_reported (`record_reported`): applied / pending / rejected per center.
- `rollback` makes a new version with an earlier version's content, and puts the windows and roster back as
  they were in it (profile and items stay the county's current ones from the next change on).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from fleet import audit
from fleet.auth.principal import CurrentUser
from fleet.catalogue.service import center_items, center_services
from fleet.centerconfig.glyphs import glyph_problem
from fleet.centerconfig.models import CenterConfigState, CenterConfigVersion, CenterWindow, RosterMember
from fleet.centers.profile import DEFAULT_OPENING_HOURS, center_profile
from fleet.db import write_session
from fleet.devconfig.keys import KeyBox
from fleet.devconfig.publisher import Publisher
from fleet.registration.service import edge_key
from protocol import messages, signing, topics
from protocol.errors import ProtocolError
from protocol.identity import check_center_code, check_window

log = logging.getLogger(__name__)

WINDOW_KIND_LABELS = {messages.WINDOW_GENERAL: "综合受理", messages.WINDOW_DEDICATED: "专窗",
                      messages.WINDOW_FLEXIBLE: "机动"}
PHOTO_MAX_BYTES = 48 * 1024  # a small portrait for the hall display; a roster of 20 stays far below the 1 MiB
PHOTO_TYPES = ("image/jpeg", "image/png")
PIN_DIGITS = (4, 8)  # as the edge's sign-in takes them (edge_agent.sign_in)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # the edge's parameters: its verify_secret checks this hash
STAFF_NO = re.compile(r"^[0-9A-Za-z]{1,16}$")
PROFILE_FIELDS = ("code", "name", "level", "address", "consult_phone", "complaint_phone", "contact_name",
                  "contact_phone", "opening_hours", "open_on_rest_days")

APPLIED = "applied"
PENDING = "pending"
REJECTED = "rejected"
NONE = "none"  # the center is not run from the county (no window here): its edge runs on its TOML
STATUS_LABELS = {APPLIED: "已生效", PENDING: "待生效", REJECTED: "被拒绝", NONE: "未下发"}

PUBLISHED = "published"
CURRENT = "current"
NO_KEY = "no_key"
NO_BROKER = "no_broker"


class ConfigRefused(ValueError):
    """An edit that cannot be made; `errors` maps each field to why (shown to county staff in Chinese)."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{key}: {text}" for key, text in errors.items()))


def hash_pin(pin: str) -> str:
    """scrypt$<salt>$<hash> of a PIN: the format and parameters edge_agent.sign_in.verify_secret checks."""
    salt = secrets.token_bytes(16)
    return f"scrypt${salt.hex()}${hashlib.scrypt(pin.encode('utf-8'), salt=salt, **_SCRYPT).hex()}"


def _list(text: str) -> list:
    return json.loads(text or "[]")


def windows_of(session: Session, code: str) -> list[CenterWindow]:
    return list(session.exec(select(CenterWindow).where(CenterWindow.center_code == code)
                             .order_by(col(CenterWindow.number))).all())


def roster_of(session: Session, code: str) -> list[RosterMember]:
    return list(session.exec(select(RosterMember).where(RosterMember.center_code == code)
                             .order_by(col(RosterMember.staff_no))).all())


def _window_row(session: Session, code: str, number: int) -> CenterWindow | None:
    return session.exec(select(CenterWindow).where(CenterWindow.center_code == code,
                                                   CenterWindow.number == number)).first()


def _member_row(session: Session, code: str, staff_no: str) -> RosterMember | None:
    return session.exec(select(RosterMember).where(RosterMember.center_code == code,
                                                   RosterMember.staff_no == staff_no)).first()


# -- editing ------------------------------------------------------------------------------------------------

def save_window(session: Session, user: CurrentUser | None, code: str, number: int, kind: str,
                services: list[str], staff_no: str, now: datetime) -> CenterWindow:
    """Add or change window `number` of center `code`; ConfigRefused names every problem. Audited."""
    check_center_code(code)
    errors: dict[str, str] = {}
    try:
        check_window(number)
    except ProtocolError:
        errors["number"] = "窗口号须为 1 至 999 的整数"
    if kind not in messages.WINDOW_KINDS:
        errors["kind"] = "窗口类型须为 综合受理、专窗 或 机动"
    known = {service["prefix"] for service in center_services(session, code)}
    services = list(dict.fromkeys(prefix.strip().upper() for prefix in services if prefix.strip()))
    unknown = [prefix for prefix in services if prefix not in known]
    if not services:
        errors["services"] = "请选择该窗口办理的业务"
    elif unknown:
        errors["services"] = f"本中心没有这些业务：{'、'.join(unknown)}（请先在事项清单中启用）"
    staff_no = staff_no.strip()
    if staff_no and _member_row(session, code, staff_no) is None:
        errors["staff_no"] = f"工号 {staff_no} 不在本中心人员名单中"
    if errors:
        raise ConfigRefused(errors)
    row = _window_row(session, code, number) or CenterWindow(center_code=code, number=number, kind=kind,
                                                            updated_by="")
    before = {"kind": row.kind, "services": _list(row.services), "staff_no": row.staff_no} if row.id else None
    row.kind, row.services, row.staff_no = kind, json.dumps(services), staff_no
    row.updated_at, row.updated_by = now, user.username if user else "system"
    session.add(row)
    audit.record(session, user, "center.window", target=f"{code}/{number}", center_code=code, at=now,
                 detail={"window": number, "before": before,
                         "after": {"kind": kind, "services": services, "staff_no": staff_no}})
    return row


def delete_window(session: Session, user: CurrentUser | None, code: str, number: int, now: datetime) -> bool:
    """Remove a window (the roster's sign-in places lose it too); False when there is none. Audited."""
    row = _window_row(session, code, number)
    if row is None:
        return False
    session.delete(row)
    for member in roster_of(session, code):
        allowed = _list(member.windows)
        if number in allowed:
            member.windows = json.dumps([n for n in allowed if n != number])
            session.add(member)
    audit.record(session, user, "center.window.delete", target=f"{code}/{number}", center_code=code, at=now,
                 detail={"window": number})
    return True


def _photo_problem(photo: str) -> str | None:
    head, _, data = photo.partition(",")
    kind = head[len("data:"):-len(";base64")] if head.startswith("data:") and head.endswith(";base64") else ""
    if kind not in PHOTO_TYPES:
        return "照片须为 JPEG 或 PNG 图片"
    try:
        size = len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return "照片数据无法读取"
    if size > PHOTO_MAX_BYTES:
        return f"照片不能超过 {PHOTO_MAX_BYTES // 1024} KB"
    return None


def save_member(session: Session, user: CurrentUser | None, code: str, staff_no: str, name: str, title: str,
                windows: list[int], stand_in_for: list[str], now: datetime, pin: str | None = None,
                photo: str | None = None) -> RosterMember:
    """Add or change someone on the roster. `pin` None keeps the PIN, `photo` None keeps the photo ("" removes
    it). The name is shown on the rating pads: characters their font lacks are refused. Audited (never the PIN
    or the photo's bytes)."""
    check_center_code(code)
    errors: dict[str, str] = {}
    staff_no, name, title = staff_no.strip(), name.strip(), title.strip()
    if not STAFF_NO.match(staff_no):
        errors["staff_no"] = "工号须为 1 至 16 位数字或字母"
    if not name or len(name) > 32:
        errors["name"] = "请填写姓名（不超过 32 个字）"
    elif problem := glyph_problem("姓名", name):
        errors["name"] = problem
    if len(title) > 32:
        errors["title"] = "职务不超过 32 个字"
    numbers = {row.number for row in windows_of(session, code)}
    windows = list(dict.fromkeys(windows))
    if any(number not in numbers for number in windows):
        errors["windows"] = "只能选择本中心已有的窗口"
    stand_in_for = list(dict.fromkeys(s.strip() for s in stand_in_for if s.strip()))
    missing = [other for other in stand_in_for if other == staff_no or _member_row(session, code, other) is None]
    if missing:
        errors["stand_in_for"] = f"顶岗对象须为本中心名单中的其他人：{'、'.join(missing)}"
    low, high = PIN_DIGITS
    if pin is not None and pin != "" and not (pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
        errors["pin"] = f"密码须为{low}至{high}位数字"
    if photo and (problem := _photo_problem(photo)):
        errors["photo"] = problem
    if errors:
        raise ConfigRefused(errors)
    row = _member_row(session, code, staff_no) or RosterMember(center_code=code, staff_no=staff_no, name=name,
                                                              updated_by="")
    before = {"name": row.name, "title": row.title, "windows": _list(row.windows),
              "stand_in_for": _list(row.stand_in_for)} if row.id else None
    row.name, row.title = name, title
    row.windows, row.stand_in_for = json.dumps(windows), json.dumps(stand_in_for)
    if pin:
        row.pin_hash = hash_pin(pin)
    if photo is not None:
        row.photo = photo
    row.updated_at, row.updated_by = now, user.username if user else "system"
    session.add(row)
    audit.record(session, user, "center.staff", target=f"{code}/{staff_no}", center_code=code, at=now,
                 detail={"staff_no": staff_no, "before": before,
                         "after": {"name": name, "title": title, "windows": windows, "stand_in_for": stand_in_for},
                         "pin_changed": bool(pin), "photo_changed": photo is not None})
    return row


def delete_member(session: Session, user: CurrentUser | None, code: str, staff_no: str, now: datetime) -> bool:
    """Remove someone from the roster (windows and stand-ins lose them too); False when not on it. Audited."""
    row = _member_row(session, code, staff_no)
    if row is None:
        return False
    session.delete(row)
    for window in windows_of(session, code):
        if window.staff_no == staff_no:
            window.staff_no = ""
            session.add(window)
    for member in roster_of(session, code):
        others = _list(member.stand_in_for)
        if staff_no in others:
            member.stand_in_for = json.dumps([s for s in others if s != staff_no])
            session.add(member)
    audit.record(session, user, "center.staff.delete", target=f"{code}/{staff_no}", center_code=code, at=now,
                 detail={"staff_no": staff_no})
    return True


# -- versions -----------------------------------------------------------------------------------------------

def build_content(session: Session, code: str, default_hours: str = DEFAULT_OPENING_HOURS) -> dict[str, Any]:
    """The sections of the center's center_config as the fleet's tables give them now."""
    profile = center_profile(session, code, default_hours)
    return {
        "profile": {key: profile[key] for key in PROFILE_FIELDS if key in profile},
        "items": center_items(session, code),
        "services": center_services(session, code),
        "windows": [{"number": w.number, "kind": w.kind, "services": _list(w.services), "staff_no": w.staff_no}
                    for w in windows_of(session, code)],
        "roster": [{"staff_no": m.staff_no, "name": m.name, "title": m.title, "photo": m.photo,
                    "pin_hash": m.pin_hash, "windows": _list(m.windows), "stand_in_for": _list(m.stand_in_for)}
                   for m in roster_of(session, code)],
    }


def device_text_problems(content: dict[str, Any]) -> list[str]:
    """Text of `content` the devices show (service and staff names, on the rating pads) that their font cannot."""
    problems = [glyph_problem(f"业务 {s['prefix']} 的名称", s["name"]) for s in content["services"]]
    problems += [glyph_problem(f"工号 {m['staff_no']} 的姓名", m["name"]) for m in content["roster"]]
    return [problem for problem in problems if problem]


def _digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(signing.canonical(content).encode("utf-8")).hexdigest()


def _latest(session: Session, code: str) -> CenterConfigVersion | None:
    return session.exec(select(CenterConfigVersion).where(CenterConfigVersion.center_code == code)
                        .order_by(col(CenterConfigVersion.version).desc()).limit(1)).first()


def _state(session: Session, code: str) -> CenterConfigState:
    return session.get(CenterConfigState, code) or CenterConfigState(center_code=code)


def _hold_versions(session: Session, code: str) -> CenterConfigState:
    """Make the center's writers of versions take turns until this transaction ends; its state, read afresh.

    A staffing page's save and the periodic job (or two fleet processes) number the next version at once; on
    PostgreSQL (READ COMMITTED) both took the same number and one failed on uq_center_config_version (a 500 on
    the page). A transaction-scoped advisory lock per center holds even before the state row exists; SQLite's
    write_session already lets one writer in at a time.
    """
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(f"fleet.center_config:{code}".encode()).digest()
        session.exec(select(func.pg_advisory_xact_lock(int.from_bytes(digest[:8], "big", signed=True)))).one()
    return session.get(CenterConfigState, code, populate_existing=True) or CenterConfigState(center_code=code)


def _message(code: str, version: CenterConfigVersion, key: bytes) -> bytes:
    payload = signing.make_signed("center_config", key, code, version=version.version,
                                  issued_at=int(version.created_at.timestamp()), **json.loads(version.content))
    raw = messages.encode("center_config", payload)
    if len(raw) > messages.CENTER_CONFIG_MAX_BYTES:
        raise ProtocolError(f"{len(raw)} bytes is more than the {messages.CENTER_CONFIG_MAX_BYTES} an edge reads "
                            "(fewer or smaller photos)")
    return raw


def _new_version(session: Session, state: CenterConfigState, content: dict[str, Any], source_digest: str,
                 now: datetime, by: str, cause: str | None) -> CenterConfigVersion:
    latest = _latest(session, state.center_code)
    number = max(state.version, latest.version if latest else 0, state.in_force or 0) + 1
    version = CenterConfigVersion(center_code=state.center_code, version=number, content=json.dumps(
        content, ensure_ascii=False), source_digest=source_digest, created_at=now, created_by=by, cause=cause)
    _message(state.center_code, version, bytes(32))  # refuses content no edge could take (too big, not valid)
    session.add(version)
    state.version, state.problem = number, None
    session.add(state)
    log.info("center %s: configuration v%d made by %s%s", state.center_code, number, by,
             f" ({cause})" if cause else "")
    return version


def note_config(session: Session, code: str, now: datetime, by: str = "system",
                default_hours: str = DEFAULT_OPENING_HOURS) -> CenterConfigState | None:
    """A new version when the tables give other content than the latest version was made from; None for a center
    not run from the county (no window here). Text the devices cannot show makes no version: `problem` says why."""
    if not windows_of(session, code):
        return None
    state = _hold_versions(session, code)
    content = build_content(session, code, default_hours)
    try:
        digest = _digest(content)
    except ProtocolError as exc:
        state.problem = f"configuration not valid: {exc}"
        session.add(state)
        return state
    latest = _latest(session, code)
    # An edge running a version above the fleet's latest means the fleet's counter went back (its database
    # restored): the edge refuses anything older, so the same content goes out again numbered above it.
    behind = state.in_force is not None and state.in_force > state.version
    if latest is not None and latest.source_digest == digest and not behind:
        return state
    problems = device_text_problems(content)
    if problems:
        state.problem = "；".join(problems)
        session.add(state)
        return state
    try:
        _new_version(session, state, content, digest, now, by, None)
    except ProtocolError as exc:
        state.problem = f"configuration not valid: {exc}"
        session.add(state)
    return state


def publish(session: Session, publisher: Publisher | None, box: KeyBox, code: str, now: datetime,
            repush_s: float | None = None) -> str:
    """Publish the latest version when it was not yet (or, with repush_s, that long ago); returns an outcome."""
    state = session.get(CenterConfigState, code)
    if state is None or state.version == 0:
        return CURRENT
    due = state.published_version != state.version or state.published_at is None or (
        repush_s is not None and now - state.published_at >= timedelta(seconds=repush_s))
    if not due:
        return CURRENT
    key = edge_key(session, box, code)
    if key is None:
        state.problem = "no edge credentials issued for this center: nothing to sign its configuration with"
        session.add(state)
        return NO_KEY
    version = session.exec(select(CenterConfigVersion).where(CenterConfigVersion.center_code == code,
                                                             CenterConfigVersion.version == state.version)).one()
    spec = topics.topic(topics.CENTER_CONFIG)
    if publisher is None or not publisher.publish(topics.build(topics.CENTER_CONFIG, center=code),
                                                  _message(code, version, key), spec.qos, spec.retained):
        return NO_BROKER
    if state.problem and state.problem.startswith("no edge credentials"):
        state.problem = None
    state.published_version, state.published_at = state.version, now
    session.add(state)
    log.info("center %s: configuration v%d published", code, state.version)
    return PUBLISHED


def managed_centers(session: Session) -> list[str]:
    """Every center run from the county: with a window here, or with versions made before."""
    codes = set(session.exec(select(CenterWindow.center_code).distinct()).all())
    codes |= set(session.exec(select(CenterConfigState.center_code)).all())
    return sorted(codes)


def center_config_job(engine: Engine, publisher: Publisher | None, box: KeyBox, now: datetime,
                      default_hours: str = DEFAULT_OPENING_HOURS, repush_s: float | None = None) -> dict[str, str]:
    """The periodic job: a new version for every center whose tables changed, published with those not yet."""
    with write_session(engine) as session:
        codes = managed_centers(session)
    outcomes = {}
    for code in codes:
        with write_session(engine) as session:
            note_config(session, code, now, "system", default_hours)
            outcomes[code] = publish(session, publisher, box, code, now, repush_s)
    return outcomes


def record_reported(session: Session, code: str, payload: dict[str, Any], now: datetime) -> str:
    """A center_config_reported from the center's edge: applied or rejected, and the version in force."""
    state = _state(session, code)
    state.reported_version, state.reported_status = payload["version"], payload["status"]
    state.reported_error, state.in_force, state.reported_at = payload.get("error"), payload["in_force"], now
    session.add(state)
    if payload["status"] == messages.CONFIG_REJECTED:
        log.warning("center %s rejected configuration v%d (v%d in force): %s", code, payload["version"],
                    payload["in_force"], payload.get("error", ""))
    return status_of(state)


def status_of(state: CenterConfigState | None) -> str:
    if state is None or state.version == 0:
        return NONE
    if state.in_force == state.version:
        return APPLIED
    if state.reported_status == messages.CONFIG_REJECTED and state.reported_version == state.version:
        return REJECTED
    return PENDING


def rollback(session: Session, user: CurrentUser | None, code: str, version: int, now: datetime,
             default_hours: str = DEFAULT_OPENING_HOURS) -> CenterConfigVersion:
    """A new version with the content of `version`; the windows and roster are put back as they were in it.
    KeyError when the center has no such version. Audited."""
    old = session.exec(select(CenterConfigVersion).where(CenterConfigVersion.center_code == code,
                                                         CenterConfigVersion.version == version)).first()
    if old is None:
        raise KeyError(version)
    content = json.loads(old.content)
    for row in [*windows_of(session, code), *roster_of(session, code)]:
        session.delete(row)
    session.flush()
    by = user.username if user else "system"
    for entry in content["windows"]:
        session.add(CenterWindow(center_code=code, number=entry["number"], kind=entry["kind"],
                                 services=json.dumps(entry["services"]), staff_no=entry.get("staff_no", ""),
                                 updated_at=now, updated_by=by))
    for entry in content["roster"]:
        session.add(RosterMember(center_code=code, staff_no=entry["staff_no"], name=entry["name"],
                                 title=entry.get("title", ""), photo=entry.get("photo", ""),
                                 pin_hash=entry.get("pin_hash", ""), windows=json.dumps(entry.get("windows", [])),
                                 stand_in_for=json.dumps(entry.get("stand_in_for", [])), updated_at=now,
                                 updated_by=by))
    session.flush()
    # The content sent is the old version's; what the tables give now (its windows and roster, today's profile
    # and items) is what the next change is told apart from.
    source = _digest(build_content(session, code, default_hours))
    made = _new_version(session, _hold_versions(session, code), content, source, now, by, f"rollback to v{version}")
    audit.record(session, user, "center.config.rollback", target=code, center_code=code, at=now,
                 detail={"to": version, "version": made.version})
    return made


def statuses(session: Session, user: CurrentUser) -> list[dict[str, Any]]:
    """Every center run from the county within the user's scope: its status, latest version and the one in force."""
    codes = [code for code in managed_centers(session) if user.can_see(code)]
    states = {row.center_code: row for row in session.exec(select(CenterConfigState).where(
        user.scope_clause(CenterConfigState.center_code))).all()}
    return [{"center_code": code, "status": status_of(states.get(code)),
             "version": states[code].version if code in states else 0,
             "in_force": states[code].in_force if code in states else None,
             "reported_error": states[code].reported_error if code in states else None,
             "problem": states[code].problem if code in states else None} for code in codes]


def config_view(session: Session, code: str, limit: int = 20) -> dict[str, Any]:
    """What the page and the API show: status, windows, roster (no PIN hash, no photo bytes), versions."""
    state = session.get(CenterConfigState, code)
    versions = session.exec(select(CenterConfigVersion).where(CenterConfigVersion.center_code == code)
                            .order_by(col(CenterConfigVersion.version).desc()).limit(limit)).all()
    return {
        "center_code": code,
        "status": status_of(state),
        "version": state.version if state else 0,
        "published_version": state.published_version if state else 0,
        "in_force": state.in_force if state else None,
        "reported_version": state.reported_version if state else None,
        "reported_status": state.reported_status if state else None,
        "reported_error": state.reported_error if state else None,
        "reported_at": state.reported_at if state else None,
        "problem": state.problem if state else None,
        "windows": [{"number": w.number, "kind": w.kind, "kind_label": WINDOW_KIND_LABELS.get(w.kind, w.kind),
                     "services": _list(w.services), "staff_no": w.staff_no} for w in windows_of(session, code)],
        "roster": [{"staff_no": m.staff_no, "name": m.name, "title": m.title, "has_photo": bool(m.photo),
                    "has_pin": bool(m.pin_hash), "windows": _list(m.windows), "stand_in_for": _list(m.stand_in_for)}
                   for m in roster_of(session, code)],
        "versions": [{"version": v.version, "created_at": v.created_at, "created_by": v.created_by, "cause": v.cause}
                     for v in versions],
    }
