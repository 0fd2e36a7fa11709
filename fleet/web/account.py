"""登录 / 退出: the login page and logout."""

from __future__ import annotations

import hmac
import math
import secrets
from datetime import datetime
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
from fleet.auth.throttle import LoginLimits, active_lock, clear_user_failures, hold_login_keys, record_failure
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


LOCKED = "登录失败次数过多，已暂时锁定，请 {minutes} 分钟后再试。"
WRONG_PASSWORD = "用户名或密码错误。"
EXPIRED = "页面已过期，请重新登录。"
# A Secure login cookie that a browser on plain http never sent back: say why instead of "expired".
NEEDS_HTTPS = "请通过 HTTPS 地址登录（本服务器的登录 Cookie 只在 HTTPS 下发送）。"


def _login_page(request: Request, next_url: str, error: str | None = None, status: int = 200,
                headers: dict[str, str] | None = None, **error_fields: object) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    request.state.login_csrf = token
    templates: Jinja2Templates = request.app.state.templates
    response = templates.TemplateResponse(request, "login.html", {"next": next_url, "error": error,
                                                                  "error_fields": error_fields},
                                          status_code=status, headers=headers)
    settings: Settings = request.app.state.settings
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax",
                        secure=settings.session_cookie_secure)
    return response


def _locked_page(request: Request, next_url: str, until: datetime, now: datetime) -> Response:
    seconds = max(1, math.ceil((until - now).total_seconds()))
    return _login_page(request, next_url, LOCKED, status=429, headers={"Retry-After": str(seconds)},
                       minutes=math.ceil(seconds / 60))


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
        plain_http = settings.session_cookie_secure and request.url.scheme == "http" and not expected
        return _login_page(request, target, NEEDS_HTTPS if plain_http else EXPIRED, status=403)
    engine = request.app.state.engine
    now = request.app.state.clock()
    source = request.client.host if request.client else None
    name = username.strip()
    with write_session(engine) as session:
        hold_login_keys(session, name, source)  # parallel guesses wait here: each sees the one before
        lock = active_lock(session, name, source, now)
        if lock is not None:  # refused without looking at the password
            return _locked_page(request, target, lock.until, now)
        user = authenticate(session, name, password)
        if user is None:
            audit.record(session, None, "login.failed", target=name[:64], detail={"source": source}, at=now)
            new_locks = record_failure(session, name, source, now, LoginLimits.from_settings(settings))
            failed_until = max((lock.until for lock in new_locks), default=None)
        else:
            clear_user_failures(session, user.username)
            session_id, web = start_session(session, user, now, settings.session_max_age_s, source)
            who = principal(user, VIA_SESSION, source, web.csrf_token)
            audit.record(session, who, "login", target=user.username, at=now)
    if user is None:
        if failed_until is not None:
            return _locked_page(request, target, failed_until, now)
        return _login_page(request, target, WRONG_PASSWORD, status=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie_value(request.app.state.signing_key, session_id),
                        max_age=settings.session_max_age_s, httponly=True, samesite="lax",
                        secure=settings.session_cookie_secure)
    response.delete_cookie(LOGIN_CSRF_COOKIE, httponly=True, samesite="lax", secure=settings.session_cookie_secure)
    return response


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request, user: Annotated[CurrentUser, Depends(current_user)]) -> Response:
    session_id = session_id_from_cookie(request.app.state.signing_key, request.cookies.get(SESSION_COOKIE))
    with write_session(request.app.state.engine) as session:
        if session_id:
            end_session(session, session_id)
        audit.record(session, user, "logout", target=user.username, at=request.app.state.clock())
    response = RedirectResponse("/login", status_code=303)
    settings: Settings = request.app.state.settings
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=settings.session_cookie_secure)
    return response
