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

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, any_, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from fleet.alerts.models import ACKNOWLEDGED, ACTIVE_STATES, OPEN, RESOLVED, RESOLVED_ONLY, Alert
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


def due(condition: Condition, now: datetime, open_since: datetime | None) -> bool:
    """Whether `condition` should open an alert now: center open (or an any-hour condition), and lasted long
    enough while open."""
    if open_since is None:
        if not condition.any_hour:
            return False
        open_since = condition.since or now
    start = max(condition.since or now, open_since)
    return (now - start).total_seconds() >= condition.min_duration_s


WRITE_CHUNK = 5_000  # ids in one UPDATE ... WHERE id IN (...): under SQLite's 32,766 and PostgreSQL's 65,535 limits
ALERT = Alert.__table__
_FIELDS = ("rule", "message", "reason", "severity", "device_id", "window")  # what a condition sets on its alert
_NEW_COLUMNS = ("key", "center_code", *_FIELDS)  # what differs between the alerts one sweep opens
_NEW_NAMES = ", ".join(f'"{name}"' for name in _NEW_COLUMNS)  # quoted: `window` is a keyword in PostgreSQL
_NEW_RECORD = ", ".join(f'"{name}" {"integer" if name == "window" else "varchar"}' for name in _NEW_COLUMNS)
_INSERT_FROM_JSON = text(
    f"INSERT INTO alert ({_NEW_NAMES}, state, opened_at, last_active_at, occurrences) "
    f"SELECT {_NEW_NAMES}, :state, :now, :now, 1 "
    f"FROM json_to_recordset(CAST(:rows AS json)) AS new_alert({_NEW_RECORD}) "
    "RETURNING key, id").bindparams(bindparam("now", type_=ALERT.c.opened_at.type))


def _fields(condition: Condition) -> dict[str, Any]:
    return {name: getattr(condition, name) for name in _FIELDS}


def reconcile(session: Session, conditions: Iterable[Condition], now: datetime,
              open_since: Callable[[str], datetime | None], frozen_centers: set[str] | None = None,
              reopen_window_s: float = 3600.0) -> list[Change]:
    """Bring the alert table in line with `conditions` (the caller commits); returns what changed.

    `open_since(center_code)`: start of the center's current opening period, None when closed.
    `frozen_centers`: centers whose alerts (other than edge_offline) must not resolve now.

    Set-based, for a country's alerts: the active alerts are read as plain rows in one query, the recently
    resolved ones in another, and the writes go a statement per kind of change (new alerts in one
    multi-row INSERT, every alert still true in a few UPDATEs of its last_active_at) instead of an ORM
    object, a query and a flush per alert: opening 90,000 alerts one at a time took minutes.
    """
    frozen = frozen_centers or set()
    session.flush()  # the caller's pending changes first: what follows are plain statements on its connection
    connection = session.connection()
    active = {row.key: row for row in connection.execute(
        select(ALERT.c.id, ALERT.c.key, ALERT.c.center_code, *[ALERT.c[name] for name in _FIELDS])
        .where(ALERT.c.state.in_(ACTIVE_STATES)).order_by(ALERT.c.id)).all()}
    # (kind, key, fields): the changes in the order of the conditions, then the resolved alerts.
    planned: list[tuple[str, str, dict[str, Any]]] = []
    still_true: list[int] = []  # active alerts whose condition holds: last_active_at = now
    rewritten: list[dict[str, Any]] = []  # ... of which the condition's message, reason ... changed
    due_now: dict[str, Condition] = {}  # conditions without an active alert, due to open (or reopen)
    seen: set[str] = set()
    for condition in conditions:
        if condition.key in seen:
            continue
        seen.add(condition.key)
        alert = active.get(condition.key)
        if alert is not None:
            still_true.append(alert.id)
            if alert[3:] != (condition.rule, condition.message, condition.reason, condition.severity,
                             condition.device_id, condition.window):  # _FIELDS, as the row holds them after
                rewritten.append({"alert_id": alert.id, **_fields(condition)})
            if condition.rule == DEVICE_FLAPPING and alert.rule != DEVICE_FLAPPING:
                planned.append((ESCALATED, condition.key, {"id": alert.id, "center_code": alert.center_code,
                                                           **_fields(condition)}))
            continue
        if due(condition, now, open_since(condition.center_code)):
            due_now[condition.key] = condition
            planned.append((OPENED, condition.key, {}))  # or reopened: decided below
    recent = _recently_resolved(connection, due_now, now - timedelta(seconds=reopen_window_s))
    reopened: list[dict[str, Any]] = []
    new_rows: list[dict[str, Any]] = []
    for index, (kind, key, _) in enumerate(planned):
        if kind != OPENED:
            continue
        condition = due_now[key]
        fields = _fields(condition)
        earlier = recent.get(key)
        if earlier is not None:
            escalated = condition.rule == DEVICE_FLAPPING and earlier.rule != DEVICE_FLAPPING
            reopened.append({"alert_id": earlier.id, **fields})
            planned[index] = (ESCALATED if escalated else REOPENED, key,
                              {"id": earlier.id, "center_code": earlier.center_code, **fields})
        else:
            row = {"key": key, "center_code": condition.center_code, **fields, "state": OPEN, "opened_at": now,
                   "last_active_at": now, "occurrences": 1}
            new_rows.append(row)
            planned[index] = (OPENED, key, row)
    resolved = [alert for key, alert in active.items()
                if key not in seen and not (alert.center_code in frozen and alert.rule not in SEEN_FROM_THE_COUNTY)]

    stamp = ALERT.c.last_active_at
    _update_ids(connection, still_true, {stamp: now})
    if rewritten:
        connection.execute(update(ALERT).where(ALERT.c.id == bindparam("alert_id")), rewritten)
    if reopened:
        connection.execute(update(ALERT).where(ALERT.c.id == bindparam("alert_id")).values(
            state=OPEN, resolved_at=None, acknowledged_at=None, acknowledged_by=None,
            occurrences=ALERT.c.occurrences + 1, last_active_at=now), reopened)
    if new_rows:
        ids = _insert_alerts(connection, new_rows, now)
        for row in new_rows:
            row["id"] = ids[row["key"]]
    _update_ids(connection, [alert.id for alert in resolved], {ALERT.c.state: RESOLVED, ALERT.c.resolved_at: now})
    for instance in [obj for obj in session.identity_map.values() if isinstance(obj, Alert)]:
        session.expire(instance)  # written around the ORM: a caller's Alert objects read the rows again

    changes = [Change(kind, fields["id"], key, fields["rule"], fields["center_code"], fields["message"],
                      fields["reason"], fields["severity"]) for kind, key, fields in planned]
    changes += [Change(RESOLVED_CHANGE, alert.id, alert.key, alert.rule, alert.center_code, alert.message,
                       alert.reason, alert.severity) for alert in resolved]
    return changes


def _recently_resolved(connection: Connection, conditions: dict[str, Condition], since: datetime) -> dict[str, Any]:
    """key -> the latest alert of that key resolved at `since` or later, for the keys of `conditions`."""
    if not conditions:
        return {}
    found: dict[str, Any] = {}
    query = (select(ALERT.c.id, ALERT.c.key, ALERT.c.rule, ALERT.c.center_code)
             .where(RESOLVED_ONLY, ALERT.c.resolved_at >= since)
             .order_by(ALERT.c.resolved_at.desc(), ALERT.c.id.desc()))
    for row in connection.execute(query):
        if row.key in conditions and row.key not in found:
            found[row.key] = row
    return found


def _insert_alerts(connection: Connection, rows: list[dict[str, Any]], now: datetime) -> dict[str, int]:
    """INSERT the new alerts `rows` (opened `now`); returns key -> id (one new alert per key)."""
    if connection.dialect.name != "postgresql":
        # Matched by key, not by order: SQLite would insert a row a statement to keep the order.
        return dict(connection.execute(insert(ALERT).returning(ALERT.c.key, ALERT.c.id), rows).all())
    # One statement over the rows as one JSON document: psycopg spends seconds parsing the multi-row VALUES of
    # 90,000 alerts that SQLAlchemy's executemany sends, a plain executemany is a round trip a row, and arrays
    # of each column take psycopg twice as long to write as json.dumps takes.
    document = json.dumps([{name: row[name] for name in _NEW_COLUMNS} for row in rows], ensure_ascii=False)
    return dict(connection.execute(_INSERT_FROM_JSON, {"rows": document, "state": OPEN, "now": now}).all())


def _update_ids(connection: Connection, ids: list[int], values: dict[Any, Any]) -> None:
    """UPDATE alert SET `values` for the alerts `ids`: on PostgreSQL in one statement (an array of the ids),
    elsewhere a chunk of ids a statement."""
    if not ids:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(update(ALERT).where(ALERT.c.id == any_(bindparam("ids", ids, type_=ARRAY(Integer))))
                           .values(values))
        return
    for start in range(0, len(ids), WRITE_CHUNK):
        connection.execute(update(ALERT).where(ALERT.c.id.in_(ids[start:start + WRITE_CHUNK])).values(values))


def acknowledge(session: Session, alert: Alert, username: str, now: datetime) -> bool:
    """Mark an open alert acknowledged (someone is on it); False when it was not open."""
    if alert.state != OPEN:
        return False
    alert.state = ACKNOWLEDGED
    alert.acknowledged_at = now
    alert.acknowledged_by = username
    session.add(alert)
    return True
