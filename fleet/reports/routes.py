"""Reports: JSON API, CSV/XLSX downloads and the pages /reports (绩效报表) and /attendance (考勤).

Everything answers within the user's scope (a town operator's report holds their town only); the figures
come from fleet.reports.figures, the rating records from fleet.reports.rating_records.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlmodel import Session

from fleet.alerts.evaluate import hours_lookup
from fleet.attendance import attendance_days
from fleet.auth.deps import CurrentUserDep
from fleet.auth.principal import CurrentUser
from fleet.deps import NowDep, SessionDep, SettingsDep
from fleet.overview import local_day
from fleet.reports import export
from fleet.reports.figures import FIGURES, GROUP_LABELS, REPORT_GROUPINGS, Period, build_report, empty_window_seconds
from fleet.reports.figures import staffed_intervals as staffed
from fleet.reports.periods import SHORTCUT_LABELS, SHORTCUTS, THIS_MONTH, check_period, shortcut_dates
from fleet.reports.rating_records import rating_records
from fleet.satisfaction import RATE_DEFINITION
from fleet.settings import Settings
from fleet.web.i18n import EN, Translator, add_messages, request_lang, translator
from fleet.web.pages import render

GroupBy = Literal["county", "town", "center", "window", "staff"]
Shortcut = Literal["this_month", "last_month", "this_quarter", "this_year"]
PeriodQuery = Annotated[Shortcut | None, Query(description="本月 this_month, 上月 last_month, 本季度 this_quarter, "
                                                           "本年 this_year; since/until win when given")]
SinceQuery = Annotated[date | None, Query(description="first day (Asia/Shanghai), inclusive")]
UntilQuery = Annotated[date | None, Query(description="last day (Asia/Shanghai), inclusive")]
CenterQuery = Annotated[str | None, Query(pattern=r"^[0-9]{12}$", description="one center only")]

api = APIRouter(prefix="/api", tags=["reports"])
FILE = {"schema": {"type": "string", "format": "binary"}}
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the file (Content-Disposition: attachment)",
          "content": {export.CSV_MEDIA_TYPE: FILE, export.XLSX_MEDIA_TYPE: FILE}},
    422: {"description": "the period cannot be reported (backwards, too long, outside 2000-2100)"}}
pages = APIRouter(include_in_schema=False)


class ReportRow(BaseModel):
    key: list[str]
    label: str
    issued: int | None  # None for a window or staff member: tickets are issued to a queue
    served: int
    wait_p50_min: float | None
    wait_p90_min: float | None
    handling_avg_min: float | None
    satisfaction_rate: float | None  # 满意率, fleet.satisfaction's one definition
    rated: int
    coverage: float | None  # 评价覆盖率, rated / served in percent
    bad: int  # 差评 that count
    bad_cases: int
    closed_on_time: int
    attendance_hours: float
    empty_min: int | None  # 空岗; None for a staff member


class ReportOut(BaseModel):
    by: str
    first: str
    last: str
    rows: list[ReportRow]


class RatingRecordOut(BaseModel):
    rating_id: str
    case_no: str  # 办件编号 from the window's business system, '' when the rating was not asked for by one
    center_code: str
    channel: str  # 评价渠道: 现场评价器
    score: int  # 等级 1-5
    score_label: str
    service: str  # 事项
    window: str
    staff: str  # 工作人员 (name, '' when the edge never named them)
    staff_no: str
    rated_at: str  # 评价时间, Beijing time
    reason: str  # 差评原因
    rectification: str  # 整改情况


def period_days(period: str | None, since: date | None, until: date | None, today: date) -> tuple[date, date]:
    """The days a request asks for: since/until (either alone: to today / from its month's start), else the
    shortcut, else this month. 422 in words when the period cannot be reported."""
    if since is not None or until is not None:
        last = until or today
        first = since or last.replace(day=1)
    else:
        first, last = shortcut_dates(period or THIS_MONTH, today)
    try:
        check_period(first, last)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    return first, last


def _report(session: Session, settings: Settings, now: datetime, user: CurrentUser, by: str, period: str | None,
            since: date | None, until: date | None) -> dict[str, Any]:
    first, last = period_days(period, since, until, local_day(now, settings.tz))
    return build_report(session, by, first, last, settings.tz, now, hours_lookup(session, settings), user)


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})


@api.get("/reports", response_model=ReportOut)
def get_report(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep, by: GroupBy = "center",
               period: PeriodQuery = None, since: SinceQuery = None, until: UntilQuery = None) -> dict[str, Any]:
    """The report (绩效报表) by county, town, center, window or staff for a period: tickets issued and served,
    waiting p50/p90, handling time, 满意率, coverage, 差评 and their cases closed on time, attendance, 空岗."""
    return _report(session, settings, now, user, by, period, since, until)


@api.get("/reports/export", response_class=Response,
         responses=FILE_RESPONSES)
def get_report_export(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
                      format: Literal["csv", "xlsx"] = "xlsx", by: GroupBy = "center", period: PeriodQuery = None,
                      since: SinceQuery = None, until: UntilQuery = None) -> Response:
    """The report as a CSV or XLSX file (the same rows and figures as /api/reports)."""
    report = _report(session, settings, now, user, by, period, since, until)
    headings, rows = export.report_table(report)
    name = f"绩效报表_{GROUP_LABELS[by]}_{report['first']}_{report['last']}"
    if format == "csv":
        return _download(export.to_csv(headings, rows), export.CSV_MEDIA_TYPE, f"{name}.csv")
    caption = f"绩效报表（按{GROUP_LABELS[by]}） {report['first']} 至 {report['last']} · {RATE_DEFINITION}"
    return _download(export.to_xlsx("绩效报表", headings, rows, caption), export.XLSX_MEDIA_TYPE, f"{name}.xlsx")


def _records(session: Session, settings: Settings, now: datetime, user: CurrentUser, period: str | None,
             since: date | None, until: date | None) -> tuple[date, date, list[dict[str, Any]]]:
    first, last = period_days(period, since, until, local_day(now, settings.tz))
    span = Period(first, last, settings.tz, now.timestamp())
    return first, last, rating_records(session, span.start_ts, max(span.start_ts, span.end_ts), settings.tz, user)


@api.get("/ratings/records", response_model=list[RatingRecordOut])
def get_rating_records(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
                       period: PeriodQuery = None, since: SinceQuery = None,
                       until: UntilQuery = None) -> list[dict[str, Any]]:
    """Rating records in the national 好差评 system's fields (评价渠道 现场评价器, 等级, 事项, 窗口, 工作人员,
    评价时间, 差评原因, 整改情况), oldest first."""
    return _records(session, settings, now, user, period, since, until)[2]


@api.get("/ratings/records/export", response_class=Response,
         responses=FILE_RESPONSES)
def get_rating_records_export(user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
                              format: Literal["csv", "xlsx"] = "xlsx", period: PeriodQuery = None,
                              since: SinceQuery = None, until: UntilQuery = None) -> Response:
    """The rating records as a CSV or XLSX file."""
    first, last, records = _records(session, settings, now, user, period, since, until)
    headings, rows = export.records_table(records)
    name = f"好差评记录_{first.isoformat()}_{last.isoformat()}"
    if format == "csv":
        return _download(export.to_csv(headings, rows), export.CSV_MEDIA_TYPE, f"{name}.csv")
    return _download(export.to_xlsx("好差评记录", headings, rows), export.XLSX_MEDIA_TYPE, f"{name}.xlsx")


def shown_label(by: str, row: dict[str, Any], translate: Translator) -> str:
    """A row's name on the page, in the page's language (the exports keep the Chinese `label`)."""
    place = row["label"].split(" · ")[0]  # the code and the center's name
    if by == "window":
        return f"{place} · {translate('{n}号窗口', n=row['key'][1])}"
    if by == "staff" and not row["key"][1]:
        return f"{place} · {translate('未登录')}"
    return row["label"]


def _chart_data(report: dict[str, Any]) -> str:
    rows = report["rows"]
    return json.dumps({"labels": [row["shown"] for row in rows], "served": [row["served"] for row in rows],
                       "satisfaction": [row["satisfaction_rate"] for row in rows],
                       "coverage": [row["coverage"] for row in rows]}, ensure_ascii=False)


@pages.get("/reports", response_class=HTMLResponse)
def report_page(request: Request, user: CurrentUserDep, session: SessionDep, settings: SettingsDep, now: NowDep,
                by: GroupBy = "center", period: PeriodQuery = None, since: SinceQuery = None,
                until: UntilQuery = None) -> Response:
    report = _report(session, settings, now, user, by, period, since, until)
    translate = translator(request_lang(request))
    for row in report["rows"]:
        row["shown"] = shown_label(by, row, translate)
    query = f"by={by}&since={report['first']}&until={report['last']}"
    return render(request, "report.html", {
        "report": report, "figures": FIGURES, "group_label": GROUP_LABELS[by],
        "groupings": [(g, GROUP_LABELS[g]) for g in REPORT_GROUPINGS],
        "shortcuts": [(s, SHORTCUT_LABELS[s]) for s in SHORTCUTS], "period": period, "query": query,
        "chart_json": _chart_data(report), "now": now})


def _clock_text(ts: float | None, settings: Settings) -> str:
    return "—" if ts is None else datetime.fromtimestamp(ts, settings.tz).strftime("%H:%M")


@pages.get("/attendance", response_class=HTMLResponse)
def attendance_page(request: Request, user: CurrentUserDep, session: SessionDep, settings: SettingsDep,
                    now: NowDep, period: PeriodQuery = None, since: SinceQuery = None, until: UntilQuery = None,
                    center: CenterQuery = None) -> Response:
    """考勤 per center (present hours, 迟到, 早退, 空岗) and per staff member and day."""
    first, last = period_days(period, since, until, local_day(now, settings.tz))
    span = Period(first, last, settings.tz, now.timestamp())
    hours_of = hours_lookup(session, settings)
    days = [d for d in attendance_days(session, span.start_ts, max(span.start_ts, span.end_ts), settings.tz,
                                       hours_of, user) if center is None or d["center_code"] == center]
    for day in days:
        day["first_in_text"], day["last_out_text"] = _clock_text(day["first_in"], settings), _clock_text(
            day["last_out"], settings)
    empty = empty_window_seconds(session, span, hours_of, staffed(session, span, user), user)
    centers: dict[str, dict[str, Any]] = {}
    for day in days:
        row = centers.setdefault(day["center_code"], {"present_min": 0, "late": 0, "left_early": 0, "staff": set(),
                                                      "empty_min": None})
        row["present_min"] += day["present_min"]
        row["late"] += int(day["late"])
        row["left_early"] += int(day["left_early"])
        row["staff"].add(day["staff_no"])
    for (code, _window), seconds in empty.items():
        if center is None or code == center:
            row = centers.setdefault(code, {"present_min": 0, "late": 0, "left_early": 0, "staff": set(),
                                            "empty_min": None})
            row["empty_min"] = (row["empty_min"] or 0) + seconds / 60
    return render(request, "attendance.html", {
        "days": days, "centers": sorted(centers.items()), "first": first, "last": last, "center": center,
        "shortcuts": [(s, SHORTCUT_LABELS[s]) for s in SHORTCUTS], "period": period, "now": now})


add_messages(EN, {
    "绩效报表": "Reports", "考勤": "Attendance", "统计期间": "Period", "分组": "Group by", "查询": "Show",
    "开始日期": "From", "结束日期": "To", "下载 XLSX": "Download XLSX", "下载 CSV": "Download CSV",
    "好差评记录（全国好差评系统字段）": "Rating records (fields of the national good-or-bad rating system)",
    "本月": "This month", "上月": "Last month", "本季度": "This quarter", "本年": "This year",
    "县": "County", "乡镇": "Town", "中心": "Center", "窗口": "Window", "工作人员": "Staff",
    "取号数": "Issued", "办结数": "Served", "等候时长中位数（分）": "Wait p50 (min)",
    "等候时长P90（分）": "Wait p90 (min)",
    "平均办理时长（分）": "Handling, average (min)", "满意率（%）": "Satisfaction (%)", "评价数": "Ratings",
    "评价覆盖率（%）": "Rating coverage (%)", "差评数": "Bad ratings", "差评工单": "Bad-rating cases",
    "按期办结": "Closed on time", "出勤时长（小时）": "Attendance (h)", "空岗（分钟）": "Empty window (min)",
    "暂无数据。": "No data.", "办结数与满意率": "Served and satisfaction",
    "报表口径": "What the figures count",
    "等候时长为取号到首次叫号，办理时长为首次叫号到办结；空岗为开放时间内窗口无人登录的分钟数（仅统计上报考勤的中心）。":
        "Waiting is issue to first call, handling first call to finish; empty window is opening time with nobody "
        "signed in at a window (centers that forward attendance only).",
    "考勤汇总（按中心）": "Attendance by center", "出勤（小时）": "Present (h)", "迟到人次": "Late arrivals",
    "早退人次": "Early leaves", "人数": "Staff", "考勤明细（按工作人员和日期）": "Attendance by staff member and day",
    "日期": "Day", "工号": "Staff no.", "姓名": "Name", "首次登录": "First sign-in", "最后退出": "Last sign-out",
    "出勤（分钟）": "Present (min)", "迟到（分钟）": "Late (min)", "早退（分钟）": "Early leave (min)",
    "全部中心": "All centers", "中心编码": "Center code", "未登录": "nobody signed in",
})
