"""FastAPI app of the edge agent: pages in Simplified Chinese and their small JSON API.

Everything is served by the agent itself (county intranets have no internet,
so nothing comes from a CDN). Pages get live updates over server-sent events.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from edge_agent.agent import EdgeAgent
from edge_agent.queue.service import QueueChange, QueueError

HERE = Path(__file__).parent


class TicketRequest(BaseModel):
    service: str


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

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return page(request, "index.html")

    @app.get("/kiosk", response_class=HTMLResponse)
    def kiosk(request: Request) -> HTMLResponse:
        return page(request, "kiosk.html")

    @app.get("/staff/{window}", response_class=HTMLResponse)
    def staff(request: Request, window: int) -> HTMLResponse:
        try:
            config = agent.config.window(window)
        except KeyError:
            raise HTTPException(404, f"没有{window}号窗口") from None
        return page(request, "staff.html", window=config)

    @app.get("/hall", response_class=HTMLResponse)
    def hall(request: Request) -> HTMLResponse:
        return page(request, "hall.html")

    @app.get("/api/state")
    def state() -> dict:
        return agent.queue.snapshot()

    @app.get("/api/health")
    def health() -> dict:
        return agent.health()

    @app.post("/api/tickets")
    async def take_ticket(body: TicketRequest) -> dict:
        try:
            return await agent.take_ticket(body.service)
        except QueueError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.post("/api/windows/{window}/next")
    def call_next(window: int) -> dict:
        try:
            ticket = agent.queue.call_next(window)
        except QueueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"ticket": ticket.number if ticket else None}

    @app.post("/api/windows/{window}/finish")
    def finish(window: int) -> dict:
        try:
            change = agent.queue.finish(window)
        except QueueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"ticket": change.ticket.number, "rating_request": change.request_id}

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        queue: asyncio.Queue = asyncio.Queue()
        subscribers.add(queue)

        async def stream():
            try:
                yield f"data: {json.dumps(agent.queue.snapshot(), ensure_ascii=False)}\n\n"
                while not await request.is_disconnected():
                    try:
                        await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    while not queue.empty():  # several changes at once: one update
                        queue.get_nowait()
                    yield f"data: {json.dumps(agent.queue.snapshot(), ensure_ascii=False)}\n\n"
            finally:
                subscribers.discard(queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return app
