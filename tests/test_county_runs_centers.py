"""The county runs its centers from the fleet (issue 13's done-when), through the user interfaces.

The fleet and two edge agents run as the programs a user starts, on real Mosquitto brokers: 示例镇's town center
(445202101001) and 西村's station (445202101002), which is stopped while the county edits. In headless Chromium a
town operator edits a town item's 申请材料 and a staff member's 职务 on the fleet's pages; the center's kiosk shows
the new guide, its 一次性告知书 (decoded ESC/POS from the edge's file printer) carries the new material and the hall
display the staff line with the new 职务; the station catches up when it returns. Rollout coverage of an imported
division list with centers online, offline and missing; another town's operator neither sees nor edits any of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError

from fleet.auth.bootstrap import ensure_user, issue_token
from fleet.auth.principal import CLI_USER
from fleet.catalogue.service import create_item, set_enablement, set_service_name
from fleet.centerconfig import service as center_config
from fleet.db import create_db_engine, init_db, write_session
from fleet.devconfig.keys import KeyBox
from fleet.models import Center
from fleet.registration.service import issue_edge_credentials
from fleet.settings import Settings
from tests.fleet.fleet_testkit import log_in, save_staff_member
from tests.fleet.test_fleet_centers import DIVISIONS_CSV  # the statistics bureau's list of this county
from tests.support.centers import write_edge_config
from tests.support.escpos_decoder import decode
from tests.support.processes import Program
from tests.support.staff import Caller
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = [pytest.mark.broker, pytest.mark.browser]

SECRET = "county-runs-centers-server-secret-0123456789"
PASSWORD = "county-runs-centers-password"
TOWN, OTHER_TOWN = "445202101", "445202102"
TOWN_CENTER = TOWN + "001"  # 示例镇便民服务中心, in the 东村 building: online all along
WEST_STATION = TOWN + "002"  # 西村便民服务站: its edge is stopped while the county edits
SOUTH_STATION = TOWN + "003"  # 南街社区便民服务站: last heard from yesterday
NEWHENG_STATION = OTHER_TOWN + "001"  # 新亨村便民服务站: another town's, registered, never connected
ITEM, OTHER_ITEM = "T101-001", "T102-001"
PIN = "246810"


def profile(name: str, level: str) -> dict[str, str]:
    return {"name": name, "level": level, "address": "示例镇示例路1号", "consult_phone": "0663-8888888",
            "complaint_phone": "12345", "contact_name": "李明", "contact_phone": "138 0000 0000"}


def seed(database_url: str, box: KeyBox) -> dict[str, str]:
    """What the towns had set up before today: their items, windows and rosters; the edges' keys issued.
    Returns each edge's key."""
    now = datetime.now(UTC)
    town_a = CLI_USER  # the seeds' author; today's edits are the operators' own, through the pages
    engine = create_db_engine(database_url)
    init_db(engine)
    try:
        with write_session(engine) as session:
            create_item(session, town_a, ITEM, {"name": "农村宅基地申请", "materials": [
                {"name": "居民身份证", "originals": 1, "copies": 1, "note": "本人"}], "kind": "promised",
                "legal_days": 20, "promised_days": 15}, owner_prefix=TOWN, now=now)
            set_enablement(session, town_a, TOWN, ITEM, "A", now=now)  # every center of the town handles it
            set_service_name(session, town_a, TOWN, "A", "综合业务", now=now)
            center_config.save_member(session, town_a, TOWN_CENTER, "1003", "王芳", "综合受理员", [], [], now, pin=PIN)
            center_config.save_window(session, town_a, TOWN_CENTER, 3, "general", ["A"], "1003", now)
            center_config.save_member(session, town_a, WEST_STATION, "2001", "陈静", "代办员", [], [], now, pin=PIN)
            center_config.save_window(session, town_a, WEST_STATION, 1, "general", ["A"], "2001", now)

            create_item(session, town_a, OTHER_ITEM, {"name": "新亨镇农机补贴申请", "materials": [
                {"name": "购机发票", "originals": 1, "copies": 1}]}, owner_prefix=OTHER_TOWN, now=now)
            set_enablement(session, town_a, OTHER_TOWN, OTHER_ITEM, "A", now=now)
            set_service_name(session, town_a, OTHER_TOWN, "A", "综合业务", now=now)
            center_config.save_member(session, town_a, NEWHENG_STATION, "3001", "林涛", "代办员", [], [], now)
            center_config.save_window(session, town_a, NEWHENG_STATION, 1, "general", ["A"], "3001", now)

            south = Center.new(SOUTH_STATION, now - timedelta(days=30))  # its edge last reported yesterday
            south.edge_last_seen = now - timedelta(days=1)
            session.add(south)
            keys = {code: issue_edge_credentials(session, box, CLI_USER, code, now).edge_key_hex
                    for code in (TOWN_CENTER, WEST_STATION)}
    finally:
        engine.dispose()
    ensure_user(database_url, "county", "county_admin", PASSWORD)
    ensure_user(database_url, "town-a", "town_operator", PASSWORD, TOWN)
    ensure_user(database_url, "town-b", "town_operator", PASSWORD, OTHER_TOWN)
    return keys


class Edge:
    """A center's edge agent as `python -m edge_agent` runs it, and where its pages are."""

    def __init__(self, program: Program, base: str) -> None:
        self.program, self.base = program, base


def edge_program(directory: Path, code: str, edge_key_hex: str, county_port: int, center_port: int) -> Edge:
    port = free_port()
    config = write_edge_config(directory, center_port, county_port, port, code=code)
    county_section = f"[brokers.county]\nport = {county_port}\n"
    config.write_text(config.read_text(encoding="utf-8").replace(
        county_section, f'{county_section}edge_key = "{edge_key_hex}"\n'), encoding="utf-8")
    program = Program(["-m", "edge_agent", "--config", str(config)], directory.parent / f"edge-{code}.log",
                      f"http://127.0.0.1:{port}/api/health")
    return Edge(program.start(), f"http://127.0.0.1:{port}")


@pytest.fixture
def county(tmp_path, broker_factory, fleet_database_url) -> Iterator[dict]:
    county_broker = broker_factory("county")
    keys = seed(fleet_database_url, KeyBox.from_settings(Settings(data_dir=tmp_path / "fleet",
                                                                  device_key_secret=SECRET)))
    fleet_port = free_port()
    fleet = Program(
        ["-m", "fleet", "--database-url", fleet_database_url, "--broker", f"mqtt://127.0.0.1:{county_broker.port}",
         "--port", str(fleet_port)], tmp_path / "fleet.log", f"http://127.0.0.1:{fleet_port}/healthz",
        env={"FLEET_DEVICE_KEY_SECRET": SECRET, "FLEET_SESSION_COOKIE_SECURE": "0"}).start()
    edges = {code: edge_program(tmp_path / code, code, keys[code], county_broker.port,
                                broker_factory(f"center-{code}").port)
             for code in (TOWN_CENTER, WEST_STATION)}
    base = f"http://127.0.0.1:{fleet_port}"
    clients = {user: httpx.Client(base_url=base, headers={
        "Authorization": "Bearer " + issue_token(fleet_database_url, user, "tests")})
        for user in ("county", "town-a", "town-b")}
    try:
        yield {"fleet": base, "edges": edges, "api": clients, "dir": tmp_path}
    finally:
        for client in clients.values():
            client.close()
        for edge in edges.values():
            edge.program.stop()
        fleet.stop()


def delivery(api: httpx.Client, code: str) -> dict:
    return api.get(f"/api/centers/{code}/center-config").json()


def applied(api: httpx.Client, code: str, at_least: int = 1) -> bool:
    view = delivery(api, code)
    return view["status"] == center_config.APPLIED and view["in_force"] >= at_least


def reloaded(page) -> bool:
    """The marker the test set on the page is gone: the page was loaded again (False while it is reloading)."""
    try:
        return page.evaluate("() => window.beforeCountyEdit === undefined")
    except PlaywrightError:  # the old document went away under the call
        return False


def test_the_county_runs_its_centers_from_the_fleet(county, page):
    fleet, edges, api = county["fleet"], county["edges"], county["api"]
    town_a, town_b, admin = api["town-a"], api["town-b"], api["county"]
    center, station = edges[TOWN_CENTER], edges[WEST_STATION]
    for code in (TOWN_CENTER, WEST_STATION):
        wait_until(lambda code=code: applied(town_a, code), 60, f"{code}'s edge applied the county's configuration")

    # 王芳 signs in at window 3 with the PIN the county set; the hall shows her on duty.
    Caller(center.base, 3).sign_in("1003", PIN).raise_for_status()
    hall = page.context.new_page()
    hall.goto(f"{center.base}/hall")
    staff_line = hall.locator('tr[data-window="3"] .staff')
    staff_line.filter(has_text="王芳 · 综合受理员 · 工号1003").wait_for()
    kiosk = page.context.new_page()
    kiosk.goto(f"{center.base}/kiosk")
    kiosk.locator('button.guide-open[data-guide="A"]').click()
    kiosk.locator("#guide-items button.guide-item").filter(has_text="农村宅基地申请").click()
    guide = kiosk.locator("#guide-fields")
    guide.filter(has_text="居民身份证 原件1份、复印件1份（本人）").wait_for()
    kiosk.get_by_role("button", name="返回").click()
    kiosk.evaluate("() => { window.beforeCountyEdit = true; }")  # gone once the page reloads

    # 西村's station goes offline.
    station.program.stop()
    station_in_force = delivery(town_a, WEST_STATION)["in_force"]

    # The town operator edits the item's 申请材料, then 王芳's 职务, on the fleet's pages.
    log_in(page, fleet, "town-a", PASSWORD)
    page.goto(f"{fleet}/catalogue/items/{ITEM}")
    page.fill('textarea[name="materials"]', "居民身份证 | 1 | 1 | 本人\n宅基地申请表 | 1 | 0 | 村委会盖章")
    page.click("#item-save")
    page.locator('#versions tr[data-version="2"]').wait_for()
    save_staff_member(page, fleet, TOWN_CENTER, "1003", "王芳", "首席代办员", 3)
    assert page.locator("#roster tr[data-staff='1003'] .title").inner_text() == "首席代办员"
    edited = delivery(town_a, TOWN_CENTER)["version"]  # made from the tables after both edits

    # The center applies it live: the hall redraws her line, the kiosk's guide and 一次性告知书 carry the material.
    wait_until(lambda: applied(town_a, TOWN_CENTER, edited), 30, "the center applied the edits")
    staff_line.filter(has_text="王芳 · 首席代办员 · 工号1003").wait_for()
    # The kiosk's open page reloads itself on a new configuration (live.js); then the resident browses again.
    wait_until(lambda: reloaded(kiosk), 30, "the kiosk page reloaded with the new configuration")
    kiosk.wait_for_load_state()
    kiosk.locator('button.guide-open[data-guide="A"]').click()
    kiosk.locator("#guide-items button.guide-item").filter(has_text="农村宅基地申请").click()
    guide.filter(has_text="宅基地申请表 原件1份（村委会盖章）").wait_for()
    kiosk.get_by_role("button", name="打印一次性告知书").click()
    kiosk.locator("#guide-status").filter(has_text="已打印").wait_for()
    printed = decode((county["dir"] / TOWN_CENTER / "data" / "printer.bin").read_bytes()).texts()
    assert "一次性告知书" in printed and "农村宅基地申请" in printed
    assert "2. 宅基地申请表 原件1份（村委会盖章）" in printed
    page.goto(f"{fleet}/centers/{TOWN_CENTER}/staffing")
    assert page.locator("#config-status").inner_text() == "已生效"

    # The station that was offline: pending at the fleet, then it catches up when it returns.
    wait_until(lambda: delivery(town_a, WEST_STATION)["version"] > station_in_force, 30,
               "a new version of the station's configuration with the catalogue's change")
    missed = delivery(town_a, WEST_STATION)
    assert (missed["status"], missed["in_force"]) == (center_config.PENDING, station_in_force)
    station.program.start()
    wait_until(lambda: applied(town_a, WEST_STATION, missed["version"]), 30, "the returning station caught up")
    materials = httpx.get(f"{station.base}/api/items/{ITEM}").json()["materials"]
    assert [m["name"] for m in materials] == ["居民身份证", "宅基地申请表"]

    # Rollout coverage of the imported division list: online, offline (南街, yesterday) and missing.
    imported = admin.post("/api/divisions/import", content=DIVISIONS_CSV.encode("gbk"),
                          headers={"Content-Type": "text/csv"})
    assert imported.json()["counts"] == {"county": 1, "town": 2, "village": 5}
    for code, name, level in ((TOWN_CENTER, "示例镇便民服务中心", "town"), (WEST_STATION, "西村便民服务站", "village"),
                              (NEWHENG_STATION, "新亨村便民服务站", "village")):
        admin.put(f"/api/centers/{code}/profile", json=profile(name, level)).raise_for_status()
    rollout = admin.get("/api/registry/coverage").json()
    towns = {town["town_code"]: town for town in rollout["towns"]}
    xishi = towns[TOWN]
    assert (xishi["has_center"], xishi["center_online_today"]) == (True, True)
    assert {v["name"]: (v["station"], v["online_today"]) for v in xishi["villages"]} == {
        "东村村委会": (None, False), "西村村委会": (WEST_STATION, True), "南街社区居委会": (SOUTH_STATION, False)}
    xinheng = towns[OTHER_TOWN]
    assert (xinheng["has_center"], xinheng["center_online_today"]) == (False, False)
    assert {v["name"]: (v["station"], v["online_today"]) for v in xinheng["villages"]} == {
        "新亨村村委会": (NEWHENG_STATION, False), "北山村村委会": (None, False)}
    # Covered: 示例镇's center, 西村, 南街 and 新亨村 of 2 towns + 5 villages; online today: the center and 西村.
    assert (rollout["county"]["name"], rollout["county"]["covered_pct"], rollout["county"]["online_pct"]) == \
        ("示例区", 57.1, 28.6)
    assert [t["town_code"] for t in town_b.get("/api/registry/coverage").json()["towns"]] == [OTHER_TOWN]

    # Another town's operator neither sees nor edits 示例镇's centers, items or staff.
    assert town_b.get(f"/api/centers/{TOWN_CENTER}/profile").status_code == 404
    assert town_b.put(f"/api/centers/{TOWN_CENTER}/profile", json=profile("别人的便民服务中心", "town")) \
        .status_code == 404
    assert town_b.get(f"/api/catalogue/items/{ITEM}").status_code == 404
    assert town_b.put(f"/api/catalogue/items/{ITEM}", json={"name": "改别人的事项"}).status_code == 404
    assert town_b.put(f"/api/catalogue/scopes/{TOWN}/items/{OTHER_ITEM}", json={"prefix": "A"}).status_code == 404
    assert town_b.get(f"/api/centers/{TOWN_CENTER}/center-config").status_code == 404
    assert town_b.put(f"/api/centers/{TOWN_CENTER}/roster/1003", json={"name": "王芳", "title": "别人改的"}) \
        .status_code == 404
    assert [row["code"] for row in town_b.get("/api/registry").json()] == [NEWHENG_STATION]
    assert [row["center_code"] for row in town_b.get("/api/center-config").json()] == [NEWHENG_STATION]
    assert [item["code"] for item in town_b.get("/api/catalogue/items").json()] == [OTHER_ITEM]
    log_in(page, fleet, "town-b", PASSWORD)
    page.goto(f"{fleet}/registry")
    assert page.locator("#registry tr[data-center]").evaluate_all("rows => rows.map(r => r.dataset.center)") == \
        [NEWHENG_STATION]
    page.goto(f"{fleet}/catalogue")
    assert page.locator(f'#catalogue tr[data-code="{OTHER_ITEM}"]').count() == 1
    assert page.locator(f'#catalogue tr[data-code="{ITEM}"]').count() == 0
    assert page.goto(f"{fleet}/catalogue/items/{ITEM}").status == 404
    assert page.goto(f"{fleet}/centers/{TOWN_CENTER}/staffing").status == 404
    assert page.goto(f"{fleet}/registry/{TOWN_CENTER}").status == 404
    # Nothing they tried changed anything: 王芳 is still 首席代办员 at the center.
    assert next(m for m in delivery(town_a, TOWN_CENTER)["roster"] if m["staff_no"] == "1003")["title"] == "首席代办员"
