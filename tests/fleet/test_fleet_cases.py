"""差评 follow-up cases: opened by the ingest, worked through the API, deadlines in working days."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from fastapi.testclient import TestClient
from fleet_testkit import CENTER, OTHER_CENTER, add_user
from sqlmodel import Session, select

from fleet.alerts.operations import case_job
from fleet.app import create_app
from fleet.audit import AuditEntry
from fleet.cases.models import FollowUpCase
from fleet.ingest import handle_message
from fleet.models import RatingEvent
from fleet.notify import Notifier, WebhookTarget
from protocol import topics

FRIDAY = datetime(2026, 2, 13, 3, 0, tzinfo=UTC)  # 11:00 Beijing, the Friday before the Spring Festival


def rating(engine, event_id: str, score: int, at: datetime, center: str = CENTER, ticket: str = "A001",
           window: int = 3) -> str:
    payload = {"v": 1, "event_id": event_id, "rating_id": "r-" + event_id, "ticket": ticket, "service": "A",
               "window": window, "staff_no": "0312", "score": score, "ts": at.timestamp()}
    return handle_message(engine, topics.build(topics.RATING_EVENT, center=center), json.dumps(payload).encode(), at)


def called(engine, event_id: str, at: datetime, ticket: str = "A001", center: str = CENTER) -> None:
    payload = {"v": 1, "event_id": event_id, "kind": "called", "ticket": ticket, "service": "A", "window": 3,
               "staff_no": "0312", "ts": at.timestamp()}
    handle_message(engine, topics.build(topics.TICKET_EVENT, center=center), json.dumps(payload).encode(), at)


def cases(engine) -> list[FollowUpCase]:
    with Session(engine) as session:
        return list(session.exec(select(FollowUpCase).order_by(FollowUpCase.id)))


def test_bad_ratings_open_one_case_each_bound_to_the_service_act(engine) -> None:
    called(engine, "t1", FRIDAY - timedelta(minutes=8))
    assert rating(engine, "r1", 2, FRIDAY) == "stored"
    assert rating(engine, "r1", 2, FRIDAY) == "duplicate"  # re-delivered: still one case
    rating(engine, "r2", 5, FRIDAY, ticket="A002")
    rating(engine, "r3", 0, FRIDAY, ticket="A003")  # 未评价 is no 差评
    rating(engine, "r4", 1, FRIDAY, ticket="A004", window=4)
    found = cases(engine)
    assert [(c.ticket, c.score, c.window, c.staff_no, c.service, c.center_code) for c in found] == \
        [("A001", 2, 3, "0312", "A", CENTER), ("A004", 1, 4, "0312", "A", CENTER)]
    assert found[0].called_at == FRIDAY - timedelta(minutes=8) and found[1].called_at is None
    # 5 working days from Friday 13 Feb 2026: Sat 14 (调休), then the holiday to the 23rd, then 24..27.
    assert found[0].due_on == date(2026, 2, 27) and not found[0].due_estimated


def test_the_case_job_opens_missed_cases_and_pages_once_when_overdue(engine, fleet_settings) -> None:
    rating(engine, "r0", 4, FRIDAY)  # stores the center
    with Session(engine) as session:  # a bad rating stored without its case (e.g. before this module existed)
        session.add(RatingEvent(center_code=CENTER, event_id="r1", rating_id="x", ticket="A009", service="A",
                                window=1, score=1, ts=FRIDAY.timestamp()))
        session.commit()
    notifier = Notifier([WebhookTarget(url="http://127.0.0.1:9/never")])  # not started: only queued
    assert case_job(engine, fleet_settings, notifier, FRIDAY) == 1
    assert case_job(engine, fleet_settings, notifier, FRIDAY) == 0
    assert notifier._queue.qsize() == 0
    after = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # Monday after the due Friday (27 Feb)
    case_job(engine, fleet_settings, notifier, after)
    case_job(engine, fleet_settings, notifier, after)
    assert notifier._queue.qsize() == 1  # one page for the overdue case, not one per sweep
    body = notifier._queue.get()[1]
    assert body["event"] == "case.overdue" and "尚未办结" in "".join(body["lines"])


def test_the_case_workflow_through_the_api_with_appeal_review_and_rates(fleet_settings) -> None:
    app = create_app(fleet_settings, clock=lambda: FRIDAY + timedelta(hours=1))
    engine = app.state.engine
    rating(engine, "r1", 2, FRIDAY)
    rating(engine, "r2", 1, FRIDAY, ticket="A002")
    rating(engine, "r3", 5, FRIDAY, ticket="A003")
    rating(engine, "r4", 1, FRIDAY, center=OTHER_CENTER)
    admin = {"Authorization": f"Bearer {add_user(engine)}"}
    town = {"Authorization": f"Bearer {add_user(engine, 'town-a', 'town_operator', CENTER[:9])}"}
    with TestClient(app) as client:
        listed = client.get("/api/cases", headers=town).json()
        assert [c["ticket"] for c in listed] == ["A002", "A001"]  # newest first, own town only
        first, second = listed[1]["id"], listed[0]["id"]
        other = next(c["id"] for c in client.get("/api/cases", headers=admin).json()
                     if c["center_code"] == OTHER_CENTER)
        assert client.post(f"/api/cases/{other}/assign", json={"assignee": "x"}, headers=town).status_code == 404

        def step(case_id: int, action: str, body: dict, who=town) -> dict:
            response = client.post(f"/api/cases/{case_id}/{action}", json=body, headers=who)
            assert response.status_code == 200, response.text
            return response.json()

        assert client.post(f"/api/cases/{first}/close", json={}, headers=town).status_code == 409
        step(first, "assign", {"assignee": "王主任"})
        assert client.post(f"/api/cases/{first}/rectification", json={"kind": "explained", "note": "x"},
                           headers=town).status_code == 409  # callback first
        step(first, "callback", {"result": "reached", "note": "群众反映等候时间长"})
        step(first, "rectification", {"kind": "rectified", "note": "增开一个社保窗口"})
        done = step(first, "close", {"note": "已向群众反馈"})
        assert done["state"] == "closed" and done["closed_on_time"] is True
        assert [a["action"] for a in done["actions"]] == ["opened", "assign", "callback", "rectify", "close"]

        step(second, "appeal", {"reason": "评价器被儿童误按"})
        assert client.post(f"/api/cases/{second}/review", json={"uphold": True, "note": "监控核实"},
                           headers=town).status_code == 403  # the county reviews
        reviewed = step(second, "review", {"uphold": True, "note": "监控核实为误按"}, admin)
        assert reviewed["state"] == "closed" and reviewed["appeal_state"] == "upheld"

        rates = client.get("/api/satisfaction", params={"by": "center", "since": "2026-02-13",
                                                        "until": "2026-02-13"}, headers=town).json()
        assert [(r["key"], r["rated"], r["excluded"], r["bad"], r["satisfaction_rate"]) for r in rates] == \
            [([CENTER], 2, 1, 1, 50.0)]  # the excluded 非常不满意 counts nowhere
        by_town = client.get("/api/satisfaction", params={"by": "town", "since": "2026-02-13"},
                             headers=admin).json()
        assert [(r["key"], r["rated"]) for r in by_town] == [([CENTER[:9]], 2), ([OTHER_CENTER[:9]], 1)]
    with Session(engine) as session:
        actions = [e.action for e in session.exec(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["case.assign", "case.callback", "case.rectification", "case.close", "case.appeal",
                       "case.review"]
