"""The [queue] section of the center's configuration: who goes first, and how fairly."""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueSettings:
    green_channel_age: int = 65  # a card holder this old or older gets the green channel (绿色通道)
    priority_interleave: int = 2  # after this many priority tickets in a row a window calls one normal ticket
    max_wait_min: int = 30  # a normal ticket waiting this long goes before any priority ticket
    recall_limit: int = 3  # 重呼 at most this many times per ticket, then 过号
    default_service_min: float = 5.0  # estimate of one service before any has been timed
    card_default_service: str = ""  # a swiped ID card takes a ticket of this service at once ("" = choose)
    appointment_early_min: int = 15  # check-in opens this many minutes before the slot
    notice: str = "请取号后在休息区等候，注意呼叫及大屏显示信息。办事指南请咨询帮办窗口。"

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_min * 60.0


def _int(raw: dict, key: str, default: int, low: int, high: int, problems: list[str]) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        problems.append(f"queue.{key}: must be an integer {low}..{high}, got {value!r}")
        return default
    return value


def parse_queue_settings(raw: dict, services: set[str], problems: list[str]) -> QueueSettings:
    """Read [queue]; every problem is appended to `problems` with its path."""
    if not isinstance(raw, dict):
        problems.append("queue: must be a table")
        return QueueSettings()
    default = QueueSettings()
    card_service = str(raw.get("card_default_service", ""))
    if card_service and card_service not in services:
        problems.append(f"queue.card_default_service: unknown service {card_service!r}")
        card_service = ""
    service_min = raw.get("default_service_min", default.default_service_min)
    if not isinstance(service_min, (int, float)) or isinstance(service_min, bool) or not 0 < service_min <= 240:
        problems.append(f"queue.default_service_min: must be 0..240 minutes, got {service_min!r}")
        service_min = default.default_service_min
    if "require_staff_login" in raw:  # staff always sign in now (工号 + PIN); an older file still loads
        log.warning("queue.require_staff_login is no longer read: windows call only with staff signed in")
    return QueueSettings(
        green_channel_age=_int(raw, "green_channel_age", default.green_channel_age, 0, 150, problems),
        priority_interleave=_int(raw, "priority_interleave", default.priority_interleave, 0, 100, problems),
        max_wait_min=_int(raw, "max_wait_min", default.max_wait_min, 1, 24 * 60, problems),
        recall_limit=_int(raw, "recall_limit", default.recall_limit, 0, 10, problems),
        default_service_min=float(service_min),
        card_default_service=card_service,
        appointment_early_min=_int(raw, "appointment_early_min", default.appointment_early_min, 0, 240, problems),
        notice=str(raw.get("notice", default.notice)),
    )
