"""protocol.presence, the rule every watcher applies to presence and heartbeats, case by case; and the
firmware's boot id and session counter. The same on CPython and MicroPython."""

from case_support import CENTER, DEVICE, raises, scratch_dir, write

from firmware.lib import presence as fw_presence
from protocol import messages
from protocol import presence as rule
from protocol.errors import ProtocolError

B, OTHER = "9f86d081", "5d0c33e2"
JUMP = rule.MAX_SESSION_JUMP

# (stored boot, stored session, stored ended by its will, kind, boot, session, verdict): the docstring's table
CASES = (
    # nothing stored: the first news of the device, whatever it is
    (None, None, False, rule.BIRTH, B, 1, rule.NEW),
    (None, None, False, rule.WILL, B, 4, rule.NEW),
    (None, None, False, rule.HEARTBEAT, None, 4, rule.NEW),
    # a session far ahead is not believed, of this boot or another
    (B, 5, False, rule.BIRTH, B, messages.INT_MAX, rule.SUSPECT),
    (B, 5, False, rule.BIRTH, OTHER, messages.INT_MAX, rule.SUSPECT),
    (B, 5, False, rule.WILL, B, 5 + JUMP + 1, rule.SUSPECT),
    (B, 5, False, rule.HEARTBEAT, None, 5 + JUMP + 1, rule.SUSPECT),
    (None, 5, False, rule.BIRTH, None, messages.INT_MAX, rule.SUSPECT),  # two senders without boot ids
    (B, 5, False, rule.BIRTH, B, 5 + JUMP, rule.NEW),  # the largest jump still believed
    # another boot: its birth or heartbeat is news whatever its counter, its will is not
    (B, 41, False, rule.BIRTH, OTHER, 1, rule.NEW),  # the session file was lost: back at 1
    (B, 41, False, rule.BIRTH, OTHER, 42, rule.NEW),  # an ordinary reboot, counter kept
    (B, 41, True, rule.BIRTH, OTHER, 1, rule.NEW),  # after the old boot's will
    (B, 41, False, rule.HEARTBEAT, OTHER, 1, rule.NEW),  # its birth not seen (yet)
    (B, 41, False, rule.BIRTH, None, 3, rule.NEW),  # older firmware flashed back
    (None, 41, False, rule.BIRTH, B, 1, rule.NEW),  # the first boot with boot ids
    (OTHER, 1, False, rule.WILL, B, 41, rule.STALE),  # the old boot's will, late (after the new birth)
    (OTHER, 1, False, rule.WILL, None, 41, rule.STALE),
    (OTHER, 1, False, rule.WILL, B, 1, rule.STALE),
    # one boot: the counter orders the connections
    (B, 3, False, rule.BIRTH, B, 4, rule.NEW),  # reconnect
    (B, 3, True, rule.BIRTH, B, 4, rule.NEW),  # reconnect after a will
    (B, 3, False, rule.WILL, B, 4, rule.NEW),  # will of a newer connection whose birth we missed
    (B, 3, False, rule.HEARTBEAT, B, 4, rule.NEW),
    (B, 3, False, rule.WILL, B, 3, rule.CURRENT),  # its will ends the connection
    (B, 3, True, rule.WILL, B, 3, rule.CURRENT),  # the same will twice
    (B, 3, False, rule.BIRTH, B, 3, rule.CURRENT),  # a refresh (a repaired birth, a second worker)
    (B, 3, False, rule.HEARTBEAT, B, 3, rule.CURRENT),
    (B, 3, True, rule.BIRTH, B, 3, rule.STALE),  # the session already ended with its will
    (B, 3, True, rule.HEARTBEAT, B, 3, rule.STALE),
    (B, 3, False, rule.WILL, B, 2, rule.STALE),  # stale will of an older connection
    (B, 3, False, rule.BIRTH, B, 2, rule.STALE),
    (B, 3, False, rule.HEARTBEAT, B, 2, rule.STALE),
    (None, 3, False, rule.WILL, None, 2, rule.STALE),  # senders without boot ids: the old rule
    (None, 3, False, rule.BIRTH, None, 4, rule.NEW),
)


def test_judge_case_by_case():
    for stored_boot, stored_session, ended, kind, boot, session, verdict in CASES:
        got = rule.judge(stored_boot, stored_session, ended, kind, boot, session)
        assert got == verdict, "stored %r/%r ended=%r, %s of %r/%r: %s, not %s" % (
            stored_boot, stored_session, ended, kind, boot, session, got, verdict)


def test_a_forged_session_cannot_block_the_real_device():
    # Whatever a forger sends, the real device's next birth of a new boot, and its next messages, count.
    stored = (B, 7, False)
    for forged_boot in (B, OTHER, None):
        verdict = rule.judge(stored[0], stored[1], stored[2], rule.BIRTH, forged_boot, messages.INT_MAX)
        assert verdict == rule.SUSPECT  # not stored: the real session 8 is news next
        assert rule.judge(stored[0], stored[1], stored[2], rule.BIRTH, B, 8) == rule.NEW
    # A forgery of another boot that is believed (within the jump) holds only until the real device speaks.
    assert rule.judge(OTHER, 1000, False, rule.HEARTBEAT, B, 7) == rule.NEW
    assert rule.judge(OTHER, 1000, False, rule.BIRTH, B, 8) == rule.NEW


def test_kind_of_a_payload():
    assert rule.kind_of("presence", {"state": messages.ONLINE}) == rule.BIRTH
    assert rule.kind_of("presence", {"state": messages.OFFLINE}) == rule.WILL
    assert rule.kind_of("health", {"session": 1}) == rule.HEARTBEAT
    assert set(rule.APPLIED) == {rule.NEW, rule.CURRENT}


def test_boot_ids_are_random_hex():
    boots = [rule.new_boot_id() for _ in range(20)]
    assert len(set(boots)) == 20
    for boot in boots:
        assert len(boot) == 2 * rule.BOOT_ID_BYTES <= messages.BOOT_MAX_CHARS
        int(boot, 16)


def test_the_boot_field_is_optional_and_bounded():
    will = {"v": 1, "state": "offline", "session": 3, "role": "rating_pad"}
    assert messages.validate("presence", dict(will)) == will  # older senders
    assert messages.validate("presence", dict(will, boot=B))["boot"] == B
    assert messages.validate("health", {"v": 1, "session": 3, "boot": B, "uptime_s": 1})["boot"] == B
    raises(ProtocolError, messages.validate, "presence", dict(will, boot=""))
    raises(ProtocolError, messages.validate, "presence", dict(will, boot="x" * (messages.BOOT_MAX_CHARS + 1)))
    raises(ProtocolError, messages.validate, "presence", dict(will, boot=7))
    raises(ProtocolError, messages.validate, "health", {"v": 1, "session": 3, "boot": "x" * 17, "uptime_s": 1})


def test_the_firmware_says_its_boot_in_birth_and_will_and_repairs_an_old_boots_will():
    state = scratch_dir("presence")
    first = fw_presence.Presence(CENTER, DEVICE, messages.ROLE_RATING_PAD, 3, state_dir=state)
    for _ in range(4):
        first.will_for_next_connect()
    assert first.session == 4
    old_will = messages.decode("presence", first.will())
    assert old_will["boot"] == first.boot

    write(state + "/session", "\xff garbage")  # the flash lost the counter
    board = fw_presence.Presence(CENTER, DEVICE, messages.ROLE_RATING_PAD, 3, state_dir=state)
    board.will_for_next_connect()
    board.birth_sent = True
    birth = messages.decode("presence", board.birth())
    assert (birth["session"], birth["state"]) == (1, messages.ONLINE)
    assert birth["boot"] == board.boot != first.boot
    # The old boot's will (session 4, higher than ours) turns up after our birth: stale, repaired.
    assert board.is_stale_will(old_will)
    assert not board.is_stale_will(messages.decode("presence", board.will()))
