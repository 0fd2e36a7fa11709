"""firmware.lib.presence: session counter, birth and will, stale-will detection."""

from __future__ import annotations

from pathlib import Path

from firmware.lib import presence
from protocol import CONTRACT_VERSION, messages, topics

CENTER = "445202101001"
DEVICE = "dev-02aabbccddee"


def test_session_counter_increments_and_persists(tmp_path: Path) -> None:
    state = tmp_path / "state" / "nested"
    counter = presence.SessionCounter(str(state))
    assert counter.value == 0
    assert counter.next() == 1
    assert counter.next() == 2
    assert (state / "session").read_text().strip() == "2"
    again = presence.SessionCounter(str(state))  # a reboot
    assert again.value == 2
    assert again.next() == 3


def test_corrupt_session_file_starts_over_without_crashing(tmp_path: Path) -> None:
    (tmp_path / "session").write_text("garbage")
    counter = presence.SessionCounter(str(tmp_path))
    assert counter.value == 0
    assert counter.error
    assert counter.next() == 1


def test_unwritable_state_dir_keeps_counting_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    counter = presence.SessionCounter(str(blocker / "state"))
    assert counter.next() == 1
    assert counter.next() == 2
    assert "not saved" in counter.error


def _presence(tmp_path: Path) -> presence.Presence:
    return presence.Presence(CENTER, DEVICE, messages.ROLE_QUEUE_DISPLAY, 3, "esp32", "0.1.0", "02aabbccddee",
                             str(tmp_path))


def test_will_callable_starts_a_new_session_each_connect(tmp_path: Path) -> None:
    p = _presence(tmp_path)
    topic, payload, qos, retain = p.will_for_next_connect()
    assert topic == topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=DEVICE)
    assert (qos, retain) == (1, True)
    will = messages.decode("presence", payload)
    assert will["state"] == messages.OFFLINE and will["session"] == 1
    p.will_for_next_connect()
    birth = messages.decode("presence", p.birth())
    assert birth == {"v": CONTRACT_VERSION, "state": "online", "session": 2, "boot": p.boot, "role": "queue_display",
                     "window": 3, "board": "esp32", "fw": "0.1.0", "contract": CONTRACT_VERSION,
                     "mac": "02aabbccddee"}
    assert will["boot"] == p.boot  # one boot, both connections
    rebooted = _presence(tmp_path)
    assert rebooted.session == 2  # persisted
    assert rebooted.boot != p.boot  # a new boot id at every boot


def test_boot_ids_are_random_hex_of_the_contracts_size() -> None:
    boots = {presence.Presence(CENTER, DEVICE, messages.ROLE_QUEUE_DISPLAY).boot for _ in range(50)}
    assert len(boots) == 50
    for boot in boots:
        assert len(boot) == 8 and int(boot, 16) >= 0
        assert len(boot) <= messages.BOOT_MAX_CHARS


def test_stale_will_detection(tmp_path: Path) -> None:
    p = _presence(tmp_path)
    p.will_for_next_connect()
    p.will_for_next_connect()  # session 2

    def will(session: int, boot: str | None) -> dict:
        return messages.make("presence", state="offline", session=session, boot=boot, role="queue_display")

    old_will = will(1, p.boot)
    assert not p.is_stale_will(old_will)  # birth not out yet: it will overwrite anyway
    p.birth_sent = True
    assert p.is_stale_will(old_will)
    assert not p.is_stale_will(will(2, p.boot))  # our own connection's will: not ours to argue with
    assert not p.is_stale_will(will(3, p.boot))  # a newer session of our boot: not fought over
    assert not p.is_stale_will(messages.decode("presence", p.birth()))
    # The will of the boot before this one, whatever its counter: after a lost session file it is higher.
    assert p.is_stale_will(will(1, "0badb007"))
    assert p.is_stale_will(will(41, "0badb007"))
    assert p.is_stale_will(will(41, None))  # the will of the firmware before boot ids
    # Far ahead of anything real: a forgery, left to the watchers (who ignore it) rather than fought.
    assert not p.is_stale_will(will(messages.INT_MAX, "0badb007"))


def test_a_lost_session_file_starts_again_at_1_with_a_new_boot(tmp_path: Path) -> None:
    first = _presence(tmp_path)
    for _ in range(5):
        first.will_for_next_connect()
    (tmp_path / "session").write_bytes(b"\xff\xfe torn")
    again = _presence(tmp_path)
    assert "unreadable" in again.counter.error
    again.will_for_next_connect()
    assert again.session == 1
    birth = messages.decode("presence", again.birth())
    assert (birth["session"], birth["boot"]) == (1, again.boot) and again.boot != first.boot
