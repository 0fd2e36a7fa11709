"""The center registry's plain functions: the division list import, profiles, rollout coverage, names, search."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from fleet.alerts.evaluate import hours_lookup
from fleet.audit import AuditEntry
from fleet.auth.principal import CurrentUser
from fleet.centers.divisions import DivisionListError, division_level, import_divisions, parse_division_list
from fleet.centers.models import Division
from fleet.centers.names import attach_names, name_or_code_clause
from fleet.centers.profile import ProfileRefused, center_profile, check_profile, save_profile
from fleet.centers.rollout import rollout_coverage, set_rollout_target
from fleet.models import Center

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=TZ)
ADMIN = CurrentUser(id=1, username="admin", role="county_admin", division_prefix=None)

# As the statistics bureau publishes it: code, urban-rural class (villages), name.
DIVISIONS_CSV = """统计用区划代码,城乡分类代码,名称
445202000000,,示例区
445202101000,,示例镇
445202101001,220,东村村委会
445202101002,220,西村村委会
445202101003,111,南街社区居委会
445202102000,,新亨镇
445202102001,220,新亨村村委会
445202102002,220,北山村村委会
"""

TOWN_CENTER = "445202101001"  # 示例镇便民服务中心: the town's center, in the 东村 building
PLANNED_STATION = "445202101002"  # described in the registry, never connected
SILENT_STATION = "445202101003"  # reported yesterday, no profile yet
NEWHENG_STATION = "445202102001"  # offline now, but online earlier today
UNMATCHED = "445202199001"  # no such division in the list


def import_list(session: Session, text: str = DIVISIONS_CSV, prefix: str | None = None) -> None:
    import_divisions(session, parse_division_list(text.encode()), prefix, "admin", NOW)
    session.commit()


def add_center(session: Session, code: str, online: bool, last_seen: datetime | None) -> None:
    center = Center.new(code, NOW - timedelta(days=30))
    center.edge_online, center.edge_last_seen = online, last_seen
    session.add(center)
    session.commit()


def profile(name: str, level: str, **more: str) -> dict[str, str]:
    return {"name": name, "level": level, "address": "示例镇示例路1号", "consult_phone": "0663-8888888",
            "complaint_phone": "12345", "contact_name": "李明", "contact_phone": "138 0000 0000", **more}


def test_levels_come_from_the_code() -> None:
    assert [division_level(code) for code in ("440000000000", "445200000000", "445202000000", "445202101000",
                                              "445202101001")] == ["province", "city", "county", "town", "village"]


def test_the_list_is_read_in_both_shapes_and_in_gbk() -> None:
    rows = parse_division_list(DIVISIONS_CSV.encode("gbk"))
    assert [(r.code, r.name, r.level, r.urban_rural) for r in rows[:3]] == [
        ("445202000000", "示例区", "county", None), ("445202101000", "示例镇", "town", None),
        ("445202101001", "东村村委会", "village", "220")]
    rows = parse_division_list("\ufeff445202101000,示例镇\n\n445202101002,西村村委会\n".encode())
    assert [(r.code, r.name, r.level) for r in rows] == [("445202101000", "示例镇", "town"),
                                                         ("445202101002", "西村村委会", "village")]


def test_a_bad_list_names_every_bad_line_at_once() -> None:
    with pytest.raises(DivisionListError) as refused:
        parse_division_list("445202101000,示例镇\n4452021010,短码\n445202101001,\n445202101000,又一个示例镇\n")
    assert refused.value.errors == ["第 2 行：区划代码须为 12 位数字，而不是 '4452021010'",
                                    "第 3 行（445202101001）：缺少名称", "第 4 行：区划代码 445202101000 与第 1 行重复"]


def test_a_list_that_is_no_csv_is_refused_not_a_server_error() -> None:
    """Schemathesis sent a lone \\r in a field: csv.Error escaped as a 500 (and a NUL would reach PostgreSQL)."""
    with pytest.raises(DivisionListError, match="第 3 行"):
        parse_division_list("445202000000,示例镇\r445202101000,西村\rb")
    with pytest.raises(DivisionListError, match="控制字符"):
        parse_division_list("445202000000,示例\x00镇\n")


def test_an_import_replaces_the_county_and_stays_in_scope(engine) -> None:
    with Session(engine) as session:
        import_list(session)
        import_list(session, "445202101000,示例镇\n445202101001,东村村委会\n")  # the bureau merged villages
        assert session.exec(select(Division.code).order_by(Division.code)).all() == ["445202101000", "445202101001"]
        with pytest.raises(DivisionListError) as refused:
            import_divisions(session, parse_division_list(b"445202102000,xx\n"), "445202101", "town", NOW)
        assert refused.value.errors == ["区划 445202102000 不在您的管辖范围（445202101）内"]


def test_a_profile_is_checked_field_by_field() -> None:
    with pytest.raises(ProfileRefused) as refused:
        check_profile({"name": "示例村委会", "level": "village", "consult_phone": "call me",
                       "opening_hours": "08:30-12:00,11:00-17:30"})
    assert set(refused.value.errors) == {"name", "consult_phone", "opening_hours"}
    assert "便民服务站" in refused.value.errors["name"]
    with pytest.raises(ProfileRefused) as refused:
        check_profile({"name": "示例镇便民服务中心", "level": "city"})
    assert set(refused.value.errors) == {"level"}
    clean = check_profile(profile("示例镇便民服务中心", "town", opening_hours=" 8:30-12:00, 14:00-17:30 "))
    assert clean["opening_hours"] == "08:30-12:00,14:00-17:30"


def test_a_saved_profile_is_audited_and_its_hours_are_the_alerts_hours(engine, fleet_settings) -> None:
    with Session(engine) as session:
        assert center_profile(session, TOWN_CENTER)["registered"] is False
        save_profile(session, ADMIN, TOWN_CENTER, profile("示例镇便民服务中心", "town", opening_hours="09:00-17:00",
                                                          open_on_rest_days="on"), NOW)
        session.commit()
        saved = center_profile(session, TOWN_CENTER)
        assert saved | {"updated_at": None} == {
            "code": TOWN_CENTER, "registered": True, "name": "示例镇便民服务中心", "level": "town",
            "address": "示例镇示例路1号", "consult_phone": "0663-8888888", "complaint_phone": "12345",
            "contact_name": "李明", "contact_phone": "138 0000 0000", "opening_hours": "09:00-17:00",
            "open_on_rest_days": True, "own_hours": True, "updated_at": None, "updated_by": "admin"}
        assert hours_lookup(session, fleet_settings)(TOWN_CENTER).text() == "09:00-17:00"  # one source
        save_profile(session, ADMIN, TOWN_CENTER, profile("示例镇便民服务中心", "town", consult_phone="0663-1234567"),
                     NOW)  # hours left empty: back to the county default
        session.commit()
        assert hours_lookup(session, fleet_settings)(TOWN_CENTER).text() == fleet_settings.opening_hours
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "center.profile")
                               .order_by(AuditEntry.id)).all()
        assert [e.center_code for e in entries] == [TOWN_CENTER, TOWN_CENTER]
        assert json.loads(entries[1].detail) == {"consult_phone": "0663-1234567",
                                                 "opening_hours": "08:30-12:00,14:00-17:30",
                                                 "open_on_rest_days": False}


def seed_rollout(session: Session) -> None:
    import_list(session)
    save_profile(session, ADMIN, TOWN_CENTER, profile("示例镇便民服务中心", "town"), NOW)
    save_profile(session, ADMIN, PLANNED_STATION, profile("西村便民服务站", "village"), NOW)
    session.commit()
    add_center(session, TOWN_CENTER, online=True, last_seen=NOW)
    add_center(session, SILENT_STATION, online=False, last_seen=NOW - timedelta(days=1))
    add_center(session, NEWHENG_STATION, online=False, last_seen=NOW.replace(hour=8))
    add_center(session, UNMATCHED, online=True, last_seen=NOW)


def test_rollout_coverage_with_centers_online_offline_and_missing(engine) -> None:
    with Session(engine) as session:
        seed_rollout(session)
        coverage = rollout_coverage(session, NOW, TZ, target_pct=50)
    towns = {town["name"]: town for town in coverage["towns"]}
    shi_li, xin_heng = towns["示例镇"], towns["新亨镇"]
    assert shi_li["centers"] == [{"code": TOWN_CENTER, "name": "示例镇便民服务中心", "online_today": True}]
    assert [(v["name"], v["station"], v["online_today"]) for v in shi_li["villages"]] == [
        ("东村村委会", None, False),  # the town center in its building is no village station
        ("西村村委会", PLANNED_STATION, False), ("南街社区居委会", SILENT_STATION, False)]
    assert (shi_li["covered_pct"], shi_li["online_pct"], shi_li["meets_target"]) == (75.0, 25.0, True)
    assert (xin_heng["has_center"], xin_heng["villages_with_station"], xin_heng["villages_online_today"]) == \
        (False, 1, 1)  # 新亨村's station went offline this morning: online today all the same
    assert (xin_heng["covered_pct"], xin_heng["online_pct"], xin_heng["meets_target"]) == (33.3, 33.3, False)
    county = coverage["county"]
    assert county["name"] == "示例区"
    assert {k: county[k] for k in ("towns_total", "towns_with_center", "villages_total", "villages_with_station",
                                   "villages_online_today", "covered_pct", "online_pct", "meets_target")} == {
        "towns_total": 2, "towns_with_center": 1, "villages_total": 5, "villages_with_station": 3,
        "villages_online_today": 1, "covered_pct": 57.1, "online_pct": 28.6, "meets_target": True}
    assert [c["code"] for c in coverage["unmatched"]] == [UNMATCHED]


def test_the_target_is_the_countys_and_a_town_sees_its_own_rollout(engine) -> None:
    with Session(engine) as session:
        seed_rollout(session)
        set_rollout_target(session, ADMIN, 60, NOW)
        session.commit()
        coverage = rollout_coverage(session, NOW, TZ, scope_prefix="445202102")
    assert coverage["target_pct"] == 60
    assert [town["name"] for town in coverage["towns"]] == ["新亨镇"]
    assert coverage["county"]["meets_target"] is False and coverage["unmatched"] == []


def test_names_beside_codes_and_search_by_name_or_code(engine) -> None:
    with Session(engine) as session:
        seed_rollout(session)
        rows = attach_names(session, [{"code": TOWN_CENTER, "town_code": TOWN_CENTER[:9]},
                                      {"code": UNMATCHED, "town_code": UNMATCHED[:9]}])
        assert rows == [{"code": TOWN_CENTER, "town_code": "445202101", "name": "示例镇便民服务中心",
                         "town_name": "示例镇"},
                        {"code": UNMATCHED, "town_code": "445202199", "name": None, "town_name": None}]

        def found(q: str) -> list[str]:
            return list(session.exec(select(Center.code).where(name_or_code_clause(q, Center.code))
                                     .order_by(Center.code)).all())

        assert found("示例镇便民") == [TOWN_CENTER]
        assert found("新亨镇") == [NEWHENG_STATION]  # the town's name finds its centers
        assert found("2199") == [UNMATCHED]
        assert found("%") == []


def test_every_message_of_the_registry_pages_has_english() -> None:
    import re
    from pathlib import Path

    import fleet.centers.routes  # noqa: F401  (adds the registry's English)
    from fleet.centers.profile import FIELD_LABELS, LEVEL_LABELS
    from fleet.web.i18n import CATALOGUES, EN

    templates = Path(__file__).resolve().parents[2] / "fleet" / "web" / "templates"
    used = {*FIELD_LABELS.values(), *LEVEL_LABELS.values(), "留空则使用全县默认开放时间",
            "统一标识，如 某某镇便民服务中心 / 某某村便民服务站"}
    for name in ("registry.html", "registry_profile.html", "coverage_rollout.html"):
        used |= set(re.findall(r'_\(\s*"([^"]+)"', (templates / name).read_text()))
        used |= set(re.findall(r"_\(\s*'([^']+)'", (templates / name).read_text()))
    assert sorted(text for text in used if re.search(r"[\u4e00-\u9fff]", text) and text not in CATALOGUES[EN]) == []
