"""Presence rules: is a device (or a center's edge agent) online?

Every connection of a device to its broker has a session number that grows
on every connect, and every run of its firmware a random boot id; its birth
("online"), its last will ("offline") and its heartbeats carry both.
Messages are relayed through the edge agent and retained on the brokers, so
they can arrive late or twice, and anyone who can publish on a presence topic
can forge one. Each message is judged against the stored record by the one
rule of the contract, `protocol.presence.judge` (its docstring has the table
of cases), which the edge agent and the device apply too:

- first news, a newer session of the stored boot, or a birth or heartbeat of
  another boot (a board whose session file was lost starts again at 1): a new
  connection -> apply, keeping its boot and session (NEW);
- the stored connection itself: its will ends it, so "offline" always wins; a
  birth or heartbeat only refreshes the record and cannot revive a session
  that has already ended with its will (CURRENT, or STALE if ended);
- an older session of the stored boot, or the will of another boot: a message
  of an older connection or boot -> ignore (STALE). A stale will must never
  mark a reconnected device offline;
- a session more than MAX_SESSION_JUMP ahead of the stored one: not believed
  -> ignore, log, and count (SUSPECT; the ingest counts it by outcome).
  Stored, a forged birth with session 2147483647 would make every later real
  message look old and freeze the device's presence.

Heartbeats (health) refresh last_seen unless suspect; they mark a device
online when they are news (NEW or CURRENT). A device that stops talking
without its will reaching the broker (a power cut), or whose last news was
a will nobody believes, is marked offline by `mark_silent_devices`.

Everything about a center's devices comes through its edge agent. While the
edge agent is offline (its will on the county broker) the fleet cannot know
its devices' state: they are shown as unknown (`device_status`), and the
heartbeat sweep leaves them alone until the edge is back and relays again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlmodel import Session, col, or_, select

from fleet.models import Center, Device
from protocol import presence as rule
from protocol.messages import ONLINE

log = logging.getLogger(__name__)

REASON_WILL = "last will"
REASON_HEARTBEAT = "heartbeat timeout"

STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
STATUS_UNKNOWN = "unknown"  # stored online, but its edge agent is offline: we cannot see it
# Never seen online (last_seen is NULL: registered, not connected yet): neither online nor offline, no alert.
STATUS_AWAITING = "awaiting"


class HeartbeatState(Protocol):
    """What apply_health reads and writes: a Device, or a plain copy of its row (fleet.heartbeats.KnownDevice)."""

    device_id: str
    boot: str | None
    session: int | None
    online: bool
    offline_reason: str | None
    last_seen: datetime | None
    updated: datetime
    uptime_s: float | None


def device_status(device_online: bool, edge_online: bool, ever_seen: bool = True) -> str:
    """What the fleet can say about a device, given its center's edge agent and whether it was ever seen."""
    if not ever_seen:
        return STATUS_AWAITING
    if not device_online:
        return STATUS_OFFLINE
    return STATUS_ONLINE if edge_online else STATUS_UNKNOWN


def presence_verdict(
    stored_boot: str | None,
    stored_session: int | None,
    stored_online: bool,
    stored_reason: str | None,
    kind: str,
    boot: str | None,
    session: int,
) -> str:
    """The verdict of `protocol.presence.judge` on a message against a stored record (see the module docstring).

    The stored session has ended when the record is offline because of its will (a heartbeat timeout
    does not end it: the same connection may still be alive and talk again).
    """
    return rule.judge(stored_boot, stored_session, _ended_by_will(stored_online, stored_reason), kind, boot, session)


def _ended_by_will(online: bool, reason: str | None) -> bool:
    return not online and reason == REASON_WILL


def _log_suspect(what: str, kind: str, payload: dict[str, Any], stored_session: int | None) -> None:
    log.warning("%s: %s with session %s (boot %s) ignored as suspect: more than %d ahead of the stored session %s",
                what, kind, payload["session"], payload.get("boot"), rule.MAX_SESSION_JUMP, stored_session)


def apply_device_presence(device: Device, payload: dict[str, Any], now: datetime) -> str:
    """Apply a validated presence payload to `device`; returns the verdict (applied when in rule.APPLIED)."""
    online = payload["state"] == ONLINE
    kind = rule.BIRTH if online else rule.WILL
    verdict = presence_verdict(device.boot, device.session, device.online, device.offline_reason, kind,
                               payload.get("boot"), payload["session"])
    if verdict == rule.SUSPECT:
        _log_suspect("device " + device.device_id, kind, payload, device.session)
    if verdict not in rule.APPLIED:
        return verdict
    device.boot = payload.get("boot")
    device.session = payload["session"]
    device.updated = now
    if online:
        # A birth describes the device completely.
        device.online = True
        device.offline_reason = None
        device.last_seen = now
        device.role = payload["role"]
        device.window = payload.get("window")
        device.board = payload.get("board", device.board)
        device.fw = payload.get("fw", device.fw)
        device.mac = payload.get("mac", device.mac)
        device.contract = payload.get("contract", device.contract)
    else:
        device.online = False
        device.offline_reason = REASON_WILL
        device.role = device.role or payload["role"]
        if device.window is None:
            device.window = payload.get("window")
    return verdict


def apply_edge_presence(center: Center, payload: dict[str, Any], now: datetime) -> str:
    """Apply the edge agent's own birth or will to its center; returns the verdict, as for a device."""
    online = payload["state"] == ONLINE
    kind = rule.BIRTH if online else rule.WILL
    verdict = presence_verdict(center.edge_boot, center.edge_session, center.edge_online,
                               center.edge_offline_reason, kind, payload.get("boot"), payload["session"])
    if verdict == rule.SUSPECT:
        _log_suspect("edge agent of center " + center.code, kind, payload, center.edge_session)
    if verdict not in rule.APPLIED:
        return verdict
    center.edge_boot = payload.get("boot")
    center.edge_session = payload["session"]
    if online:
        center.edge_online = True
        center.edge_offline_reason = None
        center.edge_last_seen = now
        center.edge_board = payload.get("board", center.edge_board)
        center.edge_fw = payload.get("fw", center.edge_fw)
    else:
        center.edge_online = False
        center.edge_offline_reason = REASON_WILL
    return verdict


def apply_health(device: HeartbeatState, payload: dict[str, Any], now: datetime) -> str:
    """Apply a validated heartbeat; returns the verdict (applied when in rule.APPLIED).

    last_seen is refreshed unless the heartbeat is suspect; the online state and
    the health figures only change for a heartbeat that is news: of the stored
    connection (not ended by its will), or of a newer one or another boot,
    whose birth we have not seen (yet).
    """
    verdict = presence_verdict(device.boot, device.session, device.online, device.offline_reason, rule.HEARTBEAT,
                               payload.get("boot"), payload["session"])
    if verdict == rule.SUSPECT:
        _log_suspect("device " + device.device_id, rule.HEARTBEAT, payload, device.session)
        return verdict
    device.last_seen = now
    if verdict not in rule.APPLIED:
        return verdict
    device.boot = payload.get("boot")
    device.session = payload["session"]
    device.online = True
    device.offline_reason = None
    device.uptime_s = payload["uptime_s"]
    for name in ("free_heap", "rssi", "reconnects", "last_error"):
        if name in payload:
            setattr(device, name, payload[name])
    device.updated = now
    return verdict


def mark_silent_devices(session: Session, now: datetime, timeout: float | timedelta,
                        heard_until: datetime | None = None) -> list[Device]:
    """Mark online devices not heard of for longer than `timeout` (seconds) offline.

    Only devices of centers whose edge agent is online: behind an offline edge
    silence means nothing. `heard_until` (default `now`) is the time up to which
    everything sent to us has been read and stored: silence is only judged up to
    there (fleet.ingest.Ingest.sweep). Returns the devices marked; the caller commits.
    """
    limit = (heard_until or now) - (timeout if isinstance(timeout, timedelta) else timedelta(seconds=timeout))
    silent = session.exec(
        select(Device).join(Center, col(Center.code) == col(Device.center_code)).where(
            col(Center.edge_online).is_(True),
            col(Device.online).is_(True),
            or_(col(Device.last_seen).is_(None), col(Device.last_seen) < limit),
        )
    ).all()
    for device in silent:
        device.online = False
        device.offline_reason = REASON_HEARTBEAT
        device.updated = now
        session.add(device)
    session.flush()
    return list(silent)
