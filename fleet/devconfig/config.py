"""Desired configuration: scopes with inheritance, per-device versions, signed retained pushes, drift repair.

- A change is a new `ConfigRevision` at one scope (county, town, center or device) for
  one role, checked against `protocol.messages.CONFIG_SCHEMAS` (`validate_config`).
- A device's desired configuration is the merge county < town < center < device of the
  latest revisions for its role. Whenever it changes the device gets a new version
  (`DeviceConfigVersion`, higher than anything it has reported, so it never refuses it
  as older). A roll-back is a new revision with an earlier revision's content.
- `push_pending` publishes desired configurations, signed with the device's key,
  retained with QoS 1 on `device_config_desired`; a device whose report differs from
  the desired version is re-published every `config_repush_s` (drift repair), unless it
  rejected exactly that version (it would reject it again).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from fleet.centerconfig.glyphs import glyph_problem
from fleet.db import among
from fleet.devconfig.keys import DeviceKeyError, KeyBox, get_key
from fleet.devconfig.models import (
    CENTER,
    COUNTY,
    DEVICE,
    SCOPES,
    TOWN,
    ConfigRevision,
    DeviceConfigState,
    DeviceConfigVersion,
    DeviceKey,
)
from fleet.devconfig.publisher import Publisher
from fleet.models import Device
from protocol import messages, signing, topics
from protocol.errors import ProtocolError
from protocol.identity import check_center_code, check_device_id

log = logging.getLogger(__name__)

APPLIED = "applied"
PENDING = "pending"
REJECTED = "rejected"
UNCONFIGURED = "unconfigured"
STATUS_LABELS = {APPLIED: "已生效", PENDING: "待生效", REJECTED: "被拒绝", UNCONFIGURED: "未配置"}
SCOPE_LENGTHS = {COUNTY: 6, TOWN: 9, CENTER: 12}


DEVICE_TEXTS = ("idle_text", "prompt_text", "thanks_text")  # the configuration's texts a board shows


class ConfigError(ValueError):
    """A configuration or scope that cannot be used, with the reason."""


def _dumps(config: dict[str, Any]) -> str:
    return json.dumps(config, ensure_ascii=False, sort_keys=True)


def check_scope(scope: str, scope_id: str) -> str:
    """The scope id if it fits the scope (6/9/12-digit division code, or a device id), else ConfigError."""
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    try:
        if scope == DEVICE:
            return check_device_id(scope_id)
        if scope == CENTER:
            return check_center_code(scope_id)
    except ProtocolError as exc:
        raise ConfigError(str(exc)) from exc
    if not (scope_id.isascii() and scope_id.isdigit() and len(scope_id) == SCOPE_LENGTHS[scope]):
        raise ConfigError(f"a {scope} scope is a {SCOPE_LENGTHS[scope]}-digit division code, got {scope_id!r}")
    return scope_id


def scope_center(session: Session, scope: str, scope_id: str) -> str | None:
    """The division code that decides who may change this scope: the code itself, or the device's center."""
    if scope != DEVICE:
        return scope_id
    device = session.get(Device, scope_id)
    return None if device is None else device.center_code


def latest_revision(session: Session, scope: str, scope_id: str, role: str) -> ConfigRevision | None:
    return session.exec(select(ConfigRevision).where(ConfigRevision.scope == scope, ConfigRevision.scope_id == scope_id,
                                                     ConfigRevision.role == role)
                        .order_by(col(ConfigRevision.revision).desc())).first()


def revisions(session: Session, scope: str, scope_id: str, role: str) -> list[ConfigRevision]:
    return list(session.exec(select(ConfigRevision).where(
        ConfigRevision.scope == scope, ConfigRevision.scope_id == scope_id, ConfigRevision.role == role)
        .order_by(col(ConfigRevision.revision).desc())))


def set_scope_config(session: Session, scope: str, scope_id: str, role: str, config: dict[str, Any],
                     username: str, now: datetime, note: str | None = None,
                     rollback_of: int | None = None) -> tuple[ConfigRevision, list[str]]:
    """A new revision at a scope (validated for the role); then recompute the devices under it.

    Returns the revision and the devices that got a new desired version."""
    check_scope(scope, scope_id)
    try:
        messages.validate_config(role, config)
    except ProtocolError as exc:
        raise ConfigError(str(exc)) from exc
    for key in DEVICE_TEXTS:  # drawn by the boards from their font: a character it lacks would show as a box
        problem = glyph_problem(key, config[key]) if isinstance(config.get(key), str) else None
        if problem:
            raise ConfigError(problem)
    if scope == DEVICE:
        device = session.get(Device, scope_id)
        if device is None:
            raise ConfigError(f"device {scope_id} is unknown")
        if device.role is not None and device.role != role:
            raise ConfigError(f"device {scope_id} is a {device.role}, not a {role}")
    latest = latest_revision(session, scope, scope_id, role)
    revision = ConfigRevision(scope=scope, scope_id=scope_id, role=role, revision=(latest.revision + 1) if latest
                              else 1, config=_dumps(config), created_at=now, created_by=username, note=note,
                              rollback_of=rollback_of)
    session.add(revision)
    session.flush()
    changed = recompute(session, devices_under(session, scope, scope_id, role), now, username,
                        f"{scope} {scope_id} rev {revision.revision}")
    return revision, changed


def rollback(session: Session, scope: str, scope_id: str, role: str, to_revision: int, username: str,
             now: datetime) -> tuple[ConfigRevision, list[str]]:
    """Roll back in one action: a new revision with the content of `to_revision`."""
    old = session.exec(select(ConfigRevision).where(ConfigRevision.scope == scope, ConfigRevision.scope_id == scope_id,
                                                    ConfigRevision.role == role,
                                                    ConfigRevision.revision == to_revision)).first()
    if old is None:
        raise ConfigError(f"no revision {to_revision} of {scope} {scope_id} ({role})")
    return set_scope_config(session, scope, scope_id, role, json.loads(old.config), username, now,
                            note=f"回滚到第 {to_revision} 版", rollback_of=to_revision)


def devices_under(session: Session, scope: str, scope_id: str, role: str | None = None) -> list[Device]:
    query = select(Device)
    if scope == DEVICE:
        query = query.where(Device.device_id == scope_id)
    else:
        query = query.where(col(Device.center_code).startswith(scope_id, autoescape=True))
    if role is not None:
        query = query.where(Device.role == role)
    return list(session.exec(query))


def _scope_chain(device: Device) -> list[tuple[str, str]]:
    code = device.center_code
    return [(COUNTY, code[:6]), (TOWN, code[:9]), (CENTER, code), (DEVICE, device.device_id)]


def effective_config(session: Session, device: Device, latest: dict[tuple[str, str, str], dict] | None = None
                     ) -> tuple[dict[str, Any], list[str]]:
    """The merged configuration for `device` (device > center > town > county) and the revisions it comes from."""
    merged: dict[str, Any] = {}
    sources: list[str] = []
    if device.role is None:
        return merged, sources
    for scope, scope_id in _scope_chain(device):
        if latest is not None:
            found = latest.get((scope, scope_id, device.role))
            config, name = (found["config"], found["name"]) if found else (None, None)
        else:
            row = latest_revision(session, scope, scope_id, device.role)
            config, name = (json.loads(row.config), f"{scope} {scope_id} rev {row.revision}") if row else (None, None)
        if config is not None:
            merged.update(config)
            sources.append(name)
    return merged, sources


def _all_latest(session: Session) -> dict[tuple[str, str, str], dict]:
    latest: dict[tuple[str, str, str], dict] = {}
    for row in session.exec(select(ConfigRevision).order_by(col(ConfigRevision.revision))):
        latest[(row.scope, row.scope_id, row.role)] = {"config": json.loads(row.config),
                                                       "name": f"{row.scope} {row.scope_id} rev {row.revision}"}
    return latest


def recompute(session: Session, devices: Iterable[Device], now: datetime, username: str,
              cause: str | None = None) -> list[str]:
    """Give every device whose effective configuration changed a new desired version; returns their ids."""
    changed = []
    latest = _all_latest(session)
    for device in devices:
        if device.role not in messages.CONFIG_SCHEMAS:
            continue
        config, _sources = effective_config(session, device, latest)
        state = session.get(DeviceConfigState, device.device_id)
        if state is None:
            if not config:
                continue
            state = DeviceConfigState(device_id=device.device_id, center_code=device.center_code)
        state.center_code, state.role = device.center_code, device.role
        if state.desired_version and json.loads(state.desired_config) == config:
            session.add(state)
            continue
        state.desired_version = max(state.desired_version, state.reported_version or 0,
                                    state.applied_version or 0) + 1
        state.desired_config = _dumps(config)
        state.desired_at, state.desired_by = now, username
        session.add(state)
        session.add(DeviceConfigVersion(device_id=device.device_id, version=state.desired_version,
                                        config=state.desired_config, created_at=now, created_by=username,
                                        cause=cause))
        changed.append(device.device_id)
    session.flush()
    return changed


def recompute_all(session: Session, now: datetime) -> list[str]:
    """For devices seen since the last change (a new board, a role learnt from its birth)."""
    return recompute(session, session.exec(select(Device).where(col(Device.role).is_not(None))), now, "system",
                     "new device")


def status_of(state: DeviceConfigState | None) -> str:
    """Applied: the desired version runs; rejected: the device refused exactly it; else pending."""
    if state is None or state.desired_version == 0:
        return UNCONFIGURED
    if state.applied_version == state.desired_version:
        return APPLIED  # even if the last report rejected some other (e.g. replayed) version
    if state.reported_version == state.desired_version:
        return APPLIED if state.reported_status == messages.CONFIG_APPLIED else REJECTED
    return PENDING


def desired_payload(state: DeviceConfigState, key: bytes) -> dict[str, Any]:
    return signing.make_signed("desired_config", key, state.device_id, version=state.desired_version,
                               config=json.loads(state.desired_config), issued_by=state.desired_by)


def needs_push(state: DeviceConfigState, now: datetime, repush_s: float) -> bool:
    if state.desired_version == 0:
        return False
    if state.pushed_version != state.desired_version:
        return True
    if status_of(state) != PENDING:
        return False  # applied, or rejected exactly this version (it would be rejected again)
    return state.pushed_at is None or now - state.pushed_at >= timedelta(seconds=repush_s)


@dataclass
class PushResult:
    pushed: list[str]
    no_key: list[str]
    failed: list[str]


def push_pending(session: Session, box: KeyBox, publisher: Publisher | None, now: datetime,
                 repush_s: float, device_ids: Iterable[str] | None = None) -> PushResult:
    """Publish every desired configuration not yet published, and re-publish drifted ones (the caller commits)."""
    result = PushResult([], [], [])
    query = select(DeviceConfigState).where(DeviceConfigState.desired_version > 0)
    wanted = None if device_ids is None else set(device_ids)
    if wanted is not None:
        query = query.where(*among(DeviceConfigState.device_id, wanted))
    keyed = set(session.exec(select(DeviceKey.device_id)).all())
    for state in session.exec(query):
        if (wanted is not None and state.device_id not in wanted) or not needs_push(state, now, repush_s):
            continue
        if state.device_id not in keyed:
            result.no_key.append(state.device_id)
            continue
        if publisher is None:
            result.failed.append(state.device_id)
            continue
        try:
            key = get_key(session, box, state.device_id)
            assert key is not None
            payload = desired_payload(state, key)
        except (DeviceKeyError, ProtocolError) as exc:
            log.error("desired config of %s not signed: %s", state.device_id, exc)
            result.failed.append(state.device_id)
            continue
        topic = topics.build(topics.DEVICE_CONFIG_DESIRED, center=state.center_code, device=state.device_id)
        spec = topics.topic(topics.DEVICE_CONFIG_DESIRED)
        if not publisher.publish(topic, messages.encode("desired_config", payload), spec.qos, spec.retained):
            result.failed.append(state.device_id)
            continue
        drift = state.pushed_version == state.desired_version
        state.pushed_version, state.pushed_at, state.push_count = state.desired_version, now, state.push_count + 1
        session.add(state)
        result.pushed.append(state.device_id)
        log.info("desired config v%d %s for %s", state.desired_version, "re-published (drift)" if drift else
                 "published", state.device_id)
    return result


def record_reported(session: Session, center_code: str, device_id: str, payload: dict[str, Any],
                    now: datetime) -> str:
    """A device_config_reported relayed by the edge: which version was applied or rejected, and which is in force.

    A report of older firmware has no `in_force`: an applied version is then the one in force, and a
    rejection leaves the version in force as last known."""
    state = session.get(DeviceConfigState, device_id)
    if state is None:
        state = DeviceConfigState(device_id=device_id, center_code=center_code)
    state.reported_version = payload["version"]
    state.reported_status = payload["status"]
    state.reported_error = payload.get("error")
    state.reported_at = now
    if payload.get("in_force") is not None:
        state.applied_version = payload["in_force"]
    elif payload["status"] == messages.CONFIG_APPLIED:
        state.applied_version = payload["version"]
    session.add(state)
    if payload["status"] == messages.CONFIG_REJECTED:
        log.warning("device %s rejected config v%d (v%s in force): %s", device_id, payload["version"],
                    state.applied_version if state.applied_version is not None else "?", payload.get("error", ""))
    return status_of(state)


def device_config_view(session: Session, device_id: str) -> dict[str, Any]:
    """What the device page and API show: desired and reported, status, version history."""
    state = session.get(DeviceConfigState, device_id)
    versions = session.exec(select(DeviceConfigVersion).where(DeviceConfigVersion.device_id == device_id)
                            .order_by(col(DeviceConfigVersion.version).desc()).limit(20)).all()
    key = session.get(DeviceKey, device_id)
    return {
        "device_id": device_id,
        "status": status_of(state),
        "desired_version": state.desired_version if state else 0,
        "desired_config": json.loads(state.desired_config) if state else {},
        "desired_at": state.desired_at if state else None,
        "desired_by": state.desired_by if state else None,
        "pushed_version": state.pushed_version if state else 0,
        "pushed_at": state.pushed_at if state else None,
        "reported_version": state.reported_version if state else None,
        "reported_status": state.reported_status if state else None,
        "reported_error": state.reported_error if state else None,
        "reported_at": state.reported_at if state else None,
        "applied_version": state.applied_version if state else None,
        "has_key": key is not None,
        "key_fingerprint": key.fingerprint if key else None,
        "versions": [{"version": v.version, "config": json.loads(v.config), "created_at": v.created_at,
                      "created_by": v.created_by, "cause": v.cause} for v in versions],
    }
