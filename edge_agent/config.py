"""The center's configuration: a TOML file a technician can read and edit.

Every error is reported at once with its path (as ESPHome does), so a wrong
file is fixed in one go instead of one restart per mistake.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path

from edge_agent.adapters.printer_status import parse_printer_extras
from edge_agent.appointments import Appointment, parse_appointments
from edge_agent.guide import GuideItem, parse_items
from edge_agent.peripherals import check_peripherals
from edge_agent.queue.settings import QueueSettings, parse_queue_settings
from edge_agent.voice import VoiceSettings, parse_voice_settings
from protocol import signing
from protocol.errors import ProtocolError
from protocol.identity import check_center_code, check_window


class ConfigError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True)
class Service:
    prefix: str
    name: str
    # False: the county no longer offers it here (edge_agent.center_config): the kiosk issues no new ticket for
    # it, and its tickets still waiting are called as before.
    offered: bool = True


@dataclass(frozen=True)
class Window:
    number: int
    services: tuple[str, ...]
    staff_no: str = ""
    staff_name: str = ""
    kind: str = ""  # from the county: protocol.messages.WINDOW_KINDS (综合受理 / 专窗 / 机动); "" in a TOML
    # Removed by the county while it served a ticket: it calls no one new and goes once that ticket is done.
    retiring: bool = False


@dataclass(frozen=True)
class StaffMember:
    """Someone who may sign in at a window's caller (the window's own staff and stand-ins, AB角)."""

    staff_no: str
    name: str
    windows: tuple[int, ...] = ()  # where they may sign in; () = at any window
    # From the county's roster (edge_agent.center_config); a TOML has none of these.
    title: str = ""  # 职务, shown with the name and 工号 (亮牌上岗)
    photo: str = field(default="", repr=False)  # a data: URL, shown on the hall display
    pin_hash: str = field(default="", repr=False)  # the sign-in PIN's scrypt hash, set by the county
    stand_in_for: tuple[str, ...] = ()  # the 工号 this member stands in for (AB角)


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    backoff_max_s: float = 30.0  # longest wait between reconnection attempts


@dataclass(frozen=True)
class CenterBrokerFiles:
    """Where the center's Mosquitto reads its accounts ([center_broker]); the fleet sends their content."""

    password_file: Path
    acl_file: Path
    pid_file: Path  # Mosquitto's `pid_file`: the process to send SIGHUP to after the files changed


@dataclass(frozen=True)
class PrinterConfig:
    kind: str = "none"  # none | file | network | serial | usb
    path: str = ""  # file: a device or plain file; serial: the port
    host: str = ""
    port: int = 9100
    encoding: str = "gb18030"
    baud: int = 9600  # serial
    usb_vendor: int = 0  # usb: ids as lsusb shows them, e.g. 0x0416 0x5011
    usb_product: int = 0
    paper_check_s: float = 30.0  # how often a network or serial printer is asked for its paper


@dataclass(frozen=True)
class CenterConfig:
    code: str
    name: str
    services: tuple[Service, ...]
    windows: tuple[Window, ...]
    opening_time: time = time(8, 30)
    timezone: str = "Asia/Shanghai"
    center_broker: BrokerConfig = field(default_factory=BrokerConfig)
    county_broker: BrokerConfig = field(default_factory=BrokerConfig)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    data_dir: Path = Path("data")
    min_free_bytes: int = 100 * 1024 * 1024  # [storage] min_free_mb: less free space is reported (low_space)
    printer: PrinterConfig = field(default_factory=PrinterConfig)
    rating_timeout_s: int = 60
    ack_timeout_s: float = 30.0  # re-send an event the fleet has not acknowledged after this long
    # Raw [peripherals.*] tables; each adapter validates its own section.
    peripherals: dict = field(default_factory=dict)
    queue: QueueSettings = field(default_factory=QueueSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    staff: tuple[StaffMember, ...] = ()  # every staff number that may log in, window staff included
    admin_password_hash: str | None = None  # [admin] password_hash: the center administrator (edge_agent hash-password)
    appointments: tuple[Appointment, ...] = ()
    center_broker_files: CenterBrokerFiles | None = None  # None: the agent leaves the broker's files alone
    # [brokers.county] edge_key (hex): issued by the fleet with the edge's credentials; what the fleet signs for this
    # edge (broker_accounts, event_ack) is taken only when it verifies with it. None: nothing from the fleet is.
    edge_key: bytes | None = field(default=None, repr=False)
    # The items (事项) this center handles with their 办事指南 (edge_agent.guide): [[items]], or the county's.
    items: tuple[GuideItem, ...] = ()
    opening_hours: str = ""  # [center] hours, shown to residents, e.g. 08:30-12:00,14:00-17:30
    consult_phone: str = ""  # [center] phone: 咨询电话
    complaint_phone: str = ""  # [center] complaint_phone: 投诉电话
    # [business_system] token_sha256: the window business system's bearer token, hashed (edge_agent.business).
    # None: its evaluation interface refuses every call.
    business_token_sha256: str | None = None

    def item(self, code: str) -> GuideItem:
        for item in self.items:
            if item.code == code:
                return item
        raise KeyError(code)

    def service(self, prefix: str) -> Service:
        for service in self.services:
            if service.prefix == prefix:
                return service
        raise KeyError(prefix)

    def window(self, number: int) -> Window:
        for window in self.windows:
            if window.number == number:
                return window
        raise KeyError(number)

    def staff_member(self, staff_no: str) -> StaffMember:
        for member in self.staff:
            if member.staff_no == staff_no:
                return member
        raise KeyError(staff_no)


def _broker(raw: object, path: str, problems: list[str]) -> BrokerConfig:
    if raw is None:
        return BrokerConfig()
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a table")
        return BrokerConfig()
    port = raw.get("port", 1883)
    if not isinstance(port, int) or not 0 < port < 65536:
        problems.append(f"{path}.port: must be a TCP port, got {port!r}")
        port = 1883
    backoff = raw.get("backoff_max_s", 30.0)
    if not isinstance(backoff, (int, float)) or not 0.1 <= backoff <= 600:
        problems.append(f"{path}.backoff_max_s: must be 0.1..600 seconds, got {backoff!r}")
        backoff = 30.0
    return BrokerConfig(str(raw.get("host", "127.0.0.1")), port, raw.get("username"), raw.get("password"),
                        float(backoff))


def _edge_key(raw: object, problems: list[str]) -> bytes | None:
    """brokers.county.edge_key: the hex key the fleet answered with the edge's credentials (None when absent)."""
    text = raw.get("edge_key") if isinstance(raw, dict) else None
    if text is None:
        return None
    try:
        if not isinstance(text, str):
            raise ProtocolError("not text")
        return signing.key_from_hex(text)
    except ProtocolError:
        problems.append("brokers.county.edge_key: must be the hex key the fleet answered with the edge's "
                        "credentials (at least 32 hex digits)")
        return None


def _center_broker_files(raw: object, base_dir: Path | None, problems: list[str]) -> CenterBrokerFiles | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("center_broker: must be a table")
        return None
    paths = {}
    for key in ("password_file", "acl_file", "pid_file"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"center_broker.{key}: a file path is required")
            continue
        path = Path(value)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        if key != "pid_file" and not path.parent.is_dir():
            problems.append(f"center_broker.{key}: the directory {path.parent} does not exist")
        paths[key] = path
    for key in raw:
        if key not in ("password_file", "acl_file", "pid_file"):
            problems.append(f"center_broker.{key}: unknown key (password_file, acl_file, pid_file)")
    if len(paths) < 3:
        return None
    if paths["password_file"] == paths["acl_file"]:
        problems.append(f"center_broker: password_file and acl_file are the same file {paths['acl_file']}")
    return CenterBrokerFiles(paths["password_file"], paths["acl_file"], paths["pid_file"])


def parse_config(raw: dict, source: str = "config", base_dir: Path | None = None) -> CenterConfig:
    problems: list[str] = []
    center = raw.get("center") or {}
    code = str(center.get("code", ""))
    try:
        check_center_code(code)
    except ProtocolError as exc:
        problems.append(f"center.code: {exc}")
    name = str(center.get("name") or "便民服务中心")

    opening = time(8, 30)
    if "opening_time" in center:
        try:
            hours, minutes = str(center["opening_time"]).split(":")
            opening = time(int(hours), int(minutes))
        except ValueError:
            problems.append(f"center.opening_time: must be HH:MM, got {center['opening_time']!r}")

    services: list[Service] = []
    for i, item in enumerate(raw.get("services") or []):
        prefix = str(item.get("prefix", ""))
        if len(prefix) != 1 or not prefix.isalpha() or not prefix.isupper():
            problems.append(f"services[{i}].prefix: must be one capital letter, got {prefix!r}")
        if not item.get("name"):
            problems.append(f"services[{i}].name: is required")
        if any(s.prefix == prefix for s in services):
            problems.append(f"services[{i}].prefix: {prefix!r} is used twice")
        for legacy in ("guide", "materials", "print_guide"):
            if legacy in item:
                problems.append(f"services[{i}].{legacy}: the 办事指南 is structured now: write it as [[items]] "
                                "with prefix = the service (see sample-center.toml)")
        services.append(Service(prefix, str(item.get("name", ""))))
    if not services:
        problems.append("services: at least one service is required")

    known = {s.prefix for s in services}
    items = parse_items(raw.get("items"), known, problems)
    shown = {key: center.get(key, "") for key in ("hours", "phone", "complaint_phone")}
    for key, value in shown.items():
        if not isinstance(value, str):
            problems.append(f"center.{key}: must be text, got {value!r}")
            shown[key] = ""
    windows: list[Window] = []
    for i, item in enumerate(raw.get("windows") or []):
        number = item.get("number")
        try:
            check_window(number)
        except ProtocolError as exc:
            problems.append(f"windows[{i}].number: {exc}")
        served = tuple(str(p) for p in item.get("services") or [])
        if not served:
            problems.append(f"windows[{i}].services: list the service prefixes this window serves")
        for prefix in served:
            if prefix not in known:
                problems.append(f"windows[{i}].services: unknown service {prefix!r}")
        if any(w.number == number for w in windows):
            problems.append(f"windows[{i}].number: window {number} is listed twice")
        windows.append(Window(number, served, str(item.get("staff_no", "")), str(item.get("staff_name", ""))))
    if not windows:
        problems.append("windows: at least one window is required")

    # A window's own staff sign in at their windows; a [[staff]] entry at the windows it lists, or at any.
    staff: dict[str, StaffMember] = {}
    for w in windows:
        if w.staff_no:
            known_windows = staff[w.staff_no].windows if w.staff_no in staff else ()
            staff[w.staff_no] = StaffMember(w.staff_no, w.staff_name, (*known_windows, w.number))
    numbers = {w.number for w in windows}
    for i, item in enumerate(raw.get("staff") or []):
        staff_no, staff_name = str(item.get("staff_no", "")), str(item.get("name", ""))
        if not staff_no or not staff_name:
            problems.append(f"staff[{i}]: staff_no and name are required")
        listed = item.get("windows", [])
        if not isinstance(listed, list) or not all(n in numbers for n in listed):
            problems.append(f"staff[{i}].windows: must list window numbers of this center, got {listed!r}")
            listed = []
        own = staff[staff_no].windows if staff_no in staff else ()
        allowed = () if not listed and not own else tuple(dict.fromkeys((*own, *listed)))
        staff[staff_no] = StaffMember(staff_no, staff_name, allowed)
    admin = raw.get("admin") or {}
    admin_hash = admin.get("password_hash")
    if admin_hash is not None and (not isinstance(admin_hash, str) or not admin_hash.startswith("scrypt$")):
        problems.append("admin.password_hash: must be what `python -m edge_agent hash-password` prints")
        admin_hash = None
    business = raw.get("business_system") or {}
    business_hash = business.get("token_sha256") if isinstance(business, dict) else None
    if business_hash is not None and (not isinstance(business_hash, str)
                                      or re.fullmatch(r"[0-9a-f]{64}", business_hash) is None):
        problems.append("business_system.token_sha256: must be the 64 hex digits "
                        "`python -m edge_agent business-token` prints")
        business_hash = None
    queue_settings = parse_queue_settings(raw.get("queue") or {}, known, problems)
    voice = parse_voice_settings(raw.get("voice") or {}, problems)
    appointments = parse_appointments(raw.get("appointments") or [], known, problems)

    brokers = raw.get("brokers") or {}
    center_broker = _broker(brokers.get("center"), "brokers.center", problems)
    county_broker = _broker(brokers.get("county"), "brokers.county", problems)
    edge_key = _edge_key(brokers.get("county"), problems)

    center_broker_files = _center_broker_files(raw.get("center_broker"), base_dir, problems)

    http = raw.get("http") or {}
    storage = raw.get("storage") or {}
    data_dir = Path(storage.get("data_dir", "data"))
    if base_dir is not None and not data_dir.is_absolute():
        data_dir = base_dir / data_dir
    min_free_mb = storage.get("min_free_mb", 100)
    if not isinstance(min_free_mb, (int, float)) or isinstance(min_free_mb, bool) or min_free_mb < 0:
        problems.append(f"storage.min_free_mb: must be a number of megabytes >= 0, got {min_free_mb!r}")
        min_free_mb = 100

    printer_raw = raw.get("printer") or (raw.get("peripherals") or {}).get("printer") or {}
    if raw.get("printer") and (raw.get("peripherals") or {}).get("printer"):
        problems.append("peripherals.printer: the printer is already configured in [printer]; keep one")
    printer = PrinterConfig(
        kind=str(printer_raw.get("kind", "none")),
        path=str(printer_raw.get("path", "")),
        host=str(printer_raw.get("host", "")),
        port=int(printer_raw.get("port", 9100)),
        encoding=str(printer_raw.get("encoding", "gb18030")),
        **parse_printer_extras(printer_raw, "printer", problems),
    )
    if printer.kind not in ("none", "file", "network", "serial", "usb"):
        problems.append(f"printer.kind: must be none, file, network, serial or usb, got {printer.kind!r}")
    if printer.kind == "file" and not printer.path:
        problems.append("printer.path: a file printer needs a path")
    if printer.kind == "file" and base_dir is not None and not Path(printer.path).is_absolute():
        printer = replace(printer, path=str(base_dir / printer.path))
    check_peripherals(raw, problems)

    if problems:
        raise ConfigError(source, problems)
    return CenterConfig(
        code=code, name=name, services=tuple(services), windows=tuple(windows), opening_time=opening,
        center_broker=center_broker, county_broker=county_broker,
        http_host=str(http.get("host", "127.0.0.1")), http_port=int(http.get("port", 8080)),
        data_dir=data_dir, min_free_bytes=int(min_free_mb * 1024 * 1024), printer=printer,
        rating_timeout_s=int(center.get("rating_timeout_s", 60)),
        peripherals=dict(raw.get("peripherals") or {}),
        ack_timeout_s=float((raw.get("uplink") or {}).get("ack_timeout_s", 30.0)),
        queue=queue_settings, voice=voice, staff=tuple(staff.values()), appointments=tuple(appointments),
        center_broker_files=center_broker_files, admin_password_hash=admin_hash, edge_key=edge_key,
        items=items, opening_hours=shown["hours"], consult_phone=shown["phone"],
        complaint_phone=shown["complaint_phone"],
        business_token_sha256=business_hash,
    )


def services_from_items(items: list[dict], services: list[dict] | None = None) -> tuple[Service, ...]:
    """The queue services of a county configuration: one per prefix of `services` and of the items, named by
    `services`, else by an item's `service_name`, else by the item's own name."""
    names: dict[str, str] = {}
    for entry in services or []:
        names[str(entry["prefix"])] = str(entry["name"])
    for item in items:
        prefix = str(item.get("prefix", ""))
        if prefix and prefix not in names:
            names[prefix] = str(item.get("service_name") or item.get("name") or prefix)
    return tuple(Service(prefix, names[prefix]) for prefix in sorted(names))


def load_config(path: Path) -> CenterConfig:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_config(raw, str(path), base_dir=Path(path).parent)
