"""FastAPI dependencies for authentication, roles, scope and CSRF.

    @router.get("/things")
    def things(user: CurrentUserDep): ...            # any logged-in user (or API token)

    @router.post("/things/{code}")
    def change(code: str, user: WriterDep): ...       # may write; CSRF already checked
        ensure_visible(user, code)                    # 404 for a center outside the user's scope

A browser without a session is redirected to /login; an API client gets 401.
State-changing requests (POST/PUT/PATCH/DELETE) authenticated by the session
cookie must carry the session's CSRF token, as the form field `csrf_token` or
the header `X-CSRF-Token`; `create_app` checks it for every route
(`check_csrf` as an app-wide dependency). Requests with `Authorization:
Bearer` are not cookie-authenticated and need no CSRF token.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from fleet.auth.models import User
from fleet.auth.principal import VIA_SESSION, VIA_TOKEN, CurrentUser
from fleet.auth.sessions import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, find_session, session_id_from_cookie
from fleet.auth.tokens import find_token, touch_token
from fleet.auth.users import principal

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The login form has no session yet: it carries its own double-submit token (fleet.web.account).
CSRF_EXEMPT_PATHS = frozenset({"/login"})
_UNRESOLVED = object()


class LoginRequired(Exception):
    """No valid session or token: browsers go to /login, API clients get 401 (see fleet.auth.setup)."""


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header; '' for a malformed one, None when absent."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def resolve_user(request: Request) -> CurrentUser | None:
    """Who sent this request (cached on request.state), or None.

    With an Authorization header only the token counts, never the cookie.
    """
    cached = getattr(request.state, "auth_user", _UNRESOLVED)
    if cached is not _UNRESOLVED:
        return cached  # type: ignore[return-value]
    engine = request.app.state.engine
    now = request.app.state.clock()
    user: CurrentUser | None = None
    token = bearer_token(request)
    with Session(engine) as session:
        if token is not None:
            row = find_token(session, token) if token else None
            owner = session.get(User, row.user_id) if row is not None else None
            if row is not None and owner is not None and not owner.disabled:
                user = principal(owner, VIA_TOKEN, _client(request))
                touch_token(engine, row, now)
        else:
            session_id = session_id_from_cookie(request.app.state.signing_key, request.cookies.get(SESSION_COOKIE))
            web = find_session(session, session_id, now) if session_id else None
            owner = session.get(User, web.user_id) if web is not None else None
            if web is not None and owner is not None and not owner.disabled:
                user = principal(owner, VIA_SESSION, _client(request), web.csrf_token)
    request.state.auth_user = user
    request.state.user = user  # for templates
    return user


def current_user(request: Request) -> CurrentUser:
    """The logged-in user; browsers without one are sent to /login, API clients get 401."""
    user = resolve_user(request)
    if user is None:
        raise LoginRequired()
    return user


async def check_csrf(request: Request) -> None:
    """403 unless a cookie-authenticated state-changing request carries the session's CSRF token."""
    if request.method not in UNSAFE_METHODS or bearer_token(request) is not None:
        return
    if request.url.path in CSRF_EXEMPT_PATHS:
        return
    if getattr(request.state, "csrf_checked", False):
        return
    user = await run_in_threadpool(resolve_user, request)  # a database read: keep it off the event loop
    if user is None or user.via != VIA_SESSION:
        return  # not logged in: the route's current_user answers 401 / the login redirect
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and _is_form(request):
        form = await request.form()  # Starlette caches it: the route can still read the form
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not user.csrf_token or not hmac.compare_digest(sent, user.csrf_token):
        raise HTTPException(status_code=403, detail="CSRF token missing or wrong; reload the page")
    request.state.csrf_checked = True


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


CurrentUserDep = Annotated[CurrentUser, Depends(current_user)]


def require_writer(user: CurrentUserDep, _csrf: Annotated[None, Depends(check_csrf)]) -> CurrentUser:
    """A user who may change things (county administrator or town operator); 403 for read-only users."""
    if not user.can_write:
        raise HTTPException(status_code=403, detail="read-only users cannot change anything")
    return user


def require_admin(user: CurrentUserDep, _csrf: Annotated[None, Depends(check_csrf)]) -> CurrentUser:
    """A county administrator (manages users and tokens); 403 for anybody else."""
    if not user.is_admin:
        raise HTTPException(status_code=403, detail="only a county administrator may do this")
    return user


WriterDep = Annotated[CurrentUser, Depends(require_writer)]
AdminDep = Annotated[CurrentUser, Depends(require_admin)]


def ensure_visible(user: CurrentUser, center_code: str | None) -> None:
    """404 (not 403: do not even confirm it exists) for a center outside the user's scope."""
    if not user.can_see(center_code):
        raise HTTPException(status_code=404, detail=f"center {center_code} is unknown")


def ensure_changeable(user: CurrentUser, center_code: str | None) -> None:
    """404 outside the scope, 403 for a read-only user inside it."""
    ensure_visible(user, center_code)
    if not user.can_write:
        raise HTTPException(status_code=403, detail="read-only users cannot change anything")
