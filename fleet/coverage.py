"""Rating coverage (评价覆盖率): of the tickets served, how many were rated (国办发〔2019〕51号: every service
is rated). Plain functions over a session.

Every served ticket ends with a rating request at the edge (下一位 is 办结 first), and every request ends one
of four ways (protocol/messages.py RATING_OUTCOMES): rated (a pad's 1-5), timeout (the pad's 0, 未评价),
skipped (staff finished the next resident first) or pad_offline (the pad said nothing). A ticket served is a
`finished` ticket event; its outcome is the best of its rating events that day (a pad back from an outage
may rate a request the edge had closed as pad_offline: rated wins).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from fleet.auth.principal import CurrentUser
from fleet.models import RatingEvent, TicketEvent
from fleet.satisfaction import GROUPINGS, group_key
from protocol.messages import RATING_OUTCOMES, RATING_RATED, RATING_TIMEOUT, TICKET_FINISHED, UNRATED

RATING_LAG_S = 3600.0  # a rating may come this long after its ticket was finished (a pad back from an outage)
OUTCOME_RANK = {outcome: rank for rank, outcome in enumerate(reversed(RATING_OUTCOMES))}  # rated ranks highest


def rating_outcome(rating: Any) -> str:
    """rated, timeout, skipped or pad_offline, of a RatingEvent (or a row with its outcome and score)."""
    if rating.outcome:
        return rating.outcome
    return RATING_TIMEOUT if rating.score == UNRATED else RATING_RATED


@lru_cache(maxsize=8192)
def _quarter_hour_day(quarter: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(quarter * 900, tz).date().isoformat()


def _day(ts: float, tz: ZoneInfo) -> str:
    """The day of `ts` in `tz`, looked up once per quarter hour (every zone's offset is whole quarter hours, so
    no day starts inside one): reports ask it for every ticket and rating of a month."""
    return _quarter_hour_day(int(ts // 900), tz)


def coverage(served: int, rated: int) -> float | None:
    """Rated / served, in percent (None when nothing was served)."""
    return None if not served else round(100.0 * min(rated, served) / served, 1)


def rating_coverage(session: Session, by: str, since_ts: float, until_ts: float, tz: ZoneInfo,
                    user: CurrentUser | None = None, center_code: str | None = None) -> list[dict[str, Any]]:
    """One row per group (`by`: county/town/center/window/staff/service) of the tickets served in [since, until):
    served, each outcome's count (no outcome: the edge has not reported one yet) and the coverage.
    `center_code` keeps one center's tickets only."""
    if by not in GROUPINGS:
        raise ValueError(f"group by one of {', '.join(GROUPINGS)}, got {by!r}")
    # Columns, not rows as objects (a month of a county's reports reads hundreds of thousands); rows keep the
    # attribute names rating_outcome and group_key read.
    finished = select(TicketEvent.center_code, TicketEvent.ticket, TicketEvent.ts, TicketEvent.window,
                      TicketEvent.staff_no, TicketEvent.service).where(
        TicketEvent.kind == TICKET_FINISHED, TicketEvent.ts >= since_ts, TicketEvent.ts < until_ts)
    ratings = select(RatingEvent.center_code, RatingEvent.ticket, RatingEvent.ts, RatingEvent.outcome,
                     RatingEvent.score).where(RatingEvent.ts >= since_ts, RatingEvent.ts < until_ts + RATING_LAG_S)
    if user is not None:
        finished = finished.where(user.scope_clause(TicketEvent.center_code))
        ratings = ratings.where(user.scope_clause(RatingEvent.center_code))
    if center_code is not None:
        finished = finished.where(TicketEvent.center_code == center_code)
        ratings = ratings.where(RatingEvent.center_code == center_code)
    best: dict[tuple[str, str, str], str] = {}
    for rating in session.exec(ratings.order_by(col(RatingEvent.ts))):
        key = (rating.center_code, rating.ticket, _day(rating.ts, tz))
        outcome = rating_outcome(rating)
        if key not in best or OUTCOME_RANK[outcome] > OUTCOME_RANK[best[key]]:
            best[key] = outcome
    counts: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for ticket in session.exec(finished):
        group = group_key(by, ticket)
        counts[group]["served"] += 1
        counts[group][best.get((ticket.center_code, ticket.ticket, _day(ticket.ts, tz)), "pending")] += 1
    rows = []
    for group in sorted(counts):
        row = counts[group]
        rows.append({"by": by, "key": list(group), "served": row["served"],
                     **{outcome: row[outcome] for outcome in (*RATING_OUTCOMES, "pending")},
                     "coverage": coverage(row["served"], row[RATING_RATED])})
    return rows
