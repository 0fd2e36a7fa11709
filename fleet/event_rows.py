"""Ticket, attendance and plain rating events of known centers, a batch at a time, in plain SQL.

After an outage the edges send what their outboxes kept: a day's tickets of every center, at once. Storing
each in a savepoint of its own with ORM objects (fleet.ingest.record_message) does about a thousand a
second; here one SELECT per table finds the batch's events already stored, and one executemany INSERT
stores the others. The outcome is what `record_message` gives for each in turn (STORED, or DUPLICATE for
an event stored before or earlier in the batch); tests/fleet/test_fleet_event_rows.py compares the two.
Ratings take this path only when they are plain rows too: a score that is no 差评 (a 差评 opens a case), not
for the province's reporter, the only event of its rating in the batch and the first in the database (a
rating's second event may bring a reason); the others keep going through `record_message`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import Connection, insert, select

from fleet.models import AttendanceEvent, Center, RatingEvent, TicketEvent
from protocol import topics
from protocol.messages import BAD_SCORES

EventModel = type[TicketEvent] | type[AttendanceEvent] | type[RatingEvent]
MODELS: dict[str, EventModel] = {
    topics.TICKET_EVENT: TicketEvent, topics.ATTENDANCE_EVENT: AttendanceEvent, topics.RATING_EVENT: RatingEvent}
_OWN = ("id", "center_code", "received_at")  # filled here, never taken from the payload

STORED = "stored"  # the outcomes of fleet.ingest, which imports this module
DUPLICATE = "duplicate"


def _defaults(model: EventModel) -> dict[str, Any]:
    """The payload's fields of `model` with their defaults (PydanticUndefined: the contract requires it)."""
    return {name: field.default for name, field in model.model_fields.items() if name not in _OWN}


_FIELDS = {name: _defaults(model) for name, model in MODELS.items()}


class EventRows:
    """The batch's ticket, attendance and plain rating events of centers stored in the database."""

    def __init__(self, province_reporting: bool) -> None:
        self.province_reporting = province_reporting  # ratings with a case number are queued for the province
        self.pending: dict[str, list[tuple[int, str, dict[str, Any]]]] = {name: [] for name in MODELS}

    @staticmethod
    def takes(name: str) -> bool:
        """Whether messages of topic `name` may take this path (ratings: see plain_rating)."""
        return name in MODELS

    def plain_rating(self, payload: dict[str, Any]) -> bool:
        """A rating that is a row and nothing more (before the batch and the database are asked)."""
        return payload["score"] not in BAD_SCORES and not (payload.get("case_no") and self.province_reporting)

    def add(self, index: int, name: str, center_code: str, payload: dict[str, Any]) -> None:
        self.pending[name].append((index, center_code, payload))

    def write(self, connection: Connection, now: datetime) -> dict[int, str]:
        """Store the new events; returns the outcome by index of each event handled here (a rating already
        in the database is not: its event may bring a reason, for record_message)."""
        outcomes: dict[int, str] = {}
        for name, events in self.pending.items():
            if events and name == topics.RATING_EVENT:
                events = _first_ratings(connection, events)
            if events:
                outcomes.update(_write_events(connection, MODELS[name], _FIELDS[name], events, now))
        return outcomes


def _first_ratings(connection: Connection, events: list[tuple[int, str, dict[str, Any]]]
                   ) -> list[tuple[int, str, dict[str, Any]]]:
    """The ratings whose rating_id is not stored yet. Their centers' rows are locked first, as
    record_message's rating path locks its center: two workers given a rating's two events take turns
    (PostgreSQL; SQLite has one writer at a time anyway)."""
    centers = Center.__table__  # type: ignore[attr-defined]
    codes = sorted({center for _, center, _ in events})
    connection.execute(select(centers.c.code).where(centers.c.code.in_(codes)).with_for_update()).all()
    stored = stored_keys(connection, RatingEvent.__tablename__, "rating_id",  # type: ignore[arg-type]
                         {(center, payload["rating_id"]) for _, center, payload in events})
    return [event for event in events if (event[1], event[2]["rating_id"]) not in stored]


KEYS_PER_QUERY = 200  # pairs OR'ed in one query: SQLite nests an expression at most 1,000 deep


def stored_keys(connection: Connection, table_name: str, key_column: str, keys: set[tuple[str, str]]
                ) -> set[tuple[str, str]]:
    """Which of these (center_code, key) pairs `table_name` holds: a lookup of its (center_code, key) index per pair.

    Not `key IN (...)`: the indexes lead with center_code, so that scans the table (a day's events of a province:
    the catch-up slowed to 700 events/s). Not `center_code IN (...) AND key IN (...)`: SQLite probes every pair
    of the two lists. Nor a row-value IN, which SQLite answers by scanning the index. OR'ed pairs are one probe
    each, and in the driver's own SQL, since SQLAlchemy took ten times the query's time to compile 500 of them.
    """
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    found: set[tuple[str, str]] = set()
    ordered = sorted(keys)
    for start in range(0, len(ordered), KEYS_PER_QUERY):
        chunk = ordered[start:start + KEYS_PER_QUERY]
        where = " OR ".join([f"(center_code = {mark} AND {key_column} = {mark})"] * len(chunk))
        rows = connection.exec_driver_sql(f"SELECT center_code, {key_column} FROM {table_name} WHERE {where}",
                                          tuple(value for pair in chunk for value in pair))
        found.update((center, key) for center, key in rows)
    return found


def _write_events(connection: Connection, model: EventModel, fields: dict[str, Any],
                  events: Sequence[tuple[int, str, dict[str, Any]]], now: datetime) -> dict[int, str]:
    table = model.__table__  # type: ignore[union-attr]
    stored = stored_keys(connection, table.name, "event_id",
                         {(center, payload["event_id"]) for _, center, payload in events})
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
