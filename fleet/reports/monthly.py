"""The monthly report (月报) to the configured webhooks: on the 1st, the previous month's figures, sent once.

`monthly_report_job(engine, settings, now)` is what the fleet's job thread runs (every MONTHLY_INTERVAL_S) and
what tests call with a fixed clock. From the 1st to the CATCH_UP_DAYS-th of a month (a fleet that was down on
the 1st catches up; one installed mid-month sends nothing for a month it never saw begin) it sends the previous
month's report to every target that has not had it. Each target's `prefix` limits its report to that part of
the county, as it limits alerts.

Sent once across restarts and replicas: a `MonthlyReportDelivery` row per month and target is claimed in its own
transaction before sending (a second replica's insert of the same key fails) and marked sent after the target
took it. A claim whose delivery failed, or whose fleet stopped while sending, is taken again after CLAIM_S.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from fleet.alerts.evaluate import hours_lookup
from fleet.auth.principal import VIA_CLI, CurrentUser
from fleet.auth.roles import READ_ONLY
from fleet.db import write_session
from fleet.notify import Notification, WebhookTarget, deliver, render
from fleet.notify.targets import DINGTALK, WECOM
from fleet.overview import local_day
from fleet.reports.figures import build_report
from fleet.reports.models import MonthlyReportDelivery
from fleet.reports.periods import previous_month
from fleet.settings import Settings

log = logging.getLogger(__name__)

CATCH_UP_DAYS = 7  # the report of a month goes out from the 1st of the next until its 7th
CLAIM_S = 3600.0  # a claim not marked sent after this long is tried again
MONTHLY_INTERVAL_S = 600.0
CENTERS_LISTED = 30  # centers named in the message body (the JSON kind's data holds them all)
# What a group robot takes in one markdown message (WeCom: 4096 bytes of content; DingTalk: 20000), with room
# for the closing line: a longer report would be refused, and tried again every hour in vain.
ROBOT_MARKDOWN_BYTES = {WECOM: 3800, DINGTALK: 18000}
EVENT = "report.monthly"


def target_key(target: WebhookTarget) -> str:
    """A stable name of a target for the table: its URL and prefix hashed (robot URLs carry access tokens)."""
    return hashlib.sha256(f"{target.url}\n{target.prefix or ''}".encode()).hexdigest()[:32]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value}%"


def _row_line(row: dict[str, Any]) -> str:
    issued = "" if row["issued"] is None else f"取号 {row['issued']} · "
    empty = "" if row["empty_min"] is None else f" · 空岗 {row['empty_min']} 分钟"
    return (f"{issued}办结 {row['served']} · 满意率 {_pct(row['satisfaction_rate'])} · "
            f"评价覆盖率 {_pct(row['coverage'])} · 差评 {row['bad']}（工单 {row['bad_cases']}，按期办结 "
            f"{row['closed_on_time']}）· 出勤 {row['attendance_hours']} 小时{empty}")


def monthly_notification(session: Session, settings: Settings, first: date, last: date, now: datetime,
                         prefix: str | None, max_bytes: int | None = None) -> Notification:
    """The report of days first..last for the part of the county under `prefix` (None: all of it); its
    markdown kept within `max_bytes` (UTF-8) by naming fewer centers."""
    scope = CurrentUser(id=None, username="monthly-report", role=READ_ONLY, division_prefix=prefix, via=VIA_CLI)
    hours_of = hours_lookup(session, settings)
    counties = build_report(session, "county", first, last, settings.tz, now, hours_of, scope)["rows"]
    centers = build_report(session, "center", first, last, settings.tz, now, hours_of, scope)["rows"]
    lines = [f"统计期间：{first.isoformat()} 至 {last.isoformat()}"]
    if prefix:
        lines.append(f"范围：{prefix}")
    lines += [f"全县 {row['label']}：{_row_line(row)}" for row in counties]
    title = f"【月报】{first.year}年{first.month}月 好差评与考勤"
    listed = 0
    for row in centers[:CENTERS_LISTED]:
        line = f"{row['label']}：{_row_line(row)}"
        if max_bytes is not None and len(Notification(title, [*lines, line]).markdown().encode()) > max_bytes:
            break
        lines.append(line)
        listed += 1
    if len(centers) > listed:
        lines.append(f"另有 {len(centers) - listed} 个中心，详见报表页面")
    if not counties and not centers:
        lines.append("本月无数据")
    return Notification(title=title, lines=lines, center_code=None, event=EVENT,
                        data={"month": f"{first:%Y-%m}", "first": first.isoformat(), "last": last.isoformat(),
                              "prefix": prefix, "counties": counties, "centers": centers})


def claim(engine: Engine, month: str, key: str, now: datetime) -> bool:
    """Take the month's delivery to one target, unless it was sent or another sender holds a fresh claim."""
    try:
        with write_session(engine) as session:
            row = session.get(MonthlyReportDelivery, (month, key))
            if row is not None and (row.sent_at is not None or row.claimed_at > now - timedelta(seconds=CLAIM_S)):
                return False
            row = row or MonthlyReportDelivery(month=month, target=key, claimed_at=now)
            row.claimed_at = now
            row.attempts += 1
            session.add(row)
    except IntegrityError:  # another replica inserted the same claim first
        return False
    return True


def mark_sent(engine: Engine, month: str, key: str, now: datetime) -> None:
    with write_session(engine) as session:
        row = session.get(MonthlyReportDelivery, (month, key))
        if row is not None:
            row.sent_at = now
            session.add(row)


def monthly_report_job(engine: Engine, settings: Settings, now: datetime,
                       wait: Callable[[float], bool] | None = None, client: httpx.Client | None = None) -> list[str]:
    """Send the previous month's report to every target that has not had it (see the module docstring);
    returns the keys of the targets that took it now."""
    today = local_day(now, settings.tz)
    if today.day > CATCH_UP_DAYS or not settings.notify_webhooks:
        return []
    first, last = previous_month(today)
    month = f"{first:%Y-%m}"
    sent = []
    for target in settings.notify_webhooks:
        key = target_key(target)
        if not claim(engine, month, key, now):
            continue
        with Session(engine) as session:
            notification = monthly_notification(session, settings, first, last, now, target.prefix,
                                                ROBOT_MARKDOWN_BYTES.get(target.kind))
        if deliver(target, render(target, notification), settings.notify_attempts, settings.notify_backoff_s,
                   wait=wait, client=client):
            mark_sent(engine, month, key, now)
            sent.append(key)
            log.info("monthly report %s sent to %s", month, target.safe_url())
        else:
            log.warning("monthly report %s not taken by %s; tried again in %.0f s", month, target.safe_url(), CLAIM_S)
    return sent
