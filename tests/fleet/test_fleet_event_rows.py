"""Ticket and attendance events stored a batch at a time (fleet.event_rows) leave what storing them one by one
leaves: the same rows, each event once, the same outcome for each message (what the edge is acknowledged)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fleet_testkit import CENTER, OTHER_CENTER
from sqlmodel import Session, select

from fleet.cases.models import FollowUpCase as Case
from fleet.db import create_db_engine, init_db
from fleet.ingest import handle_batch, handle_message
from fleet.models import AttendanceEvent, Center, RatingEvent, TicketEvent
from protocol import topics
from protocol.messages import REASON_ATTITUDE, REASON_EFFICIENCY

MONDAY_10 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
NEW_CENTER = "445202101077"  # no message of it before the last batch


def ticket(center: str, n: int, **fields) -> tuple[str, bytes]:
    payload = {"v": 1, "event_id": f"{center}-20260105-{n:04d}", "kind": "called", "ticket": f"A{n:03d}",
               "service": "shebao", "service_name": "社保业务", "window": 3, "staff_no": "0312", "ts": 1767578400.5 + n}
    payload.update(fields)
    return topics.build(topics.TICKET_EVENT, center=center), json.dumps(payload, ensure_ascii=False).encode()


def attendance(center: str, n: int) -> tuple[str, bytes]:
    payload = {"v": 1, "event_id": f"{center}-att-{n}", "kind": "sign_in", "window": 2, "staff_no": "0312",
               "staff_name": "李娜", "ts": 1767578400.0 + n}
    return topics.build(topics.ATTENDANCE_EVENT, center=center), json.dumps(payload, ensure_ascii=False).encode()


def rating(center: str, n: int, score: int, rating_id: str = "", **fields) -> tuple[str, bytes]:
    payload = {"v": 1, "event_id": f"{center}-r-{n}", "rating_id": rating_id or f"dev-a4cf12ab34ce-1-{n}",
               "ticket": f"A{n:03d}", "service": "shebao", "window": 3, "staff_no": "0312", "score": score,
               "ts": 1767578500.0 + n, **fields}
    return topics.build(topics.RATING_EVENT, center=center), json.dumps(payload).encode()


def stored(engine) -> tuple[list, list, list]:
    with Session(engine) as session:
        tickets = [t.model_dump(exclude={"id"}) for t in session.exec(
            select(TicketEvent).order_by(TicketEvent.center_code, TicketEvent.event_id))]
        signs = [a.model_dump(exclude={"id"}) for a in session.exec(
            select(AttendanceEvent).order_by(AttendanceEvent.center_code, AttendanceEvent.event_id))]
        centers = [(c.code, c.edge_last_seen) for c in session.exec(select(Center).order_by(Center.code))]
        ratings = [r.model_dump(exclude={"id"}) for r in session.exec(
            select(RatingEvent).order_by(RatingEvent.center_code, RatingEvent.event_id))]
        cases = sorted(session.exec(select(RatingEvent.center_code, RatingEvent.event_id).join(
            Case, Case.rating_event_id == RatingEvent.id)).all())  # row ids differ with the order of writing
    return tickets, signs + ratings + cases, centers


def test_a_batch_of_events_leaves_what_storing_them_one_by_one_leaves(engine, tmp_path, caplog) -> None:
    one_by_one = create_db_engine(f"sqlite:///{tmp_path / 'one-by-one.db'}")
    init_db(one_by_one)
    rounds = [
        (MONDAY_10, [ticket(CENTER, 1), ticket(OTHER_CENTER, 1), attendance(CENTER, 1), rating(CENTER, 1, 5),
                     rating(CENTER, 2, 1)]),
        (MONDAY_10 + timedelta(minutes=5), [
            ticket(CENTER, 1),  # sent again: its edge missed the acknowledgement
            ticket(CENTER, 2), ticket(CENTER, 2),  # twice in one batch
            ticket(CENTER, 3, kind="issued", window=None, staff_no=None),  # issued: no window, no staff yet
            (topics.build(topics.TICKET_EVENT, center=CENTER), json.dumps({  # no service_name: its default
                "v": 1, "event_id": f"{CENTER}-20260105-0004", "kind": "issued", "ticket": "A004",
                "service": "shebao", "ts": 1767578404.5}).encode()),
            ticket(OTHER_CENTER, 2), attendance(CENTER, 1), attendance(CENTER, 2),
            ticket(NEW_CENTER, 1), ticket(NEW_CENTER, 1),  # a center first heard of in this batch
            (topics.build(topics.TICKET_EVENT, center=CENTER), b'{"v": 1, "event_id": "x"}'),  # malformed
            rating(CENTER, 1, 5),  # sent again
            rating(CENTER, 7, 1, rating_id="dev-a4cf12ab34ce-1-2", reason=REASON_ATTITUDE),  # a 差评's reason,
            # the rating's second event
            rating(CENTER, 3, 4), rating(OTHER_CENTER, 3, 0, outcome="pad_offline"),  # new plain ratings
            rating(CENTER, 4, 2),  # a new 差评: its case opens
            rating(CENTER, 5, 2, rating_id="dev-a4cf12ab34ce-1-5"),  # both events of one rating in a batch
            rating(CENTER, 6, 2, rating_id="dev-a4cf12ab34ce-1-5", reason=REASON_EFFICIENCY),
        ]),
        # A stored rating under another event id, alone in its batch: stored once all the same.
        (MONDAY_10 + timedelta(minutes=6), [rating(CENTER, 8, 4, rating_id="dev-a4cf12ab34ce-1-3")]),
    ]
    outcomes = []
    for now, batch in rounds:
        outcomes.append(handle_batch(engine, batch, now))
        assert outcomes[-1] == [handle_message(one_by_one, topic_text, raw, now) for topic_text, raw in batch]
    assert outcomes[1] == ["duplicate", "stored", "duplicate", "stored", "stored", "stored", "duplicate", "stored",
                           "stored", "duplicate", "dropped", "duplicate", "stored", "stored", "stored", "stored",
                           "stored", "stored"]
    assert outcomes[2] == ["duplicate"]
    tickets, signs, centers = stored(engine)
    assert (tickets, signs, centers) == stored(one_by_one)
    assert len(tickets) == 7 and len(signs) == 2 + 6 + 3  # sign-ins, ratings, cases
    assert "could not be stored together" not in caplog.text  # stored on the first try, not by the fallback
    by_id = {t["event_id"]: t for t in tickets}
    assert by_id[f"{CENTER}-20260105-0004"]["service_name"] is None
    assert by_id[f"{CENTER}-20260105-0003"]["window"] is None
    assert by_id[f"{CENTER}-20260105-0002"]["received_at"] == MONDAY_10 + timedelta(minutes=5)
    assert dict(centers)[OTHER_CENTER] == MONDAY_10 + timedelta(minutes=5)
    assert dict(centers)[CENTER] == MONDAY_10 + timedelta(minutes=6)  # its events refresh its edge's seen
    one_by_one.dispose()


def test_stored_keys_finds_exactly_the_stored_pairs_of_a_large_batch(engine) -> None:
    """More pairs than one query takes (KEYS_PER_QUERY), of several centers; a stored event id under another
    center is not a stored pair."""
    from fleet.event_rows import KEYS_PER_QUERY, stored_keys

    batch = [ticket(CENTER if n % 2 else OTHER_CENTER, n) for n in range(KEYS_PER_QUERY + 50)]
    handle_batch(engine, batch[::3], MONDAY_10)  # a third of them stored before
    asked = {(topics.parse(topic_text)[1]["center"], json.loads(raw)["event_id"]) for topic_text, raw in batch}
    stored_before = {(topics.parse(topic_text)[1]["center"], json.loads(raw)["event_id"])
                     for topic_text, raw in batch[::3]}
    elsewhere = {(OTHER_CENTER, event_id) for center, event_id in stored_before if center == CENTER}
    with engine.connect() as connection:
        assert stored_keys(connection, TicketEvent.__tablename__, "event_id", asked | elsewhere) == stored_before
