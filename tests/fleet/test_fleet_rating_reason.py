"""A 差评's reason: the rating's second event (same rating_id) adds it to the stored rating and to its case."""

from __future__ import annotations

import json
from datetime import timedelta

from fastapi.testclient import TestClient
from fleet_testkit import CENTER, add_user
from sqlalchemy import inspect
from sqlmodel import Session, select
from test_fleet_cases import FRIDAY

from fleet.app import create_app
from fleet.cases.models import CaseAction, FollowUpCase
from fleet.db import create_db_engine, init_db
from fleet.ingest import handle_message
from fleet.models import RatingEvent
from fleet.satisfaction import satisfaction_rates
from protocol import topics

T0 = FRIDAY.timestamp()


def event(engine, event_id: str, score: int = 1, reason: str | None = None, rating_id: str = "dev-a4cf12000002-1"):
    payload = {"v": 1, "event_id": event_id, "rating_id": rating_id, "ticket": "A004", "service": "A", "window": 3,
               "staff_no": "0312", "score": score, "ts": T0}
    if reason is not None:
        payload["reason"] = reason
    return handle_message(engine, topics.build(topics.RATING_EVENT, center=CENTER), json.dumps(payload).encode(),
                          FRIDAY + timedelta(seconds=30))


def stored(engine) -> tuple[list[tuple[int, str | None]], list[tuple[int, str | None]], list[tuple[str, str | None]]]:
    with Session(engine) as session:
        ratings = [(r.score, r.reason) for r in session.exec(select(RatingEvent))]
        cases = [(c.score, c.reason) for c in session.exec(select(FollowUpCase))]
        actions = [(a.action, a.note) for a in session.exec(select(CaseAction).order_by(CaseAction.id))]
    return ratings, cases, actions


def test_the_ratings_second_event_adds_the_reason_to_the_rating_and_its_case_once(fleet_settings) -> None:
    app = create_app(fleet_settings, clock=lambda: FRIDAY + timedelta(hours=1))
    engine = app.state.engine
    assert event(engine, "e1") == "stored"
    assert stored(engine)[:2] == ([(1, None)], [(1, None)])
    assert event(engine, "e2", reason="efficiency") == "stored"  # acknowledged: the edge forgets it
    assert event(engine, "e2", reason="efficiency") == "duplicate"
    assert event(engine, "e3", reason="other") == "duplicate"  # a rating has one reason
    assert event(engine, "e1") == "duplicate"
    ratings, cases, actions = stored(engine)
    assert ratings == [(1, "efficiency")] and cases == [(1, "efficiency")]  # one rating, counted once
    assert actions == [("opened", "评分 1"), ("reason", "服务效率")]
    with Session(engine) as session:
        [rates] = satisfaction_rates(session, "center", T0 - 10, T0 + 10)
    assert (rates["rated"], rates["bad"]) == (1, 1)
    with TestClient(app, headers={"Authorization": f"Bearer {add_user(engine)}"}) as client:
        [case] = client.get("/api/cases").json()
        assert case["reason"] == "efficiency"
        page = client.get(f"/cases/{case['id']}").text
        assert 'id="case-reason" colspan="3" data-reason="efficiency">服务效率<' in page


def test_a_second_event_stored_before_the_first_is_the_rating_with_its_reason(engine) -> None:
    # Two ingest workers can take a rating's two events at the same moment; whichever comes first is the rating.
    assert event(engine, "e2", reason="attitude") == "stored"
    assert event(engine, "e1") == "duplicate"
    ratings, cases, _ = stored(engine)
    assert ratings == [(1, "attitude")] and cases == [(1, "attitude")]


def test_a_reason_with_another_score_than_the_ratings_is_not_taken(engine) -> None:
    event(engine, "e1", score=2)
    assert event(engine, "e2", score=1, reason="skill") == "duplicate"
    assert stored(engine)[0] == [(2, None)]


def test_an_older_database_gets_the_reason_columns_and_the_rating_id_index(fleet_settings) -> None:
    engine = create_db_engine(fleet_settings.database_url)
    init_db(engine)
    with engine.begin() as connection:  # the tables as they were before reasons
        connection.exec_driver_sql("DROP INDEX ix_rating_event_rating_id")
        connection.exec_driver_sql("ALTER TABLE ratingevent DROP COLUMN reason")
        connection.exec_driver_sql("ALTER TABLE followup_case DROP COLUMN reason")
    init_db(engine)
    schema = inspect(engine)
    assert "reason" in {c["name"] for c in schema.get_columns("ratingevent")}
    assert "reason" in {c["name"] for c in schema.get_columns("followup_case")}
    assert "ix_rating_event_rating_id" in {i["name"] for i in schema.get_indexes("ratingevent")}
    assert event(engine, "e1") == "stored" and event(engine, "e2", reason="skill") == "stored"
    assert stored(engine)[:2] == ([(1, "skill")], [(1, "skill")])
    engine.dispose()
