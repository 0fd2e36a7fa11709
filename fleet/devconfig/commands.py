"""Commands to one device: signed, published once (QoS 1, not retained), acknowledged or timed out."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from fleet.devconfig.keys import DeviceKeyError, KeyBox, get_key
from fleet.devconfig.models import NOT_SENT, SENT, TIMED_OUT, DeviceCommand
from fleet.devconfig.publisher import Publisher
from fleet.models import Device
from protocol import messages, signing, topics
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

COMMAND_LABELS = {messages.COMMAND_REBOOT: "重启", messages.COMMAND_IDENTIFY: "识别（闪烁）",
                  messages.COMMAND_TEST_PATTERN: "测试画面", messages.COMMAND_BRIGHTNESS: "亮度",
                  messages.COMMAND_SELF_TEST: "自检"}


class CommandError(ValueError):
    """A command that cannot be sent (unknown, bad arguments), with the reason."""


def check_args(command: str, args: dict[str, Any] | None) -> dict[str, Any]:
    """The arguments checked before signing, by the very rule the device applies before running
    (protocol.messages.check_command_args): the fleet never sends a command a device would refuse."""
    try:
        return messages.check_command_args(command, args)
    except ProtocolError as exc:
        raise CommandError(str(exc)) from exc


def new_command_id(center_code: str) -> str:
    # Random, not a counter: a device refuses an id it has run, even after the fleet's database is restored.
    return f"c-{center_code}-{secrets.token_hex(5)}"


def send_command(session: Session, box: KeyBox, publisher: Publisher | None, device: Device, command: str,
                 args: dict[str, Any], username: str, now: datetime) -> DeviceCommand:
    """Record, sign and publish a command (the caller commits). Not sent when there is no key or no broker."""
    checked = check_args(command, args)
    row = DeviceCommand(command_id=new_command_id(device.center_code), device_id=device.device_id,
                        center_code=device.center_code, command=command, args=json.dumps(checked),
                        issued_by=username, sent_at=now, status=SENT)
    try:
        key = get_key(session, box, device.device_id)
    except DeviceKeyError as exc:
        key, row.error = None, str(exc)
    if key is None:
        row.status, row.error = NOT_SENT, row.error or "no device key"
    elif device.boot is None:
        # A command names the boot it is for (the device refuses any other: docs/protocol.md, device_command).
        row.status, row.error = NOT_SENT, "the device's boot is not known: no birth with a boot id seen yet"
    elif publisher is None:
        row.status, row.error = NOT_SENT, "not connected to the county broker"
    else:
        try:
            payload = signing.make_signed("command", key, device.device_id, command_id=row.command_id,
                                          command=command, args=checked, issued_by=username, boot=device.boot,
                                          issued_at=int(now.timestamp()), valid_s=messages.COMMAND_VALID_S)
        except ProtocolError as exc:
            raise CommandError(str(exc)) from exc
        spec = topics.topic(topics.DEVICE_COMMAND)
        topic = topics.build(topics.DEVICE_COMMAND, center=device.center_code, device=device.device_id)
        if not publisher.publish(topic, messages.encode("command", payload), spec.qos, spec.retained):
            row.status, row.error = NOT_SENT, "the county broker did not take it"
    session.add(row)
    session.flush()
    log.info("command %s %s to %s: %s", row.command_id, command, device.device_id, row.status)
    return row


def record_ack(session: Session, device_id: str, payload: dict[str, Any], now: datetime) -> bool:
    """A device_command_ack: the command's outcome. False for an id the fleet never sent to this device."""
    row = session.exec(select(DeviceCommand).where(DeviceCommand.command_id == payload["command_id"])).first()
    if row is None and payload["command_id"].startswith(messages.PROVISIONING_COMMAND_PREFIX):
        log.debug("ack of provisioning's own command %s from %s", payload["command_id"], device_id)
        return False
    if row is None or row.device_id != device_id:
        log.warning("ack for unknown command %s from %s", payload["command_id"], device_id)
        return False
    if row.acked_at is not None:
        return True  # a duplicate delivery
    row.late = row.status == TIMED_OUT
    row.status, row.error, row.acked_at = payload["status"], payload.get("error"), now
    session.add(row)
    return True


def time_out_commands(session: Session, now: datetime, timeout_s: float) -> list[str]:
    """Commands sent longer than `timeout_s` ago without an ack become timed_out; returns their ids."""
    stale = session.exec(select(DeviceCommand).where(DeviceCommand.status == SENT,
                                                     col(DeviceCommand.sent_at) < now - timedelta(seconds=timeout_s)))
    ids = []
    for row in stale:
        row.status, row.error = TIMED_OUT, f"no acknowledgement within {timeout_s:.0f} s"
        session.add(row)
        ids.append(row.command_id)
    return ids


def recent_commands(session: Session, device_id: str, limit: int = 20) -> list[DeviceCommand]:
    return list(session.exec(select(DeviceCommand).where(DeviceCommand.device_id == device_id)
                             .order_by(col(DeviceCommand.sent_at).desc(), col(DeviceCommand.id).desc()).limit(limit)))
