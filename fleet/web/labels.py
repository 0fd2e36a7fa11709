"""Chinese labels for the dashboard."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fleet.presence import (
    REASON_HEARTBEAT,
    REASON_WILL,
    STATUS_AWAITING,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    STATUS_UNKNOWN,
)
from protocol.messages import ROLE_EDGE_AGENT, ROLE_QUEUE_DISPLAY, ROLE_RATING_PAD

ROLE_LABELS = {
    ROLE_QUEUE_DISPLAY: "排队显示屏",
    ROLE_RATING_PAD: "评价器",
    ROLE_EDGE_AGENT: "边缘网关",
}

REASON_LABELS = {
    REASON_WILL: "连接断开",
    REASON_HEARTBEAT: "心跳超时",
}


def role_label(role: str | None) -> str:
    if role is None:
        return "未知设备"
    return ROLE_LABELS.get(role, role)


def window_label(window: int | None) -> str:
    return "—" if window is None else f"{window}号窗口"


STATUS_LABELS = {
    STATUS_ONLINE: "在线",
    STATUS_OFFLINE: "离线",
    STATUS_UNKNOWN: "未知",
    STATUS_AWAITING: "待上线",  # registered, never seen online yet
}


def status_label(status: bool | str) -> str:
    """在线/离线 for a bool, or the label of a device status (online/offline/unknown/awaiting)."""
    if isinstance(status, bool):
        return "在线" if status else "离线"
    return STATUS_LABELS.get(status, status)


def reason_label(reason: str | None) -> str:
    if reason is None:
        return ""
    return REASON_LABELS.get(reason, reason)


def local_time(value: datetime | None, tz: ZoneInfo) -> str:
    if value is None:
        return "—"
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
