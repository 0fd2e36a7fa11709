"""用户: county administrators manage users and API tokens (every change goes to the audit log)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session

from fleet import audit
from fleet.auth.deps import AdminDep
from fleet.auth.models import ApiToken, User
from fleet.auth.principal import CurrentUser
from fleet.auth.roles import ROLE_LABELS, ROLES
from fleet.auth.sessions import SESSION_COOKIE, end_sessions_of, session_id_from_cookie
from fleet.auth.tokens import create_token, list_tokens, revoke_token
from fleet.auth.users import create_user, list_users, set_password, within_scope
from fleet.db import write_session
from fleet.deps import SessionDep
from fleet.web import labels

router = APIRouter(include_in_schema=False)
# Row ids fit a signed 64-bit integer; a larger one is a 422, not a database overflow.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _page(request: Request, session: Session, admin: CurrentUser, status: int = 200,
          **extra: Any) -> Response:
    users = list_users(session, admin)
    tokens = list_tokens(session, [u.id for u in users if u.id is not None])
    settings = request.app.state.settings
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, "users.html", {
        "users": users, "tokens": tokens, "roles": ROLES, "role_labels": ROLE_LABELS,
        "local_time": lambda value: labels.local_time(value, settings.tz), **extra,
    }, status_code=status)


def _managed_user(session: Session, admin: CurrentUser, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not within_scope(admin, user.division_prefix):
        raise HTTPException(status_code=404, detail=f"user {user_id} is unknown")
    return user


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, admin: AdminDep, session: SessionDep) -> Response:
    return _page(request, session, admin)


@router.post("/users", response_class=HTMLResponse)
def add_user(request: Request, admin: AdminDep, session: SessionDep, username: Annotated[str, Form()],
             role: Annotated[str, Form()], password: Annotated[str, Form()],
             division_prefix: Annotated[str, Form()] = "", display_name: Annotated[str, Form()] = "") -> Response:
    prefix = division_prefix.strip() or admin.division_prefix
    if not within_scope(admin, prefix):
        return _page(request, session, admin, 400, error="只能创建您管理范围内的用户。")
    try:
        with write_session(request.app.state.engine) as ws:
            user = create_user(ws, username.strip(), role, password, prefix, display_name)
            audit.record(ws, admin, "user.create", target=user.username,
                         detail={"role": user.role, "division_prefix": user.division_prefix})
    except ValueError as exc:
        return _page(request, session, admin, 400, error="无法创建用户：{reason}", error_reason=str(exc))
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{user_id}/tokens", response_class=HTMLResponse)
def add_token(request: Request, user_id: RowId, admin: AdminDep, session: SessionDep,
              name: Annotated[str, Form()]) -> Response:
    with write_session(request.app.state.engine) as ws:
        owner = _managed_user(ws, admin, user_id)
        try:
            row, token = create_token(ws, owner, name)
        except ValueError as exc:
            return _page(request, session, admin, 400, error="无法创建令牌：{reason}", error_reason=str(exc))
        audit.record(ws, admin, "token.create", target=owner.username, detail={"token": row.name, "hint": row.hint})
    session.expire_all()
    return _page(request, session, admin, new_token=token, new_token_user=owner.username)


@router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
def revoke(request: Request, token_id: RowId, admin: AdminDep) -> Response:
    with write_session(request.app.state.engine) as ws:
        row = ws.get(ApiToken, token_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"token {token_id} is unknown")
        owner = _managed_user(ws, admin, row.user_id)
        revoke_token(ws, token_id)
        audit.record(ws, admin, "token.revoke", target=owner.username, detail={"token": row.name, "hint": row.hint})
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{user_id}/disable", response_class=HTMLResponse)
def disable(request: Request, user_id: RowId, admin: AdminDep) -> Response:
    return _set_disabled(request, user_id, admin, True)


@router.post("/users/{user_id}/enable", response_class=HTMLResponse)
def enable(request: Request, user_id: RowId, admin: AdminDep) -> Response:
    return _set_disabled(request, user_id, admin, False)


def _set_disabled(request: Request, user_id: int, admin: AdminDep, disabled: bool) -> Response:
    if user_id == admin.id:
        raise HTTPException(status_code=400, detail="you cannot disable yourself")
    with write_session(request.app.state.engine) as ws:
        user = _managed_user(ws, admin, user_id)
        user.disabled = disabled
        ws.add(user)
        if disabled:
            end_sessions_of(ws, user_id)
        audit.record(ws, admin, "user.disable" if disabled else "user.enable", target=user.username)
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{user_id}/password", response_class=HTMLResponse)
def reset_password(request: Request, user_id: RowId, admin: AdminDep, session: SessionDep,
                   password: Annotated[str, Form()]) -> Response:
    try:
        # One's own password changed in this browser: this session stays, every other one ends (set_password).
        own_session = session_id_from_cookie(request.app.state.signing_key, request.cookies.get(SESSION_COOKIE))
        with write_session(request.app.state.engine) as ws:
            user = _managed_user(ws, admin, user_id)
            set_password(ws, user, password, own_session if user_id == admin.id else None)
            audit.record(ws, admin, "user.password", target=user.username)
    except ValueError as exc:
        return _page(request, session, admin, 400, error="无法修改密码：{reason}", error_reason=str(exc))
    return RedirectResponse("/users", status_code=303)
