"""Ticket and attendance events of known centers, a batch at a time, in plain SQL.

After an outage the edges send what their outboxes kept: a day's tickets of every center, at once. Storing
each in a savepoint of its own with ORM objects (fleet.ingest.record_message) does about a thousand a
second; here one SELECT per table finds the batch's events already stored, and one executemany INSERT
stores the others. The outcome is what `record_message` gives for each in turn (STORED, or DUPLICATE for
an event stored before or earlier in the batch); tests/fleet/test_fleet_event_rows.py compares the two.
Ratings keep going through `record_message`: a 差评 opens a case and a rating's second event may bring a
reason, which plain rows cannot say.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import Connection, insert, select

from fleet.models import AttendanceEvent, TicketEvent
from protocol import topics

MODELS: dict[str, type[TicketEvent] | type[AttendanceEvent]] = {
    topics.TICKET_EVENT: TicketEvent, topics.ATTENDANCE_EVENT: AttendanceEvent}
_OWN = ("id", "center_code", "received_at")  # filled here, never taken from the payload

STORED = "stored"
DUPLICATE = "duplicate"


def _defaults(model: type[TicketEvent] | type[AttendanceEvent]) -> dict[str, Any]:
    """The payload's fields of `model` with their defaults (PydanticUndefined: the contract requires it)."""
    return {name: field.default for name, field in model.model_fields.items() if name not in _OWN}


_FIELDS = {name: _defaults(model) for name, model in MODELS.items()}


class EventRows:
    """The batch's ticket and attendance events of centers stored in the database."""

    def __init__(self) -> None:
        self.pending: dict[str, list[tuple[int, str, dict[str, Any]]]] = {name: [] for name in MODELS}

    @staticmethod
    def takes(name: str) -> bool:
        return name in MODELS

    def add(self, index: int, name: str, center_code: str, payload: dict[str, Any]) -> None:
        self.pending[name].append((index, center_code, payload))

    def write(self, connection: Connection, now: datetime) -> dict[int, str]:
        """Store the new events; returns each added event's outcome by its index."""
        outcomes: dict[int, str] = {}
        for name, events in self.pending.items():
            if events:
                outcomes.update(_write_events(connection, MODELS[name], _FIELDS[name], events, now))
        return outcomes


def _write_events(connection: Connection, model: type[TicketEvent] | type[AttendanceEvent],
                  fields: dict[str, Any], events: Sequence[tuple[int, str, dict[str, Any]]],
                  now: datetime) -> dict[int, str]:
    table = model.__table__  # type: ignore[attr-defined]
    ids = sorted({payload["event_id"] for _, _, payload in events})
    stored = set(connection.execute(select(table.c.center_code, table.c.event_id)
                                    .where(table.c.event_id.in_(ids))).tuples())
    outcomes, rows = {}, []
    for index, center_code, payload in events:
        key = (center_code, payload["event_id"])
        if key in stored:
            outcomes[index] = DUPLICATE
            continue
        stored.add(key)
        row = {name: payload.get(name, default) for name, default in fields.items()}
        missing = [name for name, value in row.items() if value is PydanticUndefined]
        if missing:  # the contract's validation lets no such event through
            raise ValueError(f"{model.__name__} {payload['event_id']}: no {', '.join(missing)}")
        rows.append({**row, "center_code": center_code, "received_at": now})
        outcomes[index] = STORED
    if rows:
        connection.execute(insert(table), rows)
    return outcomes
