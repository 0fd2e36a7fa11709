"""Names on the case pages: who the staff member is, what the service is, what each step of the history was.

Rating events carry the staff number and the service's letter only. The names come from what the edges
report: the staff directory of each center's latest edge_health (`staff`: staff number -> name, the edge's
configured window staff and stand-ins) and the service names on its ticket events (`service_name`, sent
with every ticket event). A number or letter nobody named stays as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from fleet.center_view import latest_health, staff_directory
from fleet.models import TicketEvent
from fleet.web.i18n import EN, add_messages

# The steps of a case's history (fleet.cases.service writes these codes into CaseAction.action).
ACTION_LABELS = {
    "opened": "工单生成",
    "assign": "分派责任人",
    "callback": "回访记录",
    "rectify": "整改记录",
    "close": "办结工单",
    "appeal": "提出申诉",
    "review": "复核申诉",
    "callback_phone": "留下回访电话",
    "callback_phone_erased": "删除回访电话",
}

add_messages(EN, {"工单生成": "Case opened", "分派责任人": "Assigned", "回访记录": "Callback recorded",
                  "整改记录": "Rectification or explanation recorded", "办结工单": "Case closed",
                  "提出申诉": "Appeal filed", "复核申诉": "Appeal reviewed",
                  "留下回访电话": "Callback phone left", "删除回访电话": "Callback phone erased",
                  "回访电话": "Callback phone", "群众已留电话（仅责任人可见）": "Left by the resident (shown to the "
                  "assignee only)", "已按期删除": "Erased as scheduled"})


def staff_names(session: Session, centers: Iterable[str]) -> dict[str, dict[str, str]]:
    """Per center code, staff number -> name, from its latest edge_health."""
    return {code: staff_directory(latest_health(session, code)[0]) for code in set(centers)}


def service_names(session: Session, centers: Iterable[str]) -> dict[tuple[str, str], str]:
    """(center code, service letter) -> the service's name, the latest its ticket events gave."""
    codes = sorted(set(centers))
    if not codes:
        return {}
    named = (col(TicketEvent.center_code).in_(codes), col(TicketEvent.service_name).is_not(None))
    latest = (select(func.max(TicketEvent.id).label("id")).where(*named)
              .group_by(TicketEvent.center_code, TicketEvent.service).subquery())
    rows = session.exec(select(TicketEvent.center_code, TicketEvent.service, TicketEvent.service_name)
                        .where(col(TicketEvent.id).in_(select(latest.c.id)))).all()
    return {(code, service): name for code, service, name in rows if name}


def case_names(session: Session, cases: list[Any]) -> dict[int, dict[str, str | None]]:
    """Per case id: `staff_name` and `service_name` (None when the edges never named them)."""
    centers = [case.center_code for case in cases]
    staff, services = staff_names(session, centers), service_names(session, centers)
    return {case.id: {"staff_name": staff.get(case.center_code, {}).get(case.staff_no or ""),
                      "service_name": services.get((case.center_code, case.service))} for case in cases}
