"""The center's configuration: a TOML file a technician can read and edit.

Every error is reported at once with its path (as ESPHome does), so a wrong
file is fixed in one go instead of one restart per mistake.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path

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


@dataclass(frozen=True)
class Window:
    number: int
    services: tuple[str, ...]
    staff_no: str = ""
    staff_name: str = ""


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    backoff_max_s: float = 30.0  # longest wait between reconnection attempts


@dataclass(frozen=True)
class PrinterConfig:
    kind: str = "none"  # none | file | network | serial
    path: str = ""
    host: str = ""
    port: int = 9100
    encoding: str = "gb18030"


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
    printer: PrinterConfig = field(default_factory=PrinterConfig)
    rating_timeout_s: int = 60
    ack_timeout_s: float = 30.0  # re-send an event the fleet has not acknowledged after this long
    # Raw [peripherals.*] tables; each adapter validates its own section.
    peripherals: dict = field(default_factory=dict)

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
        services.append(Service(prefix, str(item.get("name", ""))))
    if not services:
        problems.append("services: at least one service is required")

    known = {s.prefix for s in services}
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

    brokers = raw.get("brokers") or {}
    center_broker = _broker(brokers.get("center"), "brokers.center", problems)
    county_broker = _broker(brokers.get("county"), "brokers.county", problems)

    http = raw.get("http") or {}
    storage = raw.get("storage") or {}
    data_dir = Path(storage.get("data_dir", "data"))
    if base_dir is not None and not data_dir.is_absolute():
        data_dir = base_dir / data_dir

    printer_raw = raw.get("printer") or {}
    printer = PrinterConfig(
        kind=str(printer_raw.get("kind", "none")),
        path=str(printer_raw.get("path", "")),
        host=str(printer_raw.get("host", "")),
        port=int(printer_raw.get("port", 9100)),
        encoding=str(printer_raw.get("encoding", "gb18030")),
    )
    if printer.kind not in ("none", "file", "network"):
        problems.append(f"printer.kind: must be none, file or network, got {printer.kind!r}")
    if printer.kind == "file" and not printer.path:
        problems.append("printer.path: a file printer needs a path")
    if printer.kind == "file" and base_dir is not None and not Path(printer.path).is_absolute():
        printer = PrinterConfig(printer.kind, str(base_dir / printer.path), printer.host, printer.port,
                                printer.encoding)

    if problems:
        raise ConfigError(source, problems)
    return CenterConfig(
        code=code, name=name, services=tuple(services), windows=tuple(windows), opening_time=opening,
        center_broker=center_broker, county_broker=county_broker,
        http_host=str(http.get("host", "127.0.0.1")), http_port=int(http.get("port", 8080)),
        data_dir=data_dir, printer=printer,
        rating_timeout_s=int(center.get("rating_timeout_s", 60)),
        peripherals=dict(raw.get("peripherals") or {}),
        ack_timeout_s=float((raw.get("uplink") or {}).get("ack_timeout_s", 30.0)),
    )


def load_config(path: Path) -> CenterConfig:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_config(raw, str(path), base_dir=Path(path).parent)
