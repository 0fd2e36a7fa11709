"""Device configuration: /config.json, written at provisioning.

    {
      "center": "445202101001",
      "window": 3,
      "role": "queue_display",
      "board": "esp32-devkitc",
      "broker": {"host": "192.168.10.2", "port": 1883, "username": null, "password": null},
      "wifi": {"ssid": "...", "password": "..."},
      "health_interval_s": 30,
      "keepalive_s": 30,
      "mac": "02:00:00:00:00:01",
      "device_key": "<64 hex digits>",
      "network": "wifi"
    }

"broker" may also be a URL string "mqtt://user:pass@host:port". "mac" is
optional on a real board (the Wi-Fi MAC is used); the simulator sets it.
"device_key" (hex, at least 16 bytes) is the device's own key, written at
provisioning: desired configurations and commands must be signed with it
(protocol.signing); without it every one is rejected. "network" is "wifi"
(default) or "ethernet" for boards with a wired port; the PHY and its pins are
the board definition's "ethernet" (hardware/boards), where they are checked
against the board's pin map: an "ethernet" object here is ignored and reported
(it used to default to pins that collide with both pin maps).

The file is replaced atomically (save(): new file, then rename), and load()
also finds a complete file left as config.json.tmp by a power cut in the
middle of a replace on FAT.

A missing or corrupt file, or a bad field, never stops the device: the
default is used and the problem is kept in `Config.errors` and printed.
"""

import json

from firmware.lib import flashfs
from protocol import messages, signing
from protocol.errors import ProtocolError
from protocol.identity import check_center_code, check_window, normalise_mac

CONFIG_FILE = "config.json"
DEFAULT_PORT = 1883
NETWORK_WIFI = "wifi"
NETWORK_ETHERNET = "ethernet"
NETWORKS = (NETWORK_WIFI, NETWORK_ETHERNET)


class Config:
    def __init__(self):
        self.center = "000000000000"
        self.window = 1
        self.role = messages.ROLE_QUEUE_DISPLAY
        self.board = "esp32"
        self.broker_host = "192.168.1.2"
        self.broker_port = DEFAULT_PORT
        self.username = None
        self.password = None
        self.wifi_ssid = ""
        self.wifi_password = ""
        self.health_interval_s = 30
        self.keepalive_s = 30
        self.mac = None
        self.device_key = None  # bytes; None: no signed configuration or command is accepted
        self.network = NETWORK_WIFI
        self.errors = []

    @property
    def error(self):
        """All problems found while loading, or None."""
        return "; ".join(self.errors) if self.errors else None

    def as_dict(self):
        return {
            "center": self.center,
            "window": self.window,
            "role": self.role,
            "board": self.board,
            "broker": {"host": self.broker_host, "port": self.broker_port,
                       "username": self.username, "password": self.password},
            "wifi": {"ssid": self.wifi_ssid, "password": self.wifi_password},
            "health_interval_s": self.health_interval_s,
            "keepalive_s": self.keepalive_s,
            "mac": self.mac,
            "device_key": _hex(self.device_key),
            "network": self.network,
        }


def parse_broker_url(url):
    """'mqtt://user:pass@host:1883' -> (host, port, username, password)."""
    if not isinstance(url, str) or not url:
        raise ValueError("broker URL must be text")
    rest = url
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        if scheme not in ("mqtt", "tcp"):
            raise ValueError("broker URL scheme must be mqtt://, got %r" % scheme)
    rest = rest.split("/", 1)[0]
    username = None
    password = None
    if "@" in rest:
        auth, rest = rest.rsplit("@", 1)
        if ":" in auth:
            username, password = auth.split(":", 1)
        else:
            username = auth
    port = DEFAULT_PORT
    host = rest
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise ValueError("bad IPv6 address in %r" % url)
        host = rest[1:end]
        tail = rest[end + 1:]
        if tail.startswith(":"):
            port = int(tail[1:])
    elif ":" in rest:
        host, port_text = rest.rsplit(":", 1)
        port = int(port_text)
    if not host or port < 1 or port > 65535:
        raise ValueError("bad broker URL %r" % url)
    return host, port, username, password


def _take(cfg, data, key, check, attr=None):
    if key not in data or data[key] is None:
        return
    try:
        setattr(cfg, attr or key, check(data[key]))
    except (ProtocolError, ValueError, TypeError) as exc:
        cfg.errors.append("%s: %s" % (key, exc))


def _positive_int(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("must be a positive integer, got %r" % (value,))
    return value


def _positive_num(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError("must be a positive number, got %r" % (value,))
    return value


def _text(value):
    if not isinstance(value, str):
        raise ValueError("must be text, got %r" % (value,))
    return value


def _role(value):
    if value not in messages.DEVICE_ROLES:
        raise ValueError("must be one of %s, got %r" % (", ".join(messages.DEVICE_ROLES), value))
    return value


def _hex(key):
    if key is None:
        return None
    import binascii

    return binascii.hexlify(key).decode()


def _network(value):
    if value not in NETWORKS:
        raise ValueError("must be one of %s, got %r" % (", ".join(NETWORKS), value))
    return value


def _ethernet_moved(value):
    raise ValueError("ignored: the Ethernet PHY and its pins are the board definition's (hardware/boards), "
                     "checked there against the board's pin map")


def _mac(value):
    normalise_mac(value)
    return value


def from_dict(data, cfg=None):
    """Apply the fields of `data` over `cfg` (defaults when None)."""
    cfg = cfg or Config()
    if not isinstance(data, dict):
        cfg.errors.append("config must be a JSON object")
        return cfg
    _take(cfg, data, "center", check_center_code)
    _take(cfg, data, "window", check_window)
    _take(cfg, data, "role", _role)
    _take(cfg, data, "board", _text)
    _take(cfg, data, "health_interval_s", _positive_num)
    _take(cfg, data, "keepalive_s", _positive_int)
    _take(cfg, data, "mac", _mac)
    _take(cfg, data, "device_key", signing.key_from_hex)
    _take(cfg, data, "network", _network)
    _take(cfg, data, "ethernet", _ethernet_moved)
    broker = data.get("broker")
    if isinstance(broker, str):
        try:
            cfg.broker_host, cfg.broker_port, cfg.username, cfg.password = parse_broker_url(broker)
        except ValueError as exc:
            cfg.errors.append("broker: %s" % exc)
    elif isinstance(broker, dict):
        _take(cfg, broker, "host", _text, "broker_host")
        _take(cfg, broker, "port", _positive_int, "broker_port")
        _take(cfg, broker, "username", _text)
        _take(cfg, broker, "password", _text)
    elif broker is not None:
        cfg.errors.append("broker: must be an object or a URL")
    wifi = data.get("wifi")
    if isinstance(wifi, dict):
        _take(cfg, wifi, "ssid", _text, "wifi_ssid")
        _take(cfg, wifi, "password", _text, "wifi_password")
    return cfg


def load(path=CONFIG_FILE):
    """Read the config file; never raises. Problems are in the result's `errors`."""
    cfg = Config()
    try:
        text = flashfs.read_text(path)
    except OSError as exc:
        cfg.errors.append("cannot read %s: %s" % (path, exc))
        _report(cfg)
        return cfg
    except UnicodeError:
        cfg.errors.append("%s is not UTF-8" % path)
        _report(cfg)
        return cfg
    try:
        data = json.loads(text)
    except ValueError as exc:
        data, error = flashfs.read_json(path)  # a complete .tmp beside a torn file
        if error is not None or data is None:
            cfg.errors.append("%s is not valid JSON: %s" % (path, exc))
            _report(cfg)
            return cfg
    from_dict(data, cfg)
    _report(cfg)
    return cfg


def save(cfg, path=CONFIG_FILE):
    """Write `cfg` (a Config or a dict) atomically. Raises OSError when the flash refuses."""
    data = cfg.as_dict() if isinstance(cfg, Config) else cfg
    flashfs.write_json(path, data)


def _report(cfg):
    for problem in cfg.errors:
        print("config:", problem)
