"""好差评 satisfaction rates and suspicious rating patterns (plain functions over a session).

Rates count ratings 1..5 (0 is 未评价, counted apart); a rating excluded after
appeal and review (申诉复核, `RatingExclusion`) counts in no rate. Five levels:
5 非常满意, 4 满意, 3 基本满意 are 好评, 2 不满意 and 1 非常不满意 are 差评.

Suspicious patterns, for a person to look at (never excluded automatically):
- `quick`: a rating implausibly soon after the ticket was called (nobody was served
  in that time; someone pressed the pad);
- `burst`: many top marks at one window within a short time (a pad pressed repeatedly).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlmodel import Field, Session, SQLModel, col, select

from fleet.auth.principal import CurrentUser
from fleet.models import RatingEvent, TicketEvent, UTCDateTime, utcnow
from fleet.sessions import among
from protocol.identity import county_code, town_code
from protocol.messages import BAD_SCORES, RATING_LABELS, TICKET_CALLED, TICKET_RECALLED, UNRATED

GROUPINGS = ("county", "town", "center", "window", "staff", "service")
# 满意率: the one definition every page, API and report uses (through `tally`): 好评 among the ratings given
# (1..5), leaving out 未评价 (0) and the ratings excluded after appeal and review (申诉复核, RatingExclusion).
# 好评 is 3..5: 国办发〔2019〕51号 grades a service 非常满意, 满意, 基本满意, 不满意, 非常不满意 and only the last
# two are 差评 (the reference: queue-and-rating.md, "好差评"), so 基本满意 is no 差评 and counts as satisfied;
# 申诉复核 exists to take mistaken or malicious ratings out, so an upheld appeal's rating counts nowhere.
GOOD_SCORES = (3, 4, 5)
# Shown under every 满意率 figure, so the pages say what they count.
RATE_DEFINITION = "满意率 =（非常满意＋满意＋基本满意）÷ 评价数；未评价及申诉复核剔除的评价不计入"
TOP_SCORE = 5
CALL_LOOKBACK_S = 12 * 3600  # ticket numbers restart daily: a call older than this is another day's ticket


class RatingExclusion(SQLModel, table=True):
    """A rating taken out of every rate after appeal and review (申诉复核)."""

    __tablename__ = "rating_exclusion"

    rating_event_id: int = Field(primary_key=True, foreign_key="ratingevent.id")
    center_code: str = Field(max_length=12, index=True)
    reason: str
    excluded_by: str = Field(max_length=64)
    excluded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    case_id: int | None = None  # the follow-up case whose appeal excluded it


def group_key(by: str, rating: Any) -> tuple[str, ...]:
    """The group of a rating or ticket event (or a row with its center_code, window, staff_no, service)."""
    if by == "county":
        return (county_code(rating.center_code),)
    if by == "town":
        return (town_code(rating.center_code),)
    if by == "center":
        return (rating.center_code,)
    if by == "window":
        return (rating.center_code, str(rating.window))
    if by == "staff":  # staff numbers (工号) are a center's own
        return (rating.center_code, rating.staff_no or "")
    if by == "service":
        return (rating.service,)
    raise ValueError(f"group by one of {', '.join(GROUPINGS)}, got {by!r}")


def _ratings(session: Session, since_ts: float, until_ts: float, user: CurrentUser | None,
             center_code: str | None = None) -> list[RatingEvent]:
    query = select(RatingEvent).where(RatingEvent.ts >= since_ts, RatingEvent.ts < until_ts)
    if user is not None:
        query = query.where(user.scope_clause(RatingEvent.center_code))
    if center_code is not None:
        query = query.where(RatingEvent.center_code == center_code)
    return list(session.exec(query.order_by(col(RatingEvent.ts))))


def excluded_ids(session: Session, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    found: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found |= set(session.exec(select(RatingExclusion.rating_event_id)
                                  .where(col(RatingExclusion.rating_event_id).in_(chunk))).all())
    return found


def tally(scores: list[int], excluded: int = 0) -> dict[str, Any]:
    """Counts and rates of a list of scores (already without the excluded ones); 满意率 as GOOD_SCORES says."""
    rated = [s for s in scores if s != UNRATED]
    good = sum(1 for s in rated if s in GOOD_SCORES)
    bad = sum(1 for s in rated if s in BAD_SCORES)
    return {
        "rated": len(rated),
        "unrated": len(scores) - len(rated),
        "excluded": excluded,
        "by_score": {str(score): sum(1 for s in rated if s == score) for score in (5, 4, 3, 2, 1)},
        "good": good,
        "bad": bad,
        "satisfaction_rate": None if not rated else round(100.0 * good / len(rated), 1),  # 满意率
        "bad_rate": None if not rated else round(100.0 * bad / len(rated), 1),  # 差评率
        "average": None if not rated else round(sum(rated) / len(rated), 2),
    }


def satisfaction_rates(session: Session, by: str, since_ts: float, until_ts: float,
                       user: CurrentUser | None = None, center_code: str | None = None) -> list[dict[str, Any]]:
    """One row per group (`by`: county/town/center/window/staff/service) of ratings in [since, until),
    of one center's ratings when `center_code` is given."""
    if by not in GROUPINGS:
        raise ValueError(f"group by one of {', '.join(GROUPINGS)}, got {by!r}")
    # Columns, not rows as objects (a month of a county's reports reads a hundred thousand ratings).
    query = select(RatingEvent.id, RatingEvent.center_code, RatingEvent.window, RatingEvent.staff_no,
                   RatingEvent.service, RatingEvent.score).where(RatingEvent.ts >= since_ts, RatingEvent.ts < until_ts)
    if user is not None:
        query = query.where(user.scope_clause(RatingEvent.center_code))
    if center_code is not None:
        query = query.where(RatingEvent.center_code == center_code)
    ratings = session.exec(query).all()
    excluded = excluded_ids(session, [r.id for r in ratings if r.id is not None])
    scores: dict[tuple[str, ...], list[int]] = defaultdict(list)
    dropped: dict[tuple[str, ...], int] = defaultdict(int)
    for rating in ratings:
        key = group_key(by, rating)
        if rating.id in excluded:
            dropped[key] += 1
        else:
            scores[key].append(rating.score)
    rows = []
    for key in sorted(set(scores) | set(dropped)):
        rows.append({"by": by, "key": list(key), **tally(scores.get(key, []), dropped.get(key, 0))})
    return rows


def center_satisfaction(session: Session, code: str, since_ts: float, until_ts: float) -> dict[str, Any]:
    """The counts and rates of one center's ratings in [since, until): the center page's figures."""
    rows = satisfaction_rates(session, "center", since_ts, until_ts, center_code=code)
    return rows[0] if rows else {"by": "center", "key": [code], **tally([])}


def _calls(session: Session, ratings: list[RatingEvent]) -> dict[tuple[str, str], list[float]]:
    if not ratings:
        return {}
    centers = sorted({r.center_code for r in ratings})  # when many: every center's, the rated ones used
    rows = session.exec(select(TicketEvent.center_code, TicketEvent.ticket, TicketEvent.ts).where(
        *among(TicketEvent.center_code, centers), col(TicketEvent.kind).in_((TICKET_CALLED, TICKET_RECALLED)),
        TicketEvent.ts >= ratings[0].ts - CALL_LOOKBACK_S, TicketEvent.ts <= ratings[-1].ts)).all()
    calls: dict[tuple[str, str], list[float]] = defaultdict(list)
    for code, ticket, ts in rows:
        calls[(code, ticket)].append(ts)
    for times in calls.values():
        times.sort()
    return calls


def called_before(calls: dict[tuple[str, str], list[float]], rating: RatingEvent) -> float | None:
    """The ts of the latest call of the rating's ticket at or before the rating (same day), or None."""
    times = calls.get((rating.center_code, rating.ticket), [])
    index = bisect_right(times, rating.ts)
    if index == 0 or rating.ts - times[index - 1] > CALL_LOOKBACK_S:
        return None
    return times[index - 1]


def _rating_fields(rating: RatingEvent) -> dict[str, Any]:
    return {"rating_event_id": rating.id, "center_code": rating.center_code, "window": rating.window,
            "staff_no": rating.staff_no, "service": rating.service, "ticket": rating.ticket, "score": rating.score,
            "score_label": RATING_LABELS.get(rating.score, ""), "ts": rating.ts}


def suspicious_ratings(session: Session, since_ts: float, until_ts: float, quick_s: float, burst_count: int,
                       burst_window_s: float, user: CurrentUser | None = None) -> list[dict[str, Any]]:
    """Flags: {"kind": "quick", ...rating, "seconds_after_call"} and {"kind": "burst", center, window, count, ...}."""
    ratings = [r for r in _ratings(session, since_ts, until_ts, user) if r.score != UNRATED]
    excluded = excluded_ids(session, [r.id for r in ratings if r.id is not None])
    ratings = [r for r in ratings if r.id not in excluded]
    flags: list[dict[str, Any]] = []
    calls = _calls(session, ratings)
    for rating in ratings:
        called = called_before(calls, rating)
        if called is not None and rating.ts - called < quick_s:
            flags.append({"kind": "quick", **_rating_fields(rating), "called_ts": called,
                          "seconds_after_call": round(rating.ts - called, 1)})
    top: dict[tuple[str, int], list[RatingEvent]] = defaultdict(list)
    for rating in ratings:
        if rating.score == TOP_SCORE:
            top[(rating.center_code, rating.window)].append(rating)
    for (code, window), series in sorted(top.items()):
        start = 0
        burst: list[RatingEvent] = []
        for end, rating in enumerate(series):
            while rating.ts - series[start].ts > burst_window_s:
                start += 1
            if end - start + 1 >= burst_count:
                burst.extend(r for r in series[start:end + 1] if r not in burst)
            elif burst and rating.ts - burst[-1].ts > burst_window_s:
                flags.append(_burst(code, window, burst))
                burst = []
        if burst:
            flags.append(_burst(code, window, burst))
    return flags


def _burst(code: str, window: int, burst: list[RatingEvent]) -> dict[str, Any]:
    return {"kind": "burst", "center_code": code, "window": window, "count": len(burst),
            "first_ts": burst[0].ts, "last_ts": burst[-1].ts, "rating_event_ids": [r.id for r in burst]}
