"""差评 follow-up cases: opened by the ingest, worked through the API, deadlines in working days."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime, timedelta

from fastapi.testclient import TestClient
from fleet_testkit import CENTER, OTHER_CENTER, add_user
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from fleet.alerts.operations import case_job
from fleet.app import create_app
from fleet.audit import AuditEntry
from fleet.auth.models import User
from fleet.auth.users import create_user
from fleet.cases.models import FollowUpCase
from fleet.db import create_db_engine, init_db, write_session
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
        step(first, "assign", {"assignee": "town-a"})
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


def named_user(engine, username: str, role: str, prefix: str | None, display_name: str | None = None,
               disabled: bool = False) -> None:
    with write_session(engine) as session:
        user = create_user(session, username, role, "a-long-password", prefix, display_name)
        user.disabled = disabled


def test_cases_are_assigned_to_active_user_accounts_whose_scope_covers_the_center(fleet_settings) -> None:
    app = create_app(fleet_settings, clock=lambda: FRIDAY + timedelta(hours=1))
    engine = app.state.engine
    rating(engine, "r1", 2, FRIDAY)
    admin = {"Authorization": f"Bearer {add_user(engine)}"}
    named_user(engine, "wang", "town_operator", CENTER[:9], "王主任")
    named_user(engine, "li", "town_operator", OTHER_CENTER[:9], "李主任")  # another town
    named_user(engine, "zhao", "read_only", CENTER[:6], "赵科长", disabled=True)
    with TestClient(app, headers=admin) as client:
        [case] = client.get("/api/cases").json()
        url = f"/api/cases/{case['id']}/assign"
        message = "责任人须为管理范围包括该中心的有效用户。"  # the same for each: no probing for user names
        for who in ("nobody", "zhao", "li"):
            refused = client.post(url, json={"assignee": who})
            assert refused.status_code == 422, who
            assert refused.json()["detail"] == [{"type": "value_error", "loc": ["body", "assignee"], "msg": message,
                                                 "input": who}]
        assert client.get(f"/api/cases/{case['id']}").json()["state"] == "open"

        page = client.get(f"/cases/{case['id']}").text
        options = re.findall(r'<option value="([^"]*)"', page.split('id="assignee"')[1].split("</select>")[0])
        assert options == ["", "admin", "wang"]  # active and in scope (the administrator: the whole county)

        done = client.post(url, json={"assignee": "wang"}).json()
        assert (done["assignee_name"], done["assignee"], done["state"]) == ("王主任", "王主任", "assigned")
        assert done["actions"][-1]["note"] == "王主任（wang）"
        page = client.get(f"/cases/{case['id']}").text
        assert re.search(r'id="case-assignee"[^>]*>王主任<', page)
        assert re.search(r'<td class="assignee">王主任</td>', client.get("/cases").text)
        with write_session(engine) as session:  # a later display name is what the pages show
            session.exec(select(User).where(User.username == "wang")).one().display_name = "王建国"
        assert client.get(f"/api/cases/{case['id']}").json()["assignee_name"] == "王建国"


def test_a_database_from_before_assignee_accounts_keeps_its_free_text_assignees(fleet_settings) -> None:
    engine = create_db_engine(fleet_settings.database_url)
    init_db(engine)
    rating(engine, "r1", 2, FRIDAY)
    if engine.dialect.name == "postgresql":  # the tables as they were before assignees were accounts
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE followup_case SET assignee = '王主任'")
            connection.exec_driver_sql("ALTER TABLE followup_case DROP COLUMN assignee_user_id")
            connection.exec_driver_sql("ALTER TABLE fleet_user DROP COLUMN display_name")
    engine.dispose()
    if engine.dialect.name == "sqlite":  # SQLite drops no column that has a foreign key: rebuild the table
        with closing(sqlite3.connect(make_url(fleet_settings.database_url).database)) as db:
            # The tables as they were before assignees were accounts: no account columns.
            db.execute("PRAGMA foreign_keys=OFF")
            db.execute("UPDATE followup_case SET assignee = '王主任'")
            create = db.execute("SELECT sql FROM sqlite_master WHERE name = 'followup_case'").fetchone()[0]
            old = re.sub(r",\s*FOREIGN KEY\(assignee_user_id\) REFERENCES fleet_user \(id\)", "", create)
            old = re.sub(r"\s*assignee_user_id INTEGER,", "", old).replace("followup_case", "followup_case_old", 1)
            assert "assignee_user_id" not in old
            db.execute(old)
            columns = ", ".join(c for c in FollowUpCase.model_fields if c != "assignee_user_id")
            db.execute(f"INSERT INTO followup_case_old ({columns}) SELECT {columns} FROM followup_case")
            db.execute("DROP TABLE followup_case")
            db.execute("ALTER TABLE followup_case_old RENAME TO followup_case")
            db.execute("ALTER TABLE fleet_user DROP COLUMN display_name")
            db.commit()

    app = create_app(fleet_settings, clock=lambda: FRIDAY + timedelta(hours=1))  # init_db adds the columns
    admin = {"Authorization": f"Bearer {add_user(app.state.engine)}"}
    with TestClient(app, headers=admin) as client:
        [case] = client.get("/api/cases").json()
        assert (case["assignee"], case["assignee_name"], case["assignee_user_id"]) == ("王主任", "王主任", None)
        page = client.get(f"/cases/{case['id']}").text
        assert re.search(r'id="case-assignee"[^>]*>王主任 <span class="meta legacy">', page)
        assert client.post(f"/api/cases/{case['id']}/assign", json={"assignee": "admin"}).json()["assignee_user_id"]
