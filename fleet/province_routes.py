"""What county IT sees of the reports to the province (fleet.province): each report's state and every attempt.

Read-only and scoped like everything else: a town operator sees the reports of their town's centers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel
from sqlmodel import col, select

from fleet.auth.deps import CurrentUserDep
from fleet.deps import SessionDep
from fleet.province import ProvinceAttempt, ProvinceReport

api = APIRouter(prefix="/api/province", tags=["province"])

ReportId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ReportOut(BaseModel):
    id: int
    rating_event_id: int
    center_code: str
    case_no: str  # 办件编号
    state: str  # pending, delivered
    created_at: datetime
    next_attempt_at: datetime
    attempts: int
    delivered_at: datetime | None
    last_error: str | None


class AttemptOut(BaseModel):
    at: datetime
    status_code: int | None  # the province's HTTP status; None: no answer (connection refused, time-out)
    error: str | None  # None: delivered


@api.get("/reports", response_model=list[ReportOut])
def get_reports(user: CurrentUserDep, session: SessionDep,
                state: Literal["pending", "delivered", "all"] = "pending",
                limit: int = Query(500, ge=1, le=5000)) -> list[ProvinceReport]:
    """Ratings reported (or still to report) to the province's 好差评 system, oldest first."""
    query = select(ProvinceReport).where(user.scope_clause(ProvinceReport.center_code))
    if state != "all":
        query = query.where(ProvinceReport.state == state)
    return list(session.exec(query.order_by(col(ProvinceReport.created_at), col(ProvinceReport.id)).limit(limit)))


@api.get("/reports/{report_id}/attempts", response_model=list[AttemptOut], responses={404: {}})
def get_attempts(report_id: ReportId, user: CurrentUserDep, session: SessionDep) -> list[ProvinceAttempt]:
    """Every attempt at delivering one report: when, the HTTP status, the error."""
    report = session.get(ProvinceReport, report_id)
    if report is None or not user.can_see(report.center_code):
        raise HTTPException(status_code=404, detail=f"report {report_id} is unknown")
    return list(session.exec(select(ProvinceAttempt).where(ProvinceAttempt.report_id == report_id)
                             .order_by(col(ProvinceAttempt.at), col(ProvinceAttempt.id))))
