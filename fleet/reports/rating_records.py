"""Rating records in the fields the national 好差评 system (全国一体化政务服务平台 好差评) collects, one row per
rating of a period: for a county that uploads them, or checks what its province received.

The fields, in order (fleet/README.md, "Rating records", says each one's meaning and source):
评价编号, 办件编号, 中心编码, 评价渠道, 等级, 等级名称, 事项, 窗口, 工作人员, 工号, 评价时间, 差评原因, 整改情况.
Only ratings a resident gave (1-5) are records; 未评价 and requests that ended otherwise are not. A rating
excluded after appeal and review (申诉成立) stays a record, and its 整改情况 says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from fleet.auth.principal import CurrentUser
from fleet.cases.models import APPEAL_LABELS, CALLBACK_RESULTS, RESOLUTION_KINDS, STATE_LABELS, FollowUpCase
from fleet.cases.names import service_names
from fleet.models import RatingEvent
from fleet.reports.figures import known_staff_names
from fleet.satisfaction import excluded_ids
from protocol.messages import RATING_LABELS, RATING_REASON_LABELS, UNRATED

CHANNEL_ON_SITE = "现场评价器"  # 评价渠道: the window's rating pad (the national system's 现场 channel)
RECORD_FIELDS = (
    ("rating_id", "评价编号"), ("case_no", "办件编号"), ("center_code", "中心编码"), ("channel", "评价渠道"),
    ("score", "等级"),
    ("score_label", "等级名称"), ("service", "事项"), ("window", "窗口"), ("staff", "工作人员"),
    ("staff_no", "工号"), ("rated_at", "评价时间"), ("reason", "差评原因"), ("rectification", "整改情况"),
)
NO_CASE_NEEDED = ""  # a 好评 has no 整改


def rectification_text(case: FollowUpCase | None, excluded: bool) -> str:
    """整改情况 of a rating: its follow-up case in words (state, callback, what was done), or '' for a 好评."""
    if excluded:
        return "申诉成立，评价已剔除"
    if case is None:
        return NO_CASE_NEEDED
    parts = [STATE_LABELS.get(case.state, case.state)]
    if case.callback_result:
        parts.append(f"回访：{CALLBACK_RESULTS.get(case.callback_result, case.callback_result)}")
    if case.resolution_kind:
        note = f"（{case.resolution_note}）" if case.resolution_note else ""
        parts.append(f"{RESOLUTION_KINDS.get(case.resolution_kind, case.resolution_kind)}{note}")
    if case.closed_at is not None:
        parts.append("按期办结" if case.closed_on_time else "超期办结")
    if case.appeal_state:
        parts.append(APPEAL_LABELS.get(case.appeal_state, case.appeal_state))
    return "；".join(parts)


def rating_records(session: Session, since_ts: float, until_ts: float, tz: ZoneInfo,
                   user: CurrentUser | None = None) -> list[dict[str, Any]]:
    """Every rating (1-5) in [since, until) within the user's scope, oldest first, as RECORD_FIELDS."""
    query = select(RatingEvent).where(RatingEvent.ts >= since_ts, RatingEvent.ts < until_ts,
                                      RatingEvent.score != UNRATED)
    if user is not None:
        query = query.where(user.scope_clause(RatingEvent.center_code))
    ratings = list(session.exec(query.order_by(col(RatingEvent.ts), col(RatingEvent.id))))
    ids = [r.id for r in ratings if r.id is not None]
    excluded = excluded_ids(session, ids)
    cases: dict[int, FollowUpCase] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for case in session.exec(select(FollowUpCase).where(col(FollowUpCase.rating_event_id).in_(chunk))):
            cases[case.rating_event_id] = case
    centers = {r.center_code for r in ratings}
    staff, services = known_staff_names(session, centers, until_ts), service_names(session, centers)
    records = []
    for rating in ratings:
        records.append({
            "rating_id": rating.rating_id, "case_no": rating.case_no or "", "center_code": rating.center_code,
            "channel": CHANNEL_ON_SITE,
            "score": rating.score, "score_label": RATING_LABELS.get(rating.score, ""),
            # The business system's 事项 when it asked for the rating, else the queue's service by name.
            "service": rating.matter or services.get((rating.center_code, rating.service), rating.service),
            "window": f"{rating.window}号窗口",
            "staff": staff.get((rating.center_code, rating.staff_no or ""), ""),
            "staff_no": rating.staff_no or "",
            "rated_at": datetime.fromtimestamp(rating.ts, tz).strftime("%Y-%m-%d %H:%M:%S"),
            "reason": RATING_REASON_LABELS.get(rating.reason or "", ""),
            "rectification": rectification_text(cases.get(rating.id or -1), rating.id in excluded),
        })
    return records
