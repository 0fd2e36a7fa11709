"""Names beside codes, and finding centers by name or code.

A center's name is its profile's (统一标识); a town's or village's is the division list's. Both may be missing
(a center nobody has described yet, a county that has not imported its list): pages then show the code alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine, func, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from fleet.centers.divisions import town_division
from fleet.centers.models import DIVISION_TOWN, CenterProfile, Division
from fleet.db import among

MAX_QUERY_CHARS = 64


def center_names(session: Session, codes: Iterable[str]) -> dict[str, str]:
    """center code -> its profile's name, for the codes that have one."""
    codes = list(dict.fromkeys(codes))
    if not codes:
        return {}
    rows = session.exec(select(CenterProfile.center_code, CenterProfile.name)
                        .where(*among(CenterProfile.center_code, codes))).all()
    wanted = set(codes)
    return {code: name for code, name in rows if code in wanted and name}


def division_names(session: Session, codes: Iterable[str]) -> dict[str, str]:
    """12-digit division code -> its name in the imported list, for the codes it has."""
    codes = list(dict.fromkeys(codes))
    if not codes:
        return {}
    wanted = set(codes)
    rows = session.exec(select(Division.code, Division.name).where(*among(Division.code, codes))).all()
    return {code: name for code, name in rows if code in wanted}


def town_names(session: Session, town_codes: Iterable[str]) -> dict[str, str]:
    """9-digit town code (as Center.town_code) -> the town's name (镇/街道) in the imported list."""
    by_division = {town_division(code): code for code in town_codes}
    return {by_division[code]: name for code, name in division_names(session, by_division).items()}


def attach_names(session: Session, rows: list[dict[str, Any]], code_key: str = "code",
                 town_key: str | None = "town_code") -> list[dict[str, Any]]:
    """Add `name` (the center's) and `town_name` to each row (a dict with a center code), in place; returns rows."""
    names = center_names(session, (row[code_key] for row in rows))
    towns = town_names(session, (row[town_key] for row in rows)) if town_key else {}
    for row in rows:
        row["name"] = names.get(row[code_key])
        if town_key:
            row["town_name"] = towns.get(row[town_key])
    return rows


def name_lookup(engine: Engine) -> Callable[[str | None], str]:
    """code -> the center's name ("" when it has none), for a page that shows codes: every name is read once, at
    the first call (a county has a few thousand centers at most), so a list of 500 alerts costs one query."""
    names: dict[str, str] | None = None

    def name_of(code: str | None) -> str:
        nonlocal names
        if names is None:
            with Session(engine) as session:
                names = dict(session.exec(select(CenterProfile.center_code, CenterProfile.name)).all())
        return names.get(code or "", "")

    return name_of


def clean_query(q: str | None) -> str | None:
    """A search text as typed (spaces trimmed), None when empty; at most MAX_QUERY_CHARS."""
    q = (q or "").strip()[:MAX_QUERY_CHARS]
    return q or None


def name_or_code_clause(q: str, code_column: Any) -> ColumnElement[bool]:
    """Rows whose 12-digit center code column contains `q`, or whose center's name does, or whose town's does.

    Searching 示例镇 finds every center of that town; 445202101 its codes; 便民服务站 every station.
    """
    profiles = select(CenterProfile.center_code).where(col(CenterProfile.name).contains(q, autoescape=True))
    towns = select(func.substr(Division.code, 1, 9)).where(Division.level == DIVISION_TOWN,
                                                            col(Division.name).contains(q, autoescape=True))
    return or_(col(code_column).contains(q, autoescape=True), col(code_column).in_(profiles),
               func.substr(code_column, 1, 9).in_(towns))
