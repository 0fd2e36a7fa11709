"""The center's service items (事项) with their structured 办事指南, as the county's catalogue keeps them.

They come from the `items` section of the center's configuration (the fleet's `center_items`), or, until a
county configuration has arrived, from the TOML's `[[items]]` tables: the same keys either way, checked here
with every problem reported at once with its path. The kiosk browses and searches them, prints the 一次性告知书
(everything to bring and the time limits, told at once) and puts an item's materials on its ticket; the hall
display rotates them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

KIND_LABELS = {"immediate": "即办件", "promised": "承诺件"}
MAX_COUNT = 99


@dataclass(frozen=True)
class Material:
    """One entry of 申请材料: how many originals (原件) and copies (复印件) to bring."""

    name: str
    originals: int = 1
    copies: int = 0
    note: str = ""

    def text(self) -> str:
        """As a checklist line says it: 居民身份证 原件1份、复印件1份（本人）."""
        counts = "、".join(part for part in (f"原件{self.originals}份" if self.originals else "",
                                              f"复印件{self.copies}份" if self.copies else "") if part)
        return f"{self.name} {counts}" + (f"（{self.note}）" if self.note else "")


@dataclass(frozen=True)
class GuideItem:
    """One item of the catalogue as this center handles it (taken under the queue prefix `prefix`)."""

    code: str
    name: str
    prefix: str
    version: int = 0
    basis: str = ""  # 办理依据
    conditions: str = ""  # 受理条件
    materials: tuple[Material, ...] = ()  # 申请材料
    legal_days: int = 0  # 办理时限, working days; 0 = 即时办结
    promised_days: int = 0  # 承诺时限
    fee: str = "不收费"  # 收费标准
    fee_basis: str = ""  # 收费依据
    kind: str = "immediate"  # 办件类型
    location: str = ""  # 办理地点
    phone: str = ""  # 咨询电话

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    @property
    def legal_text(self) -> str:
        return days_text(self.legal_days)

    @property
    def promised_text(self) -> str:
        return days_text(self.promised_days)

    def public(self, service_name: str = "") -> dict[str, Any]:
        """What the kiosk and the hall read (GET /api/items): the guide with its texts ready to show."""
        return {**asdict(self), "materials": [{**asdict(m), "text": m.text()} for m in self.materials],
                "service_name": service_name, "kind_label": self.kind_label, "legal_text": self.legal_text,
                "promised_text": self.promised_text}


def days_text(days: int) -> str:
    return "即时办结" if days == 0 else f"{days}个工作日"


def _text(raw: dict, key: str, path: str, problems: list[str], default: str = "") -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        problems.append(f"{path}.{key}: must be text, got {value!r}")
        return default
    return value.strip()


def _whole(raw: dict, key: str, path: str, problems: list[str], default: int, top: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        problems.append(f"{path}.{key}: must be a whole number 0..{top}, got {value!r}")
        return default
    return value


def _materials(raw: Any, path: str, problems: list[str]) -> tuple[Material, ...]:
    if not isinstance(raw, list):
        problems.append(f"{path}: must be a list of tables (name, originals, copies, note)")
        return ()
    materials = []
    for i, entry in enumerate(raw):
        where = f"{path}[{i}]"
        if isinstance(entry, str):  # a plain name: one original
            entry = {"name": entry}
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table (name, originals, copies, note)")
            continue
        name = _text(entry, "name", where, problems)
        if not name:
            problems.append(f"{where}.name: is required")
        originals = _whole(entry, "originals", where, problems, 1, MAX_COUNT)
        copies = _whole(entry, "copies", where, problems, 0, MAX_COUNT)
        if originals == copies == 0:
            problems.append(f"{where}: originals and copies cannot both be 0")
        for key in entry:
            if key not in ("name", "originals", "copies", "note"):
                problems.append(f"{where}.{key}: unknown key (name, originals, copies, note)")
        materials.append(Material(name, originals, copies, _text(entry, "note", where, problems)))
    return tuple(materials)


ITEM_KEYS = {"code", "name", "prefix", "version", "basis", "conditions", "materials", "legal_days", "promised_days",
             "fee", "fee_basis", "kind", "location", "phone", "service_name"}


def parse_items(raw: Any, known_prefixes: set[str], problems: list[str], path: str = "items") -> tuple[GuideItem, ...]:
    """The items of a TOML `[[items]]` list or of a county configuration's `items` section."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(f"{path}: must be a list of items")
        return ()
    items: list[GuideItem] = []
    for i, entry in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        code, name, prefix = (_text(entry, key, where, problems) for key in ("code", "name", "prefix"))
        if not code:
            problems.append(f"{where}.code: is required")
        elif any(item.code == code for item in items):
            problems.append(f"{where}.code: {code!r} is listed twice")
        if not name:
            problems.append(f"{where}.name: is required")
        if prefix not in known_prefixes:
            problems.append(f"{where}.prefix: unknown service {prefix!r}")
        kind = _text(entry, "kind", where, problems, "immediate")
        if kind not in KIND_LABELS:
            problems.append(f"{where}.kind: must be immediate (即办件) or promised (承诺件), got {kind!r}")
        legal = _whole(entry, "legal_days", where, problems, 0, 365)
        promised = _whole(entry, "promised_days", where, problems, 0, 365)
        if promised > legal:
            problems.append(f"{where}.promised_days: longer than legal_days")
        for key in entry:
            if key not in ITEM_KEYS:
                problems.append(f"{where}.{key}: unknown key")
        items.append(GuideItem(
            code=code, name=name, prefix=prefix, version=_whole(entry, "version", where, problems, 0, 2**31),
            basis=_text(entry, "basis", where, problems), conditions=_text(entry, "conditions", where, problems),
            materials=_materials(entry.get("materials", []), f"{where}.materials", problems),
            legal_days=legal, promised_days=promised, fee=_text(entry, "fee", where, problems, "不收费") or "不收费",
            fee_basis=_text(entry, "fee_basis", where, problems), kind=kind,
            location=_text(entry, "location", where, problems), phone=_text(entry, "phone", where, problems)))
    return tuple(items)


def search(items: tuple[GuideItem, ...], query: str) -> list[GuideItem]:
    """Items whose name or code holds the query (spaces and case ignored), in the center's order."""
    needle = "".join(query.split()).lower()
    return [item for item in items
            if not needle or needle in item.code.lower() or needle in "".join(item.name.split()).lower()]


def notice_lines(item: GuideItem, center_name: str) -> list[str]:
    """The 一次性告知书 as printed lines: the item, what to bring, the time limits, fees, where and whom to ask."""
    lines = [f"事项：{item.name}", f"办件类型：{item.kind_label}"]
    if item.conditions:
        lines.append(f"受理条件：{item.conditions}")
    lines.append("申请材料：")
    lines += [f"{i}. {m.text()}" for i, m in enumerate(item.materials, 1)] or ["无需提交材料"]
    lines += [f"办理时限：{item.legal_text}", f"承诺时限：{item.promised_text}",
              f"收费标准：{item.fee}" + (f"（依据：{item.fee_basis}）" if item.fee_basis else "")]
    if item.basis:
        lines.append(f"办理依据：{item.basis}")
    lines.append(f"办理地点：{item.location or center_name}")
    if item.phone:
        lines.append(f"咨询电话：{item.phone}")
    return lines
