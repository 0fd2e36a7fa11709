"""What the Pi's units and commands run (edge_agent.system): the broker's config and first account, backups and
their refusals, the screens' placement. The package around them: test_pi_package.py."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
from pathlib import Path

import pytest

from edge_agent.adapters.broker_accounts import verify_mosquitto_password
from edge_agent.config import parse_config
from edge_agent.queue.service import QueueService
from edge_agent.store import EdgeStore
from edge_agent.system import screens
from edge_agent.system.backup import BackupError, backup, read_archive, restore
from edge_agent.system.broker import BrokerSetupError, bootstrap_accounts, mosquitto_config
from fleet.registration.broker_files import CENTER_BROKER_SETTINGS
from tests.edge.test_staff_sign_in import raw_config
from tools.mosquitto import free_port

# `xrandr --query` on a Raspberry Pi 4 with both HDMI outputs connected (X, modesetting driver).
XRANDR_TWO_SCREENS = """Screen 0: minimum 320 x 200, current 3840 x 1080, maximum 7680 x 7680
HDMI-1 connected primary 1920x1080+0+0 (normal left inverted right x axis y axis) 527mm x 296mm
   1920x1080     60.00*+  50.00    59.94
HDMI-2 connected 1920x1080+1920+0 (normal left inverted right x axis y axis) 1600mm x 900mm
   1920x1080     60.00*+
"""
XRANDR_ONE_NOT_ON = """Screen 0: minimum 320 x 200, current 1920 x 1080, maximum 7680 x 7680
HDMI-1 connected 1080x1920+0+0 left (normal left inverted right x axis y axis) 527mm x 296mm
HDMI-2 connected (normal left inverted right x axis y axis)
   1920x1080     60.00 +
"""


def pi_config(tmp_path: Path, **changes):
    raw = raw_config(tmp_path)
    raw["brokers"] = {"center": {"host": "127.0.0.1", "port": free_port(), "username": "edge-445202101001",
                                 "password": "secret-of-the-edge"}}
    raw["center_broker"] = {"password_file": str(tmp_path / "passwd"), "acl_file": str(tmp_path / "acl"),
                            "pid_file": str(tmp_path / "mosquitto.pid")}
    raw["http"] = {"host": "127.0.0.1", "port": free_port()}
    raw.update(changes)
    return parse_config(raw, base_dir=tmp_path)


def test_the_broker_config_follows_the_centers_toml(tmp_path):
    config = pi_config(tmp_path)
    lines = mosquitto_config(config, tmp_path / "center.toml").splitlines()
    assert f"listener {config.center_broker.port}" in lines
    assert [line for line in lines if line in CENTER_BROKER_SETTINGS] == list(CENTER_BROKER_SETTINGS)
    assert f"password_file {tmp_path / 'passwd'}" in lines and f"pid_file {tmp_path / 'mosquitto.pid'}" in lines
    assert "log_dest stderr" in lines  # to journald
    without = parse_config({**raw_config(tmp_path)}, base_dir=tmp_path)
    with pytest.raises(BrokerSetupError, match=r"\[center_broker\]"):
        mosquitto_config(without, tmp_path / "center.toml")


def test_the_first_account_is_the_agents_own_and_the_fleets_files_are_never_overwritten(tmp_path):
    config = pi_config(tmp_path)
    assert bootstrap_accounts(config) == [tmp_path / "passwd", tmp_path / "acl"]
    user, _, stored = (tmp_path / "passwd").read_text().strip().partition(":")
    assert user == "edge-445202101001" and verify_mosquitto_password("secret-of-the-edge", stored)
    assert (tmp_path / "passwd").stat().st_mode & 0o777 == 0o600
    assert "user edge-445202101001" in (tmp_path / "acl").read_text()
    (tmp_path / "passwd").write_text("the fleet's accounts\n")  # installed by the agent since
    assert bootstrap_accounts(config) == []
    assert (tmp_path / "passwd").read_text() == "the fleet's accounts\n"


def seeded_queue(tmp_path: Path):
    config = pi_config(tmp_path)
    store = EdgeStore(config.data_dir / "edge.sqlite3")
    queue = QueueService(store, config)
    return config, store, queue


def test_a_backup_is_consistent_while_the_agent_writes_and_keeps_the_newest(tmp_path):
    config, store, queue = seeded_queue(tmp_path)
    try:
        queue.issue_ticket("A")
        queue.issue_ticket("A")
        archives = [backup(config, tmp_path / "backups", keep=2, now=1767571200.0 + day * 86400) for day in range(3)]
        queue.issue_ticket("A")  # after the backups, in the live WAL
    finally:
        store.close()
    kept = sorted((tmp_path / "backups").glob("edge-*.tar"))
    assert kept == archives[1:]  # the oldest beyond two deleted
    assert kept[0].stat().st_mode & 0o777 == 0o600
    manifest, files = read_archive(kept[-1])
    assert manifest["center"] == config.code and set(files) == {"edge.sqlite3"}  # no card seen: no salt yet
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(files["edge.sqlite3"])
    with sqlite3.connect(copy) as db:
        assert [row[0] for row in db.execute("SELECT number FROM tickets ORDER BY number")] == ["A001", "A002"]


def test_restore_refuses_a_damaged_archive_another_centers_and_a_running_agent(tmp_path):
    config, store, queue = seeded_queue(tmp_path)
    queue.issue_ticket("A")
    store.close()
    archive = backup(config, tmp_path / "backups")
    manifest, files = read_archive(archive)

    damaged = tmp_path / "damaged.tar"
    with tarfile.open(damaged, "w") as tar:
        for name, data in {**files, "manifest.json": json.dumps(manifest).encode(),
                           "edge.sqlite3": files["edge.sqlite3"][:-1] + b"x"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(BackupError, match="damaged"):
        restore(config, damaged)

    other = pi_config(tmp_path, center={"code": "445202101002", "name": "另一个中心"})
    with pytest.raises(BackupError, match="not of 445202101002"):
        restore(other, archive)

    import socket
    with socket.socket() as listening:  # the agent's port answers
        listening.bind(("127.0.0.1", config.http_port))
        listening.listen()
        with pytest.raises(BackupError, match="stop it first"):
            restore(config, archive)
    assert restore(config, archive).replaced is not None  # the database it replaced is kept


def test_screens_go_to_the_outputs_named_or_in_order():
    outputs = screens.connected_outputs(XRANDR_TWO_SCREENS)
    assert outputs == [screens.Output("HDMI-1", 1920, 1080, 0, 0), screens.Output("HDMI-2", 1920, 1080, 1920, 0)]
    default, problems = screens.screens_of({})
    assert problems == []
    assert [screens.output_for(s, default, outputs).name for s in default] == ["HDMI-1", "HDMI-2"]
    swapped, _ = screens.screens_of({"screens": [{"page": "hall", "output": "HDMI-1"}, {"page": "kiosk"}]})
    assert [(s.page, screens.output_for(s, swapped, outputs).name) for s in swapped] == [("hall", "HDMI-1"),
                                                                                         ("kiosk", "HDMI-2")]
    # One screen switched on (a portrait kiosk), the other connected but not yet on: it has no place yet.
    assert screens.connected_outputs(XRANDR_ONE_NOT_ON) == [screens.Output("HDMI-1", 1080, 1920, 0, 0),
                                                            screens.Output("HDMI-2")]
    assert screens.output_for(screens.Screen("hall"), default, outputs[:1]) is None  # no second screen


def test_screens_are_checked_with_every_problem_at_once():
    _screens, problems = screens.screens_of({"screens": [{"page": "lobby", "rotate": "sideways", "size": 1},
                                                          {"page": "kiosk"}, {"page": "kiosk"}]})
    assert problems == ["screens[0].page: must be one of kiosk, hall, got 'lobby'",
                        "screens[0].rotate: must be one of normal, left, right, inverted, got 'sideways'",
                        "screens[0].size: unknown key (page, output, rotate)",
                        "screens[2].page: 'kiosk' is listed twice"]


def test_chromium_fills_its_output_with_nothing_a_resident_could_open(tmp_path):
    config = pi_config(tmp_path, http={"host": "0.0.0.0", "port": 8080})
    command = screens.chromium_command("chromium", screens.page_url(config, "hall"),
                                       screens.Output("HDMI-2", 1920, 1080, 1920, 0), "/profiles/hall")
    assert command[0] == "chromium" and "--kiosk" in command and command[-1] == "http://127.0.0.1:8080/hall"
    assert "--window-position=1920,0" in command and "--window-size=1920,1080" in command
    assert "--noerrdialogs" in command and "--disable-session-crashed-bubble" in command
