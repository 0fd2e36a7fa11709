"""Users: create, authenticate, change. Plain functions over a session (the caller commits)."""

from __future__ import annotations

import re

from sqlmodel import Session, col, select

from fleet.auth.models import User
from fleet.auth.passwords import check_password_strength, hash_password, needs_rehash, verify_password
from fleet.auth.principal import CurrentUser
from fleet.auth.roles import check_scope
from fleet.auth.sessions import end_sessions_of

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
DISPLAY_NAME_MAX = 64


def check_username(username: str) -> str:
    if not USERNAME_PATTERN.match(username):
        raise ValueError("username: 2 to 64 letters, digits or _ . @ -")
    return username


def check_display_name(display_name: str | None) -> str | None:
    """The trimmed display name (None when empty); ValueError when too long or with control characters."""
    name = (display_name or "").strip()
    if len(name) > DISPLAY_NAME_MAX or not name.isprintable():
        raise ValueError(f"display name: at most {DISPLAY_NAME_MAX} printable characters")
    return name or None


def find_user(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username)).first()


def create_user(session: Session, username: str, role: str, password: str | None,
                division_prefix: str | None = None, display_name: str | None = None) -> User:
    """A new user; ValueError for a bad name, role, prefix or weak password, or a name taken."""
    check_username(username)
    shown = check_display_name(display_name)
    prefix = check_scope(role, division_prefix)
    if password is not None:
        check_password_strength(password)
    if find_user(session, username) is not None:
        raise ValueError(f"user {username!r} exists already")
    user = User(username=username, display_name=shown, role=role, division_prefix=prefix,
                password_hash=hash_password(password) if password is not None else None)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str, keep_session_id: str | None = None) -> None:
    """A new password, and the user logged out of every browser session but `keep_session_id` (the one that
    changed its own password): a new password is what follows a stolen session, which must not outlive it."""
    check_password_strength(password)
    user.password_hash = hash_password(password)
    session.add(user)
    if user.id is not None:
        end_sessions_of(session, user.id, keep_session_id)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The enabled user with this name and password, else None (same cost either way)."""
    user = find_user(session, username)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or user.disabled:
        return None
    if needs_rehash(user.password_hash or ""):
        user.password_hash = hash_password(password)
        session.add(user)
    return user


def list_users(session: Session, viewer: CurrentUser) -> list[User]:
    """Users an administrator may manage: those whose scope lies inside the viewer's."""
    users = session.exec(select(User).order_by(col(User.username))).all()
    return [u for u in users if within_scope(viewer, u.division_prefix)]


def within_scope(viewer: CurrentUser, prefix: str | None) -> bool:
    """Whether a scope `prefix` lies inside the viewer's scope (None = the whole database)."""
    if viewer.division_prefix is None:
        return True
    return prefix is not None and prefix.startswith(viewer.division_prefix)


def principal(user: User, via: str, source: str | None = None, csrf_token: str | None = None) -> CurrentUser:
    return CurrentUser(id=user.id, username=user.username, role=user.role, division_prefix=user.division_prefix,
                       via=via, source=source, csrf_token=csrf_token)
