"""The flash outbox and the remembered ids: what survives a reboot, bounded."""

from case_support import listdir, scratch_dir, write

from firmware.lib.outbox import FlashOutbox
from firmware.lib.recent import RecentIds


def test_messages_survive_a_reboot_in_order_until_removed():
    folder = scratch_dir("outbox")
    box = FlashOutbox(folder, log=None)
    assert box.peek() is None
    first = box.add("t/1", b'{"n": 1}')
    box.add("t/2", '{"n": "二"}', qos=1, retain=False)
    rebooted = FlashOutbox(folder, log=None)
    assert len(rebooted) == 2
    assert rebooted.peek() == (first, "t/1", b'{"n": 1}', 1, False)
    rebooted.remove(first)  # PUBACKed
    again = FlashOutbox(folder, log=None)
    assert again.peek()[1:3] == ("t/2", '{"n": "二"}'.encode())
    again.remove(again.peek()[0])
    assert again.peek() is None and listdir(folder) == []


def test_new_messages_get_new_keys_after_a_reboot():
    folder = scratch_dir("outbox")
    box = FlashOutbox(folder, log=None)
    a = box.add("t", b"a")
    box.remove(a)
    b = box.add("t", b"b")
    c = FlashOutbox(folder, log=None).add("t", b"c")
    assert a < b < c  # files sort in the order they were written
    rebooted = FlashOutbox(folder, log=None)
    assert rebooted.peek()[2] == b"b"
    rebooted.remove(rebooted.peek()[0])
    assert rebooted.peek()[2] == b"c"


def test_full_outbox_refuses_and_keeps_what_it_has():
    box = FlashOutbox(scratch_dir("outbox"), limit=3, log=None)
    keys = [box.add("t", b"%d" % n) for n in range(3)]
    assert box.full and None not in keys
    assert box.add("t", b"late") is None
    assert box.dropped == 1 and "full" in box.error
    assert box.peek()[2] == b"0"


def test_a_torn_write_is_recovered_or_dropped():
    folder = scratch_dir("outbox")
    box = FlashOutbox(folder, log=None)
    box.add("t", b"kept")
    write(folder + "/00000007.msg.tmp", '{"topic": "t", "payload": "whole", "qos": 1, "retain": false}')
    write(folder + "/00000008.msg.tmp", '{"topic": "t", "payl')
    write(folder + "/00000009.msg", "garbage")
    rebooted = FlashOutbox(folder, log=None)
    sent = []
    while rebooted.peek() is not None:
        key, topic, payload, qos, retain = rebooted.peek()
        sent.append(payload)
        rebooted.remove(key)
    assert sent == [b"kept", b"whole"]  # the unreadable one is dropped, not blocking the rest
    assert rebooted.dropped == 1
    assert listdir(folder) == []


def test_recent_ids_are_bounded_and_survive_a_reboot():
    path = scratch_dir("recent") + "/ids.json"
    ids = RecentIds(path, limit=3, log=None)
    assert ids.add("a") and not ids.add("a")
    for name in ("b", "c", "d"):
        ids.add(name)
    again = RecentIds(path, limit=3, log=None)
    assert "a" not in again and again.ids() == ["b", "c", "d"]


def test_corrupt_recent_ids_start_empty_and_report():
    path = scratch_dir("recent") + "/ids.json"
    write(path, '{"not": "a list"}')
    ids = RecentIds(path, log=None)
    assert len(ids) == 0 and "not a list" in ids.error
    ids.add("x")
    assert "x" in RecentIds(path, log=None)
