"""Rating coverage (rated / served) at the county: from the edge's events, per window, staff, center and town;
a window whose pad is unplugged or ignored raises an alert in opening hours."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from fleet_testkit import CENTER, OTHER_CENTER, add_user
from sqlmodel import Session

from fleet.app import create_app
from fleet.coverage import rating_coverage
from fleet.overview import day_bounds, local_day
from protocol import topics
from tests.fleet.test_fleet_alerts import MONDAY_10, SUNDAY_10, alerts, edge_online, send, sweep

TZ = ZoneInfo("Asia/Shanghai")


def served(engine, center: str, window: int, tickets: list[tuple[str, int | None, str | None]], start) -> None:
    """Each (ticket, score or None for no rating event, edge outcome) finished at `window`, one a minute."""
    for n, (ticket, score, outcome) in enumerate(tickets):
        at = start + timedelta(minutes=n)
        send(engine, topics.TICKET_EVENT, {"event_id": f"{center}-{ticket}-f", "kind": "finished", "ticket": ticket,
                                           "service": "A", "window": window, "staff_no": f"10{window:02d}",
                                           "ts": at.timestamp()}, at, center=center)
        if score is not None:
            rating = {"event_id": f"{center}-{ticket}-r-{outcome}", "rating_id": f"r-{ticket}-{outcome}",
                      "ticket": ticket, "service": "A", "window": window, "staff_no": f"10{window:02d}",
                      "score": score, "ts": (at + timedelta(seconds=30)).timestamp()}
            if outcome:
                rating["outcome"] = outcome
            send(engine, topics.RATING_EVENT, rating, at, center=center)


def test_coverage_counts_every_way_a_request_ends(engine) -> None:
    start = MONDAY_10 - timedelta(hours=1)
    served(engine, CENTER, 3, [("A001", 5, None), ("A002", 0, None), ("A003", 0, "skipped"),
                               ("A004", 0, "pad_offline"), ("A005", None, None)], start)
    # A pad back from an outage rates a request the edge had closed as pad_offline: rated wins.
    served(engine, CENTER, 1, [("B001", 0, "pad_offline")], start)
    served(engine, CENTER, 1, [("B001", 2, None)], start + timedelta(minutes=20))
    served(engine, OTHER_CENTER, 2, [("A001", 4, None)], start)
    day_start, day_end = day_bounds(local_day(MONDAY_10, TZ), TZ)
    with Session(engine) as session:
        rows = {tuple(r["key"]): r for r in rating_coverage(session, "window", day_start, day_end, TZ)}
        towns = {tuple(r["key"]): r for r in rating_coverage(session, "town", day_start, day_end, TZ)}
    window3 = rows[(CENTER, "3")]
    assert (window3["served"], window3["rated"], window3["timeout"], window3["skipped"], window3["pad_offline"],
            window3["pending"], window3["coverage"]) == (5, 1, 1, 1, 1, 1, 20.0)
    assert (rows[(CENTER, "1")]["rated"], rows[(CENTER, "1")]["pad_offline"]) == (1, 0)
    assert (towns[(CENTER[:9],)]["served"], towns[(CENTER[:9],)]["rated"]) == (6, 2)  # B001 finished once
    assert (towns[(OTHER_CENTER[:9],)]["served"], towns[(OTHER_CENTER[:9],)]["rated"]) == (1, 1)


def test_a_window_whose_pad_is_ignored_raises_an_alert_in_opening_hours(engine, fleet_settings) -> None:
    now = MONDAY_10
    edge_online(engine, now)
    served(engine, CENTER, 3, [(f"A{n:03d}", 0, "skipped") for n in range(1, 7)] + [("A007", 5, None)],
           now - timedelta(minutes=30))
    served(engine, CENTER, 1, [(f"B{n:03d}", 4, None) for n in range(1, 8)], now - timedelta(minutes=30))
    [change] = sweep(engine, fleet_settings, now)
    assert change.message == "3号窗口评价覆盖率低"
    assert "今日办结 7 件，评价 1 件（14.3%），低于 80%" in change.reason and "工作人员跳过 6" in change.reason
    assert [a.window for a in alerts(engine)] == [3]


def test_no_coverage_alert_while_the_center_is_closed(engine, fleet_settings) -> None:
    edge_online(engine, SUNDAY_10)
    served(engine, CENTER, 3, [(f"A{n:03d}", 0, "skipped") for n in range(1, 8)], SUNDAY_10 - timedelta(minutes=30))
    assert sweep(engine, fleet_settings, SUNDAY_10) == []


def test_the_coverage_api_is_scoped_to_the_users_part_of_the_county(fleet_settings) -> None:
    app = create_app(fleet_settings, clock=lambda: MONDAY_10)
    engine = app.state.engine
    served(engine, CENTER, 3, [("A001", 5, None), ("A002", 0, "skipped")], MONDAY_10 - timedelta(hours=1))
    served(engine, OTHER_CENTER, 2, [("A001", 4, None)], MONDAY_10 - timedelta(hours=1))
    town = add_user(engine, "town-a", "town_operator", CENTER[:9])
    with TestClient(app) as client:
        rows = client.get("/api/coverage", params={"by": "window"},
                          headers={"Authorization": f"Bearer {town}"}).json()
    assert [(r["key"], r["served"], r["rated"], r["skipped"], r["coverage"]) for r in rows] == [
        ([CENTER, "3"], 2, 1, 1, 50.0)]
