"""What a device is told at provisioning: the arguments checked, and its config.json.

Everything here is checked before the board is touched: the center code and window with
protocol.identity, the role with protocol.messages, the board against hardware/boards/, the broker and
Wi-Fi from the command line or a site file. The config.json produced is checked with the firmware's own
reader (firmware.lib.config.from_dict), so the board accepts what it is given.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from firmware.lib import boards as board_definitions
from firmware.lib import config as firmware_config
from protocol import identity, messages
from protocol.errors import ProtocolError
from provisioning.errors import ProvisionError

REPO = Path(__file__).resolve().parents[1]
BOARDS_DIR = REPO / "hardware" / "boards"
NOT_FOR_DEVICES = {"sim"}  # the simulator's board: no real device runs it
HEALTH_INTERVAL_S = 30
KEEPALIVE_S = 30


@dataclass(frozen=True)
class DeviceCredentials:
    """What the fleet issues for one device at registration, or a credential-pack slot (fleet_registration)."""
    broker_username: str
    broker_password: str
    device_key_hex: str

    def complete(self) -> bool:
        """Whether all three are non-empty strings (as read from JSON they may be anything)."""
        return all(isinstance(v, str) and v for v in (self.broker_username, self.broker_password,
                                                       self.device_key_hex))


@dataclass(frozen=True)
class DeviceSettings:
    center: str
    window: int
    role: str
    board: str
    broker_host: str
    broker_port: int
    wifi_ssid: str
    wifi_password: str = field(repr=False)


def check_role(role: str) -> str:
    if role not in messages.DEVICE_ROLES:
        raise ProvisionError(f"--role must be one of {', '.join(messages.DEVICE_ROLES)}, got {role!r}")
    return role


def check_board(name: str, role: str, boards_dir: Path = BOARDS_DIR) -> str:
    """`name` if hardware/boards/<name>.json is a valid definition with a section for `role`."""
    if name in NOT_FOR_DEVICES:
        raise ProvisionError(f"--board {name} is the simulator's board, not a real device's")
    try:
        definition = board_definitions.load(name, paths=(str(boards_dir / f"{name}.json"),))
        board_definitions.role_section(definition, role)
    except board_definitions.BoardError as exc:
        known = sorted(p.stem for p in boards_dir.glob("*.json") if p.stem not in NOT_FOR_DEVICES)
        raise ProvisionError(f"--board {name}: {exc} (boards: {', '.join(known) or 'none'})") from None
    return name


def board_warnings(name: str, boards_dir: Path = BOARDS_DIR) -> list[str]:
    """What the board definition allows but its wiring must get right (strapping pins, inputs without a
    pull-up): firmware.lib.boards.warnings, for the technician to see before the board is set up."""
    try:
        definition = board_definitions.load(name, paths=(str(boards_dir / f"{name}.json"),))
    except board_definitions.BoardError:
        return []  # check_board has refused it already
    return board_definitions.warnings(definition)


def parse_broker(text: str) -> tuple[str, int]:
    try:
        host, port, username, password = firmware_config.parse_broker_url(text)
    except ValueError as exc:
        raise ProvisionError(f"--broker: {exc} (expected host:port, e.g. 192.168.10.2:1883)") from None
    if username is not None or password is not None:
        raise ProvisionError("--broker must not carry a user name or password: every device gets its own "
                             "credentials from the fleet")
    return host, port


def read_site_file(path: Path) -> dict:
    """A center's site file (TOML): [wifi] ssid, password; [broker] host, port."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvisionError(f"cannot read site file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"site file {path} is not valid TOML: {exc}") from None
    problems = []
    for section, keys in (("wifi", ("ssid", "password")), ("broker", ("host", "port"))):
        value = data.get(section, {})
        if not isinstance(value, dict):
            problems.append(f"[{section}] must be a table")
            continue
        for key in value:
            if key not in keys:
                problems.append(f"{section}.{key}: unknown key")
    if problems:
        raise ProvisionError(f"site file {path}: {'; '.join(problems)}")
    return data


def settings_from_arguments(center: str, window: int, role: str, board: str | None, broker: str | None,
                            wifi_ssid: str | None, wifi_password: str | None,
                            site_file: Path | None) -> DeviceSettings:
    """Check every argument; report all problems at once."""
    problems = []
    site = read_site_file(site_file) if site_file is not None else {}
    try:
        identity.check_center_code(center)
    except ProtocolError as exc:
        problems.append(f"--center: {exc}")
    try:
        identity.check_window(window)
    except ProtocolError as exc:
        problems.append(f"--window: {exc}")
    try:
        check_role(role)
    except ProvisionError as exc:
        problems.append(str(exc))
        role = ""
    board_name = board or board_definitions.DEFAULT_BOARDS.get(role, "")
    if role:
        try:
            check_board(board_name, role)
        except ProvisionError as exc:
            problems.append(str(exc))
    broker_host, broker_port = "", 0
    site_broker = site.get("broker", {})
    if broker is None and site_broker.get("host"):
        broker = f"{site_broker['host']}:{site_broker.get('port', firmware_config.DEFAULT_PORT)}"
    if broker is None:
        problems.append("--broker is required (the center broker, host:port), or [broker] in --site")
    else:
        try:
            broker_host, broker_port = parse_broker(broker)
        except ProvisionError as exc:
            problems.append(str(exc))
    site_wifi = site.get("wifi", {})
    ssid = wifi_ssid if wifi_ssid is not None else site_wifi.get("ssid")
    password = wifi_password if wifi_password is not None else site_wifi.get("password", "")
    if not ssid or not isinstance(ssid, str):
        problems.append("--wifi-ssid is required, or [wifi] ssid in --site")
    if not isinstance(password, str):
        problems.append("the Wi-Fi password must be text")
    if problems:
        raise ProvisionError("; ".join(problems))
    return DeviceSettings(center, window, role, board_name, broker_host, broker_port, ssid, password)


def config_json(settings: DeviceSettings, credentials: DeviceCredentials | None) -> bytes:
    """The device's config.json, byte for byte the same for the same input (reruns compare hashes)."""
    config = {
        "center": settings.center,
        "window": settings.window,
        "role": settings.role,
        "board": settings.board,
        "broker": {
            "host": settings.broker_host,
            "port": settings.broker_port,
            "username": credentials.broker_username if credentials else None,
            "password": credentials.broker_password if credentials else None,
        },
        "wifi": {"ssid": settings.wifi_ssid, "password": settings.wifi_password},
        "health_interval_s": HEALTH_INTERVAL_S,
        "keepalive_s": KEEPALIVE_S,
        # Not registered (no fleet, no pack): no key, and the firmware then refuses every signed command.
        "device_key": credentials.device_key_hex if credentials else None,
    }
    checked = firmware_config.from_dict(config)
    if checked.errors:
        raise ProvisionError(f"config.json would be refused by the firmware: {checked.error}")
    return (json.dumps(config, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
