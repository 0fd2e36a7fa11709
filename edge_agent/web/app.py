"""FastAPI app of the edge agent: pages in Simplified Chinese and their small JSON API.

Everything is served by the agent itself (county intranets have no internet,
so nothing comes from a CDN). Pages get live updates over server-sent events.
Handlers are `async` on purpose: queue listeners (displays, voice, pages) then
run on the agent's event loop, never on a worker thread.

Three kinds of route (docs/security.md): public ones for the kiosk and the hall
(the state they read carries no staff numbers), staff ones that need a session
signed in at that window (工号 + PIN), and the center administrator's. Every
state-changing request must be JSON from this agent's own pages: a web page of
another site open in a browser on the center's LAN can neither read the session
cookie (HttpOnly, SameSite=Strict) nor send a request that passes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from edge_agent.agent import EdgeAgent
from edge_agent.appointments import parse_appointments
from edge_agent.center_config import photo_bytes
from edge_agent.queue.service import ActingOn, QueueChange, QueueError, StaleRequest
from edge_agent.sign_in import ADMIN, SignInRefused, StaffSession
from edge_agent.storage import refusal_text
from edge_agent.voice import kiosk_prompt_parts, wav_bytes
from edge_agent.web.evaluation import add_evaluation_routes
from edge_agent.web.guide_routes import add_guide_routes

HERE = Path(__file__).parent
STAFF_COOKIE = "edge_staff"
ADMIN_COOKIE = "edge_admin"
MAX_APPOINTMENTS_BODY = 2 * 1024 * 1024  # a day's appointments of a big town hall fit many times over
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class TicketRequest(BaseModel):
    service: str
    with_card: bool = False  # the ID card swiped at the kiosk just now goes with the ticket
    item: str = Field("", max_length=32)  # the item (事项) chosen in the guide: the ticket carries its materials
    request_id: str = Field("", max_length=64)  # the tap's id: the same tap sent twice gets one ticket


class CallRequest(BaseModel):
    """下一位 and 重呼 name what the staff saw: the number served ("" for none) and the window's call count."""

    ticket: str = Field(max_length=16)
    call_seq: int


class TicketAction(BaseModel):
    """过号 and 办结 name the ticket they act on."""

    ticket: str = Field(max_length=16)


class ScanRequest(BaseModel):
    code: str = Field(max_length=256)


class SignInRequest(BaseModel):
    staff_no: str = Field(max_length=32)
    pin: str = Field(max_length=32)


class AdminSignInRequest(BaseModel):
    password: str = Field(max_length=256)


class PinRequest(BaseModel):
    pin: str = Field(max_length=32)


class TransferRequest(BaseModel):
    ticket: str = Field(max_length=16)  # the ticket being transferred
    service: str | None = None
    window: int | None = None


class VoiceRequest(BaseModel):
    enabled: bool


def _same_site(request: Request) -> bool:
    """A browser names the page a request comes from (Origin); it must be this agent's own."""
    origin = request.headers.get("origin")
    if origin is None:  # not sent by a browser's cross-site request (curl, the tests, an older kiosk)
        return True
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def _is_json(request: Request) -> bool:
    # A cross-site form or text/plain POST needs no preflight; application/json does, and we answer none.
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


def _set_cookie(response: Response, name: str, token: str) -> None:
    # No Secure flag: the center's pages are plain HTTP on the LAN; HttpOnly + SameSite=Strict keep it ours.
    response.set_cookie(name, token, httponly=True, samesite="strict", path="/")


def create_app(agent: EdgeAgent) -> FastAPI:
    app = FastAPI(title="便民服务中心 边缘网关", docs_url="/api/docs")
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    subscribers: set[asyncio.Queue] = set()
    sign_in = agent.sign_in

    def on_change(_change: QueueChange) -> None:
        for queue in list(subscribers):
            queue.put_nowait(True)

    agent.change_listeners.append(on_change)

    @app.exception_handler(sqlite3.OperationalError)
    async def storage_failed(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        # A full or failing data disk (counted in health's `storage`): say so, and that it is not for ever.
        logging.getLogger(__name__).warning("%s %s refused: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": refusal_text(request.url.path, exc)}, status_code=503,
                            headers={"Retry-After": "30"})

    @app.middleware("http")
    async def refuse_cross_site(request: Request, call_next):
        if request.method in UNSAFE_METHODS:
            if not _same_site(request):
                return JSONResponse({"detail": "拒绝来自其他网页的请求"}, status_code=403)
            if not _is_json(request):
                return JSONResponse({"detail": "请求须为JSON"}, status_code=415)
        return await call_next(request)

    def page(request: Request, name: str, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"center": agent.config, **context})

    def refused(exc: Exception) -> HTTPException:
        return HTTPException(400, str(exc))

    def staff_at(window: int, request: Request) -> StaffSession:
        """The staff member signed in at this window from this browser; 401/403 otherwise."""
        session = sign_in.session(request.cookies.get(STAFF_COOKIE))
        if session is None:
            raise HTTPException(401, "请先输入工号和密码登录")
        if session.window != window:
            raise HTTPException(403, f"您登录的是{session.window}号窗口，不能操作{window}号窗口")
        return session

    def any_staff(request: Request) -> StaffSession:
        session = sign_in.session(request.cookies.get(STAFF_COOKIE))
        if session is None:
            raise HTTPException(401, "请先输入工号和密码登录")
        return session

    def admin(request: Request) -> StaffSession:
        session = sign_in.session(request.cookies.get(ADMIN_COOKIE))
        if session is None or session.staff_no != ADMIN:
            raise HTTPException(401, "请先以中心管理员身份登录")
        return session

    def staff_or_admin(request: Request) -> StaffSession:
        for cookie in (STAFF_COOKIE, ADMIN_COOKIE):
            session = sign_in.session(request.cookies.get(cookie))
            if session is not None:
                return session
        raise HTTPException(401, "请先登录")

    # -- pages (public: what they can do depends on the session) -----------

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

    @app.get("/staff-photo/{staff_no}")
    async def staff_photo(staff_no: str) -> Response:
        """The roster's photo of a staff member, for the hall display (亮牌上岗)."""
        try:
            image = photo_bytes(agent.config.staff_member(staff_no).photo)
        except KeyError:
            image = None
        if image is None:
            raise HTTPException(404, "没有照片")
        return Response(image[0], media_type=image[1], headers={"Cache-Control": "no-cache"})

    @app.get("/admin", response_class=HTMLResponse)
    async def admin_page(request: Request) -> HTMLResponse:
        return page(request, "admin.html")

    # -- public: the kiosk and the hall -----------------------------------

    @app.get("/api/state")
    async def state() -> dict:
        return agent.snapshot()

    @app.get("/api/health")
    async def health() -> dict:
        return agent.health()

    @app.post("/api/tickets")
    async def take_ticket(body: TicketRequest) -> dict:
        try:
            return await agent.take_ticket(body.service, body.with_card, body.item, body.request_id)
        except QueueError as exc:
            raise refused(exc) from None

    @app.post("/api/scan")
    async def scan(body: ScanRequest) -> dict:
        """The kiosk's keyboard-wedge scanner typed a code and Enter."""
        return await agent.scan_code(body.code)

    @app.get("/kiosk/voice/{prompt}.wav")
    async def kiosk_voice(prompt: str) -> Response:
        """The kiosk's spoken prompt in the calls' offline voice, put together from cached pieces."""
        if not (agent.voice.enabled and agent.config.voice.kiosk):
            raise HTTPException(404, "取号机语音提示未开启")
        try:
            parts = kiosk_prompt_parts(prompt, {s.prefix: s.name for s in agent.config.services})
        except ValueError:
            raise HTTPException(404, "没有这条语音提示") from None
        try:
            rate, frames = await asyncio.to_thread(agent.voice.pieces().sentence, parts)
        except (OSError, RuntimeError) as exc:  # no synthesizer, a full disk: the kiosk stays silent, not broken
            raise HTTPException(503, f"语音提示暂不可用：{exc}") from None
        return Response(wav_bytes(rate, frames), media_type="audio/wav", headers={"Cache-Control": "max-age=3600"})

    @app.post("/api/help")
    async def ask_for_help() -> dict:
        """请工作人员帮助 at the kiosk: shown on every staff caller and the hall until someone goes."""
        agent.ask_for_help()
        return agent.kiosk.help_state()

    # -- staff at a window ----------------------------------------------

    @app.post("/api/windows/{window}/login")
    async def login(window: int, body: SignInRequest, request: Request, response: Response) -> dict:
        """工号 + PIN: a session for this window (考勤 starts, the window opens)."""
        try:
            agent.config.window(window)
            token = sign_in.sign_in(window, body.staff_no, body.pin, request.client.host if request.client else "")
        except KeyError:
            raise HTTPException(404, f"没有{window}号窗口") from None
        except (SignInRefused, QueueError) as exc:
            raise refused(exc) from None
        _set_cookie(response, STAFF_COOKIE, token)
        member = agent.config.staff_member(body.staff_no.strip())
        return acted(window, True, staff_no=member.staff_no, staff_name=member.name)

    @app.get("/api/windows/{window}/session")
    async def session(window: int, request: Request) -> dict:
        """Who this browser is signed in as at this window (the caller page shows it)."""
        current = staff_at(window, request)
        return {"staff_no": current.staff_no, "staff_name": current.name, "window": current.window}

    @app.post("/api/windows/{window}/logout")
    async def logout(window: int, request: Request, response: Response) -> dict:
        staff_at(window, request)
        try:
            sign_in.sign_out(request.cookies[STAFF_COOKIE])
        except QueueError as exc:
            raise refused(exc) from None
        response.delete_cookie(STAFF_COOKIE, path="/")
        return acted(window, True)

    def acted(window: int, changed: bool, **result) -> dict:
        """Every staff action answers with what the window is at now, which its next request names."""
        return {"changed": changed, **result, "window": agent.queue.window_now(window)}

    def window_action(window: int, action, *args, **kwargs) -> dict:
        try:
            result = action(window, *args, **kwargs)
        except StaleRequest:
            return acted(window, False)
        except QueueError as exc:
            raise refused(exc) from None
        return acted(window, True, ticket=getattr(result, "number", None), state=getattr(result, "state", None))

    @app.post("/api/windows/{window}/next", dependencies=[Depends(staff_at)])
    async def call_next(window: int, body: CallRequest) -> dict:
        return window_action(window, agent.queue.call_next, acting_on=ActingOn(body.ticket, body.call_seq))

    @app.post("/api/windows/{window}/recall", dependencies=[Depends(staff_at)])
    async def recall(window: int, body: CallRequest) -> dict:
        return window_action(window, agent.queue.recall, acting_on=ActingOn(body.ticket, body.call_seq))

    @app.post("/api/windows/{window}/skip", dependencies=[Depends(staff_at)])
    async def skip(window: int, body: TicketAction) -> dict:
        return window_action(window, agent.queue.skip, acting_on=ActingOn(body.ticket))

    @app.post("/api/windows/{window}/transfer", dependencies=[Depends(staff_at)])
    async def transfer(window: int, body: TransferRequest) -> dict:
        return window_action(window, agent.queue.transfer, body.service or None, body.window,
                             acting_on=ActingOn(body.ticket))

    @app.post("/api/windows/{window}/finish", dependencies=[Depends(staff_at)])
    async def finish(window: int, body: TicketAction) -> dict:
        try:
            change = agent.queue.finish(window, acting_on=ActingOn(body.ticket))
        except StaleRequest:
            return acted(window, False)
        except QueueError as exc:
            raise refused(exc) from None
        return acted(window, True, ticket=change.ticket.number, rating_request=change.request_id)

    @app.post("/api/windows/{window}/pause", dependencies=[Depends(staff_at)])
    async def pause(window: int) -> dict:
        return window_action(window, agent.queue.pause)

    @app.post("/api/windows/{window}/resume", dependencies=[Depends(staff_at)])
    async def resume(window: int) -> dict:
        return window_action(window, agent.queue.resume)

    @app.post("/api/tickets/{number}/requeue")
    async def requeue(number: str, request: Request) -> dict:
        """重新排队 by the staff of a window (the event names that window)."""
        staff = any_staff(request)
        try:
            return {"ticket": agent.queue.requeue(number, staff.window).number}
        except QueueError as exc:
            raise refused(exc) from None

    @app.post("/api/tickets/{number}/green", dependencies=[Depends(any_staff)])
    async def mark_green(number: str) -> dict:
        try:
            return {"ticket": agent.queue.mark_green(number).number}
        except QueueError as exc:
            raise refused(exc) from None

    @app.post("/api/tickets/{number}/green/undo", dependencies=[Depends(any_staff)])
    async def unmark_green(number: str) -> dict:
        try:
            return {"ticket": agent.queue.unmark_green(number).number}
        except QueueError as exc:
            raise refused(exc) from None

    @app.post("/api/help/given")
    async def help_given(request: Request) -> dict:
        """A staff member goes to the resident at the kiosk (the requests on the other callers close)."""
        agent.help_given(any_staff(request).name)
        return agent.kiosk.help_state()

    @app.post("/api/voice", dependencies=[Depends(staff_or_admin)])
    async def voice(body: VoiceRequest) -> dict:
        agent.voice.set_enabled(body.enabled)
        on_change(QueueChange("voice", None))
        return {"enabled": agent.voice.enabled}

    # -- the center administrator ----------------------------------------

    @app.post("/api/admin/login")
    async def admin_login(body: AdminSignInRequest, request: Request, response: Response) -> dict:
        if agent.config.admin_password_hash is None:
            raise HTTPException(400, "本中心未设置管理员密码（配置文件 [admin] password_hash）")
        try:
            token = sign_in.admin_sign_in(body.password, request.client.host if request.client else "")
        except SignInRefused as exc:
            raise refused(exc) from None
        _set_cookie(response, ADMIN_COOKIE, token)
        return {"signed_in": True}

    @app.post("/api/admin/logout")
    async def admin_logout(request: Request, response: Response) -> dict:
        token = request.cookies.get(ADMIN_COOKIE)
        if token:
            sign_in.sign_out(token)
        response.delete_cookie(ADMIN_COOKIE, path="/")
        return {"signed_in": False}

    @app.get("/api/admin/staff", dependencies=[Depends(admin)])
    async def staff_list() -> list[dict]:
        return sign_in.staff_list()

    @app.post("/api/admin/staff/{staff_no}/pin", dependencies=[Depends(admin)])
    async def set_pin(staff_no: str, body: PinRequest) -> dict:
        try:
            sign_in.set_pin(staff_no, body.pin)
        except SignInRefused as exc:
            raise refused(exc) from None
        return {"staff_no": staff_no, "has_pin": True}

    @app.get("/api/appointments", dependencies=[Depends(admin)])
    async def appointments() -> list[dict]:
        return agent.queue.appointments()

    @app.post("/api/appointments", dependencies=[Depends(admin)])
    async def import_appointments(request: Request) -> dict:
        """Import a list of appointments (code, service, slot_start, slot_end, name); all or nothing."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_APPOINTMENTS_BODY:
            raise HTTPException(413, "预约名单过大")
        body = bytearray()
        async for chunk in request.stream():  # counted as it comes: a missing or false length cannot pass
            body += chunk
            if len(body) > MAX_APPOINTMENTS_BODY:
                raise HTTPException(413, "预约名单过大")
        try:
            raw = json.loads(body)
        except ValueError:
            raise HTTPException(400, "请求不是JSON") from None
        problems: list[str] = []
        parsed = parse_appointments(raw, {s.prefix for s in agent.config.services}, problems, "body")
        if problems:
            raise HTTPException(400, "; ".join(problems[:20]))
        return {"imported": agent.queue.import_appointments(parsed)}

    @app.get("/api/attendance", dependencies=[Depends(staff_or_admin)])
    async def attendance() -> list[dict]:
        return agent.queue.attendance()

    add_evaluation_routes(app, agent, page)

    add_guide_routes(app, agent)

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
