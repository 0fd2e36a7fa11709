"""Rollouts in the database: create, act (pause, resume, abort, roll back), advance, and the boards' reports.

    store_bundle(session, built, username, now)             # a bundle provisioning/ota_bundle.py built
    create_rollout(session, user, RolloutRequest, now)      # targets planned in waves; nothing sent yet
    advance_all(session, box, publisher, now)               # the job: plan.step applied, messages sent
    act(session, user, rollout, action, now)                # a person's pause / resume / abort / rollback
    record_status(session, center, device, payload, now)    # the ingest: a board's firmware_status

How a device is told (docs/protocol.md, firmware_bundle and firmware_desired): the bundle goes once to the
center's edge, retained and signed with the edge's key; then the device gets a retained firmware_desired naming
the bundle's manifest digest, signed with the device's key, and fetches the files from its edge. A roll back
is the same with the bundle of the version the device ran before. Every change a person makes is audited; what
the rollout does by itself (halt, complete) is audited as the system. The caller commits.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session, col, select

from fleet import audit
from fleet.auth.principal import CurrentUser
from fleet.devconfig.keys import DeviceKeyError, KeyBox, get_key
from fleet.devconfig.publisher import Publisher
from fleet.models import Device
from fleet.registration.service import edge_key
from fleet.rollouts import plan
from fleet.rollouts.models import BundleDelivery, DeviceFirmware, FirmwareBundle, FirmwareRollout, RolloutDevice
from protocol import messages, signing, topics

log = logging.getLogger(__name__)

DIVISION_PREFIX_LENGTHS = (6, 9, 12)  # a county, a town, a center


class RolloutError(ValueError):
    """A rollout request refused, with the reason (the API answers 409 or 422 with it)."""


class BuiltBundle(Protocol):
    """What provisioning.ota_bundle.build_bundle returns (only these are read)."""

    version: str
    manifest: dict[str, Any]
    digest: str
    data: bytes


@dataclass(frozen=True)
class RolloutRequest:
    bundle_version: str
    scope_prefix: str
    canary: Sequence[str]
    name: str = ""
    policy: plan.Policy = plan.Policy()


# Bundles ---------------------------------------------------------------------

def store_bundle(session: Session, built: BuiltBundle, username: str, now: datetime) -> FirmwareBundle:
    """Keep a built bundle; a version label names one bundle for good (the boards report versions by label)."""
    existing = session.exec(select(FirmwareBundle).where(FirmwareBundle.version == built.version)).first()
    if existing is not None:
        if existing.digest == built.digest:
            return existing
        raise RolloutError(f"version {built.version} already names another bundle")
    row = FirmwareBundle(version=built.version, digest=built.digest, manifest=json.dumps(built.manifest),
                         roles=json.dumps(list(built.manifest.get("roles") or messages.DEVICE_ROLES)),
                         data=bytes(built.data), size=sum(int(f["size"]) for f in built.manifest["files"]),
                         created_at=now, created_by=username)
    session.add(row)
    session.flush()
    return row


def bundle_by_version(session: Session, version: str | None) -> FirmwareBundle | None:
    if version is None:
        return None
    return session.exec(select(FirmwareBundle).where(FirmwareBundle.version == version)).first()


def publish_bundle(session: Session, box: KeyBox, publisher: Publisher | None, center: str,
                   bundle: FirmwareBundle, now: datetime) -> str | None:
    """The bundle on the center's edge (retained, signed with the edge key) unless it is there already;
    None when it is, else why it could not be sent."""
    delivered = session.get(BundleDelivery, center)
    if delivered is not None and delivered.digest == bundle.digest:
        return None
    key = edge_key(session, box, center)
    if key is None:
        return f"center {center} has no edge key (edge credentials not issued)"
    if publisher is None:
        return "not connected to the county broker"
    payload = signing.make_signed("firmware_bundle", key, center, version=bundle.version,
                                  manifest_sha256=bundle.digest, manifest=json.loads(bundle.manifest),
                                  data=base64.b64encode(bundle.data).decode("ascii"),
                                  issued_at=int(now.timestamp()))
    spec = topics.topic(topics.FIRMWARE_BUNDLE)
    if not publisher.publish(topics.build(topics.FIRMWARE_BUNDLE, center=center),
                             messages.encode("firmware_bundle", payload), spec.qos, spec.retained):
        return "the county broker did not take the bundle"
    if delivered is None:
        delivered = BundleDelivery(center_code=center, digest=bundle.digest, published_at=now)
    delivered.digest, delivered.published_at = bundle.digest, now
    session.add(delivered)
    log.info("bundle %s published to center %s", bundle.version, center)
    return None


def desire(session: Session, box: KeyBox, publisher: Publisher | None, device_id: str, center: str,
           bundle: FirmwareBundle, username: str, now: datetime) -> tuple[int | None, str | None]:
    """Publish the retained firmware_desired that tells a device to run `bundle` (its bundle first on the
    edge). Returns (issued_at, None) when sent, (None, why) when not."""
    problem = publish_bundle(session, box, publisher, center, bundle, now)
    if problem is not None:
        return None, problem
    try:
        key = get_key(session, box, device_id)
    except DeviceKeyError as exc:
        return None, str(exc)
    if key is None:
        return None, "no device key"
    issued_at = int(now.timestamp())
    payload = signing.make_signed("firmware_desired", key, device_id, version=bundle.version,
                                  manifest_sha256=bundle.digest, issued_at=issued_at, issued_by=username)
    spec = topics.topic(topics.FIRMWARE_DESIRED)
    assert publisher is not None  # publish_bundle said there is one
    if not publisher.publish(topics.build(topics.FIRMWARE_DESIRED, center=center, device=device_id),
                             messages.encode("firmware_desired", payload), spec.qos, spec.retained):
        return None, "the county broker did not take it"
    return issued_at, None


# Rollouts --------------------------------------------------------------------

def policy_of(rollout: FirmwareRollout) -> plan.Policy:
    return plan.Policy(rollout.failure_threshold_pct, rollout.max_in_flight, rollout.device_timeout_s)


def targets_of(session: Session, rollout_id: int) -> list[RolloutDevice]:
    return list(session.exec(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id)
                             .order_by(col(RolloutDevice.wave), col(RolloutDevice.center_code),
                                       col(RolloutDevice.device_id))))


def running_version(session: Session, device: Device) -> str | None:
    """The version a device runs: its firmware report, else its birth's `fw`."""
    reported = session.get(DeviceFirmware, device.device_id)
    return reported.running if reported is not None and reported.running else device.fw


def busy_devices(session: Session, device_ids: Sequence[str]) -> dict[str, int]:
    """Device id -> the active rollout it is in, for those of `device_ids` that are in one."""
    rows = session.exec(select(RolloutDevice.device_id, RolloutDevice.rollout_id)
                        .join(FirmwareRollout, col(FirmwareRollout.id) == col(RolloutDevice.rollout_id))
                        .where(col(FirmwareRollout.status).in_(plan.ACTIVE)))
    wanted = set(device_ids)
    return {device_id: rollout_id for device_id, rollout_id in rows if device_id in wanted}


def create_rollout(session: Session, user: CurrentUser, request: RolloutRequest, now: datetime) -> FirmwareRollout:
    """Plan a rollout of a bundle to every device of its roles under `scope_prefix` (in the user's scope)."""
    prefix = request.scope_prefix
    if not prefix.isdigit() or len(prefix) not in DIVISION_PREFIX_LENGTHS:
        raise RolloutError("scope must be a county (6 digits), a town (9) or a center (12)")
    if not user.can_change(prefix):
        raise PermissionError(f"{prefix} is outside {user.username}'s part of the county")
    bundle = bundle_by_version(session, request.bundle_version)
    if bundle is None:
        raise RolloutError(f"no bundle of version {request.bundle_version}")
    policy = request.policy
    if not (0 <= policy.failure_threshold_pct <= 100 and policy.max_in_flight >= 1 and policy.device_timeout_s > 0):
        raise RolloutError("threshold 0-100 %, at least 1 device at once, a positive device time-out")
    roles = json.loads(bundle.roles)
    devices = list(session.exec(select(Device).where(col(Device.center_code).startswith(prefix, autoescape=True),
                                                     col(Device.role).in_(roles))
                                .order_by(Device.center_code, Device.window, Device.device_id)))
    try:
        waves = plan.plan_waves([plan.DeviceRef(d.device_id, d.center_code) for d in devices], list(request.canary))
    except plan.RolloutRuleError as exc:
        raise RolloutError(str(exc)) from exc
    busy = busy_devices(session, list(waves))
    if busy:
        named = ", ".join(f"{device_id} (#{rollout_id})" for device_id, rollout_id in sorted(busy.items())[:5])
        raise RolloutError(f"{len(busy)} devices are in another active rollout: {named}")
    rollout = FirmwareRollout(name=request.name.strip() or f"{bundle.version} → {prefix}", bundle_id=bundle.id,
                      version=bundle.version, scope_prefix=prefix, canary=json.dumps(list(request.canary)),
                      failure_threshold_pct=policy.failure_threshold_pct, max_in_flight=policy.max_in_flight,
                      device_timeout_s=policy.device_timeout_s, created_at=now, created_by=user.username,
                      updated_at=now)
    session.add(rollout)
    session.flush()
    for device in devices:
        previous = running_version(session, device)
        target = RolloutDevice(rollout_id=rollout.id, device_id=device.device_id, center_code=device.center_code,
                               wave=waves[device.device_id], previous_version=previous)
        if previous == bundle.version:  # nothing to do; counts as done in its wave
            target.state, target.finished_at, target.reason = plan.SUCCEEDED, now, "already running"
        session.add(target)
    audit.record(session, user, "rollout.create", target=f"rollout {rollout.id} {bundle.version} {prefix}",
                 detail={"version": bundle.version, "scope": prefix, "canary": list(request.canary),
                         "devices": len(devices), "failure_threshold_pct": policy.failure_threshold_pct,
                         "max_in_flight": policy.max_in_flight, "device_timeout_s": policy.device_timeout_s},
                 center_code=prefix if len(prefix) == 12 else None, at=now)
    session.flush()
    return rollout


def act(session: Session, user: CurrentUser, rollout: FirmwareRollout, action: str, now: datetime) -> FirmwareRollout:
    """A person's pause, resume, abort or roll back; audited."""
    try:
        plan.check_action(action, rollout.status)
    except plan.RolloutRuleError as exc:
        raise RolloutError(str(exc)) from exc
    if action == plan.ROLL_BACK:
        # Sending a device back while another active rollout holds it would leave that one planning from a
        # version the device no longer runs: that one is aborted (or finished) first.
        mine = [t.device_id for t in targets_of(session, rollout.id or 0)]
        busy = {device: other for device, other in busy_devices(session, mine).items() if other != rollout.id}
        if busy:
            named = ", ".join(f"{device_id} (#{other})" for device_id, other in sorted(busy.items())[:5])
            raise RolloutError(f"{len(busy)} devices are in another active rollout: {named}")
    before = rollout.status
    rollout.status = {plan.PAUSE: plan.PAUSED, plan.RESUME: plan.RUNNING, plan.ABORT: plan.ABORTED,
                      plan.ROLL_BACK: plan.ROLLOUT_ROLLING_BACK}[action]
    rollout.reason = f"{action} by {user.username}"
    rollout.updated_at = now
    if action == plan.ABORT:
        rollout.finished_at = now
    elif action in (plan.RESUME, plan.ROLL_BACK):
        rollout.finished_at = None
    session.add(rollout)
    audit.record(session, user, f"rollout.{action}", target=f"rollout {rollout.id} {rollout.version}",
                 detail={"from": before, "to": rollout.status, "scope": rollout.scope_prefix},
                 center_code=rollout.scope_prefix if len(rollout.scope_prefix) == 12 else None, at=now)
    return rollout


def _views(targets: Sequence[RolloutDevice]) -> list[plan.TargetView]:
    return [plan.TargetView(t.device_id, t.wave, t.state, t.started_at) for t in targets]


def _send(session: Session, box: KeyBox, publisher: Publisher | None, target: RolloutDevice,
          bundle: FirmwareBundle, username: str, now: datetime) -> None:
    issued_at, problem = desire(session, box, publisher, target.device_id, target.center_code, bundle, username,
                                now)
    target.sent, target.issued_at, target.reason = problem is None, issued_at, problem
    session.add(target)
    if problem is not None:
        log.warning("rollout %s: %s not told to run %s yet: %s", target.rollout_id, target.device_id,
                    bundle.version, problem)


def _finish(rollout: FirmwareRollout, status: str, reason: str | None, now: datetime, session: Session) -> None:
    rollout.status, rollout.reason, rollout.updated_at = status, reason, now
    if status in (plan.COMPLETED, plan.ROLLOUT_ROLLED_BACK):
        rollout.finished_at = now
    session.add(rollout)
    audit.record(session, None, f"rollout.{status}", target=f"rollout {rollout.id} {rollout.version}",
                 detail={"reason": reason, "scope": rollout.scope_prefix},
                 center_code=rollout.scope_prefix if len(rollout.scope_prefix) == 12 else None, at=now)
    log.info("rollout %s %s: %s", rollout.id, status, reason or "")


def advance(session: Session, box: KeyBox, publisher: Publisher | None, rollout: FirmwareRollout,
            now: datetime) -> None:
    """One step of one rollout: time-outs, devices started (or sent back), halting and completion."""
    targets = targets_of(session, rollout.id or 0)
    by_id = {t.device_id: t for t in targets}
    bundle = session.get(FirmwareBundle, rollout.bundle_id)
    assert bundle is not None
    if rollout.status == plan.ROLLOUT_ROLLING_BACK:
        _advance_rollback(session, box, publisher, rollout, targets, now)
        return
    result = plan.step(rollout.status, _views(targets), policy_of(rollout), now)
    for device_id in result.timed_out:
        target = by_id[device_id]
        target.state, target.finished_at = plan.FAILED, now
        target.reason = (f"{plan.REASON_TIMEOUT}: no verdict within {rollout.device_timeout_s:.0f} s"
                         + (f" ({target.reason})" if target.reason else ""))
        session.add(target)
    for device_id in result.start:
        target = by_id[device_id]
        target.state, target.started_at = plan.UPDATING, now
        _send(session, box, publisher, target, bundle, rollout.created_by, now)
    for target in targets:  # told while the broker or a key was missing: told again
        if target.state == plan.UPDATING and not target.sent and target.device_id not in result.start:
            _send(session, box, publisher, target, bundle, rollout.created_by, now)
    if result.status is not None:
        _finish(rollout, result.status, result.reason, now, session)


def _advance_rollback(session: Session, box: KeyBox, publisher: Publisher | None, rollout: FirmwareRollout,
                      targets: list[RolloutDevice], now: datetime) -> None:
    can_go_back = set()
    for target in targets:
        if target.state not in (plan.SUCCEEDED, plan.UPDATING) or target.previous_version == rollout.version:
            continue
        if bundle_by_version(session, target.previous_version) is None:
            # Nothing to send it back to: it stays where it is, and says so.
            target.reason = f"no bundle of its previous version {target.previous_version or '(unknown)'}"
            session.add(target)
        else:
            can_go_back.add(target.device_id)
    to_send, done = plan.rollback_step(_views(targets), can_go_back)
    for target in targets:
        told_before_unsent = target.state == plan.ROLLING_BACK and not target.sent
        if target.device_id in to_send or told_before_unsent:
            previous = bundle_by_version(session, target.previous_version)
            assert previous is not None
            target.state, target.started_at, target.finished_at = plan.ROLLING_BACK, now, None
            _send(session, box, publisher, target, previous, rollout.created_by, now)
    if done:
        _finish(rollout, plan.ROLLOUT_ROLLED_BACK, rollout.reason, now, session)


def advance_all(session: Session, box: KeyBox, publisher: Publisher | None, now: datetime) -> None:
    """The periodic job: every rollout that may still change. An aborted one only waits for the
    verdicts of devices already told (and time them out)."""
    open_states = (*plan.ACTIVE, plan.ABORTED)
    query = select(FirmwareRollout).where(col(FirmwareRollout.status).in_(open_states))
    for rollout in session.exec(query.order_by(col(FirmwareRollout.id))):
        if rollout.status == plan.ABORTED:
            _judge_late(session, rollout, now)
        else:
            advance(session, box, publisher, rollout, now)


def _judge_late(session: Session, rollout: FirmwareRollout, now: datetime) -> None:
    targets = targets_of(session, rollout.id or 0)
    result = plan.step(rollout.status, _views(targets), policy_of(rollout), now)
    for target in targets:
        if target.device_id in result.timed_out:
            target.state, target.finished_at = plan.FAILED, now
            target.reason = f"{plan.REASON_TIMEOUT}: no verdict within {rollout.device_timeout_s:.0f} s"
            session.add(target)


# Reports ---------------------------------------------------------------------

def record_status(session: Session, center: str, device_id: str, payload: dict[str, Any], now: datetime) -> None:
    """A board's firmware_status: kept per device, and judged for the rollout it is in."""
    row = session.get(DeviceFirmware, device_id) or DeviceFirmware(device_id=device_id, center_code=center,
                                                                  reported_at=now)
    # The retained report comes again whenever the fleet subscribes: a refusal judges the order last sent only
    # when it is news (a refusal names no order).
    repeated_refusal = payload.get("state") == "refused" and (row.state, row.error) == ("refused",
                                                                                          payload.get("error"))
    row.center_code, row.reported_at = center, now
    for name in ("state", "running", "running_sha256", "target", "staged", "failed", "error", "done_bytes",
                 "total_bytes", "issued_at"):
        setattr(row, name, payload.get(name))
    session.add(row)
    report = plan.BoardReport(state=payload.get("state"), running=payload.get("running"),
                              target=payload.get("target"), staged=payload.get("staged"),
                              failed=payload.get("failed"), error=payload.get("error"))
    waiting = session.exec(select(RolloutDevice, FirmwareRollout)
                           .join(FirmwareRollout, col(FirmwareRollout.id) == col(RolloutDevice.rollout_id))
                           .where(RolloutDevice.device_id == device_id,
                                  col(RolloutDevice.state).in_((plan.UPDATING, plan.ROLLING_BACK)))).all()
    for target, rollout in waiting:
        if repeated_refusal or (report.state == "refused" and not target.sent):
            continue
        state, reason = plan.judge_report(target.state, rollout.version, target.previous_version, report)
        if state != target.state:
            target.state, target.finished_at = state, now
            target.reason = reason if reason is not None else None
            session.add(target)
            log.info("rollout %s: %s %s (%s)", rollout.id, device_id, state, reason or report.running)


# Views -----------------------------------------------------------------------

def rollout_view(session: Session, rollout: FirmwareRollout, with_targets: bool = True) -> dict[str, Any]:
    targets = targets_of(session, rollout.id or 0)
    out = {**rollout.model_dump(), "canary": json.loads(rollout.canary),
           "counts": plan.counts(t.state for t in targets), "devices": len(targets)}
    waves: dict[int, dict[str, Any]] = {}
    for target in targets:
        wave = waves.setdefault(target.wave, {"wave": target.wave, "size": 0,
                                              "counts": plan.counts(())})
        wave["size"] += 1
        wave["counts"][target.state] += 1
    for wave in waves.values():
        wave["failures_allowed"] = plan.failures_allowed(wave["size"], rollout.failure_threshold_pct)
    out["waves"] = [waves[n] for n in sorted(waves)]
    if with_targets:
        firmware = {row.device_id: row for row in session.exec(
            select(DeviceFirmware).where(col(DeviceFirmware.device_id).in_([t.device_id for t in targets])))}
        out["targets"] = [{**t.model_dump(exclude={"id", "rollout_id"}),
                           **firmware_fields(firmware.get(t.device_id))} for t in targets]
    return out


def firmware_fields(row: DeviceFirmware | None) -> dict[str, Any]:
    """A device's firmware as reported: running, staged, failed and why."""
    if row is None:
        return {"running": None, "staged": None, "failed": None, "error": None, "firmware_state": None,
                "reported_at": None}
    return {"running": row.running, "staged": row.staged, "failed": row.failed, "error": row.error,
            "firmware_state": row.state, "reported_at": row.reported_at}


def device_firmware(session: Session, device: Device) -> dict[str, Any]:
    """Per device: the version running (its report, else its birth's fw), staged, failed and why."""
    fields = firmware_fields(session.get(DeviceFirmware, device.device_id))
    if fields["running"] is None:
        fields["running"] = device.fw
    return {"device_id": device.device_id, "center_code": device.center_code, "role": device.role,
            "window": device.window, **fields}


def visible_rollouts(session: Session, user: CurrentUser) -> list[FirmwareRollout]:
    query = select(FirmwareRollout).order_by(col(FirmwareRollout.id).desc())
    if user.division_prefix is not None:
        query = query.where(col(FirmwareRollout.scope_prefix).startswith(user.division_prefix, autoescape=True))
    return list(session.exec(query))
