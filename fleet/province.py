"""Reporting ratings to the province's unified 好差评 system: a durable queue in the fleet's database.

A rating the window's business system asked for carries its 办件编号 (rating_event `case_no`). When the
ingest stores such a rating (score 1-5) and `province_endpoint` is configured, it adds a ProvinceReport in the
same transaction: the report cannot be lost to a crash between storing and queueing. The reporter thread
(`ProvinceReporter`, started with the app) POSTs each due report as JSON and keeps it until the province
answers 2xx; a failure (no connection, a time-out, any other status) waits `province_retry_min_s`, doubled per
failed attempt up to `province_retry_max_s`, and is tried again, for as long as it takes. Every attempt is a
ProvinceAttempt row: when, the HTTP status (none without an answer), the error. A 差评 whose reason has not come
yet waits up to REASON_WAIT_S for it (the pad sends the reason after the score), and goes at once when it comes.

The province may see a report twice (its answer lost after it stored it): each report carries `report_id`, the
same on every attempt, also as the `Idempotency-Key` header, for it to recognise a repeat. Several fleet
replicas take turns: a report is leased (its next attempt moved past the time-out) before it is sent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from fleet.models import RatingEvent, UTCDateTime, utcnow
from fleet.sessions import write_session
from fleet.settings import Settings
from protocol.messages import BAD_SCORES, RATING_LABELS, RATING_REASON_LABELS

log = logging.getLogger(__name__)

PENDING = "pending"
DELIVERED = "delivered"
CHANNEL = "现场评价器"  # 评价渠道: the rating pad at the window
REASON_WAIT_S = 120.0  # a 差评 without its reason yet waits this long for it (the pad's reason step)
BATCH = 50  # reports sent per round at most


class ProvinceReport(SQLModel, table=True):
    """One rating to report to the province; kept (delivered) as the record of what was reported when."""

    __tablename__ = "province_report"

    id: int | None = Field(default=None, primary_key=True)
    rating_event_id: int = Field(foreign_key="ratingevent.id", unique=True)
    center_code: str = Field(max_length=12, index=True)
    case_no: str = Field(max_length=64)
    state: str = Field(default=PENDING, max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime, index=True)
    attempts: int = 0
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = None


class ProvinceAttempt(SQLModel, table=True):
    """Every attempt at delivering a report: when, the province's HTTP status (None: no answer), the error."""

    __tablename__ = "province_attempt"

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="province_report.id", index=True)
    at: datetime = Field(sa_type=UTCDateTime)
    status_code: int | None = None
    error: str | None = None  # None: delivered


def queue_rating(session: Session, rating: RatingEvent, now: datetime, settings: Settings) -> ProvinceReport | None:
    """Queue `rating` for the province if it has a case number, a score 1-5 and a province is configured."""
    if settings.province_endpoint is None or not rating.case_no or rating.score < 1 or rating.id is None:
        return None
    existing = session.exec(select(ProvinceReport).where(ProvinceReport.rating_event_id == rating.id)).first()
    if existing is not None:
        return existing
    wait = REASON_WAIT_S if rating.score in BAD_SCORES and rating.reason is None else 0.0
    report = ProvinceReport(rating_event_id=rating.id, center_code=rating.center_code, case_no=rating.case_no,
                            created_at=now, next_attempt_at=now + timedelta(seconds=wait))
    session.add(report)
    return report


def reason_arrived(session: Session, rating: RatingEvent, now: datetime) -> None:
    """A 差评's reason came: its report, still waiting for it, goes now."""
    report = session.exec(select(ProvinceReport).where(ProvinceReport.rating_event_id == rating.id,
                                                       ProvinceReport.state == PENDING,
                                                       ProvinceReport.attempts == 0)).first()
    if report is not None and report.next_attempt_at > now:
        report.next_attempt_at = now
        session.add(report)


def report_body(report: ProvinceReport, rating: RatingEvent, tz_name: str) -> dict[str, Any]:
    """What the province receives (fleet/README.md, 'Reporting ratings to the province')."""
    rated_at = datetime.fromtimestamp(rating.ts, UTC).astimezone(ZoneInfo(tz_name))
    return {
        "report_id": f"{rating.center_code}-{rating.rating_id}",
        "case_no": report.case_no,  # 办件编号
        "matter": rating.matter,  # 事项
        "channel": CHANNEL,  # 评价渠道
        "score": rating.score,  # 等级 1-5
        "level": RATING_LABELS[rating.score],
        "center_code": rating.center_code,
        "window": rating.window,  # 窗口
        "staff_no": rating.staff_no,  # 工作人员
        "rated_at": rated_at.isoformat(),  # 评价时间
        "reason": rating.reason,  # 差评原因
        "reason_label": RATING_REASON_LABELS.get(rating.reason) if rating.reason else None,
    }


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str | None  # None: taken


Post = Callable[[str, dict[str, Any], dict[str, str]], Answer]


def http_post(timeout_s: float) -> Post:
    def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> Answer:
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=timeout_s)
        except httpx.HTTPError as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}"[:500])
        if response.status_code // 100 != 2:
            return Answer(response.status_code, f"HTTP {response.status_code}: {response.text[:200]}")
        return Answer(response.status_code, None)

    return post


def retry_after_s(attempts: int, settings: Settings) -> float:
    """The wait after the `attempts`-th failed attempt: doubling from province_retry_min_s, capped."""
    return min(settings.province_retry_max_s, settings.province_retry_min_s * 2 ** max(0, attempts - 1))


def deliver_due(engine: Engine, settings: Settings, now: datetime, post: Post) -> int:
    """Send every report due at `now` (oldest first); returns how many the province took."""
    if settings.province_endpoint is None:
        return 0
    lease = timedelta(seconds=settings.province_timeout_s * 3)
    with write_session(engine) as session:
        due = list(session.exec(select(ProvinceReport).where(ProvinceReport.state == PENDING,
                                                             col(ProvinceReport.next_attempt_at) <= now)
                                .order_by(col(ProvinceReport.next_attempt_at), col(ProvinceReport.id))
                                .limit(BATCH).with_for_update(skip_locked=True)))
        work = []
        for report in due:
            rating = session.get(RatingEvent, report.rating_event_id)
            assert rating is not None and report.id is not None
            work.append((report.id, report_body(report, rating, settings.timezone)))
            report.next_attempt_at = now + lease  # another replica leaves it alone while we send it
            session.add(report)
    headers = {"Content-Type": "application/json"}
    if settings.province_token is not None:
        headers["Authorization"] = f"Bearer {settings.province_token.get_secret_value()}"
    delivered = 0
    for report_id, body in work:
        answer = post(settings.province_endpoint, body, {**headers, "Idempotency-Key": body["report_id"]})
        with write_session(engine) as session:
            report = session.get(ProvinceReport, report_id)
            assert report is not None
            report.attempts += 1
            session.add(ProvinceAttempt(report_id=report_id, at=now, status_code=answer.status_code,
                                        error=answer.error))
            if answer.error is None:
                report.state, report.delivered_at, report.last_error = DELIVERED, now, None
                delivered += 1
            else:
                report.last_error = answer.error
                report.next_attempt_at = now + timedelta(seconds=retry_after_s(report.attempts, settings))
                log.warning("province report %s (case %s) not taken, attempt %d: %s; next at %s", report_id,
                            report.case_no, report.attempts, answer.error, report.next_attempt_at.isoformat())
            session.add(report)
    return delivered


class ProvinceReporter:
    """The thread that delivers due reports every `province_interval_s`; a failing round is logged, never fatal."""

    def __init__(self, engine: Engine, settings: Settings, clock: Callable[[], datetime] = utcnow,
                 post: Post | None = None) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.post = post or http_post(settings.province_timeout_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ProvinceReporter:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="fleet-province", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.province_interval_s):
            try:
                deliver_due(self.engine, self.settings, self.clock(), self.post)
            except Exception:
                log.exception("reporting to the province failed; trying again")
