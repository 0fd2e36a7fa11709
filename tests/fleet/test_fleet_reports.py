"""The county's report (fleet.reports): figures per county, town, center, window and staff on a seeded Monday
(tests/fleet/report_seed.py works every number out), period shortcuts, scope, CSV/XLSX exports, the national
好差评 rating records and the monthly report to the webhooks, on a fixed clock."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import openpyxl
import pytest
from fastapi.testclient import TestClient
from fleet_testkit import add_user
from report_seed import (
    BEIJING,
    CENTER,
    DAY,
    END_OF_DAY,
    NEXT_MONTH_FIRST,
    OTHER_CASE_NO,
    OTHER_CENTER,
    OTHER_MATTER,
    at,
    seed,
)
from sqlmodel import Session, select
from test_fleet_notify import Receiver

from fleet.alerts.evaluate import hours_lookup
from fleet.app import create_app
from fleet.centers.models import DIVISION_COUNTY, DIVISION_TOWN, LEVEL_TOWN, CenterProfile, Division
from fleet.db import write_session
from fleet.notify import Notification, WebhookTarget
from fleet.reports.figures import build_report, percentile
from fleet.reports.models import MonthlyReportDelivery
from fleet.reports.monthly import CLAIM_S, monthly_notification, monthly_report_job
from fleet.reports.periods import shortcut_dates
from fleet.reports.rating_records import rating_records


def report(engine, settings, by: str, now=END_OF_DAY, first: date = DAY, last: date = DAY, user=None) -> dict:
    with Session(engine) as session:
        rows = build_report(session, by, first, last, BEIJING, now, hours_lookup(session, settings), user)["rows"]
    return {"/".join(row["key"]): row for row in rows}


@pytest.fixture
def seeded(engine):
    seed(engine)
    return engine


def test_a_day_of_a_center_by_center_window_and_staff(seeded, fleet_settings) -> None:
    center = report(seeded, fleet_settings, "center")[CENTER]
    assert {k: center[k] for k in ("issued", "served", "wait_p50_min", "wait_p90_min", "handling_avg_min")} == {
        "issued": 4, "served": 3, "wait_p50_min": 10.0, "wait_p90_min": 20.0, "handling_avg_min": 20.0}
    assert {k: center[k] for k in ("satisfaction_rate", "rated", "coverage", "bad", "bad_cases", "closed_on_time")} \
        == {"satisfaction_rate": 50.0, "rated": 2, "coverage": 66.7, "bad": 1, "bad_cases": 1, "closed_on_time": 1}
    assert (center["attendance_hours"], center["empty_min"]) == (round((420 + 430) / 60, 1), 110 + 420)

    windows = report(seeded, fleet_settings, "window")
    assert set(windows) == {f"{CENTER}/1", f"{CENTER}/2", f"{CENTER}/3", f"{OTHER_CENTER}/1"}
    one, two, three = windows[f"{CENTER}/1"], windows[f"{CENTER}/2"], windows[f"{CENTER}/3"]
    assert (one["issued"], one["served"], one["wait_p50_min"], one["wait_p90_min"], one["handling_avg_min"]) == (
        None, 2, 10.0, 20.0, 15.0)  # a ticket is issued to a queue, not a window
    assert (one["satisfaction_rate"], one["bad"], one["attendance_hours"], one["empty_min"]) == (50.0, 1, 7.0, 0)
    assert (three["served"], three["coverage"], three["attendance_hours"], three["empty_min"]) == (
        1, 0.0, round(430 / 60, 1), 110)  # late 50 minutes, away an hour
    assert (two["served"], two["empty_min"], two["label"]) == (0, 420, f"{CENTER} · 2号窗口")

    staff = report(seeded, fleet_settings, "staff")
    zhang, wang = staff[f"{CENTER}/1001"], staff[f"{CENTER}/1003"]
    assert (zhang["served"], zhang["bad"], zhang["bad_cases"], zhang["attendance_hours"], zhang["empty_min"]) == (
        2, 1, 1, 7.0, None)
    assert (wang["served"], wang["attendance_hours"], wang["label"]) == (1, round(430 / 60, 1), f"{CENTER} · 1003 王芳")


def test_county_and_town_rows_add_their_centers_up(seeded, fleet_settings) -> None:
    [county] = report(seeded, fleet_settings, "county").values()
    assert (county["issued"], county["served"], county["rated"], county["satisfaction_rate"]) == (5, 4, 3, 66.7)
    assert county["empty_min"] == 530  # OTHER_CENTER's only window was staffed all day
    towns = report(seeded, fleet_settings, "town")
    assert set(towns) == {CENTER[:9], OTHER_CENTER[:9]}
    assert (towns[OTHER_CENTER[:9]]["served"], towns[OTHER_CENTER[:9]]["attendance_hours"]) == (1, 9.0)


def test_rows_name_their_county_town_and_center_when_the_county_has_named_them(seeded, fleet_settings) -> None:
    with write_session(seeded) as session:
        session.add(CenterProfile(center_code=CENTER, name="示例镇便民服务中心", level=LEVEL_TOWN))
        session.add(Division(code=CENTER[:9] + "000", name="示例镇", level=DIVISION_TOWN))
        session.add(Division(code=CENTER[:6] + "000000", name="示例县", level=DIVISION_COUNTY))
    assert report(seeded, fleet_settings, "center")[CENTER]["label"] == f"{CENTER} 示例镇便民服务中心"
    assert report(seeded, fleet_settings, "center")[OTHER_CENTER]["label"] == OTHER_CENTER  # not described yet
    assert report(seeded, fleet_settings, "window")[f"{CENTER}/3"]["label"] == f"{CENTER} 示例镇便民服务中心 · 3号窗口"
    assert report(seeded, fleet_settings, "town")[CENTER[:9]]["label"] == f"{CENTER[:9]} 示例镇"
    assert report(seeded, fleet_settings, "county")[CENTER[:6]]["label"] == f"{CENTER[:6]} 示例县"


def test_no_minute_after_now_is_counted(seeded, fleet_settings) -> None:
    windows = report(seeded, fleet_settings, "window", now=at(10, 30))
    # window 3 empty 08:30-09:20 and 10:00-10:30, window 2 08:30-10:30; 王芳's 11:00 sign-in is still to come.
    assert (windows[f"{CENTER}/3"]["empty_min"], windows[f"{CENTER}/2"]["empty_min"]) == (80, 120)
    assert windows[f"{CENTER}/3"]["attendance_hours"] == round(40 / 60, 1)


def test_a_rest_day_has_no_kong_gang(seeded, fleet_settings) -> None:
    sunday = date(2026, 11, 1)
    windows = report(seeded, fleet_settings, "window", first=sunday, last=DAY)
    assert windows[f"{CENTER}/2"]["empty_min"] == 420  # only Monday's opening hours


def test_period_shortcuts() -> None:
    today = date(2026, 12, 1)
    assert shortcut_dates("this_month", today) == (date(2026, 12, 1), today)
    assert shortcut_dates("last_month", today) == (date(2026, 11, 1), date(2026, 11, 30))
    assert shortcut_dates("this_quarter", today) == (date(2026, 10, 1), today)
    assert shortcut_dates("this_year", today) == (date(2026, 1, 1), today)
    assert shortcut_dates("last_month", date(2026, 3, 31)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert shortcut_dates("last_month", date(2026, 1, 15)) == (date(2025, 12, 1), date(2025, 12, 31))
    assert shortcut_dates("this_quarter", date(2026, 6, 30)) == (date(2026, 4, 1), date(2026, 6, 30))
    assert (percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9), percentile([7], 0.5), percentile([], 0.5)) == (
        9, 7, None)


def test_a_town_operator_s_report_covers_only_their_town(fleet_settings) -> None:
    app = create_app(fleet_settings, clock=lambda: END_OF_DAY)
    seed(app.state.engine)
    town = add_user(app.state.engine, "town-a", "town_operator", CENTER[:9])
    headers = {"Authorization": f"Bearer {town}"}
    with TestClient(app) as client:
        for by in ("county", "town", "center", "window", "staff"):
            answer = client.get("/api/reports", params={"by": by, "since": DAY.isoformat(), "until": DAY.isoformat()},
                                headers=headers)
            assert answer.status_code == 200
            assert answer.json()["rows"] and all(not row["label"].startswith(OTHER_CENTER)
                                                 and not row["key"][0].startswith(OTHER_CENTER[:9])
                                                 for row in answer.json()["rows"])
        [county] = client.get("/api/reports", params={"by": "county", "since": DAY.isoformat()},
                              headers=headers).json()["rows"]
        assert (county["issued"], county["served"], county["rated"]) == (4, 3, 2)  # CENTER's alone
        records = client.get("/api/ratings/records", params={"since": DAY.isoformat()}, headers=headers).json()
        assert {r["center_code"] for r in records} == {CENTER}
        book = openpyxl.load_workbook(io.BytesIO(client.get(
            "/api/reports/export", params={"by": "center", "since": DAY.isoformat()}, headers=headers).content))
        assert [row[0] for row in book.active.iter_rows(min_row=3, values_only=True)] == [CENTER]


def test_csv_and_xlsx_exports_hold_the_report(fleet_settings) -> None:
    app = create_app(fleet_settings, clock=lambda: END_OF_DAY)
    seed(app.state.engine)
    token = add_user(app.state.engine)
    headers = {"Authorization": f"Bearer {token}"}
    params = {"by": "window", "since": DAY.isoformat(), "until": DAY.isoformat()}
    with TestClient(app) as client:
        rows = client.get("/api/reports", params=params, headers=headers).json()["rows"]
        answer = client.get("/api/reports/export", params={**params, "format": "csv"}, headers=headers)
        assert answer.headers["content-type"].startswith("text/csv")
        table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
        xlsx = client.get("/api/reports/export", params={**params, "format": "xlsx"}, headers=headers)
        assert "attachment" in xlsx.headers["content-disposition"]
        assert client.get("/api/reports", params={"since": "2026-11-02", "until": "2026-11-01"},
                          headers=headers).status_code == 422
    assert table[0][:3] == ["窗口", "取号数", "办结数"] and table[0][-1] == "空岗（分钟）"
    assert [line[0] for line in table[1:]] == [row["label"] for row in rows]
    window_3 = next(line for line in table if line[0] == f"{CENTER} · 3号窗口")
    assert (window_3[1], window_3[2], window_3[-1]) == ("", "1", "110")
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet["A1"].value.startswith("绩效报表（按窗口） 2026-11-02 至 2026-11-02")
    values = list(sheet.iter_rows(min_row=2, values_only=True))
    assert values[0] == tuple(table[0])
    by_label = {line[0]: line for line in values[1:]}
    assert by_label[f"{CENTER} · 3号窗口"][1:3] == (None, 1)  # numbers stay numbers
    assert by_label[f"{CENTER} · 2号窗口"][-1] == 420


def test_rating_records_carry_the_national_fields(seeded, fleet_settings) -> None:
    start = at(0, 0).timestamp()
    with Session(seeded) as session:
        records = rating_records(session, start, start + 86400, BEIJING)
    assert [(r["center_code"], r["score"]) for r in records] == [(CENTER, 5), (CENTER, 1), (OTHER_CENTER, 5)]
    bad = records[1]
    assert bad == {"rating_id": f"rid-{CENTER}-A002", "case_no": "", "center_code": CENTER, "channel": "现场评价器",
                   "score": 1,
                   "score_label": "非常不满意", "service": "社保业务", "window": "1号窗口", "staff": "张敏",
                   "staff_no": "1001", "rated_at": "2026-11-02 09:26:00", "reason": "服务效率",
                   "rectification": "已办结；回访：已联系到群众；整改（窗口增派人手）；按期办结"}
    assert (records[0]["reason"], records[0]["rectification"]) == ("", "")
    assert (records[2]["case_no"], records[2]["service"]) == (OTHER_CASE_NO, OTHER_MATTER)  # the business system's


def test_monthly_report_goes_out_once_on_the_first_across_restarts(fleet_settings) -> None:
    receiver, town_receiver = Receiver(), Receiver()
    try:
        settings = fleet_settings.model_copy(update={
            "notify_webhooks": [WebhookTarget(kind="json", url=receiver.url),
                                WebhookTarget(kind="json", url=town_receiver.url + "?town", prefix=OTHER_CENTER[:9])],
            "notify_attempts": 1})
        app = create_app(settings, clock=lambda: NEXT_MONTH_FIRST)
        engine = app.state.engine
        seed(engine)
        assert monthly_report_job(engine, settings, NEXT_MONTH_FIRST - timedelta(days=2)) == []  # Nov 29: not yet
        assert len(monthly_report_job(engine, settings, NEXT_MONTH_FIRST)) == 2
        [body] = receiver.bodies
        assert (body["event"], body["data"]["month"], body["data"]["first"], body["data"]["last"]) == (
            "report.monthly", "2026-11", "2026-11-01", "2026-11-30")
        assert body["title"] == "【月报】2026年11月 好差评与考勤"
        centers = {row["key"][0]: row for row in body["data"]["centers"]}
        assert set(centers) == {CENTER, OTHER_CENTER}
        # 空岗 counts every open day of the month: on November's 20 other working days nobody sat at its 3 windows.
        assert (centers[CENTER]["served"], centers[CENTER]["satisfaction_rate"], centers[CENTER]["empty_min"]) == (
            3, 50.0, 530 + 20 * 3 * 420)
        assert any(line.startswith(f"{CENTER}：") and "满意率 50.0%" in line for line in body["lines"])
        [town_body] = town_receiver.bodies  # the town's robot gets its own town only
        assert [row["key"][0] for row in town_body["data"]["centers"]] == [OTHER_CENTER]

        assert monthly_report_job(engine, settings, NEXT_MONTH_FIRST + timedelta(minutes=10)) == []
        app.state.engine.dispose()
        restarted = create_app(settings, clock=lambda: NEXT_MONTH_FIRST)  # the same database, a new process
        assert monthly_report_job(restarted.state.engine, settings, NEXT_MONTH_FIRST + timedelta(hours=2)) == []
        assert monthly_report_job(restarted.state.engine, settings, NEXT_MONTH_FIRST + timedelta(days=1)) == []
        assert (len(receiver.bodies), len(town_receiver.bodies)) == (1, 1)
        restarted.state.engine.dispose()
    finally:
        receiver.close()
        town_receiver.close()


def test_a_monthly_report_to_a_wecom_robot_fits_its_message_limit(seeded, fleet_settings) -> None:
    with Session(seeded) as session:
        whole = monthly_notification(session, fleet_settings, date(2026, 11, 1), date(2026, 11, 30),
                                     NEXT_MONTH_FIRST, None)
        budget = len(Notification(whole.title, whole.lines[:-1]).markdown().encode())  # room for one center less
        cut = monthly_notification(session, fleet_settings, date(2026, 11, 1), date(2026, 11, 30),
                                   NEXT_MONTH_FIRST, None, max_bytes=budget)
    assert [line.split("：")[0] for line in whole.lines[-2:]] == [CENTER, OTHER_CENTER]
    assert cut.lines[-2].startswith(f"{CENTER}：") and cut.lines[-1] == "另有 1 个中心，详见报表页面"
    assert len(cut.data["centers"]) == 2  # the JSON kind's data holds them all


def test_a_monthly_report_the_webhook_refused_is_tried_again_later(fleet_settings) -> None:
    receiver = Receiver()
    receiver.fail_first = 1
    try:
        settings = fleet_settings.model_copy(update={
            "notify_webhooks": [WebhookTarget(kind="json", url=receiver.url)], "notify_attempts": 1})
        app = create_app(settings, clock=lambda: NEXT_MONTH_FIRST)
        engine = app.state.engine
        assert monthly_report_job(engine, settings, NEXT_MONTH_FIRST) == []  # HTTP 500
        assert monthly_report_job(engine, settings, NEXT_MONTH_FIRST + timedelta(minutes=10)) == []  # claimed
        later = NEXT_MONTH_FIRST + timedelta(seconds=CLAIM_S + 1)
        assert len(monthly_report_job(engine, settings, later)) == 1
        assert len(receiver.bodies) == 2
        with Session(engine) as session:
            [delivery] = session.exec(select(MonthlyReportDelivery)).all()
        assert (delivery.month, delivery.attempts, delivery.sent_at is not None) == ("2026-11", 2, True)
        assert "本月无数据" in receiver.bodies[-1]["lines"]
        engine.dispose()
    finally:
        receiver.close()
