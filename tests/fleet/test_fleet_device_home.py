"""A device belongs to the center it is registered in: a message under any other center is dropped and alerted.

The county broker lets each edge write `sc/<its center>/#`, and a town operator can get a message for any
device id in under their own center (a credential pack slot of their center, client id X). Before, such a
message moved X's record to their center (even a stale presence did), where they could then configure,
re-key and command it. Now the center a device is registered in (or, never registered, first seen in) is
the only truth; only a registration moves it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fleet_testkit import CENTER, DISPLAY, OTHER_CENTER, PAD
from sqlmodel import Session, select

from fleet.alerts.evaluate import run_alert_sweep
from fleet.alerts.models import Alert
from fleet.auth.principal import CLI_USER
from fleet.db import write_session
from fleet.devconfig.keys import KeyBox
from fleet.devconfig.models import DeviceConfigState
from fleet.ingest import Ingest, handle_batch, handle_message
from fleet.models import Device
from fleet.registration import service
from protocol import topics

SUNDAY_10 = datetime(2026, 1, 11, 2, 0, tzinfo=UTC)  # a closed center: a security alert opens all the same
BOX = KeyBox(b"k" * 32)


def raw(payload: dict) -> bytes:
    return json.dumps({"v": 1, **payload}).encode()


def birth_of(session: int, role: str = "rating_pad", window: int = 3) -> bytes:
    return raw({"state": "online", "session": session, "role": role, "board": "esp32", "fw": "1", "contract": 1,
                "window": window})


def will_of(session: int, role: str = "rating_pad") -> bytes:
    return raw({"state": "offline", "session": session, "role": role})


def heartbeat_of(session: int) -> bytes:
    return raw({"session": session, "uptime_s": 5})


def send(engine, name: str, payload: bytes, now: datetime, center: str, device: str) -> str:
    return handle_message(engine, topics.build(name, center=center, device=device), payload, now)


def register(engine, device: str, center: str, now: datetime, window: int = 3) -> None:
    mac = ":".join(device[4:][i:i + 2] for i in range(0, 12, 2))
    facts = service.DeviceFacts(device_id=device, center=center, window=window, role="rating_pad", board="esp32",
                                mac=mac, image_sha256="ab" * 32, provisioned_by="李工")
    with write_session(engine) as session:
        service.register_device(session, BOX, CLI_USER, facts, now)


def device(engine, device_id: str) -> Device:
    with Session(engine) as session:
        row = session.get(Device, device_id)
        assert row is not None
        return row


def alerts(engine, rule: str = "device_misplaced") -> list[Alert]:
    with Session(engine) as session:
        return list(session.exec(select(Alert).where(Alert.rule == rule).order_by(Alert.id)))


def sweep(engine, settings, now: datetime):
    with write_session(engine) as session:
        return run_alert_sweep(session, now, settings)


def test_messages_under_another_center_do_not_move_a_registered_device(engine) -> None:
    now = SUNDAY_10
    register(engine, PAD, CENTER, now)
    assert send(engine, topics.DEVICE_PRESENCE, birth_of(2), now, CENTER, PAD) == "applied"

    # Town B's operator, with only a pack slot of their own center: every kind of device message, a stale
    # presence included, for the pad of center A.
    forged = [(topics.DEVICE_PRESENCE, will_of(1)),  # stale: lower session, ignored as presence, moved it before
              (topics.DEVICE_PRESENCE, birth_of(9, role="queue_display", window=1)),
              (topics.DEVICE_HEALTH, heartbeat_of(9)),
              (topics.DEVICE_CONFIG_REPORTED, raw({"version": 7, "status": "applied", "in_force": 7})),
              (topics.DEVICE_COMMAND_ACK, raw({"command_id": "c-1", "status": "done"}))]
    for name, payload in forged:
        assert send(engine, name, payload, now, OTHER_CENTER, PAD) == "misplaced", name
        pad = device(engine, PAD)
        assert pad.center_code == CENTER, name
        assert (pad.session, pad.online, pad.role, pad.window) == (2, True, "rating_pad", 3), name
    with Session(engine) as session:
        assert session.get(DeviceConfigState, PAD) is None  # no configuration state in center B either

    # The real pad goes on as before.
    assert send(engine, topics.DEVICE_HEALTH, heartbeat_of(2), now, CENTER, PAD) == "applied"
    assert device(engine, PAD).center_code == CENTER


def test_a_device_never_registered_stays_in_the_center_it_was_first_seen_in(engine) -> None:
    now = SUNDAY_10
    assert send(engine, topics.DEVICE_PRESENCE, birth_of(1, "queue_display", 2), now, CENTER, DISPLAY) == "applied"
    assert send(engine, topics.DEVICE_PRESENCE, birth_of(5, "queue_display", 2), now, OTHER_CENTER,
                DISPLAY) == "misplaced"
    assert send(engine, topics.DEVICE_HEALTH, heartbeat_of(5), now, OTHER_CENTER, DISPLAY) == "misplaced"
    display = device(engine, DISPLAY)
    assert (display.center_code, display.session) == (CENTER, 1)


def test_a_device_registered_elsewhere_is_not_created_by_a_message_of_another_center(engine) -> None:
    now = SUNDAY_10
    register(engine, PAD, CENTER, now)  # registered, never seen yet: no device row
    assert send(engine, topics.DEVICE_PRESENCE, birth_of(1), now, OTHER_CENTER, PAD) == "misplaced"
    with Session(engine) as session:
        assert session.get(Device, PAD) is None
    assert send(engine, topics.DEVICE_PRESENCE, birth_of(1), now, CENTER, PAD) == "applied"
    assert device(engine, PAD).center_code == CENTER


def test_only_a_registration_moves_a_device(engine) -> None:
    now = SUNDAY_10
    register(engine, PAD, CENTER, now)
    assert send(engine, topics.DEVICE_PRESENCE, birth_of(1), now, CENTER, PAD) == "applied"
    register(engine, PAD, OTHER_CENTER, now + timedelta(minutes=1), window=4)  # the technician moved it
    assert device(engine, PAD).center_code == OTHER_CENTER
    assert send(engine, topics.DEVICE_HEALTH, heartbeat_of(1), now, CENTER, PAD) == "misplaced"
    assert send(engine, topics.DEVICE_PRESENCE, birth_of(2, window=4), now, OTHER_CENTER, PAD) == "applied"
    assert device(engine, PAD).center_code == OTHER_CENTER


def test_a_misplaced_device_is_alerted_at_any_hour_to_its_own_center_and_counted(engine, fleet_settings) -> None:
    now = SUNDAY_10
    register(engine, PAD, CENTER, now)
    assert send(engine, topics.DEVICE_PRESENCE, birth_of(1), now, CENTER, PAD) == "applied"
    presence = topics.build(topics.DEVICE_PRESENCE, center=OTHER_CENTER, device=PAD)
    health = topics.build(topics.DEVICE_HEALTH, center=OTHER_CENTER, device=PAD)
    ingest = Ingest(fleet_settings, engine, clock=lambda: now)
    ingest.store_batch([(presence, birth_of(7)), (health, heartbeat_of(7)), (health, heartbeat_of(7))])
    assert ingest.message_counts.snapshot() == {(topics.DEVICE_PRESENCE, "misplaced"): 1,
                                                (topics.DEVICE_HEALTH, "misplaced"): 2}

    sweep(engine, fleet_settings, now + timedelta(minutes=1))
    [alert] = alerts(engine)
    assert (alert.state, alert.center_code, alert.device_id, alert.severity) == ("open", CENTER, PAD, "critical")
    assert alert.message == "3号窗口评价器出现在其他中心"
    assert OTHER_CENTER in alert.reason and "3 条" in alert.reason

    # The same again later: the same alert, not a second one; a day without any: resolved.
    assert handle_batch(engine, [(health, heartbeat_of(8))], now + timedelta(hours=2)) == ["misplaced"]
    sweep(engine, fleet_settings, now + timedelta(hours=2))
    assert [a.state for a in alerts(engine)] == ["open"]
    sweep(engine, fleet_settings, now + timedelta(hours=27))
    assert [a.state for a in alerts(engine)] == ["resolved"]
