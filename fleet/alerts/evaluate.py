"""The alert sweep: read the facts from the database, run the rules, reconcile the alerts.

`run_alert_sweep(session, now, settings)` is what the sweep thread calls every
`alert_sweep_interval_s`; tests call it directly with a fixed clock.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from fleet.alerts.engine import Change, reconcile
from fleet.alerts.models import NOTABLE_REPORTS, CenterHealthReport, CenterHours, DeviceDrop, MisplacedDevice
from fleet.alerts.rules import (
    MISPLACED_ALERT_S,
    Condition,
    DeviceFacts,
    MisplacedFacts,
    TicketFact,
    coverage_conditions,
    device_conditions,
    drops_revealed,
    edge_condition,
    empty_window_conditions,
    health_conditions,
    host_conditions,
    misplaced_conditions,
    paused_window_conditions,
    wait_condition,
)
from fleet.calendar import OpeningHours
from fleet.coverage import rating_coverage
from fleet.models import OFFLINE_DEVICES, OFFLINE_EDGES, Center, Device, TicketEvent
from fleet.overview import day_bounds, local_day
from fleet.settings import Settings

log = logging.getLogger(__name__)

MISPLACED_KEEP_S = 30 * 86400  # reports of misplaced device messages are kept this long after the last one


def hours_lookup(session: Session, settings: Settings) -> Callable[[str], OpeningHours]:
    """center code -> its opening hours (its own CenterHours row, else the county default)."""
    default = OpeningHours.parse(settings.opening_hours)
    own: dict[str, OpeningHours] = {}
    for row in session.exec(select(CenterHours)).all():
        try:
            own[row.center_code] = OpeningHours.parse(row.hours, row.open_on_rest_days)
        except ValueError as exc:  # stored before a rule changed: fall back, say so
            log.warning("center %s: bad opening hours %r (%s); using the default", row.center_code, row.hours, exc)
    return lambda code: own.get(code, default)


def collect_conditions(session: Session, now: datetime, settings: Settings) -> tuple[list[Condition], set[str]]:
    """Every condition true now, and the centers whose edge is offline (their other alerts are frozen).

    Only the rows that can make a condition are read (offline edges, offline or flapping devices), so a
    sweep over a province's 100,000 devices stays cheap; centers whose edge is offline are left out of
    the rest by a join (no list of codes as parameters: SQLite allows 32,766 of them).
    """
    conditions: list[Condition] = []
    frozen: set[str] = set()
    edges_down = select(Center.code, Center.edge_offline_reason, Center.edge_last_seen).where(
        OFFLINE_EDGES).order_by(col(Center.code))
    for code, reason, last_seen in session.exec(edges_down).all():
        conditions += edge_condition(code, False, reason, last_seen, settings.edge_offline_alert_min * 60)
        frozen.add(code)

    def visible(query: Any, center_code: Any) -> Any:  # rows of centers whose edge is online
        return query.join(Center, col(Center.code) == center_code).where(col(Center.edge_online).is_(True))

    window_start = now - timedelta(seconds=settings.flap_window_s)
    drops: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for device_id, at, reason in session.exec(select(DeviceDrop.device_id, DeviceDrop.at, DeviceDrop.reason).where(
            col(DeviceDrop.at) > window_start)).all():
        drops[device_id].append((at, reason))
    flapping = (select(DeviceDrop.device_id).where(col(DeviceDrop.at) > window_start)
                .group_by(col(DeviceDrop.device_id)).having(func.count() >= settings.flap_threshold))
    # A device never seen online (registered, not connected yet) is awaiting its first contact: no alert.
    facts = visible(select(Device.device_id, Device.center_code, Device.role, Device.window, Device.online,
                           Device.offline_reason, Device.last_seen), col(Device.center_code)).where(
        col(Device.last_seen).is_not(None))
    # The offline devices (their partial index, not a scan of a country's devices), then the flapping ones that
    # are online (a subquery: no id list); two queries, as an OR of both would scan every device.
    rows = session.exec(facts.where(OFFLINE_DEVICES)).all()
    rows += session.exec(facts.where(col(Device.online).is_(True), col(Device.device_id).in_(flapping))).all()
    for row in rows:
        conditions += device_conditions(DeviceFacts(*row), drops.get(row[0], []), now,
                                        settings.device_offline_alert_min * 60, settings.flap_threshold,
                                        settings.flap_window_s)

    for report in session.exec(visible(select(CenterHealthReport), col(CenterHealthReport.center_code))
                               .where(NOTABLE_REPORTS)):  # a report that is not notable makes no condition
        try:
            summary = json.loads(report.summary)
        except ValueError:
            continue
        conditions += health_report_conditions(report.center_code, summary, report.received_at,
                                               settings.window_paused_alert_min * 60,
                                               settings.window_empty_alert_min * 60)

    # Whatever the state of either center's edge: the county saw these messages itself.
    recent = now - timedelta(seconds=MISPLACED_ALERT_S)
    reports = session.exec(select(MisplacedDevice).where(col(MisplacedDevice.last_at) > recent)).all()
    conditions += misplaced_conditions([MisplacedFacts(r.device_id, r.center_code, r.home_center, r.role, r.window,
                                                       r.count, r.first_at, r.last_at) for r in reports], now)

    start, end = day_bounds(local_day(now, settings.tz), settings.tz)
    events: dict[str, list[TicketFact]] = defaultdict(list)
    today = visible(select(TicketEvent.center_code, TicketEvent.ticket, TicketEvent.kind, TicketEvent.ts),
                    col(TicketEvent.center_code)).where(TicketEvent.ts >= start, TicketEvent.ts < end)
    for code, ticket, kind, ts in session.exec(today).all():
        events[code].append(TicketFact(ticket, kind, ts))
    for code, facts_of_center in events.items():
        conditions += wait_condition(code, facts_of_center, now, settings.wait_target_min * 60)
    by_center: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rating_coverage(session, "window", start, end, settings.tz):
        if row["key"][0] in events:  # centers that served today
            by_center[row["key"][0]].append(row)
    for code, rows in by_center.items():
        conditions += coverage_conditions(code, rows, settings.rating_coverage_alert_percent,
                                          settings.rating_coverage_min_served)
    return conditions, frozen


def health_report_conditions(center_code: str, summary: dict[str, Any], received_at: datetime,
                             paused_after_s: float = 0.0, empty_after_s: float = 0.0) -> list[Condition]:
    """What the rules make of a center's edge_health summary: peripherals, the host, paused and empty windows."""
    return [*health_conditions(center_code, summary), *host_conditions(center_code, summary, received_at),
            *paused_window_conditions(center_code, summary, paused_after_s),
            *empty_window_conditions(center_code, summary, empty_after_s)]


def run_alert_sweep(session: Session, now: datetime, settings: Settings) -> list[Change]:
    """One evaluation of every rule; the caller commits and then notifies about the changes."""
    conditions, frozen = collect_conditions(session, now, settings)
    hours = hours_lookup(session, settings)
    tz = settings.tz
    since_of_hours: dict[int, datetime | None] = {}

    def open_since(code: str) -> datetime | None:
        # Once per distinct opening hours, not per condition (the holiday calendar's look-up cost seconds for
        # a country's 90,000), and in UTC, which the conditions' times compare with fast.
        center_hours = hours(code)
        if id(center_hours) not in since_of_hours:
            since = center_hours.open_since(now, tz)
            since_of_hours[id(center_hours)] = None if since is None else since.astimezone(UTC)
        return since_of_hours[id(center_hours)]

    changes = reconcile(session, conditions, now, open_since, frozen, settings.alert_reopen_window_s)
    prune_drops(session, now - timedelta(seconds=max(settings.flap_window_s, 86400)))
    for report in session.exec(select(MisplacedDevice).where(
            col(MisplacedDevice.last_at) < now - timedelta(seconds=MISPLACED_KEEP_S))).all():
        session.delete(report)
    return changes


def prune_drops(session: Session, before: datetime) -> None:
    for drop in session.exec(select(DeviceDrop).where(col(DeviceDrop.at) < before)).all():
        session.delete(drop)


def note_device_change(session: Session, device: Device, before_online: bool, before_session: int | None,
                       now: datetime) -> int:
    """Record the drops a presence/heartbeat change reveals (for flapping, see drops_revealed); returns how many."""
    count, reason = drops_revealed(before_online, before_session, device.online, device.session,
                                   device.offline_reason)
    for _ in range(count):
        session.add(DeviceDrop(device_id=device.device_id, center_code=device.center_code, at=now, reason=reason))
    return count


def note_misplaced(session: Session, device_id: str, center_code: str, home_center: str, role: str | None,
                   window: int | None, topic_name: str, now: datetime) -> MisplacedDevice:
    """Count a message of `device_id` that came under `center_code` but belongs to `home_center` (dropped).

    `role` and `window` are what its home center knows of it (they name it in the alert).
    """
    report = session.exec(select(MisplacedDevice).where(MisplacedDevice.device_id == device_id,
                                                        MisplacedDevice.center_code == center_code)).first()
    if report is None:
        report = MisplacedDevice(device_id=device_id, center_code=center_code, home_center=home_center,
                                 topic=topic_name, first_at=now, last_at=now)
    report.home_center, report.role, report.window = home_center, role, window
    report.topic, report.count, report.last_at = topic_name, report.count + 1, now
    session.add(report)
    return report


def summary_is_notable(center_code: str, summary: dict[str, Any], received_at: datetime) -> bool:
    """Whether an edge_health summary names a problem: a reason, or anything the alert rules could make a
    condition of. Worked out once when it is stored, not by every sweep for every center."""
    return bool(summary.get("reasons")) or bool(health_report_conditions(center_code, summary, received_at))


def store_health_report(session: Session, center_code: str, payload: dict[str, Any], now: datetime) -> bool:
    """Keep a center's latest edge_health summary; an older one (by its ts) is ignored."""
    report = session.get(CenterHealthReport, center_code)
    if report is not None and payload["ts"] < report.ts:
        return False
    report = report or CenterHealthReport(center_code=center_code, summary="{}", ts=0)
    report.summary = json.dumps(payload, ensure_ascii=False)
    report.ready = bool(payload["ready"])
    report.ts = payload["ts"]
    report.received_at = now
    report.notable = summary_is_notable(center_code, payload, now)
    session.add(report)
    return True
