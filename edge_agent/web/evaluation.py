"""Routes of the 好差评 follow-through: the kiosk's callback phone form and the business system's interface.

- `GET /kiosk/callback`, `POST /api/callback_phone` (public, like the kiosk): a resident who gave a 差评
  leaves a phone number for its callback (edge_agent.callback). The number travels in the JSON body only,
  never in a URL, so no access log holds it.
- `POST /api/business/rating` (the window's business system, bearer token; edge_agent.business): window,
  办件编号, 事项 -> the window's ticket is finished and its pad asks for the rating, bound to the case number.
  Idempotent on the case number.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from edge_agent.agent import EdgeAgent
from edge_agent.business import token_matches
from edge_agent.callback import CallbackPhones
from edge_agent.queue.service import QueueError


class CallbackPhoneRequest(BaseModel):
    ticket: str = Field(max_length=16)
    phone: str = Field(max_length=32)


class BusinessRatingRequest(BaseModel):
    window: int = Field(ge=1, le=999)
    case_no: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_\-]+$")  # 办件编号
    matter: str = Field(min_length=1, max_length=200)  # 事项


def add_evaluation_routes(app: FastAPI, agent: EdgeAgent, page) -> None:
    """`page(request, template, **context)` renders one of the agent's templates."""
    phones = CallbackPhones(agent.queue)

    @app.get("/kiosk/callback", response_class=HTMLResponse)
    async def callback_form(request: Request) -> HTMLResponse:
        return page(request, "kiosk_callback.html")

    @app.post("/api/callback_phone")
    async def leave_callback_phone(body: CallbackPhoneRequest) -> dict:
        try:
            ticket = phones.leave(body.ticket, body.phone)
        except QueueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"ticket": ticket, "left": True}

    @app.post("/api/business/rating")
    async def business_rating(body: BusinessRatingRequest, request: Request) -> dict:
        expected = agent.config.business_token_sha256
        if expected is None:
            raise HTTPException(403, "本中心未开通业务系统评价接口：中心配置文件缺少 [business_system] token_sha256")
        if not token_matches(expected, request.headers.get("authorization")):
            raise HTTPException(401, "业务系统凭据无效：请在 Authorization 头中提供 Bearer 令牌",
                                headers={"WWW-Authenticate": "Bearer"})
        try:
            agent.config.window(body.window)
        except KeyError:
            raise HTTPException(404, f"没有{body.window}号窗口") from None
        try:
            change, repeated = agent.queue.finish_for_case(body.window, body.case_no, body.matter.strip())
        except QueueError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"window": body.window, "case_no": body.case_no, "ticket": change.ticket.number,
                "rating_request": change.request_id, "repeated": repeated}
