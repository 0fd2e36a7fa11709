"""Alerts: rules over what the fleet knows, gated by opening hours and the holiday calendar.

- `rules.py`: plain functions, facts -> conditions (device offline, flapping, edge offline,
  printer/camera/peripherals from the edge's health summary, waiting over target, paused window);
- `engine.py`: conditions -> alerts (open, reopen, escalate, resolve; one active alert per subject);
- `evaluate.py`: the sweep: facts from the database, rules, engine; drop records for flapping;
- `routes.py`: /api/alerts, /api/centers/{code}/hours, the /alerts page;
- `notifications.py`: what is paged (fleet.notify).
"""

from __future__ import annotations

from sqlmodel import Session, col, select


def open_alert_counts(session: Session) -> dict[str, int]:
    """Active (open + acknowledged) alerts per center code (fleet.overview shows them).

    Read from the alerts table here, not from routes.py: the routes use the pages, which use the overview.
    """
    from fleet.alerts.models import ACTIVE_STATES, Alert

    counts: dict[str, int] = {}
    for code in session.exec(select(Alert.center_code).where(col(Alert.state).in_(ACTIVE_STATES))).all():
        counts[code] = counts.get(code, 0) + 1
    return counts
