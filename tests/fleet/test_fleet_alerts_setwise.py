"""The alert engine's set-based reconcile (a statement per kind of change, for a country's alerts) leaves the
alert table and reports the changes exactly as the one-alert-at-a-time engine before it did, on a small fleet
through opening, not-yet-due, closed centers, reopening, escalation, acknowledged alerts, frozen centers and
resolving."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import event
from sqlmodel import Session, col, select

from fleet.alerts.engine import (
    ESCALATED,
    OPENED,
    REOPENED,
    RESOLVED_CHANGE,
    SEEN_FROM_THE_COUNTY,
    Change,
    due,
    reconcile,
)
from fleet.alerts.models import ACKNOWLEDGED, ACTIVE_STATES, OPEN, RESOLVED, Alert
from fleet.alerts.rules import DEVICE_FLAPPING, DEVICE_OFFLINE, EDGE_OFFLINE, PRINTER, Condition

MONDAY_10 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # Monday 10:00 in Beijing
OPEN_SINCE = MONDAY_10 - timedelta(minutes=90)  # 08:30
CLOSED = "445202109001"  # a center closed now (its own hours)
FROZEN = "445202101002"  # its edge is offline


def reconcile_one_at_a_time(session: Session, conditions: Iterable[Condition], now: datetime,
                            open_since: Callable[[str], datetime | None], frozen_centers: set[str] | None = None,
                            reopen_window_s: float = 3600.0) -> list[Change]:
    """The engine before it went set-based (an ORM object, a query and a flush per alert): the reference."""

    def change(kind: str, alert: Alert) -> Change:
        return Change(kind, alert.id, alert.key, alert.rule, alert.center_code, alert.message, alert.reason,
                      alert.severity)

    def update(alert: Alert, condition: Condition) -> None:
        alert.rule, alert.message, alert.reason = condition.rule, condition.message, condition.reason
        alert.severity, alert.device_id, alert.window = condition.severity, condition.device_id, condition.window
        alert.last_active_at = now

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
            update(alert, condition)
            session.add(alert)
            if escalated:
                session.flush()
                changes.append(change(ESCALATED, alert))
            continue
        if not due(condition, now, open_since(condition.center_code)):
            continue
        recent = session.exec(
            select(Alert).where(Alert.key == condition.key, Alert.state == RESOLVED,
                                col(Alert.resolved_at) >= now - timedelta(seconds=reopen_window_s))
            .order_by(col(Alert.resolved_at).desc())).first()
        if recent is not None:
            escalated = condition.rule == DEVICE_FLAPPING and recent.rule != DEVICE_FLAPPING
            recent.state, recent.resolved_at = OPEN, None
            recent.acknowledged_at, recent.acknowledged_by = None, None
            recent.occurrences += 1
            update(recent, condition)
            session.add(recent)
            session.flush()
            changes.append(change(ESCALATED if escalated else REOPENED, recent))
            continue
        alert = Alert(key=condition.key, rule=condition.rule, severity=condition.severity,
                      center_code=condition.center_code, device_id=condition.device_id, window=condition.window,
                      state=OPEN, message=condition.message, reason=condition.reason, opened_at=now,
                      last_active_at=now)
        session.add(alert)
        session.flush()
        changes.append(change(OPENED, alert))
    for key, alert in active.items():
        if key in seen or (alert.center_code in frozen and alert.rule not in SEEN_FROM_THE_COUNTY):
            continue
        alert.state, alert.resolved_at = RESOLVED, now
        session.add(alert)
        session.flush()
        changes.append(change(RESOLVED_CHANGE, alert))
    return changes


def offline(device: str, center: str = "445202101001", since: datetime | None = None,
            reason: str = "离线（连接断开）", window: int | None = 1) -> Condition:
    return Condition(f"device:{device}", DEVICE_OFFLINE, center, f"{window}号窗口评价器离线", reason, "critical",
                     device, window, since or MONDAY_10 - timedelta(minutes=30), 600.0)


def flapping(device: str, center: str = "445202101001") -> Condition:
    return Condition(f"device:{device}", DEVICE_FLAPPING, center, "1号窗口评价器频繁掉线", "1小时内掉线 12 次",
                     "warning", device, 1, MONDAY_10 - timedelta(minutes=20))


def edge(center: str) -> Condition:
    return Condition(f"edge:{center}", EDGE_OFFLINE, center, "边缘网关离线", "整个中心与县平台失去联系", "critical",
                     since=MONDAY_10 - timedelta(minutes=30), min_duration_s=300.0)


def printer(center: str) -> Condition:
    return Condition(f"component:{center}:printer", PRINTER, center, "打印机缺纸", "取号小票无法正常打印", "critical",
                     any_hour=True)


def seed(session: Session) -> None:
    """Alerts already there: active (one acknowledged), and resolved lately or long ago."""
    at = MONDAY_10 - timedelta(hours=3)

    def alert(key: str, rule: str, center: str, state: str, resolved_minutes_ago: float | None = None,
              **more) -> None:
        resolved = None if resolved_minutes_ago is None else MONDAY_10 - timedelta(minutes=resolved_minutes_ago)
        session.add(Alert(key=key, rule=rule, center_code=center, device_id=key.split(":")[1], state=state,
                          message="旧", reason="旧原因", opened_at=at, last_active_at=at, resolved_at=resolved, **more))

    alert("device:a-active", DEVICE_OFFLINE, "445202101001", OPEN)  # still offline: updated
    alert("device:b-acked", DEVICE_OFFLINE, "445202101001", ACKNOWLEDGED, acknowledged_at=at,
          acknowledged_by="li")  # now flapping: escalated, stays acknowledged
    alert("device:c-gone", DEVICE_OFFLINE, "445202101001", OPEN)  # back online: resolves
    alert("device:d-frozen", DEVICE_OFFLINE, FROZEN, OPEN)  # behind an offline edge: left as it is
    alert(f"edge:{FROZEN}-old", EDGE_OFFLINE, FROZEN, OPEN)  # seen from the county: resolves even so
    alert("device:e-lately", DEVICE_OFFLINE, "445202101001", RESOLVED, 10, occurrences=2, acknowledged_at=at,
          acknowledged_by="wang")  # comes back: reopened
    alert("device:e-lately", DEVICE_OFFLINE, "445202101001", RESOLVED, 40)  # an older one of the same key
    alert("device:f-lately", DEVICE_OFFLINE, "445202101001", RESOLVED, 5)  # comes back flapping: escalated
    alert("device:g-long-ago", DEVICE_OFFLINE, "445202101001", RESOLVED, 180)  # comes back: a new alert
    session.flush()


SWEEPS = [  # (minutes after 10:00, conditions)
    (0, [offline("a-active"), flapping("b-acked"), offline("d-frozen", FROZEN), edge(FROZEN), offline("e-lately"),
         flapping("f-lately"), offline("g-long-ago"), offline("h-new"), offline("h-new", reason="重复的键"),
         offline("i-not-yet", since=MONDAY_10 - timedelta(minutes=5)), offline("j-closed", CLOSED),
         printer(CLOSED), edge("445202103001")]),
    (1, [offline("a-active", reason="离线（心跳超时）"), flapping("b-acked"), edge(FROZEN), offline("e-lately"),
         offline("i-not-yet", since=MONDAY_10 - timedelta(minutes=5)), printer(CLOSED)]),
    (10, [offline("a-active"), offline("i-not-yet", since=MONDAY_10 - timedelta(minutes=5)), offline("g-long-ago"),
          offline("h-new", window=None)]),
    (20, []),
]


def run(session: Session, engine_reconcile: Callable[..., list[Change]]) -> tuple[list, list]:
    """The sweeps through `engine_reconcile`: every alert row and every change (alert ids as keys)."""
    seed(session)
    changes = []
    for minutes, conditions in SWEEPS:
        now = MONDAY_10 + timedelta(minutes=minutes)
        frozen = {FROZEN} if minutes < 10 else set()
        made = engine_reconcile(session, conditions, now, lambda code: None if code == CLOSED else OPEN_SINCE,
                                frozen, 3600.0)
        rows = {alert.id: alert for alert in session.exec(select(Alert))}
        assert all(rows[change.alert_id].key == change.key for change in made)
        made = [(c.kind, c.key, c.rule, c.center_code, c.message, c.reason, c.severity) for c in made]
        # In the conditions' order, then the resolved ones: in no order (the old engine's, on PostgreSQL, its heap's).
        resolved = sorted(c for c in made if c[0] == RESOLVED_CHANGE)
        changes.append([c for c in made if c[0] != RESOLVED_CHANGE] + resolved)
    alerts = sorted((a.key, a.opened_at, a.rule, a.severity, a.center_code, a.device_id, a.window, a.state, a.message,
                     a.reason, a.last_active_at, a.occurrences, a.acknowledged_at, a.acknowledged_by, a.resolved_at)
                    for a in session.exec(select(Alert)))
    return alerts, changes


def test_set_based_reconcile_leaves_what_one_alert_at_a_time_left(engine) -> None:
    with Session(engine) as session:
        expected_alerts, expected_changes = run(session, reconcile_one_at_a_time)
        session.rollback()
    with Session(engine) as session:
        alerts, changes = run(session, reconcile)
        session.rollback()
    assert [len(made) for made in expected_changes] == [10, 4, 8, 4]  # the scenario does what it means to
    assert {kind for made in expected_changes for kind, *_ in made} == {OPENED, REOPENED, ESCALATED, RESOLVED_CHANGE}
    assert changes == expected_changes
    assert alerts == expected_alerts


def test_the_objects_a_caller_holds_read_the_new_rows(engine) -> None:
    """reconcile writes around the ORM: an Alert object the session already held shows the outcome."""
    with Session(engine) as session:
        seed(session)
        held = session.exec(select(Alert).where(Alert.key == "device:c-gone")).one()
        reconcile(session, [], MONDAY_10, lambda code: OPEN_SINCE)
        assert (held.state, held.resolved_at) == (RESOLVED, MONDAY_10)
        session.rollback()


def test_opening_and_keeping_thousands_of_alerts_takes_a_few_statements_not_one_per_alert(engine) -> None:
    """A country's first sweep opens some 90,000 alerts: a statement (and a flush) per alert took minutes."""
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    conditions = [offline(f"{n:012x}", since=MONDAY_10 - timedelta(hours=1)) for n in range(2_000)]
    with Session(engine) as session:
        opened = reconcile(session, conditions, MONDAY_10, lambda code: OPEN_SINCE)
        kept = reconcile(session, conditions[:1_500], MONDAY_10 + timedelta(seconds=30), lambda code: OPEN_SINCE)
        session.commit()
    assert [c.kind for c in opened] == [OPENED] * 2_000 and len({c.alert_id for c in opened}) == 2_000
    assert [c.kind for c in kept] == [RESOLVED_CHANGE] * 500
    assert len(statements) < 30, len(statements)
    with Session(engine) as session:
        states = session.exec(select(Alert.state, Alert.last_active_at)).all()
    assert sorted(states) == sorted([(OPEN, MONDAY_10 + timedelta(seconds=30))] * 1_500 + [(RESOLVED, MONDAY_10)] * 500)
