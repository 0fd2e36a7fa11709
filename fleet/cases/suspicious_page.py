"""可疑评价: the page of suspicious rating patterns (fleet.satisfaction.suspicious_ratings), per center and window.

Flags are for a person to look at; nothing is excluded automatically (an administrator
excludes a rating through POST /api/ratings/{id}/exclude after checking it).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from fleet.auth.deps import CurrentUserDep
from fleet.cases.messages_en import install_english
from fleet.deps import NowDep, SessionDep, SettingsDep
from fleet.overview import day_bounds, local_day
from fleet.satisfaction import suspicious_ratings
from fleet.web.pages import render
from protocol.messages import RATING_LABELS

router = APIRouter(include_in_schema=False)
install_english()

PATH = "/ratings/suspicious"
DAY_CHOICES = (1, 7, 30)
KIND_LABELS = {"quick": "评价过快", "burst": "集中好评"}
QUICK_REASON = "叫号后 {seconds} 秒即评价（少于 {limit} 秒即标记）"
BURST_REASON = "{count} 次“非常满意”集中在 {span} 秒内（{minimum} 次以上、{window} 秒内即标记）"


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _seconds(value: float) -> str:
    return f"{value:g}"


def flag_row(flag: dict[str, Any], quick_s: float, burst_count: int, burst_window_s: float) -> dict[str, Any]:
    """What the page shows of one flag: its kind, when, which rating(s), and the reason with its fields."""
    if flag["kind"] == "quick":
        return {"kind": "quick", "at": _at(flag["ts"]), "ticket": flag["ticket"], "score": flag["score"],
                "rating_ids": [flag["rating_event_id"]], "reason": QUICK_REASON,
                "reason_fields": {"seconds": _seconds(flag["seconds_after_call"]), "limit": _seconds(quick_s)}}
    span = round(flag["last_ts"] - flag["first_ts"], 1)
    return {"kind": "burst", "at": _at(flag["first_ts"]), "until": _at(flag["last_ts"]), "ticket": None,
            "score": 5, "rating_ids": flag["rating_event_ids"], "reason": BURST_REASON,
            "reason_fields": {"count": flag["count"], "span": _seconds(span), "minimum": burst_count,
                              "window": _seconds(burst_window_s)}}


@router.get(PATH, response_class=HTMLResponse)
def suspicious_page(request: Request, user: CurrentUserDep, session: SessionDep, settings: SettingsDep,
                    now: NowDep, days: int = Query(7, ge=1, le=92)) -> Response:
    today = local_day(now, settings.tz)
    start = day_bounds(today - timedelta(days=days - 1), settings.tz)[0]
    end = day_bounds(today, settings.tz)[1]
    flags = suspicious_ratings(session, start, end, settings.rating_quick_s, settings.rating_burst_count,
                               settings.rating_burst_window_s, user)
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for flag in flags:
        groups[(flag["center_code"], flag["window"])].append(
            flag_row(flag, settings.rating_quick_s, settings.rating_burst_count, settings.rating_burst_window_s))
    for rows in groups.values():
        rows.sort(key=lambda row: row["at"], reverse=True)
    return render(request, "suspicious.html", {
        "groups": sorted(groups.items()), "days": days, "day_choices": DAY_CHOICES, "kind_labels": KIND_LABELS,
        "flag_count": len(flags), "rating_labels": RATING_LABELS,
    })
