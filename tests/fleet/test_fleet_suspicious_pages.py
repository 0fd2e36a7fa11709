"""可疑评价: flagged ratings per center and window in headless Chromium, scoped and in both languages."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fleet_testkit import add_user, log_in
from live_fleet import serve

from fleet.app import create_app
from fleet.cases import suspicious_page
from fleet.cases.assignees import UNFIT_ASSIGNEE
from fleet.ingest import handle_message
from fleet.web.i18n import CATALOGUES, EN
from protocol import topics

TOWN = "445202101"
CENTER = TOWN + "001"
OTHER_CENTER = "445202102003"
CJK = re.compile(r"[\u4e00-\u9fff]")
TEMPLATES = Path(__file__).resolve().parents[2] / "fleet" / "web" / "templates"
# The app's clock: the page lists the last days up to today in Asia/Shanghai, so the ratings are seeded
# from this fixed moment, never from the wall clock (whose "today" changes at 16:00 UTC).
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def put(engine, name: str, payload: dict, center: str) -> None:
    at = datetime.fromtimestamp(payload["ts"], UTC)
    handle_message(engine, topics.build(name, center=center), json.dumps({"v": 1, **payload}).encode(), at)


def called(engine, event_id: str, ticket: str, ts: float, center: str, window: int = 3) -> None:
    put(engine, topics.TICKET_EVENT, {"event_id": event_id, "kind": "called", "ticket": ticket, "service": "A",
                                      "window": window, "ts": ts}, center)


def rated(engine, event_id: str, ticket: str, ts: float, center: str, score: int = 5, window: int = 3) -> None:
    put(engine, topics.RATING_EVENT, {"event_id": event_id, "rating_id": event_id, "ticket": ticket,
                                      "service": "A", "window": window, "score": score, "ts": ts}, center)


def seed(engine) -> None:
    start = NOW.timestamp() - 1800
    called(engine, "c1", "A001", start, CENTER)
    rated(engine, "r1", "A001", start + 3, CENTER)  # 3 s after the call: nobody was served
    called(engine, "c2", "A002", start, CENTER)
    rated(engine, "r2", "A002", start + 400, CENTER, score=4)  # a real service act: not flagged
    for n in range(5):  # five top marks within 100 s at window 4
        rated(engine, f"b{n}", f"B00{n}", start + 600 + 25 * n, CENTER, window=4)
    called(engine, "c3", "C001", start, OTHER_CENTER)
    rated(engine, "r3", "C001", start + 2, OTHER_CENTER)  # another town's


@pytest.fixture
def fleet(fleet_settings):
    app = create_app(fleet_settings, clock=lambda: NOW)
    seed(app.state.engine)
    add_user(app.state.engine)
    add_user(app.state.engine, "town-a", "town_operator", TOWN)
    with serve(app) as base:
        yield base


@pytest.mark.browser
def test_flagged_ratings_per_center_and_window_scoped_and_in_english(fleet, page) -> None:
    log_in(page, fleet)
    page.click("#nav a[data-nav='suspicious']")
    page.wait_for_url(f"{fleet}/ratings/suspicious")
    assert page.locator("#nav a.active").inner_text() == "可疑评价"
    groups = page.locator("#suspicious tbody").evaluate_all(
        "bodies => bodies.map(b => [b.dataset.center, b.dataset.window])")
    assert groups == [[CENTER, "3"], [CENTER, "4"], [OTHER_CENTER, "3"]]
    quick = page.locator(f"#suspicious tbody[data-center='{CENTER}'][data-window='3'] tr.flag")
    assert quick.count() == 1 and quick.get_attribute("data-kind") == "quick"
    assert quick.locator(".ticket").inner_text() == "A001"
    assert quick.locator(".reason").inner_text() == "叫号后 3 秒即评价（少于 15 秒即标记）"
    burst = page.locator(f"#suspicious tbody[data-center='{CENTER}'][data-window='4'] tr.flag")
    assert burst.get_attribute("data-kind") == "burst" and len(burst.get_attribute("data-ratings").split()) == 5
    assert burst.locator(".reason").inner_text().startswith("5 次“非常满意”集中在 100 秒内")

    page.click("#lang-switch")
    assert quick.locator(".reason").inner_text() == "Rated 3 s after the call (flagged under 15 s)"
    assert burst.locator(".kind").inner_text() == "Burst of top marks"
    text = page.evaluate("""() => { const body = document.body.cloneNode(true);
        body.querySelectorAll('#lang-switch, script').forEach(e => e.remove());
        return body.textContent; }""")
    assert not CJK.findall(text), CJK.findall(text)
    page.click("#lang-switch")

    page.click("#logout")
    page.wait_for_url(re.compile(r".*/login$"))
    log_in(page, fleet, "town-a")
    page.goto(fleet + "/ratings/suspicious")
    centers = page.locator("#suspicious tbody").evaluate_all("bodies => bodies.map(b => b.dataset.center)")
    assert set(centers) == {CENTER}  # the other town's flag is not theirs to see


def test_every_message_of_the_suspicious_page_and_the_assignee_has_english() -> None:
    suspicious_page.install_english()
    used = set(re.findall(r'_\(\s*"([^"]+)"', (TEMPLATES / "suspicious.html").read_text()))
    used |= set(suspicious_page.KIND_LABELS.values()) | {suspicious_page.QUICK_REASON, suspicious_page.BURST_REASON}
    case_page = (TEMPLATES / "case.html").read_text()
    used |= {"旧记录，非系统用户", "请选择"} & set(re.findall(r'_\(\s*"([^"]+)"', case_page))
    used |= {UNFIT_ASSIGNEE}
    missing = sorted(text for text in used if CJK.search(text) and text not in CATALOGUES[EN])
    assert not missing
