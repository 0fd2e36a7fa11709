"""The catalogue's rules as plain functions: guides checked, versions kept, scope, and what a center handles."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from fleet.audit import AuditEntry
from fleet.auth.principal import CurrentUser
from fleet.catalogue import service
from fleet.catalogue.service import CatalogueError

COUNTY = CurrentUser(id=1, username="county", role="county_admin", division_prefix="445202")
TOWN = CurrentUser(id=2, username="town101", role="town_operator", division_prefix="445202101")
OTHER_TOWN = CurrentUser(id=3, username="town102", role="town_operator", division_prefix="445202102")
READER = CurrentUser(id=4, username="reader", role="read_only", division_prefix=None)
CENTER = "445202101001"

PENSION = {
    "name": "城乡居民养老保险参保登记", "basis": "《中华人民共和国社会保险法》", "conditions": "年满16周岁的城乡居民",
    "materials": [{"name": "居民身份证", "originals": 1, "copies": 1, "note": "本人"},
                  {"name": "户口簿", "originals": 1, "copies": 0}],
    "legal_days": 20, "promised_days": 5, "fee": "不收费", "kind": "promised", "location": "一楼社保窗口",
    "phone": "0663-8888001",
}


def test_a_guide_is_checked_with_every_problem_at_once() -> None:
    with pytest.raises(CatalogueError) as refused:
        service.check_guide({"name": "", "materials": [{"name": "", "originals": 1}, {"name": "照片", "originals": 0,
                                                                                   "copies": 0}],
                             "legal_days": 3, "promised_days": 5, "kind": "immediate"})
    text = str(refused.value)
    for expected in ("事项名称必填", "materials[1]", "照片 原件和复印件不能都为 0 份", "承诺时限不能长于办理时限",
                     "即办件的承诺时限为 0"):
        assert expected in text
    guide = service.check_guide(PENSION)
    assert guide["materials"][1] == {"name": "户口簿", "originals": 1, "copies": 0, "note": ""}


def test_an_edit_makes_a_new_version_and_keeps_the_old_one(engine) -> None:
    with Session(engine) as session:
        service.create_item(session, COUNTY, "SB-001", PENSION)
        session.commit()
        same = service.revise_item(session, COUNTY, "SB-001", dict(PENSION))
        assert same.version == 1  # nothing changed, no version
        edited = {**PENSION, "materials": [*PENSION["materials"], {"name": "一寸照片", "originals": 2, "copies": 0}]}
        second = service.revise_item(session, COUNTY, "SB-001", edited)
        session.commit()
        assert second.version == 2
        assert [row.version for row in service.history(session, "SB-001")] == [2, 1]
        assert len(service.materials_of(service.version_of(session, "SB-001", 1))) == 2
        assert [m["name"] for m in service.materials_of(service.latest(session, "SB-001"))][-1] == "一寸照片"
        actions = [(e.action, json.loads(e.detail)) for e in session.exec(select(AuditEntry)).all()]
        assert ("catalogue.item.revise", {"changed": ["materials"], "version": 2}) in actions


def test_towns_see_the_county_items_and_their_own_never_another_towns(engine) -> None:
    with Session(engine) as session:
        service.create_item(session, COUNTY, "SB-001", PENSION)
        service.create_item(session, TOWN, "T101-001", {**PENSION, "name": "本镇事项"})
        service.create_item(session, OTHER_TOWN, "T102-001", {**PENSION, "name": "他镇事项"})
        session.commit()
        assert [r.code for r in service.visible_items(session, TOWN)] == ["SB-001", "T101-001"]
        assert [r.code for r in service.visible_items(session, COUNTY)] == ["SB-001", "T101-001", "T102-001"]
        assert [r.code for r in service.visible_items(session, COUNTY, "本镇")] == ["T101-001"]
        assert [r.code for r in service.visible_items(session, COUNTY, "sb-0")] == ["SB-001"]
        with pytest.raises(PermissionError):  # the county's item: a town reads it, changes it not
            service.revise_item(session, TOWN, "SB-001", {**PENSION, "fee": "10元"})
        with pytest.raises(LookupError):  # another town's item: as if unknown
            service.revise_item(session, TOWN, "T102-001", PENSION)
        with pytest.raises(PermissionError):
            service.create_item(session, READER, "X-1", PENSION, owner_prefix="")
        own = {**PENSION, "name": "本镇事项", "fee": "5元"}
        assert service.revise_item(session, TOWN, "T101-001", own).version == 2


def test_a_center_handles_its_towns_items_and_its_own_choices(engine) -> None:
    with Session(engine) as session:
        service.create_item(session, COUNTY, "SB-001", PENSION)
        service.create_item(session, COUNTY, "YB-001", {**PENSION, "name": "医保参保登记"})
        service.create_item(session, COUNTY, "MZ-001", {**PENSION, "name": "低保申请"})
        service.create_item(session, OTHER_TOWN, "T102-001", PENSION)
        service.set_service_name(session, TOWN, "445202101", "A", "社保业务")
        with pytest.raises(CatalogueError) as unshowable:  # the boards' font has no 龘: the pads would show boxes
            service.set_service_name(session, TOWN, "445202101", "B", "龘业务")
        assert "含设备字库没有的字：龘" in str(unshowable.value)
        service.set_enablement(session, TOWN, "445202101", "SB-001", "A")
        service.set_enablement(session, TOWN, "445202101", "YB-001", "B")
        service.set_enablement(session, TOWN, CENTER, "YB-001", "", enabled=False)  # this center does not
        service.set_enablement(session, TOWN, CENTER, "MZ-001", "C")
        with pytest.raises(PermissionError):
            service.set_enablement(session, TOWN, "445202102003", "SB-001", "A")
        with pytest.raises(LookupError):  # another town's item cannot be enabled here
            service.set_enablement(session, TOWN, CENTER, "T102-001", "A")
        session.commit()
        items = service.center_items(session, CENTER)
        assert [(i["prefix"], i["code"], i["version"]) for i in items] == [("A", "SB-001", 1), ("C", "MZ-001", 1)]
        assert items[0]["service_name"] == "社保业务" and items[0]["materials"][0]["copies"] == 1
        assert service.center_services(session, CENTER) == [{"prefix": "A", "name": "社保业务"},
                                                            {"prefix": "C", "name": "低保申请"}]
        # The other center of the town keeps the town's choice; an edit reaches both at the next version.
        assert [i["code"] for i in service.center_items(session, "445202101002")] == ["SB-001", "YB-001"]
        service.revise_item(session, COUNTY, "SB-001", {**PENSION, "promised_days": 3})
        session.commit()
        assert service.center_items(session, CENTER)[0]["promised_days"] == 3
        assert service.center_items(session, CENTER)[0]["version"] == 2
        json.dumps(service.center_items(session, CENTER))  # JSON-safe, for the signed configuration


def test_a_running_center_seeds_the_catalogue_once(engine) -> None:
    from dataclasses import asdict

    from edge_agent.config import load_config
    from tests.edge.test_guide import SAMPLE

    config = load_config(SAMPLE)
    items = [asdict(item) for item in config.items]
    services = [{"prefix": s.prefix, "name": s.name} for s in config.services]
    with Session(engine) as session:
        assert service.seed_center(session, COUNTY, CENTER, items, services) == ["SB-001", "SB-002", "YB-001"]
        session.commit()
        assert service.seed_center(session, COUNTY, CENTER, items, services) == []
        session.commit()
        handled = service.center_items(session, CENTER)
        assert [(i["code"], i["version"], i["service_name"]) for i in handled] == [
            ("SB-001", 1, "社保业务"), ("SB-002", 1, "社保业务"), ("YB-001", 1, "医保业务")]
        assert handled[1]["materials"][2] == {"name": "近期一寸免冠照片", "originals": 2, "copies": 0, "note": "白底"}
        assert service.latest(session, "SB-001").owner_prefix == "445202101"  # the town's: its operator edits it


def test_what_the_fleet_sends_is_what_the_edge_reads(engine) -> None:
    from edge_agent.guide import notice_lines, parse_items

    with Session(engine) as session:
        service.create_item(session, COUNTY, "SB-001", PENSION)
        service.set_service_name(session, TOWN, "445202101", "A", "社保业务")
        service.set_enablement(session, TOWN, "445202101", "SB-001", "A")
        session.commit()
        sent = json.loads(json.dumps(service.center_items(session, CENTER)))  # as the signed message carries it
    problems: list[str] = []
    (item,) = parse_items(sent, {"A"}, problems)
    assert problems == []
    assert (item.code, item.version, item.kind_label, item.promised_text) == ("SB-001", 1, "承诺件", "5个工作日")
    assert "1. 居民身份证 原件1份、复印件1份（本人）" in notice_lines(item, "示例镇便民服务中心")
