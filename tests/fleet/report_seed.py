"""One Monday of two centers in two towns, for the report tests: tickets, ratings (a 差评 with its reason and
its case closed on time), sign-ins (a staff member late, a window empty for an hour, a window never staffed).
Every figure the tests expect is worked out in the comments."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import select

from fleet.cases import service as case_service
from fleet.cases.models import FollowUpCase
from fleet.db import write_session
from fleet.ingest import handle_message
from protocol import topics
from protocol.identity import device_id_from_mac

BEIJING = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 2)  # a Monday, a working day; opening hours 08:30-12:00, 14:00-17:30 (the default)
CENTER = "445202101001"  # town 445202101
OTHER_CENTER = "445202102003"  # town 445202102
# OTHER_CENTER's window business system asked for its rating (edge_agent.business): 办件编号 and 事项.
OTHER_CASE_NO, OTHER_MATTER = "11441302MB2C12345X2026110200001", "城乡居民基本养老保险参保登记"
WINDOW_2_DISPLAY = device_id_from_mac("a4:cf:12:00:01:02")  # window 2 has a display and nobody signs in there


def at(hh: int, mm: int, day: date = DAY) -> datetime:
    """A Beijing time of DAY."""
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=BEIJING)


def put(engine, name: str, payload: dict, when: datetime, **params) -> str:
    return handle_message(engine, topics.build(name, **params), json.dumps({"v": 1, **payload}).encode(),
                          when.astimezone(UTC))


def ticket(engine, center: str, kind: str, number: str, when: datetime, window: int | None = None,
           staff_no: str | None = None) -> None:
    payload = {"event_id": f"{number}-{kind}-{when.timestamp()}", "kind": kind, "ticket": number, "service": "A",
               "service_name": "社保业务", "ts": when.timestamp()}
    if window is not None:
        payload |= {"window": window, "staff_no": staff_no}
    put(engine, topics.TICKET_EVENT, payload, when, center=center)


def rating(engine, center: str, number: str, window: int, staff_no: str, score: int, when: datetime,
           reason: str | None = None, **business: str) -> None:
    payload = {"event_id": f"r-{number}", "rating_id": f"rid-{center}-{number}", "ticket": number, "service": "A",
               "window": window, "staff_no": staff_no, "score": score, "ts": when.timestamp(), **business}
    if reason:
        payload["reason"] = reason
    put(engine, topics.RATING_EVENT, payload, when, center=center)


def signed(engine, center: str, kind: str, staff_no: str, name: str, window: int, when: datetime) -> None:
    payload = {"event_id": f"{staff_no}-{kind}-{when.timestamp()}", "kind": kind, "window": window,
               "staff_no": staff_no, "staff_name": name, "ts": when.timestamp()}
    if kind == "sign_out":
        payload["reason"] = "signed_out"
    put(engine, topics.ATTENDANCE_EVENT, payload, when, center=center)


def seed(engine) -> None:
    """CENTER on DAY:
    - tickets: A001 issued 08:40, called at window 1 (1001) 08:50 (wait 10), finished 09:00 (handling 10);
      A002 issued 08:45, called w1 09:05 (wait 20), finished 09:25 (20); A003 issued 09:00, called w3 (1003) 09:10
      (wait 10), finished 09:40 (30); A004 issued 09:30, never called.
      Center: issued 4, served 3, waits 10/20/10 -> p50 10, p90 20 min, handling (10+20+30)/3 = 20 min.
    - ratings: A001 5; A002 1 (非常不满意, 服务效率), its case called back, rectified and closed the same day (on time);
      A003 未评价. 满意率 1/2 = 50.0%, coverage 2/3 = 66.7%, 差评 1, its case closed on time.
    - 考勤: 张敏 1001 at window 1 08:30-12:00 and 14:00-17:30 (7 h); 王芳 1003 at window 3 from 09:20 (late 50 min),
      out 10:00-11:00 (window 3 empty an hour), back until 17:30: 40 + 390 = 430 min.
      空岗: window 1 none, window 3 50 + 60 = 110 min, window 2 (a display, nobody ever) 7 h = 420 min.
    OTHER_CENTER (another town): A001 issued, called, finished (w1, 2001), rated 5 through its business system's
    evaluation interface (办件编号, 事项); 刘洋 2001 signed in all day.
    """
    edge = {"state": "online", "session": 1, "role": "edge_agent", "board": "pi", "fw": "1", "contract": 1}
    for center in (CENTER, OTHER_CENTER):
        put(engine, topics.EDGE_PRESENCE, edge, at(8, 0), center=center)
    put(engine, topics.DEVICE_PRESENCE, {"state": "online", "session": 1, "role": "queue_display", "board": "esp32",
                                         "fw": "1", "contract": 1, "window": 2}, at(8, 0), center=CENTER,
        device=WINDOW_2_DISPLAY)
    signed(engine, CENTER, "sign_in", "1001", "张敏", 1, at(8, 30))
    signed(engine, CENTER, "sign_out", "1001", "张敏", 1, at(12, 0))
    signed(engine, CENTER, "sign_in", "1001", "张敏", 1, at(14, 0))
    signed(engine, CENTER, "sign_out", "1001", "张敏", 1, at(17, 30))
    signed(engine, CENTER, "sign_in", "1003", "王芳", 3, at(9, 20))
    signed(engine, CENTER, "sign_out", "1003", "王芳", 3, at(10, 0))
    signed(engine, CENTER, "sign_in", "1003", "王芳", 3, at(11, 0))
    signed(engine, CENTER, "sign_out", "1003", "王芳", 3, at(17, 30))
    for number, issued in (("A001", at(8, 40)), ("A002", at(8, 45)), ("A003", at(9, 0)), ("A004", at(9, 30))):
        ticket(engine, CENTER, "issued", number, issued)
    for number, window, staff, called, finished in (("A001", 1, "1001", at(8, 50), at(9, 0)),
                                                   ("A002", 1, "1001", at(9, 5), at(9, 25)),
                                                   ("A003", 3, "1003", at(9, 10), at(9, 40))):
        ticket(engine, CENTER, "called", number, called, window, staff)
        ticket(engine, CENTER, "finished", number, finished, window, staff)
    rating(engine, CENTER, "A001", 1, "1001", 5, at(9, 1))
    rating(engine, CENTER, "A002", 1, "1001", 1, at(9, 26), reason="efficiency")
    rating(engine, CENTER, "A003", 3, "1003", 0, at(9, 41))

    signed(engine, OTHER_CENTER, "sign_in", "2001", "刘洋", 1, at(8, 30))
    signed(engine, OTHER_CENTER, "sign_out", "2001", "刘洋", 1, at(17, 30))
    ticket(engine, OTHER_CENTER, "issued", "A001", at(9, 0))
    ticket(engine, OTHER_CENTER, "called", "A001", at(9, 30), 1, "2001")
    ticket(engine, OTHER_CENTER, "finished", "A001", at(9, 45), 1, "2001")
    rating(engine, OTHER_CENTER, "A001", 1, "2001", 5, at(9, 46), case_no=OTHER_CASE_NO, matter=OTHER_MATTER)

    with write_session(engine) as session:
        case = session.exec(select(FollowUpCase)).one()
        case_service.record_callback(session, case, "reached", "已电话联系群众", "admin", at(15, 0))
        case_service.record_resolution(session, case, "rectified", "窗口增派人手", "admin", at(15, 30))
        case_service.close(session, case, "admin", at(16, 0), BEIJING)


END_OF_DAY = at(18, 0)
NEXT_MONTH_FIRST = datetime(2026, 12, 1, 9, 0, tzinfo=BEIJING)  # the monthly report of November goes out
