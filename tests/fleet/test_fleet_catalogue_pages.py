"""The catalogue through the real app: the JSON API within scope, and the pages in headless Chromium."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from fleet_testkit import add_user, log_in
from live_fleet import serve

from fleet.app import create_app

TOWN = "445202101"
CENTER = TOWN + "001"
OTHER_TOWN = "445202102"
PENSION = {
    "name": "城乡居民养老保险参保登记", "basis": "《中华人民共和国社会保险法》", "conditions": "年满16周岁的城乡居民",
    "materials": [{"name": "居民身份证", "originals": 1, "copies": 1, "note": "本人"}],
    "legal_days": 20, "promised_days": 5, "kind": "promised", "location": "一楼社保窗口", "phone": "0663-8888001",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(fleet_settings):
    return create_app(fleet_settings)


def test_the_api_keeps_versions_and_scope(app) -> None:
    engine = app.state.engine
    county = TestClient(app, headers=bearer(add_user(engine, "county", "county_admin", "445202")))
    town = TestClient(app, headers=bearer(add_user(engine, "town101", "town_operator", TOWN)))
    other = TestClient(app, headers=bearer(add_user(engine, "town102", "town_operator", OTHER_TOWN)))
    reader = TestClient(app, headers=bearer(add_user(engine, "reader", "read_only", None)))

    assert county.post("/api/catalogue/items", json={"code": "SB-001", **PENSION}).status_code == 200
    refused = county.post("/api/catalogue/items", json={"code": "SB-002", **PENSION, "promised_days": 30})
    assert refused.status_code == 422 and "承诺时限不能长于办理时限" in refused.json()["detail"][0]
    assert town.post("/api/catalogue/items", json={"code": "T101-1", **PENSION, "name": "本镇事项"}).status_code == 200
    assert other.post("/api/catalogue/items", json={"code": "T102-1", **PENSION, "name": "他镇事项"}).status_code == 200
    assert reader.post("/api/catalogue/items", json={"code": "R-1", **PENSION}).status_code == 403

    edited = {**PENSION, "materials": [*PENSION["materials"], {"name": "户口簿", "originals": 1, "copies": 1}]}
    assert county.put("/api/catalogue/items/SB-001", json=edited).json()["version"] == 2
    detail = county.get("/api/catalogue/items/SB-001").json()
    assert [v["version"] for v in detail["versions"]] == [2, 1] and len(detail["materials"]) == 2
    assert len(county.get("/api/catalogue/items/SB-001/versions/1").json()["materials"]) == 1
    assert town.put("/api/catalogue/items/SB-001", json=PENSION).status_code == 403  # the county's item
    assert town.get("/api/catalogue/items/T102-1").status_code == 404  # another town's: unknown
    assert [i["code"] for i in town.get("/api/catalogue/items").json()] == ["SB-001", "T101-1"]
    assert [i["code"] for i in county.get("/api/catalogue/items", params={"q": "他镇"}).json()] == ["T102-1"]

    assert town.put(f"/api/catalogue/scopes/{TOWN}/services/A", json={"name": "社保业务"}).status_code == 200
    assert town.put(f"/api/catalogue/scopes/{TOWN}/items/SB-001", json={"prefix": "A"}).status_code == 200
    assert town.put(f"/api/catalogue/scopes/{CENTER}/items/T101-1", json={"prefix": "A"}).status_code == 200
    assert town.put(f"/api/catalogue/scopes/{OTHER_TOWN}003/items/SB-001", json={"prefix": "A"}).status_code == 404
    assert other.get(f"/api/catalogue/centers/{CENTER}/items").status_code == 404
    handled = town.get(f"/api/catalogue/centers/{CENTER}/items").json()
    assert [(i["code"], i["version"], i["service_name"]) for i in handled["items"]] == [
        ("SB-001", 2, "社保业务"), ("T101-1", 1, "社保业务")]
    assert handled["services"] == [{"prefix": "A", "name": "社保业务"}]
    audit = [e["action"] for e in county.get("/api/audit").json()]
    for action in ("catalogue.item.create", "catalogue.item.revise", "catalogue.enable", "catalogue.service_name"):
        assert action in audit


@pytest.mark.browser
def test_a_town_operator_edits_materials_as_a_new_version_and_enables_the_item(app, page, tmp_path) -> None:
    shots = tmp_path
    engine = app.state.engine
    add_user(engine, "county", "county_admin", "445202")
    add_user(engine, "town101", "town_operator", TOWN)
    add_user(engine, "town102", "town_operator", OTHER_TOWN)
    with serve(app) as base:
        log_in(page, base, "town101")
        page.click('#nav a[data-nav="catalogue"]')
        page.click("#new-item")
        page.fill('input[name="code"]', "T101-001")
        page.fill('input[name="name"]', "农村宅基地申请")
        page.select_option('select[name="kind"]', "promised")
        page.fill('textarea[name="materials"]', "居民身份证 | 1 | 1 | 本人\n户口簿 | 1 | 0")
        page.fill('input[name="legal_days"]', "20")
        page.fill('input[name="promised_days"]', "30")
        page.click("#item-save")
        assert "承诺时限不能长于办理时限" in page.locator("#item-error").inner_text()  # refused, what was typed kept
        page.fill('input[name="promised_days"]', "15")
        page.click("#item-save")
        page.locator("#guide").wait_for()
        assert "居民身份证 · 原件 1 · 复印件 1 · 本人" in page.locator('[data-field="materials"]').inner_text()

        materials = "居民身份证 | 1 | 1 | 本人\n户口簿 | 1 | 1\n宅基地申请表 | 1 | 0 | 村委会盖章"
        page.fill('textarea[name="materials"]', materials)
        page.click("#item-save")
        page.locator('#versions tr[data-version="2"]').wait_for()
        assert "宅基地申请表 · 原件 1 · 复印件 0 · 村委会盖章" in page.locator('[data-field="materials"]').inner_text()
        page.click('#versions tr[data-version="1"] a')
        assert "宅基地申请表" not in page.locator('[data-field="materials"]').inner_text()  # the old one kept

        page.goto(f"{base}/catalogue/scopes/{CENTER}")
        row = page.locator('#scope-items tr[data-code="T101-001"]')
        row.locator('select[name="prefix"]').select_option("D")
        row.locator('button[type="submit"]').click()
        page.locator('#center-items li[data-code="T101-001"]').filter(has_text="版本 2").wait_for()
        page.screenshot(path=str(shots / "catalogue-scope.png"))

        assert page.goto(f"{base}/catalogue/scopes/{OTHER_TOWN}003").status == 404
        page.goto(f"{base}/catalogue?lang=en")
        assert page.locator('#catalogue tr[data-code="T101-001"] td.version').inner_text() == "2"
        assert "Service catalogue" in page.locator("h1").inner_text()

        page.goto(f"{base}/audit?lang=zh")
        assert page.locator('tr[data-action="catalogue.item.revise"] .action').inner_text() == "修改办事指南"
        assert page.locator('tr[data-action="catalogue.enable"] .target').inner_text() == "T101-001"

        page.click("#logout")
        log_in(page, base, "town102")
        page.goto(f"{base}/catalogue")
        assert page.locator('#catalogue tr[data-code="T101-001"]').count() == 0
        assert page.goto(f"{base}/catalogue/items/T101-001").status == 404
