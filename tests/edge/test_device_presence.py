"""The edge agent's record of its center's devices: presence judged by protocol.presence, as the fleet does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge_agent.store import EdgeStore
from protocol import messages
from protocol import presence as rule

DEVICE = "dev-02aabbccdd03"
BOOT, NEW_BOOT = "9f86d081", "5d0c33e2"


def birth(session: int, boot: str | None = BOOT) -> dict:
    return messages.make("presence", state=messages.ONLINE, session=session, boot=boot, role="rating_pad",
                         board="esp32", fw="1.0.0", contract=1, window=3)


def will(session: int, boot: str | None = BOOT) -> dict:
    return messages.make("presence", state=messages.OFFLINE, session=session, boot=boot, role="rating_pad")


def record(store: EdgeStore) -> tuple:
    row = next(d for d in store.devices() if d["device_id"] == DEVICE)
    return bool(row["online"]), row["session"], row["boot"]


def test_a_board_that_lost_its_session_file_is_online_again(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "edge.sqlite3")
    for session in range(1, 8):
        assert store.record_presence(DEVICE, birth(session), float(session)) == rule.NEW
    assert store.record_presence(DEVICE, will(7), 10.0) == rule.CURRENT
    assert record(store) == (False, 7, BOOT)
    assert store.record_presence(DEVICE, birth(1, NEW_BOOT), 11.0) == rule.NEW
    assert record(store) == (True, 1, NEW_BOOT)
    assert store.record_presence(DEVICE, will(7), 12.0) == rule.STALE  # the old boot's will, again
    assert store.record_presence(DEVICE, birth(1, NEW_BOOT), 13.0) == rule.CURRENT  # a repaired birth
    assert record(store) == (True, 1, NEW_BOOT)


def test_a_forged_session_far_ahead_is_not_stored(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "edge.sqlite3")
    store.record_presence(DEVICE, birth(4), 1.0)
    for forged in (birth(messages.INT_MAX), will(messages.INT_MAX, None), birth(4 + rule.MAX_SESSION_JUMP + 1)):
        assert store.record_presence(DEVICE, forged, 2.0) == rule.SUSPECT
        assert record(store) == (True, 4, BOOT)
    assert store.record_presence(DEVICE, will(4), 3.0) == rule.CURRENT
    assert store.record_presence(DEVICE, birth(4), 4.0) == rule.STALE  # that connection ended with its will
    assert store.record_presence(DEVICE, birth(5), 5.0) == rule.NEW
    assert record(store) == (True, 5, BOOT)


def test_an_older_store_gets_the_boot_column_and_keeps_its_devices(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite3"
    EdgeStore(path).record_presence(DEVICE, birth(6, None), 1.0)  # a device without boot ids
    with sqlite3.connect(path) as db:  # the store as it was before boot ids
        db.execute("ALTER TABLE devices DROP COLUMN boot")
    store = EdgeStore(path)
    assert record(store) == (True, 6, None)
    assert store.record_presence(DEVICE, will(5, None), 2.0) == rule.STALE
    assert store.record_presence(DEVICE, birth(1), 3.0) == rule.NEW  # its first boot with a boot id
    assert record(store) == (True, 1, BOOT)
