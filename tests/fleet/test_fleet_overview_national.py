"""A country's overview (issue 16): totals counted apart from the town roll-up, the towns a page at a time, the
first centers that cannot serve named while all are counted; every figure the device-by-device rules give, in a
town operator's scope too."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from fleet_testkit import add_user
from sqlmodel import Session
from test_fleet_scale import MONDAY_10, SHANGHAI, old_overview, seed_county

from fleet.app import create_app
from fleet.auth.principal import CurrentUser
from fleet.overview import county_overview

SCOPES = [None, "445202102"]  # the county administrator, a town operator


def user_of(scope: str | None) -> CurrentUser:
    return CurrentUser(id=1, username="u", role="county_admin" if scope is None else "town_operator",
                       division_prefix=scope)


@pytest.mark.parametrize("scope", SCOPES)
def test_the_totals_are_the_sums_of_every_town(engine, scope) -> None:
    seed_county(engine)
    with Session(engine) as session:
        towns = old_overview(session, user_of(scope))["towns"].values()
        overview = county_overview(session, MONDAY_10, SHANGHAI, user_of(scope), towns_per_page=1)
    assert len(overview["towns"]) == 1  # the totals do not come from the listed towns
    for figure in ("devices_online", "devices_total", "devices_awaiting", "open_alerts", "not_serving",
                   "center_count"):
        total = overview["not_serving_count" if figure == "not_serving" else figure]
        assert total == sum(town[figure] for town in towns), figure
    if scope is None:  # the seed has what each figure must tell apart
        # 20 seen, 5 awaiting their first contact; 3 offline, 4 unknown behind the offline edge: 13 online
        assert (overview["devices_online"], overview["devices_total"], overview["devices_awaiting"]) == (13, 20, 5)


@pytest.mark.parametrize("scope", SCOPES)
def test_the_towns_come_a_page_at_a_time_with_their_figures(engine, scope) -> None:
    seed_county(engine)
    with Session(engine) as session:
        expected = old_overview(session, user_of(scope))["towns"]
        pages = [county_overview(session, MONDAY_10, SHANGHAI, user_of(scope), towns_page=n, towns_per_page=2)
                 for n in (1, 2, 3)]
    listed = [town for page in pages[:pages[0]["town_pages"]] for town in page["towns"]]
    assert [town["town_code"] for town in listed] == sorted(expected)
    assert {town["town_code"]: {key: town[key] for key in expected[town["town_code"]]} for town in listed} == expected
    assert [page["towns_page"] for page in pages] == [1, 2, 2] if scope is None else [1, 1, 1]  # past the end
    assert {page["town_pages"] for page in pages} == {-(-len(expected) // 2)}
    assert {page["town_count"] for page in pages} == {len(expected)}


def test_the_first_centers_that_cannot_serve_are_named_and_all_are_counted(engine, monkeypatch) -> None:
    seed_county(engine)
    with Session(engine) as session:
        expected = old_overview(session, user_of(None))["not_serving"]
        monkeypatch.setattr("fleet.overview.NOT_SERVING_NAMED", 1)
        overview = county_overview(session, MONDAY_10, SHANGHAI, user_of(None))
    assert len(expected) >= 3
    assert [(c["code"], c["problems"]) for c in overview["not_serving"]] == expected[:1]
    assert overview["not_serving_count"] == len(expected)
    # The listed centers beyond the named one still say what stops them.
    problems = {c["code"]: c["problems"] for c in overview["centers"]}
    assert all(problems[code] == found for code, found in expected)
    assert sum(bool(found) for found in problems.values()) == len(expected)


def test_the_overview_page_pages_through_the_towns(fleet_settings, monkeypatch) -> None:
    app = create_app(fleet_settings, clock=lambda: MONDAY_10)
    seed_county(app.state.engine)
    monkeypatch.setattr("fleet.overview.TOWNS_PER_PAGE", 2)
    with TestClient(app, headers={"Authorization": f"Bearer {add_user(app.state.engine)}"}) as client:
        first = client.get("/").text
        last = client.get("/", params={"towns_page": 2, "page": 1}).text
        assert client.get("/", params={"towns_page": 0}).status_code == 422

    def towns(page: str) -> list[str]:
        return [line.split('data-town="')[1].split('"')[0] for line in page.splitlines() if 'data-town="' in line]

    assert towns(first) == ["445202101", "445202102"] and towns(last) == ["445202103"]
    assert "第 1/2 页，共 3 个乡镇" in first and 'href="?towns_page=2#towns"' in first
    assert "第 2/2 页，共 3 个乡镇" in last and 'href="?towns_page=1#towns"' in last
    for page in (first, last):  # the cards keep the whole scope
        assert 'id="card-centers"><div class="value">5<' in page
        assert 'id="card-not-serving"><div class="value">4<' in page  # 3 offline displays, an offline edge
