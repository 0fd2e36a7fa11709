"""Presence rules: is a device (or a center's edge agent) online?

Every connection of a device to its broker has a session number that grows
on every connect; its birth ("online") and its last will ("offline") carry it.
Messages are relayed through the edge agent and retained on the brokers, so
they can arrive late or twice. The rules, for a presence message against the
stored record:

- no stored session, or a greater session: a new connection -> accept;
- the same session: the will ends that connection, so "offline" always wins;
  a birth only refreshes the record, and cannot revive a session that has
  already ended with its will;
- a lower session: a message from an older connection -> ignore. A stale will
  must never mark a reconnected device offline.

Heartbeats (health) refresh last_seen; they mark a device online only when
their session is the stored one or newer (and not a session already ended by
its will). A device that stops talking without its will reaching the broker
(a power cut) is marked offline by `mark_silent_devices`.

Everything about a center's devices comes through its edge agent. While the
edge agent is offline (its will on the county broker) the fleet cannot know
its devices' state: they are shown as unknown (`device_status`), and the
heartbeat sweep leaves them alone until the edge is back and relays again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, or_, select

from fleet.models import Center, Device
from protocol.messages import ONLINE

REASON_WILL = "last will"
REASON_HEARTBEAT = "heartbeat timeout"

STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
STATUS_UNKNOWN = "unknown"  # stored online, but its edge agent is offline: we cannot see it
# Never seen online (last_seen is NULL: registered, not connected yet): neither online nor offline, no alert.
STATUS_AWAITING = "awaiting"


def device_status(device_online: bool, edge_online: bool, ever_seen: bool = True) -> str:
    """What the fleet can say about a device, given its center's edge agent and whether it was ever seen."""
    if not ever_seen:
        return STATUS_AWAITING
    if not device_online:
        return STATUS_OFFLINE
    return STATUS_ONLINE if edge_online else STATUS_UNKNOWN


def accepts_presence(
    stored_session: int | None,
    stored_online: bool,
    stored_reason: str | None,
    incoming_session: int,
    incoming_online: bool,
) -> bool:
    """Whether a presence message with `incoming_session` should be applied to the stored state."""
    if stored_session is None or incoming_session > stored_session:
        return True
    if incoming_session < stored_session:
        return False
    if not incoming_online:
        return True
    return not _ended_by_will(stored_online, stored_reason)


def _ended_by_will(online: bool, reason: str | None) -> bool:
    return not online and reason == REASON_WILL


def apply_device_presence(device: Device, payload: dict[str, Any], now: datetime) -> bool:
    """Apply a validated presence payload to `device`; return False when it was ignored as stale."""
    online = payload["state"] == ONLINE
    session = payload["session"]
    if not accepts_presence(device.session, device.online, device.offline_reason, session, online):
        return False
    device.session = session
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
    return True


def apply_edge_presence(center: Center, payload: dict[str, Any], now: datetime) -> bool:
    """Apply the edge agent's own birth or will to its center; False when ignored as stale."""
    online = payload["state"] == ONLINE
    session = payload["session"]
    if not accepts_presence(center.edge_session, center.edge_online, center.edge_offline_reason, session, online):
        return False
    center.edge_session = session
    if online:
        center.edge_online = True
        center.edge_offline_reason = None
        center.edge_last_seen = now
        center.edge_board = payload.get("board", center.edge_board)
        center.edge_fw = payload.get("fw", center.edge_fw)
    else:
        center.edge_online = False
        center.edge_offline_reason = REASON_WILL
    return True


def apply_health(device: Device, payload: dict[str, Any], now: datetime) -> bool:
    """Apply a validated heartbeat; return True when it belongs to the current (or a newer) session.

    last_seen is refreshed in any case; the online state and the health figures
    only change for a heartbeat of the stored session or a newer one.
    """
    session = payload["session"]
    device.last_seen = now
    if device.session is not None and session < device.session:
        return False
    if device.session is None or session > device.session:
        # A connection whose birth we have not seen (yet).
        device.session = session
        device.online = True
        device.offline_reason = None
    elif not _ended_by_will(device.online, device.offline_reason):
        device.online = True
        device.offline_reason = None
    device.uptime_s = payload["uptime_s"]
    for name in ("free_heap", "rssi", "reconnects", "last_error"):
        if name in payload:
            setattr(device, name, payload[name])
    device.updated = now
    return True


def mark_silent_devices(session: Session, now: datetime, timeout: float | timedelta) -> list[Device]:
    """Mark online devices not heard of for longer than `timeout` (seconds) offline.

    Only devices of centers whose edge agent is online: behind an offline edge
    silence means nothing. Returns the devices marked; the caller commits.
    """
    limit = now - (timeout if isinstance(timeout, timedelta) else timedelta(seconds=timeout))
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
