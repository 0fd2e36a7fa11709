"""What a notification says, and its body for each kind of webhook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleet.notify.targets import DINGTALK, WECOM, WebhookTarget


@dataclass(frozen=True)
class Notification:
    title: str  # Chinese, one line: 【告警】示例镇便民服务中心 设备离线
    lines: list[str]  # Chinese, the details, one fact per line
    center_code: str | None = None
    event: str = "alert"  # alert.opened, alert.escalated, case.opened, case.overdue ...
    data: dict[str, Any] = field(default_factory=dict)  # machine-readable facts for the JSON kind

    def markdown(self) -> str:
        return "\n".join([f"### {self.title}", *[f"> {line}" for line in self.lines]])


def render(target: WebhookTarget, notification: Notification) -> dict[str, Any]:
    """The JSON body to POST to `target`."""
    if target.kind == WECOM:
        return {"msgtype": "markdown", "markdown": {"content": notification.markdown()}}
    if target.kind == DINGTALK:
        return {"msgtype": "markdown", "markdown": {"title": notification.title, "text": notification.markdown()}}
    return {"event": notification.event, "title": notification.title, "lines": notification.lines,
            "center_code": notification.center_code, "data": notification.data}
