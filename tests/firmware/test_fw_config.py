"""firmware.lib.config: safe defaults, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.lib import config


def test_a_full_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "center": "445202101001", "window": 3, "role": "rating_pad", "board": "esp32-devkitc",
        "broker": {"host": "10.1.2.3", "port": 1884, "username": "dev", "password": "pw"},
        "wifi": {"ssid": "center", "password": "secret"}, "health_interval_s": 10, "keepalive_s": 20,
        "mac": "02:00:00:00:00:01",
    }), encoding="utf-8")
    cfg = config.load(str(path))
    assert cfg.errors == [] and cfg.error is None
    assert (cfg.center, cfg.window, cfg.role, cfg.board) == ("445202101001", 3, "rating_pad", "esp32-devkitc")
    assert (cfg.broker_host, cfg.broker_port, cfg.username, cfg.password) == ("10.1.2.3", 1884, "dev", "pw")
    assert (cfg.wifi_ssid, cfg.wifi_password) == ("center", "secret")
    assert (cfg.health_interval_s, cfg.keepalive_s, cfg.mac) == (10, 20, "02:00:00:00:00:01")


def test_missing_file_gives_defaults_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config.load(str(tmp_path / "nope.json"))
    assert cfg.health_interval_s == 30
    assert cfg.broker_port == 1883
    assert cfg.errors and "cannot read" in cfg.errors[0]
    assert "config:" in capsys.readouterr().out


def test_corrupt_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"center": "4452', encoding="utf-8")
    cfg = config.load(str(path))
    assert cfg.center == config.Config().center
    assert "not valid JSON" in cfg.error


def test_bad_fields_keep_their_defaults_and_good_ones_apply(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"center": "4452", "window": 0, "role": "printer", "health_interval_s": -1,
                                "broker": {"host": "edge", "port": "x"}, "mac": "zz"}), encoding="utf-8")
    cfg = config.load(str(path))
    defaults = config.Config()
    assert (cfg.center, cfg.window, cfg.role) == (defaults.center, defaults.window, defaults.role)
    assert cfg.health_interval_s == 30 and cfg.broker_port == 1883 and cfg.mac is None
    assert cfg.broker_host == "edge"
    assert len(cfg.errors) == 6


def test_non_object_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("[1, 2]", encoding="utf-8")
    assert config.load(str(path)).errors == ["config must be a JSON object"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", ("127.0.0.1", 1883, None, None)),
        ("mqtt://edge.local", ("edge.local", 1883, None, None)),
        ("mqtt://dev:pw@10.0.0.2:1884/", ("10.0.0.2", 1884, "dev", "pw")),
        ("tcp://[::1]:1999", ("::1", 1999, None, None)),
        ("127.0.0.1:1885", ("127.0.0.1", 1885, None, None)),
    ],
)
def test_broker_urls(url: str, expected: tuple) -> None:
    assert config.parse_broker_url(url) == expected
    cfg = config.from_dict({"broker": url})
    assert (cfg.broker_host, cfg.broker_port, cfg.username, cfg.password) == expected


@pytest.mark.parametrize("url", ["http://x:1", "mqtt://:1883", "mqtt://x:0", "mqtt://x:port", ""])
def test_bad_broker_urls(url: str) -> None:
    with pytest.raises(ValueError):
        config.parse_broker_url(url)
    assert config.from_dict({"broker": url or 5}).errors
