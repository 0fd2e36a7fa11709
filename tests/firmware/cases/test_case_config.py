"""config.json and the flash helpers: safe defaults, atomic replace, never a crash."""

import json

from case_support import KEY, listdir, raises, read, scratch_dir, write

from firmware.lib import config, flashfs

FULL = {"center": "445202101001", "window": 3, "role": "rating_pad", "board": "esp32-devkitc",
        "broker": {"host": "10.1.2.3", "port": 1884, "username": "dev", "password": "pw"},
        "wifi": {"ssid": "center", "password": "secret"}, "health_interval_s": 10, "keepalive_s": 20,
        "mac": "02:00:00:00:00:01", "device_key": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "network": "ethernet"}


def test_a_full_config_loads():
    path = scratch_dir("cfg") + "/config.json"
    write(path, json.dumps(FULL))
    cfg = config.load(path)
    assert cfg.errors == [] and cfg.error is None
    assert (cfg.center, cfg.window, cfg.role, cfg.board) == ("445202101001", 3, "rating_pad", "esp32-devkitc")
    assert (cfg.broker_host, cfg.broker_port, cfg.username, cfg.password) == ("10.1.2.3", 1884, "dev", "pw")
    assert (cfg.wifi_ssid, cfg.wifi_password, cfg.keepalive_s) == ("center", "secret", 20)
    assert cfg.device_key == KEY
    assert cfg.network == "ethernet"


def test_ethernet_pins_in_config_are_ignored_for_the_boards_own():
    # They used to default to MDC 23, MDIO 18, power 12: pins both pin maps use for their panels and buttons.
    cfg = config.from_dict({"network": "ethernet", "ethernet": {"phy": "LAN8720", "mdc": 23, "mdio": 18}})
    assert cfg.network == "ethernet" and not hasattr(cfg, "ethernet")
    assert len(cfg.errors) == 1 and cfg.errors[0].startswith("ethernet: ignored: the Ethernet PHY and its pins")


def test_missing_file_gives_defaults_and_reports():
    cfg = config.load(scratch_dir("cfg") + "/config.json")
    assert cfg.broker_port == 1883 and cfg.health_interval_s == 30 and cfg.device_key is None
    assert cfg.errors and "cannot read" in cfg.errors[0]


def test_corrupt_file_gives_defaults_and_reports():
    path = scratch_dir("cfg") + "/config.json"
    write(path, '{"center": "4452')
    cfg = config.load(path)
    assert cfg.center == config.Config().center
    assert "not valid JSON" in cfg.error
    write(path, b"\xff\xfe{}")
    assert "UTF-8" in config.load(path).error


def test_bad_fields_keep_their_defaults_and_good_ones_apply():
    cfg = config.from_dict({"center": "4452", "window": 0, "role": "printer", "health_interval_s": -1,
                            "broker": {"host": "edge", "port": "x"}, "mac": "zz", "device_key": "abcd",
                            "network": "carrier-pigeon", "ethernet": {"mdc": "23"}})
    defaults = config.Config()
    assert (cfg.center, cfg.window, cfg.role, cfg.network) == (defaults.center, defaults.window, defaults.role, "wifi")
    assert cfg.broker_host == "edge" and cfg.broker_port == 1883 and cfg.device_key is None
    assert len(cfg.errors) == 9
    assert config.from_dict([1, 2]).errors == ["config must be a JSON object"]


def test_broker_urls():
    assert config.parse_broker_url("mqtt://dev:pw@10.0.0.2:1884/") == ("10.0.0.2", 1884, "dev", "pw")
    assert config.parse_broker_url("tcp://[::1]:1999") == ("::1", 1999, None, None)
    assert config.parse_broker_url("edge.local") == ("edge.local", 1883, None, None)
    for bad in ("http://x:1", "mqtt://:1883", "mqtt://x:0", "mqtt://x:port", ""):
        raises(ValueError, config.parse_broker_url, bad)


def test_save_is_atomic_and_round_trips():
    folder = scratch_dir("cfg")
    path = folder + "/config.json"
    cfg = config.from_dict(FULL)
    config.save(cfg, path)
    assert listdir(folder) == ["config.json"]  # no .tmp left behind
    again = config.load(path)
    assert again.errors == [] and again.as_dict() == cfg.as_dict()


def test_a_cut_between_remove_and_rename_is_recovered():
    # FAT cannot rename over a file: write_atomic removes the old one first. A power cut
    # right then leaves only the complete .tmp, which load() takes.
    folder = scratch_dir("cfg")
    write(folder + "/config.json.tmp", json.dumps(FULL))
    assert config.load(folder + "/config.json").errors == []
    # A torn main file beside a complete .tmp: the .tmp wins too.
    write(folder + "/config.json", '{"center": "44')
    assert config.load(folder + "/config.json").window == 3


def test_flashfs_helpers():
    folder = scratch_dir("fs") + "/a/b"
    flashfs.ensure_dir(folder)
    path = flashfs.join(folder, "x.json")
    assert flashfs.read_json(path, "default") == ("default", None)  # first boot: no error
    flashfs.write_json(path, {"k": "值"})
    flashfs.write_json(path, {"k": "新值"})
    assert flashfs.read_json(path) == ({"k": "新值"}, None)
    assert read(path) == json.dumps({"k": "新值"})
    write(path, "{torn")
    value, error = flashfs.read_json(path, {})
    assert value == {} and "corrupt" in error
    flashfs.remove(path)
    flashfs.remove(path)  # twice is fine
    assert not flashfs.exists(path)
