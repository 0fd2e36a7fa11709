"""From conditions to alerts: open, reopen, escalate, resolve, respecting each center's opening hours.

- A condition opens an alert only while its center is open (a closed center pages
  nobody), and only once it has lasted `min_duration_s` *within the current opening
  period*: a display switched off overnight is not "offline for 14 hours" at 08:30.
  A security condition (`any_hour`, e.g. a device heard in a center it does not
  belong to) opens at any hour.
- One active alert per key. A condition that returns within the reopen window
  reopens the resolved alert of its key (occurrences + 1) without paging again;
  a device alert that turns from offline into flapping is escalated (paged once).
- An active alert whose condition is gone resolves by itself, whatever the hour.
  Alerts about a center whose edge agent is offline (its devices, printer, queue)
  are left as they are: the fleet cannot see that center, so it cannot say the
  problem cleared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from fleet.alerts.models import ACKNOWLEDGED, ACTIVE_STATES, OPEN, RESOLVED, Alert
from fleet.alerts.rules import DEVICE_FLAPPING, DEVICE_MISPLACED, EDGE_OFFLINE, Condition

OPENED = "opened"
REOPENED = "reopened"
ESCALATED = "escalated"
RESOLVED_CHANGE = "resolved"
PAGED = (OPENED, ESCALATED)  # changes that notify people
# Rules the fleet judges from what reaches it, not through the center's edge: they resolve also while that edge
# is offline.
SEEN_FROM_THE_COUNTY = (EDGE_OFFLINE, DEVICE_MISPLACED)


@dataclass(frozen=True)
class Change:
    kind: str
    alert_id: int
    key: str
    rule: str
    center_code: str
    message: str
    reason: str
    severity: str


def _change(kind: str, alert: Alert) -> Change:
    assert alert.id is not None
    return Change(kind, alert.id, alert.key, alert.rule, alert.center_code, alert.message, alert.reason,
                  alert.severity)


def _update(alert: Alert, condition: Condition, now: datetime) -> None:
    alert.rule = condition.rule
    alert.message = condition.message
    alert.reason = condition.reason
    alert.severity = condition.severity
    alert.device_id = condition.device_id
    alert.window = condition.window
    alert.last_active_at = now


def due(condition: Condition, now: datetime, open_since: datetime | None) -> bool:
    """Whether `condition` should open an alert now: center open (or an any-hour condition), and lasted long
    enough while open."""
    if open_since is None:
        if not condition.any_hour:
            return False
        open_since = condition.since or now
    start = max(condition.since or now, open_since)
    return (now - start).total_seconds() >= condition.min_duration_s


def reconcile(session: Session, conditions: Iterable[Condition], now: datetime,
              open_since: Callable[[str], datetime | None], frozen_centers: set[str] | None = None,
              reopen_window_s: float = 3600.0) -> list[Change]:
    """Bring the alert table in line with `conditions` (the caller commits); returns what changed.

    `open_since(center_code)`: start of the center's current opening period, None when closed.
    `frozen_centers`: centers whose alerts (other than edge_offline) must not resolve now.
    """
    frozen = frozen_centers or set()
    active = {alert.key: alert for alert in session.exec(select(Alert).where(col(Alert.state).in_(ACTIVE_STATES)))}
    changes: list[Change] = []
    seen: set[str] = set()
    for condition in conditions:
        if condition.key in seen:
            continue
        seen.add(condition.key)
        alert = active.get(condition.key)
        if alert is not None:
            escalated = condition.rule == DEVICE_FLAPPING and alert.rule != DEVICE_FLAPPING
            _update(alert, condition, now)
            session.add(alert)
            if escalated:
                session.flush()
                changes.append(_change(ESCALATED, alert))
            continue
        if not due(condition, now, open_since(condition.center_code)):
            continue
        recent = session.exec(
            select(Alert).where(Alert.key == condition.key, Alert.state == RESOLVED,
                                col(Alert.resolved_at) >= now - timedelta(seconds=reopen_window_s))
            .order_by(col(Alert.resolved_at).desc())
        ).first()
        if recent is not None:
            escalated = condition.rule == DEVICE_FLAPPING and recent.rule != DEVICE_FLAPPING
            recent.state = OPEN
            recent.resolved_at = None
            recent.acknowledged_at = None
            recent.acknowledged_by = None
            recent.occurrences += 1
            _update(recent, condition, now)
            session.add(recent)
            session.flush()
            changes.append(_change(ESCALATED if escalated else REOPENED, recent))
            continue
        alert = Alert(key=condition.key, rule=condition.rule, severity=condition.severity,
                      center_code=condition.center_code, device_id=condition.device_id, window=condition.window,
                      state=OPEN, message=condition.message, reason=condition.reason, opened_at=now,
                      last_active_at=now)
        session.add(alert)
        session.flush()
        changes.append(_change(OPENED, alert))
    for key, alert in active.items():
        if key in seen or (alert.center_code in frozen and alert.rule not in SEEN_FROM_THE_COUNTY):
            continue
        alert.state = RESOLVED
        alert.resolved_at = now
        session.add(alert)
        session.flush()
        changes.append(_change(RESOLVED_CHANGE, alert))
    return changes


def acknowledge(session: Session, alert: Alert, username: str, now: datetime) -> bool:
    """Mark an open alert acknowledged (someone is on it); False when it was not open."""
    if alert.state != OPEN:
        return False
    alert.state = ACKNOWLEDGED
    alert.acknowledged_at = now
    alert.acknowledged_by = username
    session.add(alert)
    return True
