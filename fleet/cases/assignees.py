"""Who a case can be assigned to: an active user account whose division scope covers the case's center."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, select

from fleet.auth.models import User
from fleet.cases.models import FollowUpCase

# One answer whether the name is unknown, disabled or out of scope: a town operator must not learn
# which user names exist in other towns by trying them.
UNFIT_ASSIGNEE = "责任人须为管理范围包括该中心的有效用户。"


class AssigneeError(ValueError):
    """The chosen assignee is no active user, or their scope does not cover the center (HTTP 422)."""


def display_name(user: User) -> str:
    return user.display_name or user.username


def covers(user: User, center_code: str) -> bool:
    """Whether the user's division scope includes the center (no prefix: the whole database)."""
    return user.division_prefix is None or center_code.startswith(user.division_prefix)


def assignable_users(session: Session, center_code: str) -> list[User]:
    """Active users who may be responsible for a case of `center_code`, by name."""
    users = session.exec(select(User).where(col(User.disabled).is_(False))).all()
    return sorted((u for u in users if covers(u, center_code)), key=lambda u: (display_name(u), u.username))


def find_assignee(session: Session, username: str, center_code: str) -> User:
    """The user `username` if a case of `center_code` may be assigned to them, else AssigneeError."""
    user = session.exec(select(User).where(User.username == username.strip())).first()
    if user is None or user.disabled or not covers(user, center_code):
        raise AssigneeError(UNFIT_ASSIGNEE)
    return user


def assignee_names(session: Session, cases: Iterable[FollowUpCase]) -> dict[int, str]:
    """The current display names of the accounts the cases are assigned to, by user id."""
    ids = sorted({c.assignee_user_id for c in cases if c.assignee_user_id is not None})
    if not ids:
        return {}
    return {u.id: display_name(u) for u in session.exec(select(User).where(col(User.id).in_(ids))).all()
            if u.id is not None}


def assignee_name(case: FollowUpCase, names: dict[int, str]) -> str | None:
    """The account's current name; the name given at assignment (or a legacy free-text value) otherwise."""
    if case.assignee_user_id is not None and case.assignee_user_id in names:
        return names[case.assignee_user_id]
    return case.assignee
