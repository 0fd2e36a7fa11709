"""A center's windows and roster in the fleet, the versions of its configuration, the edge's reports, roll-back,
the boards' font and the user's scope (fleet.centerconfig). Plain functions on the fleet's database, then the API.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from fleet_testkit import add_user, log_in, save_staff_member, wait_for
from live_fleet import serve
from sqlmodel import Session, select

from fleet import audit
from fleet.app import create_app
from fleet.auth.principal import CLI_USER
from fleet.catalogue.models import QueueServiceName
from fleet.catalogue.service import create_item, set_enablement, set_service_name
from fleet.centerconfig import service
from fleet.centerconfig.glyphs import missing_glyphs
from fleet.centerconfig.models import CenterConfigVersion
from fleet.db import write_session
from protocol import messages, signing

CENTER = "445202101001"
OTHER_TOWN_CENTER = "445202102001"
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def seed_catalogue(session: Session, center: str = CENTER) -> None:
    """Item SB-001 handled at the center under A (社保业务), as the catalogue's pages do it."""
    create_item(session, CLI_USER, "SB-001", {"name": "城乡居民养老保险参保登记", "materials": [
        {"name": "居民身份证", "originals": 1, "copies": 1}]}, owner_prefix="", now=NOW)
    set_enablement(session, CLI_USER, center, "SB-001", "A", now=NOW)
    set_service_name(session, CLI_USER, center, "A", "社保业务", now=NOW)


def first_version(engine, center: str = CENTER) -> CenterConfigVersion | None:
    with Session(engine) as session:
        return session.exec(select(CenterConfigVersion).where(CenterConfigVersion.center_code == center,
                                                              CenterConfigVersion.version == 1)).first()


def seed_center(session: Session, center: str = CENTER) -> None:
    seed_catalogue(session, center)
    service.save_member(session, CLI_USER, center, "1003", "王芳", "社保专员", [], [], NOW, pin="246810")
    service.save_window(session, CLI_USER, center, 3, "dedicated", ["A"], "1003", NOW)
    service.save_member(session, CLI_USER, center, "1009", "赵丽", "", [3], ["1003"], NOW)


def test_a_name_the_boards_cannot_show_is_refused_naming_its_characters(engine):
    # 喆 and 堃 are in no font of the boards (not even GB2312): names with them are real, and refused.
    assert missing_glyphs("王芳") == "" and missing_glyphs("王喆 喆堃") == "喆堃"
    with write_session(engine) as session:
        seed_catalogue(session)
        with pytest.raises(service.ConfigRefused) as refused:
            service.save_member(session, CLI_USER, CENTER, "1001", "王喆", "", [], [], NOW)
    assert "王喆" in refused.value.errors["name"] and "字库没有的字：喆" in refused.value.errors["name"]


def test_windows_and_staff_are_checked_all_at_once(engine):
    with write_session(engine) as session:
        seed_catalogue(session)
        with pytest.raises(service.ConfigRefused) as refused:
            service.save_window(session, CLI_USER, CENTER, 1000, "综合受理", ["A", "Q"], "7777", NOW)
        assert set(refused.value.errors) == {"number", "kind", "services", "staff_no"}
        with pytest.raises(service.ConfigRefused) as refused:
            service.save_member(session, CLI_USER, CENTER, "10-1", "王芳", "", [9], ["1002"], NOW, pin="12",
                                photo="data:text/plain;base64,aGk=")
        assert set(refused.value.errors) == {"staff_no", "windows", "stand_in_for", "pin", "photo"}


def test_versions_follow_the_tables_and_the_device_texts(engine):
    with write_session(engine) as session:
        assert service.note_config(session, CENTER, NOW) is None  # no window: the edge runs on its TOML
        seed_center(session)
        state = service.note_config(session, CENTER, NOW)
        assert (state.version, state.problem) == (1, None)
        assert service.note_config(session, CENTER, NOW).version == 1  # nothing changed, no new version
        content = json.loads(service._latest(session, CENTER).content)
        assert content["windows"] == [{"number": 3, "kind": "dedicated", "services": ["A"], "staff_no": "1003"}]
        member = next(m for m in content["roster"] if m["staff_no"] == "1003")
        assert member["title"] == "社保专员" and member["pin_hash"].startswith("scrypt$")
        assert content["items"][0]["materials"][0]["name"] == "居民身份证"
        assert content["services"] == [{"prefix": "A", "name": "社保业务"}]
        assert content["profile"]["code"] == CENTER and "opening_hours" in content["profile"]
        # An edit elsewhere (the item's queue service renamed) is a new version, unless the boards cannot show it
        # (a name stored before the catalogue checked it, here written straight into its table).
        stored = session.get(QueueServiceName, (CENTER, "A"))
        stored.name = "堃业务"
        session.add(stored)
        state = service.note_config(session, CENTER, NOW + timedelta(seconds=1))
        assert state.version == 1 and "堃业务" in state.problem and "字：堃" in state.problem
        set_service_name(session, CLI_USER, CENTER, "A", "社保服务", now=NOW)
        assert service.note_config(session, CENTER, NOW + timedelta(seconds=2)).version == 2
        # What the fleet publishes verifies with the edge's key for this center, and is a valid message.
        key = bytes(range(32))
        payload = messages.decode("center_config", service._message(CENTER, service._latest(session, CENTER), key))
        assert signing.verify_for_edge(key, CENTER, payload) and payload["version"] == 2


def test_the_edges_reports_and_a_rollback(engine):
    with write_session(engine) as session:
        seed_center(session)
        service.note_config(session, CENTER, NOW)
        assert service.config_view(session, CENTER)["status"] == service.PENDING
        report = {"v": 1, "version": 1, "status": "applied", "in_force": 1}
        assert service.record_reported(session, CENTER, report, NOW) == service.APPLIED
        service.save_member(session, CLI_USER, CENTER, "1003", "王芳", "首席代办员", [], [], NOW)
        service.delete_window(session, CLI_USER, CENTER, 3, NOW)
        service.save_window(session, CLI_USER, CENTER, 1, "general", ["A"], "", NOW)
        assert service.note_config(session, CENTER, NOW).version == 2
        assert service.config_view(session, CENTER)["status"] == service.PENDING
        rejected = {"v": 1, "version": 2, "status": "rejected", "in_force": 1, "error": "window 1 serves D"}
        assert service.record_reported(session, CENTER, rejected, NOW) == service.REJECTED

        made = service.rollback(session, CLI_USER, CENTER, 1, NOW)
        assert made.version == 3 and made.cause == "rollback to v1"
        assert json.loads(made.content) == json.loads(service._latest(session, CENTER).content)
        view = service.config_view(session, CENTER)
        assert [w["number"] for w in view["windows"]] == [3]  # the tables are back as they were in v1
        assert next(m for m in view["roster"] if m["staff_no"] == "1003")["title"] == "社保专员"
        assert service.note_config(session, CENTER, NOW).version == 3  # and the job leaves the roll-back alone
        assert view["status"] == service.PENDING
        service.record_reported(session, CENTER, {"v": 1, "version": 3, "status": "applied", "in_force": 3}, NOW)
        assert service.config_view(session, CENTER)["status"] == service.APPLIED
        with pytest.raises(KeyError):
            service.rollback(session, CLI_USER, CENTER, 99, NOW)


def test_a_town_operator_cannot_see_or_edit_another_towns_staff(fleet_settings, engine):
    with write_session(engine) as session:
        seed_center(session)
    own = {"Authorization": "Bearer " + add_user(engine, "town-a", "town_operator", CENTER[:9])}
    other = {"Authorization": "Bearer " + add_user(engine, "town-b", "town_operator", OTHER_TOWN_CENTER[:9])}
    reader = {"Authorization": "Bearer " + add_user(engine, "reader", "read_only", None)}
    with TestClient(create_app(fleet_settings, clock=lambda: NOW)) as client:
        url = f"/api/centers/{CENTER}/center-config"
        assert client.get(url, headers=own).json()["windows"][0]["number"] == 3
        assert client.get(url, headers=other).status_code == 404
        body = {"name": "王芳", "title": "窗口负责人", "windows": [3]}
        assert client.put(f"/api/centers/{CENTER}/roster/1003", json=body, headers=other).status_code == 404
        assert client.put(f"/api/centers/{CENTER}/roster/1003", json=body, headers=reader).status_code == 403
        answer = client.put(f"/api/centers/{CENTER}/roster/1003", json=body, headers=own)
        assert answer.status_code == 200, answer.text
        assert next(m for m in answer.json()["roster"] if m["staff_no"] == "1003")["title"] == "窗口负责人"
        # A version was made with the edit (the app's job may have made the first one already) and is waiting for
        # the center's edge credentials: nothing to sign it with yet.
        assert answer.json()["version"] >= 1 and answer.json()["problem"].startswith("no edge credentials")
        refused = client.put(f"/api/centers/{CENTER}/roster/1004", json={"name": "王喆"}, headers=own)
        assert refused.status_code == 422 and "喆" in refused.json()["detail"]["name"]
        assert client.post(f"/api/centers/{CENTER}/center-config/rollback", json={"version": 1},
                           headers=other).status_code == 404
        assert [row["center_code"] for row in client.get("/api/center-config", headers=own).json()] == [CENTER]
        assert client.get("/api/center-config", headers=other).json() == []  # not another town's
        assert client.get("/api/center-config", headers=reader).json()[0]["status"] == service.PENDING
    with Session(engine) as session:
        entries = [e for e in audit.visible_entries(session, CLI_USER) if e.action == "center.staff"]
    assert entries[0].username == "town-a" and entries[0].center_code == CENTER
    assert "246810" not in (entries[-1].detail or "") and "scrypt" not in (entries[-1].detail or "")


def test_a_device_text_the_boards_cannot_show_is_refused_naming_its_characters(engine):
    from fleet.devconfig import config as devconfig

    with write_session(engine) as session:
        with pytest.raises(devconfig.ConfigError, match="含设备字库没有的字：堃（"):
            devconfig.set_scope_config(session, "county", "445202", "queue_display", {"idle_text": "欢迎光临堃"},
                                       "admin", NOW)
        revision, _ = devconfig.set_scope_config(session, "county", "445202", "queue_display",
                                                 {"idle_text": "示例镇欢迎您"}, "admin", NOW)
        assert revision.revision == 1


@pytest.mark.browser
def test_the_staffing_page_edits_a_title_shows_the_version_and_rolls_back(fleet_settings, engine, page):
    with write_session(engine) as session:
        seed_center(session)
    add_user(engine, "town-a", "town_operator", CENTER[:9])
    with serve(create_app(fleet_settings, clock=lambda: NOW)) as fleet:
        # The fleet's own first version (its center_config job, once on this stopped clock), or an edit made
        # before that job ran becomes v1 and leaves nothing to roll back to.
        wait_for(lambda: first_version(engine), "the fleet's first version of the center's configuration")
        log_in(page, fleet, "town-a")
        page.goto(f"{fleet}/centers/{CENTER}/staffing")
        assert page.locator("#roster tr[data-staff='1003'] .title").inner_text() == "社保专员"
        save_staff_member(page, fleet, CENTER, "1003", "王芳", "首席代办员", 3)
        assert page.locator("#roster tr[data-staff='1003'] .title").inner_text() == "首席代办员"
        # Not delivered: the center has no edge credentials yet, and the page says so.
        assert page.locator("#config-status").inner_text() == "待生效"
        assert page.locator("#config-problem").inner_text().startswith("no edge credentials")
        newest = page.locator("#versions tbody tr").first.get_attribute("data-version")

        # A name the boards cannot show is refused, naming the characters.
        form = page.locator("#staff-form")
        form.locator("input[name=staff_no]").fill("1004")
        form.locator("input[name=name]").fill("王喆")
        page.click("#staff-submit")
        assert "喆" in page.locator("#staffing-error [data-field=name]").inner_text()

        page.goto(f"{fleet}/centers/{CENTER}/staffing")
        page.locator("#versions tr[data-version='1'] button.rollback").click()
        page.wait_for_url(f"{fleet}/centers/{CENTER}/staffing")
        assert int(page.locator("#versions tbody tr").first.get_attribute("data-version")) == int(newest) + 1
        assert page.locator("#roster tr[data-staff='1003'] .title").inner_text() == "社保专员"


def test_a_fleet_whose_counter_went_back_numbers_its_next_version_above_the_edges(engine):
    with write_session(engine) as session:
        seed_center(session)
        assert service.note_config(session, CENTER, NOW).version == 1
        # The fleet's database was restored from a backup: its edge runs v7 and refuses v1 as older.
        refused = {"v": 1, "version": 1, "status": "rejected", "in_force": 7, "error": "v1 is older than v7 in force"}
        assert service.record_reported(session, CENTER, refused, NOW) == service.REJECTED
        assert service.note_config(session, CENTER, NOW).version == 8  # the same content, numbered above v7
        assert service.note_config(session, CENTER, NOW).version == 8
