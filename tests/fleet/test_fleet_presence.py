"""Presence rules: plain functions on records, no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fleet_testkit import CENTER, DISPLAY, OTHER_CENTER, PAD
from sqlalchemy import inspect, text
from sqlmodel import Session

from fleet.db import create_db_engine, init_db
from fleet.models import Center, Device
from fleet.presence import (
    REASON_HEARTBEAT,
    REASON_WILL,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    STATUS_UNKNOWN,
    apply_device_presence,
    apply_edge_presence,
    apply_health,
    device_status,
    mark_silent_devices,
    presence_verdict,
)
from protocol import messages
from protocol import presence as rule

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
BOOT = "9f86d081"
NEW_BOOT = "5d0c33e2"


def birth(session: int, fw: str = "1.0.0", window: int = 3, boot: str | None = BOOT) -> dict:
    payload = {"v": 1, "state": "online", "session": session, "role": "queue_display", "board": "esp32-s3",
               "fw": fw, "contract": 1, "window": window}
    return {**payload, "boot": boot} if boot else payload


def will(session: int, boot: str | None = BOOT) -> dict:
    payload = {"v": 1, "state": "offline", "session": session, "role": "queue_display"}
    return {**payload, "boot": boot} if boot else payload


def health(session: int, uptime_s: float = 100, boot: str | None = BOOT) -> dict:
    payload = {"v": 1, "session": session, "uptime_s": uptime_s, "rssi": -55}
    return {**payload, "boot": boot} if boot else payload


def new_device(device_id: str = DISPLAY) -> Device:
    return Device(device_id=device_id, center_code=CENTER, updated=T0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("stored_session", "stored_online", "stored_reason", "session", "online", "verdict"),
    [
        (None, False, None, 0, True, rule.NEW),  # first birth
        (None, False, None, 4, False, rule.NEW),  # first news is a will
        (3, True, None, 4, True, rule.NEW),  # reconnect
        (3, False, REASON_WILL, 4, True, rule.NEW),  # reconnect after a will
        (3, True, None, 4, False, rule.NEW),  # will of a newer connection whose birth we missed
        (3, True, None, 3, False, rule.CURRENT),  # equal session: the will wins
        (3, True, None, 3, True, rule.CURRENT),  # equal session: the birth refreshes
        (3, False, REASON_WILL, 3, True, rule.STALE),  # the session already ended with its will
        (3, False, REASON_HEARTBEAT, 3, True, rule.CURRENT),  # timed out, but the same connection is alive
        (3, True, None, 2, False, rule.STALE),  # stale will of an older connection
        (3, True, None, 2, True, rule.STALE),  # stale birth
        (3, True, None, 3 + rule.MAX_SESSION_JUMP + 1, True, rule.SUSPECT),  # not believed
    ],
)
def test_presence_verdict_within_one_boot(stored_session, stored_online, stored_reason, session, online,
                                          verdict) -> None:
    kind = rule.BIRTH if online else rule.WILL
    assert presence_verdict(BOOT, stored_session, stored_online, stored_reason, kind, BOOT, session) == verdict


@pytest.mark.parametrize(
    ("stored_online", "stored_reason", "kind", "session", "verdict"),
    [
        (False, REASON_WILL, rule.BIRTH, 1, rule.NEW),  # a board whose session file was lost, after its will
        (True, None, rule.BIRTH, 1, rule.NEW),  # ... before its will
        (False, REASON_HEARTBEAT, rule.HEARTBEAT, 1, rule.NEW),  # its heartbeat before its birth
        (True, None, rule.BIRTH, 42, rule.NEW),  # an ordinary reboot, its counter kept
        (True, None, rule.WILL, 1, rule.STALE),  # a will of another boot never ends the stored one
        (True, None, rule.WILL, 42, rule.STALE),
        (True, None, rule.BIRTH, messages.INT_MAX, rule.SUSPECT),
    ],
)
def test_presence_verdict_across_boots(stored_online, stored_reason, kind, session, verdict) -> None:
    assert presence_verdict(BOOT, 41, stored_online, stored_reason, kind, NEW_BOOT, session) == verdict


def test_birth_describes_the_device() -> None:
    device = new_device()
    assert apply_device_presence(device, birth(1), at(1)) == rule.NEW
    assert device.online and device.session == 1 and device.boot == BOOT and device.offline_reason is None
    assert (device.role, device.window, device.board, device.fw, device.contract) == (
        "queue_display", 3, "esp32-s3", "1.0.0", 1)
    assert device.last_seen == at(1)


def test_will_of_the_same_session_marks_offline_and_a_late_birth_cannot_revive_it() -> None:
    device = new_device()
    apply_device_presence(device, birth(5), at(1))
    assert apply_device_presence(device, will(5), at(2)) == rule.CURRENT
    assert not device.online and device.offline_reason == REASON_WILL
    assert device.role == "queue_display" and device.window == 3  # a will keeps what the birth said

    assert apply_device_presence(device, birth(5), at(3)) == rule.STALE
    assert not device.online


def test_equal_session_birth_refreshes_an_online_device() -> None:
    device = new_device()
    apply_device_presence(device, birth(5, fw="1.0.0"), at(1))
    assert apply_device_presence(device, birth(5, fw="1.0.1"), at(2)) == rule.CURRENT
    assert device.online and device.fw == "1.0.1" and device.last_seen == at(2)


def test_stale_will_never_marks_a_reconnected_device_offline() -> None:
    device = new_device()
    apply_device_presence(device, birth(5), at(1))
    apply_device_presence(device, birth(6), at(2))  # reconnected before the broker noticed the old loss
    assert apply_device_presence(device, will(5), at(3)) == rule.STALE
    assert device.online and device.session == 6


def test_newer_birth_after_a_will_brings_the_device_back() -> None:
    device = new_device()
    apply_device_presence(device, birth(5), at(1))
    apply_device_presence(device, will(5), at(2))
    assert apply_device_presence(device, birth(6, window=4), at(3)) == rule.NEW
    assert device.online and device.window == 4 and device.offline_reason is None


def test_a_board_that_lost_its_session_file_comes_back_at_session_1() -> None:
    device = new_device()
    for session in range(1, 42):
        apply_device_presence(device, birth(session), at(session))
    apply_device_presence(device, will(41), at(50))
    assert apply_device_presence(device, birth(1, boot=NEW_BOOT), at(60)) == rule.NEW
    assert device.online and (device.boot, device.session) == (NEW_BOOT, 1)
    # The old boot's will turns up again (retained, relayed late): the new boot stays online.
    assert apply_device_presence(device, will(41), at(61)) == rule.STALE
    assert device.online
    # The new boot's own reconnection, heartbeat and will count.
    assert apply_device_presence(device, birth(2, boot=NEW_BOOT), at(62)) == rule.NEW
    assert apply_health(device, health(2, uptime_s=70, boot=NEW_BOOT), at(63)) == rule.CURRENT
    assert device.uptime_s == 70
    assert apply_device_presence(device, will(2, boot=NEW_BOOT), at(64)) == rule.CURRENT
    assert not device.online and device.offline_reason == REASON_WILL


def test_a_forged_huge_session_is_ignored_and_the_real_device_keeps_counting(caplog) -> None:
    device = new_device()
    apply_device_presence(device, birth(7), at(1))
    for forged in (birth(messages.INT_MAX), birth(messages.INT_MAX, boot=NEW_BOOT), birth(messages.INT_MAX, boot=None),
                   will(messages.INT_MAX), health(messages.INT_MAX, uptime_s=1)):
        apply = apply_health if "uptime_s" in forged else apply_device_presence
        assert apply(device, forged, at(2)) == rule.SUSPECT
        assert (device.session, device.boot, device.online, device.last_seen) == (7, BOOT, True, at(1))
    assert "ignored as suspect" in caplog.text and DISPLAY in caplog.text
    assert apply_health(device, health(7), at(3)) == rule.CURRENT
    assert apply_device_presence(device, will(7), at(4)) == rule.CURRENT
    assert not device.online
    assert apply_device_presence(device, birth(8), at(5)) == rule.NEW
    assert device.online and device.session == 8


def test_a_believed_forgery_of_another_boot_holds_only_until_the_device_speaks() -> None:
    device = new_device()
    apply_device_presence(device, birth(7), at(1))
    assert apply_device_presence(device, birth(500, boot="f0f0f0f0"), at(2)) == rule.NEW  # within the jump
    assert apply_health(device, health(7, uptime_s=33), at(3)) == rule.NEW  # the real boot speaks: news
    assert (device.boot, device.session, device.uptime_s) == (BOOT, 7, 33)
    assert apply_device_presence(device, will(7), at(4)) == rule.CURRENT
    assert not device.online


def test_senders_without_boot_ids_keep_the_counter_rule() -> None:
    device = new_device()
    apply_device_presence(device, birth(5, boot=None), at(1))
    assert device.boot is None
    assert apply_device_presence(device, will(4, boot=None), at(2)) == rule.STALE
    assert apply_device_presence(device, birth(6, boot=None), at(3)) == rule.NEW
    # The first firmware with boot ids is a new boot, whatever its counter.
    assert apply_device_presence(device, birth(1), at(4)) == rule.NEW
    assert device.boot == BOOT


def test_health_refreshes_last_seen_and_figures() -> None:
    device = new_device()
    apply_device_presence(device, birth(2), at(1))
    assert apply_health(device, health(2, uptime_s=60), at(30)) == rule.CURRENT
    assert device.online and device.last_seen == at(30) and device.uptime_s == 60 and device.rssi == -55


def test_health_of_a_newer_session_marks_online_even_without_its_birth() -> None:
    device = new_device()
    apply_device_presence(device, birth(2), at(1))
    apply_device_presence(device, will(2), at(2))
    assert apply_health(device, health(3), at(3)) == rule.NEW
    assert device.online and device.session == 3


def test_health_brings_back_a_device_that_had_timed_out() -> None:
    device = new_device()
    apply_device_presence(device, birth(2), at(1))
    device.online, device.offline_reason = False, REASON_HEARTBEAT
    assert apply_health(device, health(2), at(200)) == rule.CURRENT
    assert device.online and device.offline_reason is None


def test_health_of_an_ended_or_older_session_does_not_mark_online() -> None:
    device = new_device()
    apply_device_presence(device, birth(4), at(1))
    apply_device_presence(device, will(4), at(2))
    assert apply_health(device, health(4), at(3)) == rule.STALE  # late heartbeat of the connection that ended
    assert not device.online and device.offline_reason == REASON_WILL

    apply_device_presence(device, birth(5), at(4))
    device.online, device.offline_reason = False, REASON_HEARTBEAT
    assert apply_health(device, health(3, uptime_s=999), at(5)) == rule.STALE
    assert not device.online and device.session == 5
    assert device.last_seen == at(5) and device.uptime_s != 999


def test_edge_presence_follows_the_same_rules(caplog) -> None:
    center = Center.new(CENTER, T0)
    assert (center.county_code, center.town_code) == ("445202", "445202101")
    edge_birth = {"v": 1, "state": "online", "session": 7, "boot": BOOT, "role": "edge_agent", "board": "rpi4",
                  "fw": "e1", "contract": 1}
    edge_will = {"v": 1, "state": "offline", "session": 7, "boot": BOOT, "role": "edge_agent"}
    assert apply_edge_presence(center, edge_birth, at(1)) == rule.NEW
    assert center.edge_online and center.edge_fw == "e1" and center.edge_boot == BOOT
    assert apply_edge_presence(center, {**edge_will, "session": 6}, at(2)) == rule.STALE  # stale will
    assert center.edge_online
    assert apply_edge_presence(center, edge_will, at(3)) == rule.CURRENT
    assert not center.edge_online and center.edge_offline_reason == REASON_WILL
    assert apply_edge_presence(center, edge_birth, at(4)) == rule.STALE
    assert apply_edge_presence(center, {**edge_birth, "session": 8}, at(5)) == rule.NEW
    assert center.edge_online
    # The edge's database restored from an old backup: a new boot at a lower counter is seen.
    assert apply_edge_presence(center, {**edge_birth, "session": 2, "boot": NEW_BOOT}, at(6)) == rule.NEW
    assert (center.edge_session, center.edge_boot) == (2, NEW_BOOT)
    assert apply_edge_presence(center, {**edge_will, "session": 8}, at(7)) == rule.STALE  # the old boot's will
    assert center.edge_online
    assert apply_edge_presence(center, {**edge_birth, "session": messages.INT_MAX}, at(8)) == rule.SUSPECT
    assert center.edge_session == 2 and "edge agent of center " + CENTER in caplog.text


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


def test_an_older_database_gets_the_boot_columns(fleet_settings) -> None:
    engine = create_db_engine(fleet_settings.database_url)
    try:
        init_db(engine)
        with engine.begin() as connection:  # a county database from before boot ids
            connection.execute(text("ALTER TABLE device DROP COLUMN boot"))
            connection.execute(text("ALTER TABLE center DROP COLUMN edge_boot"))
        init_db(engine)  # what every start of the fleet does
        columns = {table: {c["name"] for c in inspect(engine).get_columns(table)} for table in ("device", "center")}
        assert "boot" in columns["device"] and "edge_boot" in columns["center"]
    finally:
        engine.dispose()
