"""FastAPI app of the edge agent: pages in Simplified Chinese and their small JSON API.

Everything is served by the agent itself (county intranets have no internet,
so nothing comes from a CDN). Pages get live updates over server-sent events.
Handlers are `async` on purpose: queue listeners (displays, voice, pages) then
run on the agent's event loop, never on a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from edge_agent.agent import EdgeAgent
from edge_agent.appointments import parse_appointments
from edge_agent.queue.service import ActingOn, QueueChange, QueueError, StaleRequest

HERE = Path(__file__).parent


class TicketRequest(BaseModel):
    service: str
    card: str = ""  # the kiosk's token of a swiped ID card
    print_guide: bool = False
    request_id: str = Field("", max_length=64)  # the tap's id: the same tap sent twice gets one ticket


class CallRequest(BaseModel):
    """下一位 and 重呼 name what the staff saw: the number served ("" for none) and the window's call count."""

    ticket: str = Field(max_length=16)
    call_seq: int


class TicketAction(BaseModel):
    """过号 and 办结 name the ticket they act on."""

    ticket: str = Field(max_length=16)


class ScanRequest(BaseModel):
    code: str


class LoginRequest(BaseModel):
    staff_no: str


class TransferRequest(BaseModel):
    ticket: str = Field(max_length=16)  # the ticket being transferred
    service: str | None = None
    window: int | None = None


class RequeueRequest(BaseModel):
    window: int | None = None


class VoiceRequest(BaseModel):
    enabled: bool


def create_app(agent: EdgeAgent) -> FastAPI:
    app = FastAPI(title="便民服务中心 边缘网关", docs_url="/api/docs")
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    subscribers: set[asyncio.Queue] = set()

    def on_change(_change: QueueChange) -> None:
        for queue in list(subscribers):
            queue.put_nowait(True)

    agent.change_listeners.append(on_change)

    def page(request: Request, name: str, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"center": agent.config, **context})

    def refused(exc: QueueError) -> HTTPException:
        return HTTPException(400, str(exc))

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> HTMLResponse:
        return page(request, "index.html")

    @app.get("/kiosk", response_class=HTMLResponse)
    async def kiosk(request: Request) -> HTMLResponse:
        return page(request, "kiosk.html")

    @app.get("/staff/{window}", response_class=HTMLResponse)
    async def staff(request: Request, window: int) -> HTMLResponse:
        try:
            config = agent.config.window(window)
        except KeyError:
            raise HTTPException(404, f"没有{window}号窗口") from None
        return page(request, "staff.html", window=config)

    @app.get("/hall", response_class=HTMLResponse)
    async def hall(request: Request) -> HTMLResponse:
        return page(request, "hall.html")

    @app.get("/api/state")
    async def state() -> dict:
        return agent.snapshot()

    @app.get("/api/health")
    async def health() -> dict:
        return agent.health()

    @app.post("/api/tickets")
    async def take_ticket(body: TicketRequest) -> dict:
        try:
            return await agent.take_ticket(body.service, body.card, body.print_guide, body.request_id)
        except QueueError as exc:
            raise refused(exc) from None

    @app.post("/api/scan")
    async def scan(body: ScanRequest) -> dict:
        """The kiosk's keyboard-wedge scanner typed a code and Enter."""
        return await agent.scan_code(body.code)

    def acted(window: int, changed: bool, **result) -> dict:
        """Every staff action answers with what the window is at now, which its next request names."""
        return {"changed": changed, **result, "window": agent.queue.window_now(window)}

    async def window_action(window: int, action, *args, **kwargs) -> dict:
        try:
            result = action(window, *args, **kwargs)
        except StaleRequest:
            return acted(window, False)
        except QueueError as exc:
            raise refused(exc) from None
        return acted(window, True, ticket=getattr(result, "number", None), state=getattr(result, "state", None))

    @app.post("/api/windows/{window}/next")
    async def call_next(window: int, body: CallRequest) -> dict:
        return await window_action(window, agent.queue.call_next, acting_on=ActingOn(body.ticket, body.call_seq))

    @app.post("/api/windows/{window}/recall")
    async def recall(window: int, body: CallRequest) -> dict:
        return await window_action(window, agent.queue.recall, acting_on=ActingOn(body.ticket, body.call_seq))

    @app.post("/api/windows/{window}/skip")
    async def skip(window: int, body: TicketAction) -> dict:
        return await window_action(window, agent.queue.skip, acting_on=ActingOn(body.ticket))

    @app.post("/api/windows/{window}/transfer")
    async def transfer(window: int, body: TransferRequest) -> dict:
        return await window_action(window, agent.queue.transfer, body.service or None, body.window,
                                   acting_on=ActingOn(body.ticket))

    @app.post("/api/windows/{window}/finish")
    async def finish(window: int, body: TicketAction) -> dict:
        try:
            change = agent.queue.finish(window, acting_on=ActingOn(body.ticket))
        except StaleRequest:
            return acted(window, False)
        except QueueError as exc:
            raise refused(exc) from None
        return acted(window, True, ticket=change.ticket.number, rating_request=change.request_id)

    @app.post("/api/windows/{window}/pause")
    async def pause(window: int) -> dict:
        return await window_action(window, agent.queue.pause)

    @app.post("/api/windows/{window}/resume")
    async def resume(window: int) -> dict:
        return await window_action(window, agent.queue.resume)

    @app.post("/api/windows/{window}/login")
    async def login(window: int, body: LoginRequest) -> dict:
        return await window_action(window, agent.queue.login, body.staff_no)

    @app.post("/api/windows/{window}/logout")
    async def logout(window: int) -> dict:
        return await window_action(window, agent.queue.logout)

    @app.post("/api/tickets/{number}/requeue")
    async def requeue(number: str, body: RequeueRequest) -> dict:
        try:
            return {"ticket": agent.queue.requeue(number, body.window).number}
        except QueueError as exc:
            raise refused(exc) from None

    @app.post("/api/tickets/{number}/green")
    async def mark_green(number: str) -> dict:
        try:
            return {"ticket": agent.queue.mark_green(number).number}
        except QueueError as exc:
            raise refused(exc) from None

    @app.get("/api/appointments")
    async def appointments() -> list[dict]:
        return agent.queue.appointments()

    @app.post("/api/appointments")
    async def import_appointments(request: Request) -> dict:
        """Import a list of appointments (code, service, slot_start, slot_end, name); all or nothing."""
        try:
            raw = await request.json()
        except ValueError:
            raise HTTPException(400, "请求不是JSON") from None
        problems: list[str] = []
        parsed = parse_appointments(raw, {s.prefix for s in agent.config.services}, problems, "body")
        if problems:
            raise HTTPException(400, "; ".join(problems))
        return {"imported": agent.queue.import_appointments(parsed)}

    @app.get("/api/attendance")
    async def attendance() -> list[dict]:
        return agent.queue.attendance()

    @app.post("/api/voice")
    async def voice(body: VoiceRequest) -> dict:
        agent.voice.set_enabled(body.enabled)
        on_change(QueueChange("voice", None))
        return {"enabled": agent.voice.enabled}

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        queue: asyncio.Queue = asyncio.Queue()
        subscribers.add(queue)

        async def stream():
            try:
                yield f"data: {json.dumps(agent.snapshot(), ensure_ascii=False)}\n\n"
                while not await request.is_disconnected():
                    try:
                        await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    while not queue.empty():  # several changes at once: one update
                        queue.get_nowait()
                    yield f"data: {json.dumps(agent.snapshot(), ensure_ascii=False)}\n\n"
            finally:
                subscribers.discard(queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return app
