"""The statistics bureau's list of divisions (统计用区划代码和城乡划分代码), as county IT imports it.

The bureau publishes, for every division, its 12-digit code, its name and (for villages and communities) the
3-digit urban-rural class (城乡分类代码: 111 主城区 ... 220 村庄). Lists circulate as CSV in two shapes,
`code,name` and `code,urban_rural,name`, in UTF-8 (often with a BOM) or GBK; both are read. The level is never
a column: the code says it (2 digits province, 2 city, 2 county, 3 town, 3 village; the unused tail is zeros).

An import replaces the divisions of every county the file names (a division dropped by the bureau must not
keep counting as uncovered); levels above the county (province, city) only give names and are kept as given.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, delete, select

from fleet.centers.models import (
    DIVISION_CITY,
    DIVISION_COUNTY,
    DIVISION_PROVINCE,
    DIVISION_TOWN,
    DIVISION_VILLAGE,
    Division,
)

CODE_LENGTH = 12
MAX_NAME_CHARS = 100
LOCAL_LEVELS = (DIVISION_COUNTY, DIVISION_TOWN, DIVISION_VILLAGE)  # what a county's import replaces
MAX_ERRORS_SHOWN = 20  # a wrong file can fail on every line: name the first ones, count the rest


def division_level(code: str) -> str:
    """The level a 12-digit division code stands for: province, city, county, town or village."""
    if code[2:] == "0" * 10:
        return DIVISION_PROVINCE
    if code[4:] == "0" * 8:
        return DIVISION_CITY
    if code[6:] == "0" * 6:
        return DIVISION_COUNTY
    if code[9:] == "000":
        return DIVISION_TOWN
    return DIVISION_VILLAGE


def town_division(code: str) -> str:
    """The 12-digit code of the town (乡镇/街道) a center or village code lies in: 445202101001 -> 445202101000."""
    return code[:9] + "000"


def county_division(code: str) -> str:
    return code[:6] + "000000"


@dataclass(frozen=True)
class DivisionRow:
    code: str
    name: str
    level: str
    urban_rural: str | None = None


class DivisionListError(ValueError):
    """The file is not a division list; `errors` names every bad line (in Chinese, shown to county IT)."""

    def __init__(self, errors: list[str]) -> None:
        shown = errors[:MAX_ERRORS_SHOWN]
        if len(errors) > len(shown):
            shown.append(f"另有 {len(errors) - len(shown)} 处错误")
        super().__init__("；".join(shown))
        self.errors = shown


def decode_list(raw: bytes) -> str:
    """UTF-8 (with or without a BOM), else GB18030 (which reads GBK and GB2312 as well)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("gb18030")


def parse_division_list(raw: bytes | str) -> list[DivisionRow]:
    """The rows of a division list CSV; raises DivisionListError naming every bad line at once.

    A first line that does not start with a code is a header and skipped; blank lines are skipped.
    """
    text = decode_list(raw) if isinstance(raw, bytes) else raw.removeprefix("\ufeff")
    rows: list[DivisionRow] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    try:
        # newline="": the csv module reads line ends itself, a lone \r included (else it raises on one in a field)
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:  # e.g. a NUL byte: a file that is not a CSV at all
        raise DivisionListError([f"不是可读的 CSV 文件：{exc}"]) from None
    for number, cells in enumerate(lines, start=1):
        cells = [cell.strip() for cell in cells]
        if not any(cells):
            continue
        code = cells[0]
        if number == 1 and not code.isdigit():
            continue  # 统计用区划代码,城乡分类代码,名称
        if len(code) != CODE_LENGTH or not code.isdigit():
            errors.append(f"第 {number} 行：区划代码须为 12 位数字，而不是 {code!r}")
            continue
        urban_rural, name = None, cells[1] if len(cells) >= 2 else ""
        if len(cells) >= 3 and (not cells[1] or (cells[1].isdigit() and len(cells[1]) == 3)):
            urban_rural, name = cells[1] or None, cells[2]  # code,urban_rural,name (empty above villages)
        if not name:
            errors.append(f"第 {number} 行（{code}）：缺少名称")
            continue
        if any(ord(char) < 0x20 for char in name):  # a NUL or a control character: PostgreSQL refuses NUL
            errors.append(f"第 {number} 行（{code}）：名称含控制字符")
            continue
        if len(name) > MAX_NAME_CHARS:
            errors.append(f"第 {number} 行（{code}）：名称超过 {MAX_NAME_CHARS} 个字")
            continue
        if code in seen:
            errors.append(f"第 {number} 行：区划代码 {code} 与第 {seen[code]} 行重复")
            continue
        seen[code] = number
        rows.append(DivisionRow(code, name, division_level(code), urban_rural))
    if errors:
        raise DivisionListError(errors)
    if not rows:
        raise DivisionListError(["文件中没有区划：每行应为 区划代码,名称 或 区划代码,城乡分类代码,名称"])
    return rows


@dataclass(frozen=True)
class ImportResult:
    counties: list[str]  # the county codes (6 digits) whose divisions were replaced
    counts: dict[str, int]  # level -> divisions of that level now stored from this file


def import_divisions(session: Session, rows: list[DivisionRow], scope_prefix: str | None, who: str | None,
                     now: datetime) -> ImportResult:
    """Replace the divisions of every county in `rows` with `rows` (not committed: the caller audits and commits).

    `scope_prefix`: the importing user's division prefix (None: anywhere). A county, town or village outside it
    is refused (DivisionListError); a province or city above it only names things and is stored as given.
    """
    local = [row for row in rows if row.level in LOCAL_LEVELS]
    if scope_prefix is not None:
        outside = [row.code for row in local if not row.code.startswith(scope_prefix)]
        if outside:
            raise DivisionListError([f"区划 {code} 不在您的管辖范围（{scope_prefix}）内" for code in outside])
    if not local:
        raise DivisionListError(["文件中没有县、乡镇或村级区划"])
    counties = sorted({row.code[:6] for row in local})
    for county in counties:
        session.exec(delete(Division).where(col(Division.code).startswith(county, autoescape=True),
                                            col(Division.level).in_(LOCAL_LEVELS)))
    counts: dict[str, int] = {}
    for row in rows:
        if row.level in (DIVISION_PROVINCE, DIVISION_CITY):
            existing = session.get(Division, row.code)
            if existing is not None:
                existing.name, existing.imported_at, existing.imported_by = row.name, now, who
                session.add(existing)
                counts[row.level] = counts.get(row.level, 0) + 1
                continue
        session.add(Division(code=row.code, name=row.name, level=row.level, urban_rural=row.urban_rural,
                             imported_at=now, imported_by=who))
        counts[row.level] = counts.get(row.level, 0) + 1
    return ImportResult(counties, counts)


def divisions_in_scope(session: Session, scope_prefix: str | None, levels: tuple[str, ...]) -> list[Division]:
    """The stored divisions of `levels` under `scope_prefix` (all when None), by code."""
    query = select(Division).where(col(Division.level).in_(levels))
    if scope_prefix:
        query = query.where(col(Division.code).startswith(scope_prefix, autoescape=True))
    return list(session.exec(query.order_by(col(Division.code))).all())
