"""Satisfaction rates by county/town/center/window/staff/service, and suspicious rating patterns."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fleet_testkit import CENTER, add_user, log_in
from live_fleet import serve
from sqlmodel import Session, select
from test_fleet_cases import FRIDAY, called, rating

from fleet.app import create_app
from fleet.models import RatingEvent
from fleet.satisfaction import satisfaction_rates, suspicious_ratings

T0 = FRIDAY.timestamp()


def test_rates_by_every_grouping(engine) -> None:
    for n, (score, window) in enumerate([(5, 1), (4, 1), (3, 2), (2, 2), (0, 2)]):
        rating(engine, f"r{n}", score, FRIDAY + timedelta(minutes=n), ticket=f"A00{n}", window=window)
    with Session(engine) as session:
        [county] = satisfaction_rates(session, "county", T0 - 10, T0 + 3600)
        windows = satisfaction_rates(session, "window", T0 - 10, T0 + 3600)
        assert satisfaction_rates(session, "staff", T0 - 10, T0 + 3600)[0]["key"] == ["445202101001", "0312"]
        assert satisfaction_rates(session, "service", T0 - 10, T0 + 3600)[0]["key"] == ["A"]
        assert satisfaction_rates(session, "center", T0 + 3600, T0 + 7200) == []
    assert county["key"] == ["445202"] and county["rated"] == 4 and county["unrated"] == 1
    assert county["by_score"] == {"5": 1, "4": 1, "3": 1, "2": 1, "1": 0}
    assert (county["satisfaction_rate"], county["bad_rate"], county["average"]) == (75.0, 25.0, 3.5)
    assert [(w["key"][1], w["satisfaction_rate"]) for w in windows] == [("1", 100.0), ("2", 50.0)]


def test_quick_ratings_and_bursts_of_top_marks_are_flagged(engine) -> None:
    called(engine, "c1", FRIDAY, ticket="A001")
    rating(engine, "r1", 5, FRIDAY + timedelta(seconds=4), ticket="A001")  # 4 s after the call
    called(engine, "c2", FRIDAY, ticket="A002")
    rating(engine, "r2", 2, FRIDAY + timedelta(minutes=6), ticket="A002")  # a real service act
    for n in range(5):  # five top marks within two minutes at window 4
        rating(engine, f"b{n}", 5, FRIDAY + timedelta(hours=1, seconds=20 * n), ticket=f"B00{n}", window=4)
    rating(engine, "b9", 5, FRIDAY + timedelta(hours=3), ticket="B009", window=4)
    with Session(engine) as session:
        flags = suspicious_ratings(session, T0 - 10, T0 + 86400, quick_s=15, burst_count=5, burst_window_s=120)
    quick = [f for f in flags if f["kind"] == "quick"]
    bursts = [f for f in flags if f["kind"] == "burst"]
    assert [(f["ticket"], f["seconds_after_call"]) for f in quick] == [("A001", 4.0)]
    assert [(f["window"], f["count"]) for f in bursts] == [(4, 5)]


@pytest.mark.browser
def test_the_center_page_and_the_api_count_satisfaction_one_way(fleet_settings, page) -> None:
    # 5 and 3 are 好评, 1 is 差评, and a 2 whose appeal was upheld counts nowhere. Counting 4-5 and keeping
    # the excluded rating (the center page's old way) gives 25%; 3-5 without it gives 66.7%.
    app = create_app(fleet_settings, clock=lambda: FRIDAY + timedelta(hours=1))
    engine = app.state.engine
    for n, score in enumerate((5, 3, 1, 2)):
        rating(engine, f"r{n}", score, FRIDAY + timedelta(minutes=n), ticket=f"A00{n}")
    with Session(engine) as session:
        excluded = session.exec(select(RatingEvent.id).where(RatingEvent.score == 2)).one()
    token = add_user(engine)
    headers = {"Authorization": f"Bearer {token}"}
    with serve(app) as base:
        response = httpx.post(f"{base}/api/ratings/{excluded}/exclude", json={"reason": "监控核实为误按"},
                              headers=headers)
        assert response.status_code == 200, response.text
        [api] = httpx.get(f"{base}/api/satisfaction", params={"by": "center", "since": "2026-02-13"},
                          headers=headers).json()
        log_in(page, base)
        page.goto(f"{base}/centers/{CENTER}")
        assert (api["satisfaction_rate"], api["rated"], api["excluded"]) == (66.7, 3, 1)
        assert page.locator("#s-pct").inner_text() == "66.7%"
        definition = page.locator("#s-definition").inner_text()
        page.goto(f"{base}/cases")
        on_cases_page = page.locator(f"#rates tr[data-center='{CENTER}'] .rate").inner_text()
    assert on_cases_page == "66.7%"
    assert "基本满意" in definition and "剔除" in definition
    assert page.locator("#rate-definition").inner_text() == definition
