"""Roles and division-code scopes: who may see and change which centers."""

from __future__ import annotations

COUNTY_ADMIN = "county_admin"
TOWN_OPERATOR = "town_operator"
READ_ONLY = "read_only"
ROLES = (COUNTY_ADMIN, TOWN_OPERATOR, READ_ONLY)
WRITER_ROLES = frozenset({COUNTY_ADMIN, TOWN_OPERATOR})

ROLE_LABELS = {COUNTY_ADMIN: "县级管理员", TOWN_OPERATOR: "乡镇运维员", READ_ONLY: "只读用户"}

COUNTY_PREFIX_LEN = 6
TOWN_PREFIX_LEN = 9


def check_scope(role: str, division_prefix: str | None) -> str | None:
    """The normalised prefix for `role`, or ValueError saying what is wrong.

    A town operator needs a 9-digit town prefix; an administrator or read-only
    user may have none (the whole county database), a 6-digit county or a
    9-digit town prefix.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    prefix = (division_prefix or "").strip() or None
    if prefix is not None and (not prefix.isascii() or not prefix.isdigit()
                               or len(prefix) not in (COUNTY_PREFIX_LEN, TOWN_PREFIX_LEN)):
        raise ValueError(f"division prefix must be 6 (county) or 9 (town) digits, got {prefix!r}")
    if role == TOWN_OPERATOR and (prefix is None or len(prefix) != TOWN_PREFIX_LEN):
        raise ValueError("a town operator needs a 9-digit town division prefix")
    return prefix
