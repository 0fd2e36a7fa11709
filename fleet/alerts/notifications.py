"""What people are told about alert changes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fleet.alerts.engine import ESCALATED, OPENED, PAGED, Change
from fleet.alerts.models import CRITICAL
from fleet.notify import Notification, Notifier


def alert_notification(change: Change, now: datetime, tz: ZoneInfo, base_url: str = "") -> Notification:
    level = "严重告警" if change.severity == CRITICAL else "告警"
    prefix = {OPENED: "", ESCALATED: "升级："}.get(change.kind, "")
    lines = [change.reason, f"中心：{change.center_code}", f"时间：{now.astimezone(tz):%Y-%m-%d %H:%M}"]
    if base_url:
        lines.append(f"[查看告警]({base_url.rstrip('/')}/alerts)")
    return Notification(title=f"【{level}】{prefix}{change.message}", lines=lines, center_code=change.center_code,
                        event=f"alert.{change.kind}",
                        data={"alert_id": change.alert_id, "rule": change.rule, "key": change.key,
                              "severity": change.severity, "message": change.message, "reason": change.reason})


def notify_changes(notifier: Notifier | None, changes: list[Change], now: datetime, tz: ZoneInfo) -> int:
    """Page for opened and escalated alerts (reopened and resolved ones are on the page, not paged)."""
    if notifier is None:
        return 0
    return sum(notifier.notify(alert_notification(c, now, tz)) for c in changes if c.kind in PAGED)
