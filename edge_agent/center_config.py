"""The center's configuration from the county: profile, items, windows and roster, applied live.

The fleet publishes it retained on the county broker (protocol topic center_config), signed with this edge's
key for the center's code (protocol.signing.sign_for_edge), so an edge that was offline gets the latest one
when it returns. `CenterConfiguration.receive` takes each message:

- it must verify with [brokers.county] edge_key, and its version must be higher than the one in force (a
  re-published copy of the version in force changes nothing; an older one is refused: a stale retained copy
  must not undo a newer one);
- its sections must make a center (`county_config`): windows serve services the items define, the roster's
  windows exist, ... Anything wrong refuses the whole version, and the version in force keeps running;
- it is applied live, with no restart (EdgeAgent.apply_center_config) and without losing a ticket
  (`keep_in_flight`): a window removed while it serves finishes its ticket, a service no longer offered keeps
  its waiting tickets callable at the windows that served it;
- it is kept in the data dir (center_config.json), so the agent starts from it with no county link;
- the outcome goes back to the fleet, retained, through the outbox (center_config_reported): the version in
  force, or why one was rejected.

The TOML keeps what is local to the Pi (brokers, peripherals, paths, queue rules) and, until a configuration
from the county has ever arrived, the center's name, services, windows and staff as well.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from edge_agent.config import CenterConfig, Service, StaffMember, Window, services_from_items
from edge_agent.guide import parse_items
from edge_agent.queue import rules
from edge_agent.store import EdgeStore
from protocol import messages, signing
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

STATE_FILE = "center_config.json"
WINDOW_KIND_LABELS = {messages.WINDOW_GENERAL: "综合受理", messages.WINDOW_DEDICATED: "专窗",
                      messages.WINDOW_FLEXIBLE: "机动"}


class CenterConfigRefused(ValueError):
    """A center configuration that cannot be applied; the message says why (it goes back to the fleet)."""


def county_config(local: CenterConfig, payload: dict) -> CenterConfig:
    """`local` (the TOML: brokers, peripherals, paths) with the county's sections of a validated center_config
    in place of its own; CenterConfigRefused names every problem at once."""
    problems: list[str] = []
    profile = payload["profile"]
    name = profile.get("name")
    if not isinstance(name, str) or not name.strip():
        name = local.name
    services = _services(payload, problems)
    known = {service.prefix for service in services}
    items = parse_items(payload["items"], known, problems)
    members: dict[str, StaffMember] = {}
    window_numbers = {window["number"] for window in payload["windows"]}
    for entry in payload["roster"]:
        allowed = tuple(entry.get("windows", []))
        for number in allowed:
            if number not in window_numbers:
                problems.append(f"staff {entry['staff_no']}: window {number} does not exist")
        members[entry["staff_no"]] = StaffMember(
            entry["staff_no"], entry["name"], allowed, title=entry.get("title", ""), photo=entry.get("photo", ""),
            pin_hash=entry.get("pin_hash", ""), stand_in_for=tuple(entry.get("stand_in_for", [])))
    for member in members.values():
        for other in member.stand_in_for:
            if other not in members:
                problems.append(f"staff {member.staff_no}: stands in for {other}, who is not on the roster")
        if member.pin_hash and not member.pin_hash.startswith("scrypt$"):
            problems.append(f"staff {member.staff_no}: pin_hash is not a scrypt hash")
    windows = []
    for entry in payload["windows"]:
        number = entry["number"]
        for prefix in entry["services"]:
            if prefix not in known:
                problems.append(f"window {number} serves unknown service {prefix}")
        staff_no = entry.get("staff_no") or ""
        if not isinstance(staff_no, str) or (staff_no and staff_no not in members):
            problems.append(f"window {number}: its staff {staff_no} is not on the roster")
            staff_no = ""
        windows.append(Window(number, tuple(entry["services"]), staff_no,
                              members[staff_no].name if staff_no else "", kind=entry["kind"]))
    if not windows:
        problems.append("windows: the center has no window")
    if problems:
        raise CenterConfigRefused("; ".join(problems))
    # AB角: a stand-in listing no windows of their own signs in where those they stand in for work.
    for staff_no, member in list(members.items()):
        if member.windows or not member.stand_in_for:
            continue
        places = {n for other in member.stand_in_for for n in members[other].windows}
        places |= {w.number for w in windows if w.staff_no in member.stand_in_for}
        members[staff_no] = replace(member, windows=tuple(sorted(places)))
    shown = {key: profile.get(key) if isinstance(profile.get(key), str) else getattr(local, key)
             for key in ("opening_hours", "consult_phone", "complaint_phone")}
    return replace(local, name=name, services=services, items=items, windows=tuple(windows),
                   staff=tuple(members.values()), **shown)


def _services(payload: dict, problems: list[str]) -> tuple:
    """The queue's services: the `services` section's prefixes and names, and every prefix an item is taken under."""
    named = payload.get("services") or []
    for i, entry in enumerate([*named, *payload["items"]]):
        prefix = entry.get("prefix") if isinstance(entry, dict) else None
        if not isinstance(prefix, str) or len(prefix) != 1 or not prefix.isalpha() or not prefix.isupper():
            where = f"services[{i}]" if i < len(named) else f"items[{i - len(named)}]"
            problems.append(f"{where}.prefix: must be one capital letter, got {prefix!r}")
            return ()
    services = services_from_items(payload["items"], named)
    if not services:
        problems.append("items: the center handles no item")
    return services


def keep_in_flight(new: CenterConfig, old: CenterConfig, serving: set[int], waiting: set[str]) -> CenterConfig:
    """`new`, keeping what the queue still needs of `old`: a window removed while serving (numbers in
    `serving`) stays, calling no one new, until its ticket is done; a service removed while tickets of it wait
    (prefixes in `waiting`) stays, not offered at the kiosk, and the windows that served it keep serving it
    (every general window when none of them is left)."""
    windows = list(new.windows)
    numbers = {window.number for window in windows}
    for window in old.windows:
        if window.number not in numbers and window.number in serving:
            windows.append(replace(window, services=(), retiring=True))
    services = list(new.services)
    prefixes = {service.prefix for service in services}
    for service in old.services:
        if service.prefix in prefixes or service.prefix not in waiting:
            continue
        services.append(replace(service, offered=False))
        served_before = {w.number for w in old.windows if service.prefix in w.services}
        takers = [w.number for w in windows if w.number in served_before and not w.retiring] or \
                 [w.number for w in windows if w.kind == messages.WINDOW_GENERAL] or \
                 [w.number for w in windows if not w.retiring]
        windows = [replace(w, services=(*w.services, service.prefix)) if w.number in takers else w for w in windows]
    windows.sort(key=lambda window: window.number)
    return replace(new, windows=tuple(windows), services=tuple(services))


def in_flight(store: EdgeStore, config: CenterConfig) -> tuple[set[int], set[str]]:
    """(windows serving a ticket now, prefixes with tickets of today still to call: waiting or missed)."""
    serving = {row[0] for row in store.query(
        "SELECT w.number FROM windows w JOIN tickets t ON t.id = w.current_ticket_id WHERE t.status = ?",
        (rules.SERVING,))}
    today = rules.business_day(time.time(), config.opening_time, config.timezone)
    waiting = {row[0] for row in store.query(
        "SELECT DISTINCT COALESCE(queue_service, service) FROM tickets WHERE business_day = ? AND status IN (?, ?)",
        (today, rules.WAITING, rules.MISSED))}
    return serving, waiting


def keep_in_flight_after_restart(saved: CenterConfig, local: CenterConfig, serving: set[int],
                                 waiting: set[str]) -> CenterConfig:
    """keep_in_flight at a start of the agent, when the configuration before the kept one is gone: a window
    serving but in neither is kept as a window with no services, a service waiting but in neither by its prefix."""
    local_windows = {w.number: w for w in local.windows}
    local_services = {s.prefix: s for s in local.services}
    kept_windows = {w.number for w in saved.windows}
    kept_services = {s.prefix for s in saved.services}
    windows = [local_windows.get(n) or Window(n, ()) for n in sorted(serving) if n not in kept_windows]
    services = [local_services.get(p) or Service(p, p) for p in sorted(waiting) if p not in kept_services]
    old = replace(saved, windows=(*saved.windows, *windows), services=(*saved.services, *services))
    return keep_in_flight(saved, old, serving, waiting)


def photo_bytes(photo: str) -> tuple[bytes, str] | None:
    """(image bytes, media type) of a roster photo's data: URL; None when it is none or not an image."""
    head, _, data = photo.partition(",")
    if not head.startswith("data:image/") or not head.endswith(";base64"):
        return None
    try:
        return base64.b64decode(data, validate=True), head[len("data:"):-len(";base64")]
    except ValueError:
        return None


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class CenterConfiguration:
    """The adapter: verifies, applies (through `apply`), keeps and reports the county's center configuration."""

    name = "center_config"

    def __init__(self, local: CenterConfig, apply: Callable[[CenterConfig], None],
                 report: Callable[[dict], None]) -> None:
        self.local = local  # the TOML's configuration: the base every county version is applied onto
        self.apply = apply
        self.report = report
        self.edge_key = local.edge_key
        self.center = local.code
        self.path = local.data_dir / STATE_FILE
        self.version = 0  # in force; 0: the TOML's
        self.applied_at: float | None = None
        self.rejected = 0
        self.last_error = ""

    def load_saved(self) -> CenterConfig | None:
        """The configuration kept from the last run, or None (none yet, or unusable: the TOML's then)."""
        try:
            payload = messages.validate("center_config", json.loads(self.path.read_text(encoding="utf-8")))
            config = county_config(self.local, payload)
        except FileNotFoundError:
            return None
        except (ValueError, ProtocolError) as exc:
            log.error("center config: %s unusable (%s); running on the TOML until the county sends one",
                      self.path, exc)
            return None
        self.version, self.applied_at = payload["version"], self.path.stat().st_mtime
        log.info("center config: v%d from %s in force", self.version, self.path)
        return config

    async def start(self) -> None:
        """Nothing runs between messages."""

    async def stop(self) -> None:
        """Nothing runs between messages."""

    def health(self) -> dict:
        return {"ok": True, "version": self.version, "applied_at": self.applied_at, "rejected": self.rejected,
                "last_error": self.last_error}

    def _answer(self, version: int, error: str = "") -> None:
        if error:
            self.rejected += 1
            self.last_error = error
            log.error("center config: v%d rejected, v%d stays in force: %s", version, self.version, error)
        payload = messages.make("center_config_reported", version=version, in_force=self.version,
                                status=messages.CONFIG_REJECTED if error else messages.CONFIG_APPLIED,
                                error=error or None)
        self.report(payload)

    def receive(self, raw: bytes) -> bool:
        """One center_config message from the county; True when it was applied."""
        try:
            payload = messages.decode("center_config", raw)
        except ProtocolError as exc:
            self.rejected += 1
            self.last_error = f"malformed message: {exc}"
            log.warning("center config: malformed message ignored: %s", exc)
            return False
        version = payload["version"]
        if self.edge_key is None or not signing.verify_for_edge(self.edge_key, self.center, payload):
            self._answer(version, "signature does not verify with brokers.county.edge_key" if self.edge_key
                         else "brokers.county.edge_key is not configured: nothing from the county is taken")
            return False
        if version == self.version:
            log.info("center config: v%d received again, it is in force", version)
            return False
        if version < self.version:
            self._answer(version, f"v{version} is older than v{self.version} in force")
            return False
        try:
            config = county_config(self.local, payload)
            self.apply(config)
        except CenterConfigRefused as exc:
            self._answer(version, str(exc))
            return False
        self.version, self.applied_at, self.last_error = version, time.time(), ""
        try:
            write_atomically(self.path, json.dumps(payload, ensure_ascii=False))
        except OSError as exc:  # in force now; after a restart the county's retained copy brings it back
            log.error("center config: v%d applied but not kept in %s: %s", version, self.path, exc)
        log.info("center config: v%d applied (%d windows, %d services, %d staff)", version, len(config.windows),
                 len(config.services), len(config.staff))
        self._answer(version)
        return True
