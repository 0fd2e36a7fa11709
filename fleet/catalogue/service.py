"""The catalogue's rules as plain functions: checking a guide, versions, who may see and change what, and
which items a center handles (`center_items`, the `items` section of the center's configuration).

Scope, as everywhere in the fleet, is a division-code prefix. An item belongs to the fleet (""), a county
(6 digits) or a town (9 digits): a user sees the items of the levels above and below their scope (a town
operator sees the county's items and their own town's, never another town's) and changes only items their
scope covers (a town operator: their town's own items; a county administrator: the county's and its towns').
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from fleet import audit
from fleet.auth.principal import CurrentUser
from fleet.catalogue.models import (
    KIND_IMMEDIATE,
    KIND_LABELS,
    KIND_PROMISED,
    CatalogueItemVersion,
    ItemEnablement,
    QueueServiceName,
)
from fleet.centerconfig.glyphs import glyph_problem
from fleet.models import utcnow

MAX_MATERIALS = 40
MAX_DAYS = 365
TEXT_FIELDS = ("basis", "conditions", "fee", "fee_basis", "location", "phone")
# Everything a version holds besides its bookkeeping: two versions with these equal are the same guide.
GUIDE_FIELDS = ("name", *TEXT_FIELDS, "materials", "legal_days", "promised_days", "kind")


class CatalogueError(ValueError):
    """A refused change; `problems` are sentences for the page, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _count(value: Any, field: str, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 99:
        problems.append(f"{field}: 份数须为 0 到 99 的整数")
        return 0
    return value


def check_materials(raw: Any, problems: list[str]) -> list[dict]:
    """申请材料 as stored and sent: name, originals (原件份数), copies (复印件份数), note."""
    if not isinstance(raw, (list, tuple)):
        problems.append("materials: 申请材料须为列表")
        return []
    if len(raw) > MAX_MATERIALS:
        problems.append(f"materials: 申请材料最多 {MAX_MATERIALS} 项")
    materials = []
    for i, entry in enumerate(raw[:MAX_MATERIALS], 1):
        if not isinstance(entry, dict) or not str(entry.get("name", "")).strip():
            problems.append(f"materials[{i}]: 材料名称必填")
            continue
        originals = _count(entry.get("originals", 1), f"materials[{i}].originals", problems)
        copies = _count(entry.get("copies", 0), f"materials[{i}].copies", problems)
        if originals == 0 and copies == 0:
            problems.append(f"materials[{i}]: {entry['name']} 原件和复印件不能都为 0 份")
        materials.append({"name": str(entry["name"]).strip(), "originals": originals, "copies": copies,
                          "note": str(entry.get("note") or "").strip()})
    return materials


def check_guide(raw: dict) -> dict:
    """A guide as posted (API body or page form, already as a dict) → the stored fields; CatalogueError lists
    every problem at once."""
    problems: list[str] = []
    name = str(raw.get("name") or "").strip()
    if not name:
        problems.append("name: 事项名称必填")
    elif len(name) > 128:
        problems.append("name: 事项名称最多 128 字")
    guide: dict[str, Any] = {"name": name}
    for field in TEXT_FIELDS:
        guide[field] = str(raw.get(field) or "").strip()
    guide["fee"] = guide["fee"] or "不收费"
    guide["materials"] = check_materials(raw.get("materials", []), problems)
    for field, label in (("legal_days", "办理时限"), ("promised_days", "承诺时限")):
        value = raw.get(field, 0)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS:
            problems.append(f"{field}: {label}须为 0 到 {MAX_DAYS} 个工作日（0 为即时办结）")
            value = 0
        guide[field] = value
    kind = raw.get("kind") or KIND_IMMEDIATE
    if kind not in KIND_LABELS:
        problems.append("kind: 办件类型须为即办件或承诺件")
        kind = KIND_IMMEDIATE
    guide["kind"] = kind
    if guide["promised_days"] > guide["legal_days"]:
        problems.append("promised_days: 承诺时限不能长于办理时限")
    if kind == KIND_IMMEDIATE and guide["promised_days"] != 0:
        problems.append("promised_days: 即办件的承诺时限为 0（即时办结）")
    if kind == KIND_PROMISED and guide["promised_days"] == 0:
        problems.append("promised_days: 承诺件须写明承诺时限（工作日）")
    if problems:
        raise CatalogueError(problems)
    return guide


def check_code(code: str) -> str:
    code = code.strip()
    if not code or len(code) > 32 or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in code):
        raise CatalogueError(["code: 事项编码为 1 到 32 位字母、数字或 - _ ."])
    return code


# -- scope -------------------------------------------------------------------------------------------------

def _scope(user: CurrentUser) -> str:
    return user.division_prefix or ""


def can_see_item(user: CurrentUser, owner_prefix: str) -> bool:
    """Items of the levels above the user's scope (the county's) and within it (its towns'), not beside it."""
    scope = _scope(user)
    return scope.startswith(owner_prefix) or owner_prefix.startswith(scope)


def can_change_item(user: CurrentUser, owner_prefix: str) -> bool:
    return user.can_write and owner_prefix.startswith(_scope(user))


def check_scope_code(code: str) -> str:
    if not code.isdigit() or len(code) not in (9, 12):
        raise CatalogueError(["scope: 须为 9 位乡镇代码或 12 位中心代码"])
    return code


# -- versions ----------------------------------------------------------------------------------------------

def materials_of(row: CatalogueItemVersion) -> list[dict]:
    return json.loads(row.materials_json or "[]")


def guide_of(row: CatalogueItemVersion) -> dict:
    guide = {field: getattr(row, field) for field in GUIDE_FIELDS if field != "materials"}
    guide["materials"] = materials_of(row)
    return guide


def item_dict(row: CatalogueItemVersion, prefix: str | None = None) -> dict:
    """One version as the API and the center configuration carry it (JSON-safe)."""
    result = {"code": row.code, "version": row.version, **guide_of(row)}
    if prefix is not None:
        result["prefix"] = prefix
    return result


def latest(session: Session, code: str) -> CatalogueItemVersion | None:
    return session.exec(select(CatalogueItemVersion).where(CatalogueItemVersion.code == code)
                        .order_by(col(CatalogueItemVersion.version).desc()).limit(1)).first()


def history(session: Session, code: str) -> list[CatalogueItemVersion]:
    """Every version of an item, newest first."""
    return list(session.exec(select(CatalogueItemVersion).where(CatalogueItemVersion.code == code)
                             .order_by(col(CatalogueItemVersion.version).desc())).all())


def version_of(session: Session, code: str, version: int) -> CatalogueItemVersion | None:
    return session.exec(select(CatalogueItemVersion).where(CatalogueItemVersion.code == code,
                                                           CatalogueItemVersion.version == version)).first()


def latest_versions(session: Session) -> list[CatalogueItemVersion]:
    """The current version of every item, by code."""
    newest: dict[str, CatalogueItemVersion] = {}
    for row in session.exec(select(CatalogueItemVersion).order_by(col(CatalogueItemVersion.version))).all():
        newest[row.code] = row
    return [newest[code] for code in sorted(newest)]


def matches(row: CatalogueItemVersion, query: str) -> bool:
    """Search by name or code, ignoring case and spaces."""
    needle = "".join(query.split()).lower()
    return not needle or needle in row.code.lower() or needle in "".join(row.name.split()).lower()


def visible_items(session: Session, user: CurrentUser, query: str = "") -> list[CatalogueItemVersion]:
    return [row for row in latest_versions(session) if can_see_item(user, row.owner_prefix) and matches(row, query)]


def visible_item(session: Session, user: CurrentUser, code: str) -> CatalogueItemVersion | None:
    """The current version, or None when unknown or outside the user's sight (callers answer 404 alike)."""
    row = latest(session, code)
    return row if row is not None and can_see_item(user, row.owner_prefix) else None


def create_item(session: Session, user: CurrentUser, code: str, raw: dict, owner_prefix: str | None = None,
                now: datetime | None = None) -> CatalogueItemVersion:
    """A new item (version 1), kept by `owner_prefix` (default: the user's scope); audited."""
    code = check_code(code)
    guide = check_guide(raw)
    owner = _scope(user) if owner_prefix is None else owner_prefix.strip()
    if owner and (not owner.isdigit() or len(owner) not in (6, 9)):
        raise CatalogueError(["owner_prefix: 须为空（全部）、6 位县代码或 9 位乡镇代码"])
    if not can_change_item(user, owner):
        raise PermissionError(f"{user.username} cannot keep items of {owner or 'the whole fleet'}")
    if latest(session, code) is not None:
        raise CatalogueError([f"code: 事项编码 {code} 已存在"])
    row = _new_version(code, 1, owner, guide, user, now)
    session.add(row)
    audit.record(session, user, "catalogue.item.create", target=code, detail={"version": 1, "name": guide["name"]},
                 center_code=owner or None)
    return row


def revise_item(session: Session, user: CurrentUser, code: str, raw: dict,
                now: datetime | None = None) -> CatalogueItemVersion:
    """Save an edit as the next version (the old ones stay); an edit that changes nothing adds none."""
    current = visible_item(session, user, code)
    if current is None:
        raise LookupError(code)
    if not can_change_item(user, current.owner_prefix):
        raise PermissionError(f"{user.username} cannot change item {code}")
    guide = check_guide(raw)
    if guide == guide_of(current):
        return current
    changed = sorted(field for field in GUIDE_FIELDS if guide[field] != guide_of(current)[field])
    row = _new_version(code, current.version + 1, current.owner_prefix, guide, user, now)
    session.add(row)
    audit.record(session, user, "catalogue.item.revise", target=code,
                 detail={"version": row.version, "changed": changed}, center_code=current.owner_prefix or None)
    return row


def _new_version(code: str, version: int, owner: str, guide: dict, user: CurrentUser,
                 now: datetime | None) -> CatalogueItemVersion:
    fields = {field: guide[field] for field in GUIDE_FIELDS if field != "materials"}
    return CatalogueItemVersion(code=code, version=version, owner_prefix=owner, **fields,
                                materials_json=json.dumps(guide["materials"], ensure_ascii=False),
                                created_at=now or utcnow(), created_by=user.username)


# -- who handles which item --------------------------------------------------------------------------------

def check_prefix(prefix: str) -> str:
    if len(prefix) != 1 or not ("A" <= prefix <= "Z"):
        raise CatalogueError(["prefix: 排队业务须为一个大写字母（如 A）"])
    return prefix


def enablements(session: Session, scope_code: str) -> dict[str, ItemEnablement]:
    rows = session.exec(select(ItemEnablement).where(ItemEnablement.scope_code == scope_code)).all()
    return {row.item_code: row for row in rows}


def set_enablement(session: Session, user: CurrentUser, scope_code: str, item_code: str, prefix: str,
                   enabled: bool = True, now: datetime | None = None) -> ItemEnablement:
    """A town or a center handles (or, a center, turns off) an item under a queue prefix; audited."""
    scope_code = check_scope_code(scope_code)
    if not user.can_change(scope_code):
        raise PermissionError(f"{user.username} cannot change {scope_code}")
    item = visible_item(session, user, item_code)
    if item is None:
        raise LookupError(item_code)
    if not scope_code.startswith(item.owner_prefix):
        raise CatalogueError([f"scope: 事项 {item_code} 属于 {item.owner_prefix}，不能在 {scope_code} 启用"])
    prefix = check_prefix(prefix) if enabled or prefix else ""
    row = session.get(ItemEnablement, (scope_code, item_code)) or ItemEnablement(scope_code=scope_code,
                                                                               item_code=item_code)
    row.prefix, row.enabled, row.changed_at, row.changed_by = prefix, enabled, now or utcnow(), user.username
    session.add(row)
    audit.record(session, user, "catalogue.enable" if enabled else "catalogue.disable", target=item_code,
                 detail={"scope": scope_code, "prefix": prefix}, center_code=scope_code)
    return row


def clear_enablement(session: Session, user: CurrentUser, scope_code: str, item_code: str) -> bool:
    """Forget a scope's row: a center falls back to its town's choice, a town to not handling the item."""
    scope_code = check_scope_code(scope_code)
    if not user.can_change(scope_code):
        raise PermissionError(f"{user.username} cannot change {scope_code}")
    row = session.get(ItemEnablement, (scope_code, item_code))
    if row is None:
        return False
    session.delete(row)
    audit.record(session, user, "catalogue.clear", target=item_code, detail={"scope": scope_code},
                 center_code=scope_code)
    return True


def effective_enablements(session: Session, center_code: str) -> dict[str, ItemEnablement]:
    """item code → the row that decides for this center: its own, else its town's."""
    rows = session.exec(select(ItemEnablement).where(
        col(ItemEnablement.scope_code).in_([center_code[:9], center_code]))).all()
    decided: dict[str, ItemEnablement] = {}
    for row in sorted(rows, key=lambda r: len(r.scope_code)):  # the town's first, the center's over it
        decided[row.item_code] = row
    return decided


def center_items(session: Session, center_code: str) -> list[dict]:
    """The items a center handles, as the `items` section of its configuration: the current version of each
    item enabled for it (or its town) and kept at or above it, with the queue prefix it is taken under and
    that prefix's name (`service_name`); sorted by prefix, then code."""
    names = service_names(session, center_code)
    items = []
    for item_code, row in effective_enablements(session, center_code).items():
        if not row.enabled:
            continue
        item = latest(session, item_code)
        if item is None or not center_code.startswith(item.owner_prefix):
            continue
        items.append({**item_dict(item, row.prefix), "service_name": names.get(row.prefix, "")})
    return sorted(items, key=lambda item: (item["prefix"], item["code"]))


def service_names(session: Session, center_code: str) -> dict[str, str]:
    """prefix → name for a center (its town's names, its own over them), or for a town (its own)."""
    rows = session.exec(select(QueueServiceName).where(
        col(QueueServiceName.scope_code).in_({center_code[:9], center_code}))).all()
    return {row.prefix: row.name for row in sorted(rows, key=lambda r: len(r.scope_code))}


def center_services(session: Session, center_code: str) -> list[dict]:
    """The queue services of a center as its configuration carries them: every named prefix and every prefix
    an enabled item is taken under (named after its first item when nobody named it), by prefix."""
    names = service_names(session, center_code)
    for item in center_items(session, center_code):
        names.setdefault(item["prefix"], item["name"][:32])
    return [{"prefix": prefix, "name": names[prefix]} for prefix in sorted(names)]


def set_service_name(session: Session, user: CurrentUser, scope_code: str, prefix: str, name: str,
                     now: datetime | None = None) -> QueueServiceName | None:
    """Name a queue prefix for a town or a center; an empty name removes the row. Audited."""
    scope_code = check_scope_code(scope_code)
    prefix = check_prefix(prefix)
    if not user.can_change(scope_code):
        raise PermissionError(f"{user.username} cannot change {scope_code}")
    name = name.strip()
    if len(name) > 32:
        raise CatalogueError(["name: 业务名称最多 32 字"])
    unshowable = glyph_problem("业务名称", name)  # the rating pads and displays show it
    if unshowable:
        raise CatalogueError([f"name: {unshowable}"])
    row = session.get(QueueServiceName, (scope_code, prefix))
    audit.record(session, user, "catalogue.service_name", target=prefix, detail={"scope": scope_code, "name": name},
                 center_code=scope_code)
    if not name:
        if row is not None:
            session.delete(row)
        return None
    row = row or QueueServiceName(scope_code=scope_code, prefix=prefix, name=name)
    row.name, row.changed_at, row.changed_by = name, now or utcnow(), user.username
    session.add(row)
    return row


def materials_from_text(text: str) -> list[dict]:
    """The page's materials box: one material a line, `名称 | 原件份数 | 复印件份数 | 备注` (counts default 1 and 0);
    the numbers are checked with the rest of the guide (check_guide)."""
    materials: list[dict] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [part.strip() for part in line.replace("｜", "|").split("|")]
        entry: dict[str, Any] = {"name": parts[0]}
        for key, index in (("originals", 1), ("copies", 2)):
            if len(parts) > index and parts[index]:
                entry[key] = int(parts[index]) if parts[index].isdigit() else parts[index]
        entry["note"] = " | ".join(parts[3:])
        materials.append(entry)
    return materials


def materials_to_text(materials: list[dict]) -> str:
    return "\n".join(" | ".join([m["name"], str(m["originals"]), str(m["copies"]), m["note"]]).rstrip(" |")
                     for m in materials)


def days_text(days: int) -> str:
    """办理时限 / 承诺时限 as a guide says it."""
    return "即时办结" if days == 0 else f"{days}个工作日"


def seed_center(session: Session, user: CurrentUser, center_code: str, items: list[dict], services: list[dict],
                now: datetime | None = None) -> list[str]:
    """Put the items a running center already has (its TOML's [[items]]) into the catalogue, kept by its town,
    enabled at the center under their prefixes, with its services' names: how a county starts its catalogue
    from the centers it runs (and what `make demo` does). Run again, an unchanged item adds no version; an item
    code the catalogue already keeps elsewhere is left as it is. Returns the codes created."""
    created = []
    town = center_code[:9]
    for entry in services:
        if service_names(session, center_code).get(entry["prefix"]) != entry["name"]:
            set_service_name(session, user, town, entry["prefix"], entry["name"], now)
    for item in items:
        current = latest(session, item["code"])
        if current is None:
            create_item(session, user, item["code"], item, town, now)
            created.append(item["code"])
        elif current.owner_prefix == town:
            revise_item(session, user, item["code"], item, now)
        else:
            continue
        decided = session.get(ItemEnablement, (center_code, item["code"]))
        if decided is None or decided.prefix != item["prefix"] or not decided.enabled:
            set_enablement(session, user, center_code, item["code"], item["prefix"], True, now)
    return created
