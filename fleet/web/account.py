"""登录 / 退出: the login page and logout."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from fleet import audit
from fleet.auth.deps import check_csrf, current_user, resolve_user
from fleet.auth.principal import VIA_SESSION, CurrentUser
from fleet.auth.sessions import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    cookie_value,
    end_session,
    session_id_from_cookie,
    start_session,
)
from fleet.auth.users import authenticate, principal
from fleet.db import write_session
from fleet.deps import SettingsDep
from fleet.settings import Settings

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path on this site (no //host or scheme): no open redirect through the login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(request: Request, next_url: str, error: str | None = None, status: int = 200) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    request.state.login_csrf = token
    templates: Jinja2Templates = request.app.state.templates
    response = templates.TemplateResponse(request, "login.html", {"next": next_url, "error": error},
                                          status_code=status)
    settings: Settings = request.app.state.settings
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax",
                        secure=settings.session_cookie_secure)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:  # noqa: A002 (the query parameter's name)
    if resolve_user(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, safe_next(next))


@router.post("/login")
def login(request: Request, settings: SettingsDep, username: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/") -> Response:  # noqa: A002
    target = safe_next(next)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        return _login_page(request, target, "页面已过期，请重新登录。", status=403)
    engine = request.app.state.engine
    now = request.app.state.clock()
    source = request.client.host if request.client else None
    with write_session(engine) as session:
        user = authenticate(session, username.strip(), password)
        if user is None:
            audit.record(session, None, "login.failed", target=username.strip()[:64], detail={"source": source},
                         at=now)
            failed = True
        else:
            failed = False
            session_id, web = start_session(session, user, now, settings.session_max_age_s, source)
            who = principal(user, VIA_SESSION, source, web.csrf_token)
            audit.record(session, who, "login", target=user.username, at=now)
    if failed:
        return _login_page(request, target, "用户名或密码错误。", status=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie_value(request.app.state.signing_key, session_id),
                        max_age=settings.session_max_age_s, httponly=True, samesite="lax",
                        secure=settings.session_cookie_secure)
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request, user: Annotated[CurrentUser, Depends(current_user)]) -> Response:
    session_id = session_id_from_cookie(request.app.state.signing_key, request.cookies.get(SESSION_COOKIE))
    with write_session(request.app.state.engine) as session:
        if session_id:
            end_session(session, session_id)
        audit.record(session, user, "logout", target=user.username, at=request.app.state.clock())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
