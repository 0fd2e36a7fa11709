"""Desired configuration: scopes, inheritance, versions, roll-back, signed retained pushes, reports, drift."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from fleet_testkit import CENTER, DISPLAY, OTHER_CENTER, PAD, add_user, wait_for
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import Session, select

from fleet.alerts.operations import config_job
from fleet.app import create_app
from fleet.audit import AuditEntry
from fleet.db import LONG_IN_LIST, write_session
from fleet.devconfig import config as cfg
from fleet.devconfig.keys import DeviceKeyError, KeyBox, set_key
from fleet.devconfig.models import DeviceConfigState, DeviceKey
from fleet.ingest import handle_message
from fleet.models import Device as DeviceRow
from protocol import messages, signing, topics
from protocol.identity import device_id_from_mac

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
KEY = bytes(range(32))
OTHER_DISPLAY = "dev-a4cf12000009"


BOOT = "0a1b2c3d"  # the boot id of the births below


def birth(engine, device: str, role: str, center: str = CENTER, boot: str | None = BOOT) -> None:
    """A birth; boot None: as firmware older than the boot id sends it."""
    payload = {"v": 1, "state": "online", "session": 1, "role": role, "board": "b", "fw": "1", "contract": 1,
               "window": 3, **({"boot": boot} if boot else {})}
    handle_message(engine, topics.build(topics.DEVICE_PRESENCE, center=center, device=device),
                   json.dumps(payload).encode(), NOW)


def report(engine, device: str, version: int, status: str = "applied", error: str | None = None,
           in_force: int | None = None) -> None:
    """A device_config_reported; without in_force, as firmware older than that field sends it."""
    payload = {"v": 1, "version": version, "status": status, **({"error": error} if error else {}),
               **({"in_force": in_force} if in_force is not None else {})}
    handle_message(engine, topics.build(topics.DEVICE_CONFIG_REPORTED, center=CENTER, device=device),
                   json.dumps(payload).encode(), NOW)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, int, bool]] = []

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        self.sent.append((topic, json.loads(payload), qos, retain))
        return True


def state(engine, device: str) -> DeviceConfigState:
    with Session(engine) as session:
        return session.get(DeviceConfigState, device)


def test_inheritance_versions_rollback_and_drift(engine, fleet_settings) -> None:
    birth(engine, DISPLAY, "queue_display")
    birth(engine, PAD, "rating_pad")
    birth(engine, OTHER_DISPLAY, "queue_display", OTHER_CENTER)
    box = KeyBox.from_settings(fleet_settings)
    recorder = Recorder()
    with write_session(engine) as session:
        set_key(session, box, DISPLAY, KEY, "tester", NOW)
        cfg.set_scope_config(session, "county", "445202", "queue_display", {"brightness": 50, "idle_text": "欢迎"},
                             "admin", NOW)
        cfg.set_scope_config(session, "town", CENTER[:9], "queue_display", {"brightness": 70}, "town-a", NOW)
        _, changed = cfg.set_scope_config(session, "device", DISPLAY, "queue_display", {"blink_s": 3}, "town-a", NOW)
        assert changed == [DISPLAY]
        with pytest.raises(cfg.ConfigError, match="brightness"):
            cfg.set_scope_config(session, "center", CENTER, "queue_display", {"brightness": 101}, "x", NOW)
        with pytest.raises(cfg.ConfigError, match="unknown key"):
            cfg.set_scope_config(session, "center", CENTER, "rating_pad", {"idle_text": "x"}, "x", NOW)
    ours, theirs = state(engine, DISPLAY), state(engine, OTHER_DISPLAY)
    assert json.loads(ours.desired_config) == {"brightness": 70, "idle_text": "欢迎", "blink_s": 3}
    assert ours.desired_version == 3
    assert json.loads(theirs.desired_config) == {"brightness": 50, "idle_text": "欢迎"}  # another town
    assert state(engine, PAD) is None  # nothing for rating pads

    with write_session(engine) as session:
        result = cfg.push_pending(session, box, recorder, NOW, 300)
    assert result.pushed == [DISPLAY] and sorted(result.no_key) == [OTHER_DISPLAY]
    topic, payload, qos, retain = recorder.sent[0]
    assert topic == topics.build(topics.DEVICE_CONFIG_DESIRED, center=CENTER, device=DISPLAY) and qos == 1 and retain
    assert signing.verify(KEY, DISPLAY, payload) and payload["version"] == 3 and payload["issued_by"] == "town-a"
    assert cfg.status_of(state(engine, DISPLAY)) == "pending"

    # Drift: the device still reports version 2: re-published, but not before config_repush_s.
    report(engine, DISPLAY, 2)
    with write_session(engine) as session:
        assert cfg.push_pending(session, box, recorder, NOW + timedelta(seconds=10), 300).pushed == []
        assert cfg.push_pending(session, box, recorder, NOW + timedelta(seconds=301), 300).pushed == [DISPLAY]
    report(engine, DISPLAY, 3)
    assert cfg.status_of(state(engine, DISPLAY)) == "applied"
    with write_session(engine) as session:
        assert cfg.push_pending(session, box, recorder, NOW + timedelta(hours=1), 300).pushed == []

    # A change, then a roll-back to the town's first revision: a new revision with the old content.
    with write_session(engine) as session:
        cfg.set_scope_config(session, "town", CENTER[:9], "queue_display", {"brightness": 20}, "town-a", NOW)
        revision, changed = cfg.rollback(session, "town", CENTER[:9], "queue_display", 1, "town-a", NOW)
    assert revision.revision == 3 and revision.rollback_of == 1 and changed == [DISPLAY]
    assert json.loads(state(engine, DISPLAY).desired_config)["brightness"] == 70
    assert state(engine, DISPLAY).desired_version == 5

    with write_session(engine) as session:
        assert cfg.push_pending(session, box, recorder, NOW + timedelta(hours=1), 300).pushed == [DISPLAY]
    report(engine, DISPLAY, 5, "rejected", "signature does not verify")
    assert cfg.status_of(state(engine, DISPLAY)) == "rejected"
    with write_session(engine) as session:  # a rejected version is not pushed again and again
        assert cfg.push_pending(session, box, recorder, NOW + timedelta(hours=2), 300).pushed == []


def test_the_version_in_force_stays_known_after_a_rejection(engine, fleet_settings) -> None:
    birth(engine, DISPLAY, "queue_display")
    with write_session(engine) as session:
        cfg.set_scope_config(session, "device", DISPLAY, "queue_display", {"brightness": 40}, "admin", NOW)
        cfg.set_scope_config(session, "device", DISPLAY, "queue_display", {"brightness": 50}, "admin", NOW)
    report(engine, DISPLAY, 2, in_force=2)
    assert (state(engine, DISPLAY).applied_version, cfg.status_of(state(engine, DISPLAY))) == (2, "applied")
    # A replayed old version is refused; the desired one still runs: applied, not pending, not re-pushed.
    report(engine, DISPLAY, 1, "rejected", "version 1 is older than version 2 in force", in_force=2)
    ours = state(engine, DISPLAY)
    assert (ours.reported_version, ours.applied_version, cfg.status_of(ours)) == (1, 2, "applied")

    with write_session(engine) as session:
        cfg.set_scope_config(session, "device", DISPLAY, "queue_display", {"brightness": 60}, "admin", NOW)
    report(engine, DISPLAY, 3, "rejected", "signature does not verify", in_force=2)
    ours = state(engine, DISPLAY)
    assert (ours.reported_version, ours.applied_version, cfg.status_of(ours)) == (3, 2, "rejected")
    view = cfg.device_config_view(Session(engine), DISPLAY)
    assert (view["status"], view["reported_version"], view["applied_version"]) == ("rejected", 3, 2)

    # Older firmware: no in_force. An applied version is the one in force; a rejection keeps the last known.
    report(engine, OTHER_DISPLAY, 5)
    assert state(engine, OTHER_DISPLAY).applied_version == 5
    report(engine, OTHER_DISPLAY, 6, "rejected", "signature does not verify")
    assert (state(engine, OTHER_DISPLAY).reported_version, state(engine, OTHER_DISPLAY).applied_version) == (6, 5)
    report(engine, PAD, 1, "rejected", "no device key provisioned")
    assert state(engine, PAD).applied_version is None  # never heard what runs


@pytest.mark.sqlite_only(reason="the old table is written with sqlite3 as a released SQLite file had it; the "
                                 "upgrade on PostgreSQL is test_fleet_cases' database from before assignee accounts")
def test_a_database_from_before_in_force_gains_the_column(tmp_path) -> None:
    import sqlite3

    from fleet.db import create_db_engine, init_db

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # device_config_state as it first shipped, with one applied device
        old.execute("CREATE TABLE device_config_state (device_id VARCHAR(16) PRIMARY KEY, center_code VARCHAR(12) "
                    "NOT NULL, role VARCHAR(16), desired_version INTEGER NOT NULL, desired_config VARCHAR NOT NULL, "
                    "desired_at DATETIME, desired_by VARCHAR(64), pushed_version INTEGER NOT NULL, pushed_at DATETIME, "
                    "push_count INTEGER NOT NULL, reported_version INTEGER, reported_status VARCHAR(16), "
                    "reported_error VARCHAR, reported_at DATETIME)")
        old.execute("INSERT INTO device_config_state VALUES (?, ?, 'queue_display', 2, '{}', NULL, NULL, 2, NULL, 1, "
                    "2, 'applied', NULL, NULL)", (DISPLAY, CENTER))
    upgraded = create_db_engine(f"sqlite:///{path}")
    init_db(upgraded)
    try:
        assert state(upgraded, DISPLAY).applied_version is None
        assert cfg.status_of(state(upgraded, DISPLAY)) == "applied"  # judged as before from the last report
        report(upgraded, DISPLAY, 3, "rejected", "signature does not verify", in_force=2)
        assert state(upgraded, DISPLAY).applied_version == 2
    finally:
        upgraded.dispose()


def test_the_pages_and_api_show_the_rejected_and_the_in_force_version(fleet_settings) -> None:
    app = create_app(fleet_settings, clock=lambda: NOW)
    engine = app.state.engine
    birth(engine, DISPLAY, "queue_display")
    with write_session(engine) as session:
        for level in (40, 50, 60, 70):
            cfg.set_scope_config(session, "device", DISPLAY, "queue_display", {"brightness": level}, "admin", NOW)
    report(engine, DISPLAY, 3, in_force=3)
    report(engine, DISPLAY, 4, "rejected", "signature does not verify", in_force=3)
    admin = {"Authorization": f"Bearer {add_user(engine)}"}
    with TestClient(app) as client:
        [row] = client.get("/api/config/devices", headers=admin).json()
        assert (row["status"], row["reported_version"], row["applied_version"]) == ("rejected", 4, 3)
        assert client.get(f"/api/devices/{DISPLAY}/config", headers=admin).json()["applied_version"] == 3
        page = client.get("/config", headers=admin).text
        cell = re.search(r'<tr data-device="%s".*?<td class="status">(.*?)</td>' % DISPLAY, page, re.S).group(1)
        assert "被拒绝" in cell and "v4" in cell and "signature does not verify" in cell and "v3 生效中" in cell
        assert "Rejected" in client.get("/config?lang=en", headers=admin).text
        assert "v3 in force" in client.get("/config?lang=en", headers=admin).text
        device_page = client.get(f"/devices/{DISPLAY}?lang=zh", headers=admin).text
        assert 'data-in-force="3"' in device_page and "v3 生效中" in device_page


def test_the_fleet_and_the_device_refuse_the_same_command_arguments(engine, fleet_settings) -> None:
    from firmware.lib.commands import CommandGate
    from firmware.lib.recent import RecentIds
    from fleet.devconfig import commands as cmd
    from fleet.models import Device as DeviceRow
    from tests.firmware.cases import command_arg_samples

    device_gate = CommandGate(DISPLAY, KEY, RecentIds(None, log=None), BOOT)

    def device_verdict(n: int, name: str, args: dict | None) -> tuple[dict | None, str | None]:
        payload = {"v": 1, "command_id": f"c-{n}", "command": name, **({"args": args} if args is not None else {}),
                   "boot": BOOT, "issued_at": int(NOW.timestamp()), "valid_s": messages.COMMAND_VALID_S}
        ran, answer = device_gate.check(signing.sign(KEY, DISPLAY, payload), 0)
        return (ran.args, None) if ran else (None, answer["error"])

    for n, (name, args, checked) in enumerate(command_arg_samples.GOOD):
        assert cmd.check_args(name, args) == checked == device_verdict(n, name, args)[0]
    birth(engine, DISPLAY, "queue_display")
    for n, (name, args, reason) in enumerate(command_arg_samples.BAD, 100):
        with pytest.raises(cmd.CommandError) as caught:
            cmd.check_args(name, args)
        _ran, device_error = device_verdict(n, name, args)
        assert reason in str(caught.value) and device_error and reason in device_error, (name, args)
        if name in messages.COMMANDS:  # past the schema, both say it in the same words
            assert str(caught.value) == device_error
        with write_session(engine) as session, pytest.raises(cmd.CommandError):
            cmd.send_command(session, KeyBox.from_settings(fleet_settings), Recorder(),
                             session.get(DeviceRow, DISPLAY), name, args, "admin", NOW)
    with Session(engine) as session:
        assert cmd.recent_commands(session, DISPLAY) == []  # nothing refused was recorded or sent


def test_a_new_version_is_above_anything_the_device_reported(engine, fleet_settings) -> None:
    birth(engine, DISPLAY, "queue_display")
    report(engine, DISPLAY, 41)  # e.g. the fleet's database was restored from an old backup
    with write_session(engine) as session:
        cfg.set_scope_config(session, "center", CENTER, "queue_display", {"brightness": 10}, "admin", NOW)
    assert state(engine, DISPLAY).desired_version == 42
    with write_session(engine) as session:  # a device seen later gets the inherited configuration
        birth(engine, "dev-a4cf120000aa", "queue_display")
    with write_session(engine) as session:
        assert cfg.recompute_all(session, NOW) == ["dev-a4cf120000aa"]


def test_keys_are_encrypted_at_rest_and_never_shown(fleet_settings) -> None:
    app = create_app(fleet_settings, clock=lambda: NOW)
    engine = app.state.engine
    birth(engine, DISPLAY, "queue_display")
    admin = {"Authorization": f"Bearer {add_user(engine)}"}
    other_town = {"Authorization": f"Bearer {add_user(engine, 'town-b', 'town_operator', OTHER_CENTER[:9])}"}
    with TestClient(app) as client:
        assert client.put(f"/api/devices/{DISPLAY}/key", json={"key_hex": KEY.hex()}, headers=other_town
                          ).status_code == 404
        assert client.put(f"/api/devices/{DISPLAY}/key", json={"key_hex": "ab" * 8 + "zz"}, headers=admin
                          ).status_code == 422
        answer = client.put(f"/api/devices/{DISPLAY}/key", json={"key_hex": KEY.hex()}, headers=admin)
        assert answer.status_code == 200 and KEY.hex() not in answer.text
        assert client.get(f"/api/devices/{DISPLAY}/key", headers=admin).json()["has_key"] is True
        page = client.get(f"/devices/{DISPLAY}", headers=admin).text
        assert answer.json()["fingerprint"] in page and KEY.hex() not in page
    with Session(engine) as session:
        stored = session.get(DeviceKey, DISPLAY)
        audit_text = " ".join(e.detail or "" for e in session.exec(select(AuditEntry)))
    assert KEY.hex() not in stored.encrypted and KEY.hex() not in audit_text
    assert KeyBox.from_settings(fleet_settings).open(DISPLAY, stored.encrypted) == KEY
    with pytest.raises(DeviceKeyError, match="does not decrypt"):  # bound to its device
        KeyBox.from_settings(fleet_settings).open(PAD, stored.encrypted)
    with pytest.raises(DeviceKeyError, match="does not decrypt"):  # and to the server secret
        KeyBox(b"another secret").open(DISPLAY, stored.encrypted)


class Device:
    """Subscribes on the county broker as the edge's relay would, to see what the fleet publishes."""

    def __init__(self, port: int, *filters: str) -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dev-" + uuid.uuid4().hex[:6],
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, json.loads(m.payload), m.retain))
        self.client.connect("127.0.0.1", port)
        for topic in filters:
            self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.broker
def test_desired_config_is_published_retained_and_signed_and_the_report_is_ingested(
        county_broker, fleet_settings, edge_factory) -> None:
    settings = fleet_settings.model_copy(update={"ingest_enabled": True, "broker_port": county_broker.port})
    app = create_app(settings, clock=lambda: NOW)
    engine = app.state.engine
    birth(engine, DISPLAY, "queue_display")
    admin = {"Authorization": f"Bearer {add_user(engine)}"}
    with TestClient(app) as client:
        wait_for(lambda: app.state.ingest.connected, "the ingest to subscribe")
        client.put(f"/api/devices/{DISPLAY}/key", json={"key_hex": KEY.hex()}, headers=admin)
        change = client.put(f"/api/config/town/{CENTER[:9]}/queue_display",
                            json={"config": {"brightness": 60, "idle_text": "欢迎光临"}, "note": "试运行"},
                            headers=admin).json()
        assert change["pushed"] == [DISPLAY] and change["revision"]["created_by"] == "admin"
        # Subscribing afterwards still gets it: it is retained. The answer may come before the publication reaches
        # the broker (a first subscriber may then see it live, not retained): one subscriber waits for it to be
        # there, and a second one, subscribing after, must be handed the retained copy.
        desired = topics.build(topics.DEVICE_CONFIG_DESIRED, center=CENTER, device=DISPLAY)
        witness = Device(county_broker.port, desired)
        try:
            wait_for(lambda: witness.messages, "the desired config at the broker")
        finally:
            witness.close()
        device = Device(county_broker.port, desired)
        try:
            topic, payload, retained = wait_for(lambda: device.messages and device.messages[0], "the desired config")
        finally:
            device.close()
        assert retained and signing.verify(KEY, DISPLAY, payload)
        assert payload["config"] == {"brightness": 60, "idle_text": "欢迎光临"} and payload["version"] == 1
        assert client.get(f"/api/devices/{DISPLAY}/config", headers=admin).json()["status"] == "pending"

        edge = edge_factory(county_broker.port)
        edge.send(topics.DEVICE_CONFIG_REPORTED, {"version": 1, "status": "applied"}, center=CENTER, device=DISPLAY)
        wait_for(lambda: client.get(f"/api/devices/{DISPLAY}/config", headers=admin).json()["status"] == "applied",
                 "the reported version to be ingested")
        statuses = client.get("/api/config/devices", headers=admin).json()
        assert [(d["device_id"], d["status"]) for d in statuses] == [(DISPLAY, "applied")]
        rollback = client.post(f"/api/config/town/{CENTER[:9]}/queue_display/rollback", json={"revision": 1},
                               headers=admin)
        assert rollback.json()["revision"]["revision"] == 2 and rollback.json()["devices_changed"] == []
        history = client.get(f"/api/config/town/{CENTER[:9]}/queue_display", headers=admin).json()
        assert [(r["revision"], r["rollback_of"]) for r in history] == [(2, 1), (1, None)]
    with Session(engine) as session:
        actions = [e.action for e in session.exec(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["device.key", "config.set", "config.rollback"]


def test_a_command_names_the_boot_it_is_for_and_is_not_sent_while_that_is_unknown(engine, fleet_settings) -> None:
    """A device refuses a command for another boot (docs/protocol.md, device_command): the fleet signs the boot of
    the device's latest birth, and sends nothing to a device whose births carry none."""
    from fleet.devconfig import commands as cmd
    from fleet.devconfig.models import NOT_SENT, SENT

    box, sent = KeyBox.from_settings(fleet_settings), Recorder()
    birth(engine, DISPLAY, "queue_display", boot=None)
    birth(engine, PAD, "rating_pad")
    with write_session(engine) as session:
        for device in (DISPLAY, PAD):
            set_key(session, box, device, KEY, "admin", NOW)
        unknown = cmd.send_command(session, box, sent, session.get(DeviceRow, DISPLAY), "reboot", {}, "admin", NOW)
        known = cmd.send_command(session, box, sent, session.get(DeviceRow, PAD), "reboot", {}, "admin", NOW)
    assert (unknown.status, unknown.error) == (NOT_SENT, "the device's boot is not known: no birth with a boot id "
                                                         "seen yet")
    assert known.status == SENT
    [(_topic, payload, _qos, _retain)] = sent.sent
    assert signing.verify(KEY, PAD, payload)
    assert (payload["boot"], payload["issued_at"], payload["valid_s"]) == (BOOT, int(NOW.timestamp()),
                                                                           messages.COMMAND_VALID_S)


@pytest.mark.broker
def test_commands_are_signed_acknowledged_or_timed_out(county_broker, fleet_settings, edge_factory) -> None:
    settings = fleet_settings.model_copy(update={"ingest_enabled": True, "broker_port": county_broker.port})
    app = create_app(settings, clock=lambda: NOW)
    engine = app.state.engine
    birth(engine, DISPLAY, "queue_display")
    admin = {"Authorization": f"Bearer {add_user(engine)}"}
    device = Device(county_broker.port, topics.build(topics.DEVICE_COMMAND, center=CENTER, device=DISPLAY))
    try:
        with TestClient(app) as client:
            wait_for(lambda: app.state.ingest.connected, "the ingest to subscribe")
            no_key = client.post(f"/api/devices/{DISPLAY}/commands", json={"command": "identify"}, headers=admin)
            assert no_key.json()["status"] == "not_sent" and no_key.json()["error"] == "no device key"
            client.put(f"/api/devices/{DISPLAY}/key", json={"key_hex": KEY.hex()}, headers=admin)
            assert client.post(f"/api/devices/{DISPLAY}/commands", json={"command": "brightness", "args": {}},
                               headers=admin).status_code == 422
            first = client.post(f"/api/devices/{DISPLAY}/commands", json={"command": "identify",
                                                                          "args": {"seconds": 5}}, headers=admin)
            second = client.post(f"/api/devices/{DISPLAY}/commands", json={"command": "brightness",
                                                                           "args": {"level": 80}}, headers=admin)
            assert first.json()["status"] == second.json()["status"] == "sent"
            wait_for(lambda: len(device.messages) == 2, "both commands on the broker")
            for _topic, payload, retained in device.messages:
                assert not retained and signing.verify(KEY, DISPLAY, payload)
                # For the boot of the device's birth, issued now, valid as long as the fleet waits for its ack.
                assert (payload["boot"], payload["issued_at"], payload["valid_s"]) == (
                    BOOT, int(NOW.timestamp()), settings.command_timeout_s)
            assert [p["command"] for _t, p, _r in device.messages] == ["identify", "brightness"]

            edge = edge_factory(county_broker.port)
            edge.send(topics.DEVICE_COMMAND_ACK, {"command_id": second.json()["command_id"], "status": "done"},
                      center=CENTER, device=DISPLAY)

            def outcome() -> dict:
                return {c["command_id"]: c["status"] for c in
                        client.get(f"/api/devices/{DISPLAY}/commands", headers=admin).json()}

            wait_for(lambda: outcome()[second.json()["command_id"]] == "done", "the acknowledgement")
            config_job(engine, settings, app.state.key_box, app.state.ingest, NOW + timedelta(seconds=61))
            assert outcome() == {first.json()["command_id"]: "timed_out", second.json()["command_id"]: "done",
                                 no_key.json()["command_id"]: "not_sent"}
    finally:
        device.close()


def test_the_cli_generates_a_key_shown_once_and_sets_one(fleet_settings, tmp_path, capsys) -> None:
    from fleet.devconfig.cli import run

    assert run(["key", "generate", DISPLAY], fleet_settings) == 0
    generated = capsys.readouterr().out.strip()
    assert len(bytes.fromhex(generated)) == 32
    assert run(["key", "show", DISPLAY], fleet_settings) == 0
    shown = capsys.readouterr().out
    assert generated not in shown and "key " in shown
    (tmp_path / "k.hex").write_text("00" * 8)
    assert run(["key", "set", DISPLAY, "--key-file", str(tmp_path / "k.hex")], fleet_settings) == 2  # too short
    (tmp_path / "k.hex").write_text(KEY.hex())
    assert run(["key", "set", DISPLAY, "--key-file", str(tmp_path / "k.hex")], fleet_settings) == 0
    engine = __import__("fleet.db", fromlist=["create_db_engine"]).create_db_engine(fleet_settings.database_url)
    with Session(engine) as session:
        assert KeyBox.from_settings(fleet_settings).open(DISPLAY, session.get(DeviceKey, DISPLAY).encrypted) == KEY
    engine.dispose()


def test_a_change_for_more_devices_than_an_in_list_holds_pushes_exactly_those(engine, fleet_settings) -> None:
    """Hundreds of devices under one town: the push is not one huge IN list, and still only theirs."""
    birth(engine, DISPLAY, "queue_display")
    birth(engine, OTHER_DISPLAY, "queue_display", OTHER_CENTER)
    more = [device_id_from_mac((0x0200AA000000 + n).to_bytes(6, "big")) for n in range(LONG_IN_LIST + 100)]
    ours = [DISPLAY, *more]
    box = KeyBox.from_settings(fleet_settings)
    with write_session(engine) as session:
        for n, device_id in enumerate(more):
            session.add(DeviceRow(device_id=device_id, center_code=CENTER, role="queue_display", window=n % 20 + 1,
                                  board="b", fw="1", online=True, session=1, last_seen=NOW, updated=NOW))
        for device_id in [*ours, OTHER_DISPLAY]:
            set_key(session, box, device_id, KEY, "tester", NOW)
    with write_session(engine) as session:  # the other town's display has a configuration waiting too
        cfg.set_scope_config(session, "county", CENTER[:6], "queue_display", {"brightness": 50}, "admin", NOW)
    with write_session(engine) as session:
        _, changed = cfg.set_scope_config(session, "town", CENTER[:9], "queue_display", {"brightness": 70}, "t", NOW)
        recorder = Recorder()
        result = cfg.push_pending(session, box, recorder, NOW, 300, changed)
    assert sorted(changed) == sorted(ours) and len(changed) > LONG_IN_LIST
    assert sorted(result.pushed) == sorted(ours) and result.no_key == [] and result.failed == []
    assert {payload["config"]["brightness"] for _, payload, _, _ in recorder.sent} == {70}
    assert state(engine, OTHER_DISPLAY).pushed_version == 0  # not pushed: this change is not its


def test_acks_of_provisioning_self_tests_are_not_warned_about(engine, caplog) -> None:
    birth(engine, PAD, "rating_pad")
    topic = topics.build(topics.DEVICE_COMMAND_ACK, center=CENTER, device=PAD)
    for command_id in (messages.PROVISIONING_COMMAND_PREFIX + "0a1b2c", "c-445202101001-0042"):
        handle_message(engine, topic, json.dumps({"v": 1, "command_id": command_id, "status": "done"}).encode(), NOW)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [f"ack for unknown command c-445202101001-0042 from {PAD}"]
