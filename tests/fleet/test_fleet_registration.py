"""Device registration: per-device broker credentials, credential packs, and the center broker's files,
checked against a real Mosquitto 2 that must accept the hashes and enforce the ACL."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from fleet_testkit import ADMIN, CENTER, DISPLAY, OTHER_CENTER, PAD, PASSWORD, add_user, wait_for
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import Session, select

from fleet.app import create_app
from fleet.audit import AuditEntry
from fleet.devconfig.keys import KeyBox
from fleet.devconfig.models import DeviceKey
from fleet.ingest import handle_message
from fleet.models import Device
from fleet.registration import cli as registration_cli
from fleet.registration import delivery, service
from fleet.registration.broker_files import (
    CENTER_BROKER_SETTINGS,
    MAX_CHECK_ACCOUNTS,
    broker_files,
    device_topic_names,
    window_patterns,
)
from fleet.registration.models import DeviceRegistration, PackSlot
from fleet.registration.mosquitto_hash import verify_password
from fleet.registration.service import Issued, KeepProof, SlotSecret
from protocol import messages, topics
from protocol.identity import device_id_from_mac

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
IMAGE = "ab" * 32


def body(device: str = PAD, center: str = CENTER, role: str = "rating_pad", window: int = 3, **extra) -> dict:
    return {"device_id": device, "center": center, "window": window, "role": role, "board": "esp32-devkitc",
            "mac": device[4:], "image_sha256": IMAGE, "provisioned_by": "李工", **extra}


def presence(role: str) -> bytes:
    """A device's birth, as the firmware sends it."""
    return messages.encode("presence", {"state": "online", "session": 1, "role": role, "window": 3,
                                        "board": "esp32-devkitc", "fw": "1.0.0", "contract": 1})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(fleet_settings):
    return create_app(fleet_settings, clock=lambda: NOW)


@pytest.fixture
def admin(app) -> dict[str, str]:
    return bearer(add_user(app.state.engine))


def test_registration_answers_fresh_credentials_once_and_keeps_only_a_hash_and_a_sealed_key(app, admin) -> None:
    with TestClient(app) as client:
        first = client.post("/api/devices/register", json=body(), headers=admin)
        assert first.status_code == 200, first.text
        issued = first.json()
        assert issued["broker_username"] == PAD and issued["registrations"] == 1
        assert len(bytes.fromhex(issued["device_key"])) == 32 and len(issued["broker_password"]) >= 32
        second = client.post("/api/devices/register", json=body(window=4), headers=admin).json()
        shown = client.get(f"/api/devices/{PAD}/registration", headers=admin).json()
    assert second["registrations"] == 2  # registering again rotates both secrets
    assert second["broker_password"] != issued["broker_password"] and second["device_key"] != issued["device_key"]
    assert shown["window"] == 4 and shown["provisioned_by"] == "李工" and shown["image_sha256"] == IMAGE
    assert shown["activated_at"] is None and "broker_password" not in shown and "device_key" not in shown
    with Session(app.state.engine) as session:
        row = session.get(DeviceRegistration, PAD)
        assert re.fullmatch(r"\$7\$\d+\$[A-Za-z0-9+/=]{16}\$[A-Za-z0-9+/=]{88}", row.broker_password_hash)
        assert verify_password(second["broker_password"], row.broker_password_hash)
        assert not verify_password(issued["broker_password"], row.broker_password_hash)
        sealed = session.get(DeviceKey, PAD).encrypted
        assert second["device_key"] not in sealed
        assert KeyBox.from_settings(app.state.settings).open(PAD, sealed).hex() == second["device_key"]
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "device.register")).all()
        assert len(entries) == 2 and entries[0].center_code == CENTER
        assert all(issued["broker_password"] not in (e.detail or "") for e in entries)
        assert session.get(Device, PAD) is None  # not a device of the overview until it is seen


def proof(issued: dict, **changed) -> dict:
    """The `keep` of a registration body: the credentials a board holds, as the fleet issued them."""
    held = {"broker_username": issued["broker_username"], "broker_password": issued["broker_password"],
            "device_key": issued["device_key"]}
    return {**held, **changed}


def audit_log(app) -> list[AuditEntry]:
    with Session(app.state.engine) as session:
        return list(session.exec(select(AuditEntry).order_by(AuditEntry.id)).all())


def test_registering_again_with_the_right_proof_keeps_the_credentials_and_records_the_reprovisioning(
        app, admin) -> None:
    with TestClient(app) as client:
        first = client.post("/api/devices/register", json=body(), headers=admin).json()
        with Session(app.state.engine) as session:
            hash_before = session.get(DeviceRegistration, PAD).broker_password_hash
        again = client.post("/api/devices/register", headers=admin,
                            json=body(image_sha256="cd" * 32, provisioned_by="王工", keep=proof(first)))
        assert again.status_code == 200, again.text
        kept = again.json()
        shown = client.get(f"/api/devices/{PAD}/registration", headers=admin).json()
    assert kept["kept"] is True and kept["rotated_because"] is None and kept["registrations"] == 2
    assert (kept["broker_username"], kept["broker_password"], kept["device_key"]) == \
        (PAD, first["broker_password"], first["device_key"])
    assert shown["image_sha256"] == "cd" * 32 and shown["provisioned_by"] == "王工" and shown["registrations"] == 2
    with Session(app.state.engine) as session:
        assert session.get(DeviceRegistration, PAD).broker_password_hash == hash_before  # the broker files stay
        sealed = session.get(DeviceKey, PAD).encrypted
        assert KeyBox.from_settings(app.state.settings).open(PAD, sealed).hex() == first["device_key"]
    entries = audit_log(app)
    assert [e.action for e in entries if e.action.startswith("device.")] == ["device.register", "device.reprovision"]
    for entry in entries:  # the proof is never written down
        assert first["broker_password"] not in (entry.detail or "") and first["device_key"] not in (entry.detail or "")


@pytest.mark.parametrize(("change", "because"), [
    ({"keep_password": "x" * 43}, "the board's broker password does not match the registered one"),
    ({"keep_key": "00" * 32}, "the board's device key does not match the registered one"),
    ({"keep_key": "not hex"}, "the board's device key does not match the registered one"),
    ({"keep_user": DISPLAY}, "the board's broker user name is not the registered one"),
    ({"window": 4}, "window changed from 3 to 4"),
    ({"role": "queue_display"}, "role changed from rating_pad to queue_display"),
])
def test_a_wrong_proof_or_a_moved_device_rotates_and_says_why(app, admin, change, because) -> None:
    with TestClient(app) as client:
        first = client.post("/api/devices/register", json=body(), headers=admin).json()
        keep = proof(first, broker_password=change.pop("keep_password", first["broker_password"]),
                     device_key=change.pop("keep_key", first["device_key"]),
                     broker_username=change.pop("keep_user", first["broker_username"]))
        answer = client.post("/api/devices/register", json=body(keep=keep, **change), headers=admin)
        assert answer.status_code == 200, answer.text
        rotated = answer.json()
    assert rotated["kept"] is False and rotated["rotated_because"] == because
    assert rotated["broker_password"] not in (first["broker_password"], keep["broker_password"])
    assert rotated["device_key"] not in (first["device_key"], keep["device_key"])
    with Session(app.state.engine) as session:
        row = session.get(DeviceRegistration, PAD)
        assert verify_password(rotated["broker_password"], row.broker_password_hash)
        assert not verify_password(first["broker_password"], row.broker_password_hash)
    register = [e for e in audit_log(app) if e.action == "device.register"]
    assert len(register) == 2 and because in register[1].detail
    for entry in audit_log(app):
        for secret in (first["broker_password"], first["device_key"], keep["broker_password"], keep["device_key"],
                       rotated["broker_password"], rotated["device_key"]):
            assert secret not in (entry.detail or "")


def test_a_proof_for_an_unregistered_device_or_without_one_rotates(app, admin) -> None:
    keep = {"broker_username": PAD, "broker_password": "y" * 43, "device_key": "11" * 32}
    with TestClient(app) as client:
        unknown = client.post("/api/devices/register", json=body(keep=keep), headers=admin).json()
        plain = client.post("/api/devices/register", json=body(), headers=admin).json()
    assert (unknown["kept"], unknown["rotated_because"]) == (False, "not registered")
    assert unknown["broker_password"] != keep["broker_password"] and unknown["device_key"] != keep["device_key"]
    assert (plain["kept"], plain["rotated_because"]) == (False, "no credentials offered to keep")
    assert plain["broker_password"] != unknown["broker_password"]


def test_a_device_bound_to_a_pack_slot_keeps_the_slot_credentials(app, admin) -> None:
    with TestClient(app) as client:
        pack = client.post(f"/api/centers/{CENTER}/credential-packs", json={"count": 2}, headers=admin).json()
        synced, unsynced = pack["slots"]
        held = {"broker_username": synced["username"], "broker_password": synced["password"],
                "device_key": synced["device_key"]}
        assert client.post("/api/devices/register", json=body(pack_slot=synced["username"]),
                           headers=admin).status_code == 200
        kept = client.post("/api/devices/register", json=body(keep=held), headers=admin).json()
        # Provisioned offline from the other slot and not synced yet: the rerun online binds the slot it holds.
        not_synced = client.post("/api/devices/register", headers=admin, json=body(
            DISPLAY, role="queue_display", keep={"broker_username": unsynced["username"],
                                                 "broker_password": unsynced["password"],
                                                 "device_key": unsynced["device_key"]})).json()
        wrong = client.post("/api/devices/register", json=body(keep={**held, "broker_password": "z" * 43}),
                            headers=admin).json()
    assert kept["kept"] and (kept["broker_username"], kept["broker_password"], kept["device_key"]) == \
        (synced["username"], synced["password"], synced["device_key"])
    assert kept["pack_slot"] == synced["username"] and kept["registrations"] == 2
    assert not_synced["kept"] and not_synced["broker_username"] == unsynced["username"]
    assert not_synced["broker_password"] == unsynced["password"] and not_synced["pack_slot"] == unsynced["username"]
    with Session(app.state.engine) as session:
        assert session.get(PackSlot, unsynced["username"]).device_id == DISPLAY
        box = KeyBox.from_settings(app.state.settings)
        assert box.open(DISPLAY, session.get(DeviceKey, DISPLAY).encrypted).hex() == unsynced["device_key"]
    assert not wrong["kept"] and wrong["broker_username"] == PAD
    assert wrong["rotated_because"] == "the board's broker password does not match the registered one"
    for entry in audit_log(app):
        assert synced["password"] not in (entry.detail or "") and unsynced["password"] not in (entry.detail or "")


def test_a_slot_the_device_left_stays_revoked(app, admin) -> None:
    """Bound to a slot, then rotated: offering the slot's credentials again must not bring them back."""
    with TestClient(app) as client:
        pack = client.post(f"/api/centers/{CENTER}/credential-packs", json={"count": 1}, headers=admin).json()
        slot = pack["slots"][0]
        bound = client.post("/api/devices/register", json=body(pack_slot=slot["username"]), headers=admin)
        assert bound.status_code == 200, bound.text
        rotated = client.post("/api/devices/register", json=body(), headers=admin).json()
        old = {"broker_username": slot["username"], "broker_password": slot["password"],
               "device_key": slot["device_key"]}
        again = client.post("/api/devices/register", json=body(keep=old), headers=admin).json()
    assert rotated["broker_username"] == PAD and not rotated["kept"]
    assert not again["kept"] and again["broker_username"] == PAD and again["broker_password"] != slot["password"]


def test_the_secrets_stay_out_of_reprs() -> None:
    for held in (Issued(PAD, CENTER, PAD, "pw-secret", "key-secret", None, 1), SlotSecret("p1-1", "pw-secret",
                 "key-secret"), KeepProof(PAD, "pw-secret", "key-secret")):
        assert "secret" not in repr(held)


def test_only_writers_whose_scope_covers_the_center_may_register(app) -> None:
    engine = app.state.engine
    other_town = bearer(add_user(engine, "town-b", "town_operator", OTHER_CENTER[:9]))
    own_town = bearer(add_user(engine, "town-a", "town_operator", CENTER[:9]))
    reader = bearer(add_user(engine, "reader", "read_only"))
    with TestClient(app) as client:
        assert client.post("/api/devices/register", json=body()).status_code == 401
        assert client.post("/api/devices/register", json=body(), headers=reader).status_code == 403
        assert client.post("/api/devices/register", json=body(), headers=other_town).status_code == 404
        bad = client.post("/api/devices/register", json=body(mac="a4cf12999999", image_sha256="x"), headers=own_town)
        assert bad.status_code == 422 and "mac" in bad.text and "image_sha256" in bad.text
        assert client.post("/api/devices/register", json=body(), headers=own_town).status_code == 200


def test_a_town_operator_cannot_take_a_device_of_another_town(app, admin) -> None:
    other_town = bearer(add_user(app.state.engine, "town-b", "town_operator", OTHER_CENTER[:9]))
    with TestClient(app) as client:
        first = client.post("/api/devices/register", json=body(), headers=admin).json()
        taken = client.post("/api/devices/register", json=body(center=OTHER_CENTER), headers=other_town)
        assert taken.status_code == 404, taken.text
        # Seen online in CENTER but never registered: not theirs to register either.
        assert handle_message(app.state.engine, topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=DISPLAY),
                              presence("queue_display"), NOW) == "applied"
        seen = client.post("/api/devices/register", json=body(DISPLAY, OTHER_CENTER, "queue_display"),
                           headers=other_town)
        assert seen.status_code == 404, seen.text
        shown = client.get(f"/api/devices/{PAD}/registration", headers=admin).json()
    assert shown["center_code"] == CENTER and shown["registrations"] == 1
    with Session(app.state.engine) as session:
        assert verify_password(first["broker_password"], session.get(DeviceRegistration, PAD).broker_password_hash)
        assert session.get(DeviceRegistration, DISPLAY) is None


def test_a_browser_session_registers_only_with_its_csrf_token(app) -> None:
    add_user(app.state.engine, ADMIN, "county_admin", None, PASSWORD)
    with TestClient(app) as client:
        login_form = client.get("/login").text
        form_token = re.search(r'name="csrf_token" value="([^"]+)"', login_form).group(1)
        client.post("/login", data={"username": ADMIN, "password": PASSWORD, "csrf_token": form_token})
        assert client.post("/api/devices/register", json=body()).status_code == 403
        session_token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)
        answer = client.post("/api/devices/register", json=body(), headers={"X-CSRF-Token": session_token})
        assert answer.status_code == 200, answer.text


def test_a_registered_device_becomes_active_on_its_first_birth(app, admin) -> None:
    with TestClient(app) as client:
        assert client.post("/api/devices/register", json=body(), headers=admin).status_code == 200
        assert client.get(f"/api/devices/{PAD}/registration", headers=admin).json()["activated_at"] is None
        assert handle_message(app.state.engine, topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=PAD),
                              presence("rating_pad"), NOW) == "applied"
        shown = client.get(f"/api/devices/{PAD}/registration", headers=admin).json()
    assert shown["activated_at"] is not None


def test_a_credential_pack_is_answered_once_and_its_slots_bind_to_one_device_each(app, admin) -> None:
    with TestClient(app) as client:
        answer = client.post(f"/api/centers/{CENTER}/credential-packs", json={"count": 2}, headers=admin)
        assert answer.status_code == 200, answer.text
        pack = answer.json()
        slot = pack["slots"][0]
        assert [s["username"] for s in pack["slots"]] == [f"p{pack['pack_id']}-1", f"p{pack['pack_id']}-2"]
        bound = client.post("/api/devices/register", json=body(pack_slot=slot["username"]), headers=admin)
        assert bound.status_code == 200, bound.text
        assert bound.json()["broker_password"] is None and bound.json()["device_key"] is None
        assert bound.json()["broker_username"] == slot["username"]
        again = client.post("/api/devices/register", json=body(pack_slot=slot["username"]), headers=admin)
        assert again.status_code == 200 and again.json()["registrations"] == 1  # a repeated sync changes nothing
        taken = client.post("/api/devices/register", json=body(DISPLAY, role="queue_display",
                                                                pack_slot=slot["username"]), headers=admin)
        assert taken.status_code == 409 and PAD in taken.json()["detail"]
        unknown = client.post("/api/devices/register", json=body(DISPLAY, pack_slot="p999-1"), headers=admin)
        assert unknown.status_code == 404
        elsewhere = client.post("/api/devices/register", json=body(DISPLAY, center=OTHER_CENTER,
                                                                    pack_slot=pack["slots"][1]["username"]),
                                headers=admin)
        assert elsewhere.status_code == 404
    with Session(app.state.engine) as session:
        stored = session.get(PackSlot, slot["username"])
        assert verify_password(slot["password"], stored.password_hash) and slot["password"] not in stored.sealed_key
        key = KeyBox.from_settings(app.state.settings).open(PAD, session.get(DeviceKey, PAD).encrypted)
        assert key.hex() == slot["device_key"]  # configurations are signed with the key the device got offline


def test_the_acl_comes_from_the_topic_registry() -> None:
    written, read = device_topic_names("rating_pad")
    for spec in topics.TOPICS:
        if topics.CENTER_BROKER not in spec.brokers:
            assert spec.name not in written + read
    assert topics.RATING_SUBMITTED in written and topics.RATING_SUBMITTED not in device_topic_names("queue_display")[0]
    assert topics.WINDOW_DISPLAY in device_topic_names("queue_display")[1] and topics.WINDOW_DISPLAY not in read
    assert topics.DEVICE_COMMAND in read and topics.DEVICE_COMMAND not in written
    assert window_patterns(CENTER) == [f"pattern read {topics.subscription(name, center=CENTER)}"
                                       for name in (topics.WINDOW_DISPLAY, topics.RATING_REQUEST)]


def without_checks(acl: str) -> str:
    """The acl without its check accounts (they come last)."""
    return acl.split("# provisioning check accounts")[0]


def test_the_acl_does_not_grow_with_the_devices(app, admin) -> None:
    with TestClient(app) as client:
        client.post("/api/devices/register", json=body(), headers=admin)
        one = client.get(f"/api/centers/{CENTER}/broker-files", headers=admin).json()
        for number in range(3, 83):  # a county-level center: 40 windows, a display and a pad each
            device = device_id_from_mac("a4:cf:12:00:01:%02x" % number)
            answer = client.post("/api/devices/register", headers=admin, json=body(
                device, role=messages.DEVICE_ROLES[number % 2], window=number // 2))
            assert answer.status_code == 200, answer.text
        many = client.get(f"/api/centers/{CENTER}/broker-files", headers=admin).json()
    # Apart from the check accounts of the latest registrations (a few at most, for the provisioning laptop).
    checks = many["acl"].count(".check\n")
    assert many["devices"] == 81 and without_checks(many["acl"]) == without_checks(one["acl"])
    assert 0 < checks <= MAX_CHECK_ACCOUNTS and len(many["passwd"].splitlines()) == 81 + checks
    assert PAD not in many["acl"]  # not one of the latest registrations: no check account any more
    own = topics.subscription(topics.RATING_SUBMITTED, center=CENTER, device="dev-000000000000")
    assert f"pattern write {own.replace('dev-000000000000', '%u')}" in many["acl"]


class Client:
    """A paho client on the test broker; `received` holds (topic, payload) of its subscriptions."""

    def __init__(self, port: int, username: str, password: str, client_id: str | None = None) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.connect_result: list = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or "t-" + uuid.uuid4().hex[:8])
        self.client.username_pw_set(username, password)
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.connect_result.append(reason)
        self.client.on_message = lambda _c, _u, message: self.received.append((message.topic, message.payload))
        self.granted: dict[int, list] = {}
        self.client.on_subscribe = lambda _c, _u, mid, codes, _p: self.granted.__setitem__(mid, codes)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(lambda: self.connect_result, f"{username} to get an answer to CONNECT")

    @property
    def accepted(self) -> bool:
        return not self.connect_result[0].is_failure

    def subscribe(self, topic_filter: str) -> bool:
        """Subscribe and wait for the SUBACK; whether the broker granted it."""
        _result, mid = self.client.subscribe(topic_filter, qos=1)
        codes = wait_for(lambda: self.granted.get(mid), f"the SUBACK for {topic_filter}")
        return not codes[0].is_failure

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()




def test_a_real_mosquitto_accepts_the_hashes_and_keeps_each_device_to_its_own_topics(
        app, admin, broker_factory, tmp_path) -> None:
    offline_device = device_id_from_mac("a4:cf:12:00:00:03")
    with TestClient(app) as client:
        pad = client.post("/api/devices/register", json=body(), headers=admin).json()
        client.post("/api/devices/register", json=body(DISPLAY, role="queue_display"), headers=admin)
        edge = client.post(f"/api/centers/{CENTER}/edge-credentials", headers=admin).json()
        pack = client.post(f"/api/centers/{CENTER}/credential-packs", json={"count": 2}, headers=admin).json()
        bound, slot = pack["slots"]
        assert client.post("/api/devices/register", headers=admin, json=body(
            offline_device, role="queue_display", window=5, pack_slot=bound["username"])).status_code == 200
        files = client.get(f"/api/centers/{CENTER}/broker-files", headers=admin).json()
    assert files["devices"] == 3 and files["unbound_slots"] == 1 and files["edge"]
    assert pad["broker_password"] not in files["passwd"]
    assert PAD not in without_checks(files["acl"])  # one %u pattern for all (and a check account, for an hour)
    assert f"user {bound['username']}\n" in files["acl"]  # its user name is not its device id
    (tmp_path / "passwd").write_text(files["passwd"])
    (tmp_path / "acl").write_text(files["acl"])
    broker = broker_factory("center", password_file=tmp_path / "passwd", acl_file=tmp_path / "acl",
                            settings=CENTER_BROKER_SETTINGS)

    watcher = Client(broker.port, edge["username"], edge["password"])
    # Client ids are the user names (the broker binds them): every topic comes from the user name (%u) or
    # the user's section alone. The unbound slot's section lets it act for any device id of the center.
    device = Client(broker.port, PAD, pad["broker_password"])
    slot_device = Client(broker.port, bound["username"], bound["password"])
    offline = Client(broker.port, slot["username"], slot["password"], client_id="dev-a4cf120000aa")
    try:
        assert watcher.accepted and device.accepted and slot_device.accepted and offline.accepted
        own = topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=PAD)
        other = topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=DISPLAY)
        slot_device_own = topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=offline_device)
        slot_own = topics.build(topics.DEVICE_PRESENCE, center=CENTER, device="dev-a4cf120000aa")
        display = topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=5)
        assert watcher.subscribe(topics.subscription(topics.DEVICE_PRESENCE, center=CENTER))
        device.subscribe(topics.subscription(topics.DEVICE_PRESENCE, center=CENTER))  # it may read only its own
        assert device.subscribe(topics.subscription(topics.WINDOW_DISPLAY, center=CENTER))  # every window
        watcher.publish(display, messages.encode("window_display", messages.make(
            "window_display", window=5, state=messages.DISPLAY_SERVING, ticket="A001", text="请A001到5号窗口",
            call_seq=1)))
        device.publish(other, presence("queue_display"))  # as another device: the broker must drop it
        device.publish(topics.build(topics.DEVICE_PRESENCE, center=OTHER_CENTER, device=PAD), presence("rating_pad"))
        slot_device.publish(other, presence("queue_display"))  # the same for a device provisioned offline
        slot_device.publish(slot_device_own, presence("queue_display"))
        offline.publish(slot_own, presence("rating_pad"))  # an unbound slot acts for a device of the center
        wait_for(lambda: {slot_own, slot_device_own} <= {t for t, _ in watcher.received}, "the slots' births")
        # Routed after everything above: once it is in, anything allowed before it would be in too.
        device.publish(own, presence("rating_pad"))
        wait_for(lambda: own in [t for t, _ in watcher.received] and own in [t for t, _ in device.received],
                 "the device's own birth, at the edge and back at the device")
        assert other not in [t for t, _ in watcher.received]
        assert sorted(t for t, _ in device.received) == sorted([display, own])  # not the slots' births
    finally:
        for party in (watcher, device, slot_device, offline):
            party.close()
    wrong = Client(broker.port, PAD, pad["broker_password"] + "x")
    assert not wrong.accepted
    wrong.close()


def test_the_cli_writes_the_broker_files(app, admin, fleet_settings, tmp_path, capsys) -> None:
    with TestClient(app) as client:
        client.post("/api/devices/register", json=body(), headers=admin)
    out = tmp_path / "broker"
    assert registration_cli.run(["broker-files", "--center", CENTER, "--out", str(out)], fleet_settings) == 0
    assert (out / "passwd").read_text().startswith(f"{PAD}:$7$")
    acl = (out / "acl").read_text()
    assert f"pattern read {topics.subscription(topics.RATING_REQUEST, center=CENTER)}" in acl
    assert "%u" in acl and "%c" not in acl and PAD not in without_checks(acl)  # client ids are user names
    assert (out / "passwd").stat().st_mode & 0o077 == 0
    assert "1 device(s)" in capsys.readouterr().out
    assert registration_cli.run(["broker-files", "--center", "12", "--out", str(out)], fleet_settings) == 1


def test_a_change_whose_files_would_not_reach_the_edge_is_refused_and_changes_nothing(app, admin) -> None:
    with TestClient(app) as client:
        answers = [client.post(f"/api/centers/{CENTER}/credential-packs", json={"count": service.MAX_PACK},
                               headers=admin) for _ in range(4)]
        issued = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code != 200]
        assert issued and refused and all(a.status_code == 409 for a in refused)
        assert "nothing was changed" in refused[0].json()["detail"]
        # One full pack (20 unbound slots, each with its acl section and check account) fits; devices fill
        # what is left (a passwd line and an entry of the device list each), then no more.
        assert len(issued) == 1
        for n in range(100):
            extra = device_id_from_mac((0x0200BB000000 + n).to_bytes(6, "big"))
            device = client.post("/api/devices/register", json=body(extra, window=n + 1), headers=admin)
            if device.status_code != 200:
                break
        assert device.status_code == 409 and 0 < n < 100, device.text
    with Session(app.state.engine) as session:
        assert len(session.exec(select(PackSlot)).all()) == service.MAX_PACK * len(issued)
        delivery.check_fits(session, CENTER, NOW)  # what is committed still reaches the edge
        # No edge credentials were issued in this test: nothing to sign with (it fits, or it would be too_big).
        assert delivery.publish_center(session, None, app.state.key_box, CENTER, NOW) == delivery.NO_KEY


def test_the_unbound_slots_of_a_pack_can_be_revoked_and_leave_the_broker_files(app, admin) -> None:
    reader = bearer(add_user(app.state.engine, "reader", "read_only"))
    other_town = bearer(add_user(app.state.engine, "town-b", "town_operator", OTHER_CENTER[:9]))
    with TestClient(app) as client:
        pack = client.post(f"/api/centers/{CENTER}/credential-packs", json={"count": 3}, headers=admin).json()
        first, second, third = (slot["username"] for slot in pack["slots"])
        assert client.post("/api/devices/register", json=body(pack_slot=first), headers=admin).status_code == 200
        listed = client.get(f"/api/centers/{CENTER}/credential-packs", headers=reader).json()
        assert [(p["pack_id"], p["count"], p["bound"], p["unbound"]) for p in listed] == \
            [(pack["pack_id"], 3, 1, [second, third])]
        url = f"/api/centers/{CENTER}/credential-packs/{pack['pack_id']}/revoke"
        assert client.post(url, headers=reader).status_code == 403
        assert client.post(url, headers=other_town).status_code == 404
        assert client.post(f"/api/centers/{OTHER_CENTER}/credential-packs/{pack['pack_id']}/revoke",
                           headers=admin).status_code == 404  # not that center's pack
        revoked = client.post(url, headers=admin)
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked"] == [second, third]
        after = client.get(f"/api/centers/{CENTER}/credential-packs", headers=admin).json()
        late = client.post("/api/devices/register", json=body(DISPLAY, role="queue_display", pack_slot=second),
                           headers=admin)
    assert (after[0]["bound"], after[0]["unbound"]) == (1, [])
    assert late.status_code == 404  # a revoked slot binds no device
    with Session(app.state.engine) as session:
        files = broker_files(session, CENTER)
    assert files.unbound_slots == 0 and f"{first}:" in files.passwd
    assert f"{second}:" not in files.passwd and f"{third}:" not in files.passwd
    assert "%c" not in files.acl  # no account may pick another device id any more
    assert any(e.action == "credential_pack.revoke" for e in audit_log(app))
