"""Presence rules: plain functions on records, no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fleet_testkit import CENTER, DISPLAY, OTHER_CENTER, PAD
from sqlmodel import Session

from fleet.models import Center, Device
from fleet.presence import (
    REASON_HEARTBEAT,
    REASON_WILL,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    STATUS_UNKNOWN,
    accepts_presence,
    apply_device_presence,
    apply_edge_presence,
    apply_health,
    device_status,
    mark_silent_devices,
)

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def birth(session: int, fw: str = "1.0.0", window: int = 3) -> dict:
    return {"v": 1, "state": "online", "session": session, "role": "queue_display", "board": "esp32-s3",
            "fw": fw, "contract": 1, "window": window}


def will(session: int) -> dict:
    return {"v": 1, "state": "offline", "session": session, "role": "queue_display"}


def health(session: int, uptime_s: float = 100) -> dict:
    return {"v": 1, "session": session, "uptime_s": uptime_s, "rssi": -55}


def new_device(device_id: str = DISPLAY) -> Device:
    return Device(device_id=device_id, center_code=CENTER, updated=T0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("stored_session", "stored_online", "stored_reason", "session", "online", "accepted"),
    [
        (None, False, None, 0, True, True),  # first birth
        (None, False, None, 4, False, True),  # first news is a will
        (3, True, None, 4, True, True),  # reconnect
        (3, False, REASON_WILL, 4, True, True),  # reconnect after a will
        (3, True, None, 4, False, True),  # will of a newer connection whose birth we missed
        (3, True, None, 3, False, True),  # equal session: the will wins
        (3, True, None, 3, True, True),  # equal session: the birth refreshes
        (3, False, REASON_WILL, 3, True, False),  # the session already ended with its will
        (3, False, REASON_HEARTBEAT, 3, True, True),  # timed out, but the same connection is alive
        (3, True, None, 2, False, False),  # stale will of an older connection
        (3, True, None, 2, True, False),  # stale birth
    ],
)
def test_accepts_presence(stored_session, stored_online, stored_reason, session, online, accepted) -> None:
    assert accepts_presence(stored_session, stored_online, stored_reason, session, online) is accepted


def test_birth_describes_the_device() -> None:
    device = new_device()
    assert apply_device_presence(device, birth(1), at(1))
    assert device.online and device.session == 1 and device.offline_reason is None
    assert (device.role, device.window, device.board, device.fw, device.contract) == (
        "queue_display", 3, "esp32-s3", "1.0.0", 1)
    assert device.last_seen == at(1)


def test_will_of_the_same_session_marks_offline_and_a_late_birth_cannot_revive_it() -> None:
    device = new_device()
    apply_device_presence(device, birth(5), at(1))
    assert apply_device_presence(device, will(5), at(2))
    assert not device.online and device.offline_reason == REASON_WILL
    assert device.role == "queue_display" and device.window == 3  # a will keeps what the birth said

    assert not apply_device_presence(device, birth(5), at(3))
    assert not device.online


def test_equal_session_birth_refreshes_an_online_device() -> None:
    device = new_device()
    apply_device_presence(device, birth(5, fw="1.0.0"), at(1))
    assert apply_device_presence(device, birth(5, fw="1.0.1"), at(2))
    assert device.online and device.fw == "1.0.1" and device.last_seen == at(2)


def test_stale_will_never_marks_a_reconnected_device_offline() -> None:
    device = new_device()
    apply_device_presence(device, birth(5), at(1))
    apply_device_presence(device, birth(6), at(2))  # reconnected before the broker noticed the old loss
    assert not apply_device_presence(device, will(5), at(3))
    assert device.online and device.session == 6


def test_newer_birth_after_a_will_brings_the_device_back() -> None:
    device = new_device()
    apply_device_presence(device, birth(5), at(1))
    apply_device_presence(device, will(5), at(2))
    assert apply_device_presence(device, birth(6, window=4), at(3))
    assert device.online and device.window == 4 and device.offline_reason is None


def test_health_refreshes_last_seen_and_figures() -> None:
    device = new_device()
    apply_device_presence(device, birth(2), at(1))
    assert apply_health(device, health(2, uptime_s=60), at(30))
    assert device.online and device.last_seen == at(30) and device.uptime_s == 60 and device.rssi == -55


def test_health_of_a_newer_session_marks_online_even_without_its_birth() -> None:
    device = new_device()
    apply_device_presence(device, birth(2), at(1))
    apply_device_presence(device, will(2), at(2))
    assert apply_health(device, health(3), at(3))
    assert device.online and device.session == 3


def test_health_brings_back_a_device_that_had_timed_out() -> None:
    device = new_device()
    apply_device_presence(device, birth(2), at(1))
    device.online, device.offline_reason = False, REASON_HEARTBEAT
    assert apply_health(device, health(2), at(200))
    assert device.online and device.offline_reason is None


def test_health_of_an_ended_or_older_session_does_not_mark_online() -> None:
    device = new_device()
    apply_device_presence(device, birth(4), at(1))
    apply_device_presence(device, will(4), at(2))
    apply_health(device, health(4), at(3))  # late heartbeat of the connection that just ended
    assert not device.online and device.offline_reason == REASON_WILL

    apply_device_presence(device, birth(5), at(4))
    device.online, device.offline_reason = False, REASON_HEARTBEAT
    assert not apply_health(device, health(3, uptime_s=999), at(5))
    assert not device.online and device.session == 5
    assert device.last_seen == at(5) and device.uptime_s != 999


def test_edge_presence_follows_the_same_rules() -> None:
    center = Center.new(CENTER, T0)
    assert (center.county_code, center.town_code) == ("445202", "445202101")
    edge_birth = {"v": 1, "state": "online", "session": 7, "role": "edge_agent", "board": "rpi4", "fw": "e1",
                  "contract": 1}
    edge_will = {"v": 1, "state": "offline", "session": 7, "role": "edge_agent"}
    assert apply_edge_presence(center, edge_birth, at(1))
    assert center.edge_online and center.edge_fw == "e1"
    assert not apply_edge_presence(center, {**edge_will, "session": 6}, at(2))  # stale will
    assert center.edge_online
    assert apply_edge_presence(center, edge_will, at(3))
    assert not center.edge_online and center.edge_offline_reason == REASON_WILL
    assert not apply_edge_presence(center, edge_birth, at(4))
    assert apply_edge_presence(center, {**edge_birth, "session": 8}, at(5))
    assert center.edge_online


def test_mark_silent_devices(engine) -> None:
    quiet, chatty, gone = new_device(DISPLAY), new_device(PAD), new_device("dev-a4cf12000003")
    for device, seen in ((quiet, 0), (chatty, 80), (gone, 0)):
        apply_device_presence(device, birth(1), at(seen))
    apply_device_presence(gone, will(1), at(1))
    center = Center.new(CENTER, T0)
    center.edge_online = True
    dark = Center.new(OTHER_CENTER, T0)  # its edge agent is offline: its devices cannot be heard
    behind_dark_edge = Device(device_id="dev-a4cf12000004", center_code=OTHER_CENTER, updated=T0)
    apply_device_presence(behind_dark_edge, birth(1), at(0))
    with Session(engine) as session:
        session.add_all([center, dark])
        session.add_all([quiet, chatty, gone, behind_dark_edge])
        session.commit()

        marked = mark_silent_devices(session, at(100), timeout=90)
        session.commit()
        assert [d.device_id for d in marked] == [DISPLAY]
        assert session.get(Device, DISPLAY).offline_reason == REASON_HEARTBEAT
        assert session.get(Device, PAD).online
        assert session.get(Device, "dev-a4cf12000003").offline_reason == REASON_WILL
        assert session.get(Device, "dev-a4cf12000004").online

        assert mark_silent_devices(session, at(100), timeout=90) == []


def test_device_status_is_unknown_behind_an_offline_edge() -> None:
    assert device_status(device_online=True, edge_online=True) == STATUS_ONLINE
    assert device_status(device_online=True, edge_online=False) == STATUS_UNKNOWN
    assert device_status(device_online=False, edge_online=False) == STATUS_OFFLINE
