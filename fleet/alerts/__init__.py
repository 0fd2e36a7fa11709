"""Alerts: rules over what the fleet knows, gated by opening hours and the holiday calendar.

- `rules.py`: plain functions, facts -> conditions (device offline, flapping, edge offline,
  printer/camera/peripherals from the edge's health summary, waiting over target, paused window);
- `engine.py`: conditions -> alerts (open, reopen, escalate, resolve; one active alert per subject);
- `evaluate.py`: the sweep: facts from the database, rules, engine; drop records for flapping;
- `routes.py`: /api/alerts, /api/centers/{code}/hours, the /alerts page;
- `notifications.py`: what is paged (fleet.notify).
"""

from __future__ import annotations

from sqlmodel import Session


def open_alert_counts(session: Session) -> dict[str, int]:
    """Active alerts per center code (fleet.overview shows them)."""
    from fleet.alerts.routes import open_alert_counts as counts

    return counts(session)
