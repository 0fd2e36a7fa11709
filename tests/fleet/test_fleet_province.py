"""Ratings with a 办件编号 reach the province's 好差评 system (fleet.province): queued with the rating, retried
with backoff, every attempt recorded, each delivered once; against a stand-in server the test starts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr
from sqlmodel import Session, col, select

from fleet.ingest import handle_message
from fleet.province import DELIVERED, PENDING, ProvinceAttempt, ProvinceReport, deliver_due, http_post
from protocol import topics
from tests.support.province_server import ProvinceServer
from tools.mosquitto import free_port

CENTER = "445202101001"
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 Beijing
TOKEN = "province-token-1"


def rating(engine, settings, event_id: str, score: int, case_no: str | None, reason: str | None = None,
           rating_id: str | None = None) -> str:
    payload = {"v": 1, "event_id": event_id, "rating_id": rating_id or "r-" + event_id, "ticket": "A001",
               "service": "A", "window": 3, "staff_no": "1003", "score": score, "ts": T0.timestamp()}
    if case_no:
        payload |= {"case_no": case_no, "matter": "城乡居民养老保险参保登记"}
    if reason:
        payload["reason"] = reason
    return handle_message(engine, topics.build(topics.RATING_EVENT, center=CENTER), json.dumps(payload).encode(),
                          T0, settings=settings)


def reports(engine) -> list[ProvinceReport]:
    with Session(engine) as session:
        return list(session.exec(select(ProvinceReport).order_by(col(ProvinceReport.id))))


def attempts(engine) -> list[tuple[int, datetime, int | None, bool]]:
    with Session(engine) as session:
        return [(a.report_id, a.at, a.status_code, a.error is None)
                for a in session.exec(select(ProvinceAttempt).order_by(col(ProvinceAttempt.id)))]


def test_reports_wait_out_a_province_that_is_down_with_doubling_waits_and_each_arrives_once(engine,
                                                                                          fleet_settings) -> None:
    server = ProvinceServer(free_port(), token=TOKEN)
    settings = fleet_settings.model_copy(update={
        "province_endpoint": server.url, "province_token": SecretStr(TOKEN), "province_retry_min_s": 5.0,
        "province_retry_max_s": 40.0, "province_timeout_s": 5.0})
    post = http_post(settings.province_timeout_s)
    assert rating(engine, settings, "e1", 5, "CASE-001") == "stored"
    assert rating(engine, settings, "e2", 4, "CASE-002") == "stored"
    assert rating(engine, settings, "e3", 5, None) == "stored"  # no case number: the province does not know it
    assert rating(engine, settings, "e4", 0, "CASE-004") == "stored"  # 未评价 is no rating to report
    assert rating(engine, settings, "e1", 5, "CASE-001") == "duplicate"
    assert [(r.case_no, r.state) for r in reports(engine)] == [("CASE-001", PENDING), ("CASE-002", PENDING)]

    # The province is down: every attempt is recorded, and the waits double up to the maximum.
    now = T0
    waits = []
    for _ in range(5):
        assert deliver_due(engine, settings, now, post) == 0
        nxt = reports(engine)[0].next_attempt_at
        waits.append((nxt - now).total_seconds())
        assert deliver_due(engine, settings, nxt - timedelta(seconds=1), post) == 0  # not due: nothing is sent
        now = nxt
    assert waits == [5.0, 10.0, 20.0, 40.0, 40.0]
    failed = attempts(engine)
    assert len(failed) == 10 and all(status is None and not ok for _r, _at, status, ok in failed)
    assert all(r.attempts == 5 and r.state == PENDING and "ConnectError" in r.last_error for r in reports(engine))

    # Up again, but busy for the first report: 503 is one more failed attempt, with its status.
    server.start()
    try:
        server.statuses.append(503)
        assert deliver_due(engine, settings, now, post) == 1
        first, second = reports(engine)
        assert (first.state, first.attempts, second.state, second.attempts) == (PENDING, 6, DELIVERED, 6)
        assert attempts(engine)[-2:] == [(first.id, now, 503, False), (second.id, now, 200, True)]
        assert deliver_due(engine, settings, now + timedelta(seconds=39), post) == 0
        assert deliver_due(engine, settings, now + timedelta(seconds=40), post) == 1
        assert deliver_due(engine, settings, now + timedelta(days=1), post) == 0  # nothing is sent twice
        assert all(r.state == DELIVERED for r in reports(engine))
        taken = server.taken()
        assert sorted(body["case_no"] for body in taken) == ["CASE-001", "CASE-002"]  # each exactly once
        body = next(b for b in taken if b["case_no"] == "CASE-001")
        assert body == {"report_id": f"{CENTER}-r-e1", "case_no": "CASE-001", "matter": "城乡居民养老保险参保登记",
                        "channel": "现场评价器", "score": 5, "level": "非常满意", "center_code": CENTER, "window": 3,
                        "staff_no": "1003", "rated_at": "2026-03-02T10:00:00+08:00", "reason": None,
                        "reason_label": None}
        headers = [h for status, b, h in server.received if b["case_no"] == "CASE-001"]
        assert {h["idempotency-key"] for h in headers} == {f"{CENTER}-r-e1"}  # the same key on every attempt
    finally:
        server.stop()


def test_a_bad_rating_waits_for_its_reason_and_goes_with_it(engine, fleet_settings) -> None:
    server = ProvinceServer(free_port()).start()
    try:
        settings = fleet_settings.model_copy(update={"province_endpoint": server.url})
        post = http_post(5.0)
        rating(engine, settings, "e1", 1, "CASE-009", rating_id="r-1")
        assert deliver_due(engine, settings, T0, post) == 0  # the pad sends the reason after the score
        rating(engine, settings, "e2", 1, "CASE-009", reason="efficiency", rating_id="r-1")
        assert deliver_due(engine, settings, T0, post) == 1
        [body] = server.taken()
        assert (body["score"], body["reason"], body["reason_label"]) == (1, "efficiency", "服务效率")
        # Without a reason it goes all the same once the wait is over.
        rating(engine, settings, "e3", 2, "CASE-010", rating_id="r-2")
        assert deliver_due(engine, settings, T0 + timedelta(seconds=119), post) == 0
        assert deliver_due(engine, settings, T0 + timedelta(seconds=120), post) == 1
    finally:
        server.stop()


def test_without_a_province_endpoint_nothing_is_queued(engine, fleet_settings) -> None:
    assert rating(engine, fleet_settings, "e1", 5, "CASE-001") == "stored"
    assert reports(engine) == []


def test_county_it_sees_each_report_and_its_attempts_within_its_scope(fleet_settings) -> None:
    from fastapi.testclient import TestClient
    from fleet_testkit import OTHER_CENTER, add_user

    from fleet.app import create_app

    server = ProvinceServer(free_port())  # down
    settings = fleet_settings.model_copy(update={"province_endpoint": server.url})
    app = create_app(settings, clock=lambda: T0)
    engine = app.state.engine
    rating(engine, settings, "e1", 5, "CASE-001")
    payload = {"v": 1, "event_id": "e2", "rating_id": "r-e2", "ticket": "A001", "service": "A", "window": 1,
               "score": 4, "case_no": "CASE-002", "ts": T0.timestamp()}
    handle_message(engine, topics.build(topics.RATING_EVENT, center=OTHER_CENTER), json.dumps(payload).encode(), T0,
                   settings=settings)
    assert deliver_due(engine, settings, T0, http_post(5.0)) == 0
    town = {"Authorization": f"Bearer {add_user(engine, 'town-a', 'town_operator', CENTER[:9])}"}
    with TestClient(app) as client:
        [report] = client.get("/api/province/reports", headers=town).json()
        assert (report["case_no"], report["state"], report["attempts"]) == ("CASE-001", "pending", 1)
        assert "ConnectError" in report["last_error"]
        [attempt] = client.get(f"/api/province/reports/{report['id']}/attempts", headers=town).json()
        assert attempt["status_code"] is None and "ConnectError" in attempt["error"]
        other = next(r for r in reports(engine) if r.center_code == OTHER_CENTER)
        assert client.get(f"/api/province/reports/{other.id}/attempts", headers=town).status_code == 404
        assert client.get("/api/province/reports", params={"state": "delivered"}, headers=town).json() == []
