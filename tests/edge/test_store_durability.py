"""The edge's database survives a power cut, not only a killed process.

A SIGKILL leaves the page cache to the kernel, which writes it out anyway, so the kill tests
(test_kill_agent.py, test_no_loss.py) pass whether or not a commit reached the disk. What makes a
commit survive a power cut is the connection's settings: WAL with synchronous=FULL (fsync of the WAL on
every commit). synchronous is per connection and never stored in the file, so it is read back here
from every connection the store opens, as that connection reports it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.awaiting_ack import AwaitingAck
from edge_agent.store import EdgeStore

SYNCHRONOUS_FULL = 2  # what PRAGMA synchronous reports for FULL


def _use_store(path: Path) -> None:
    store = EdgeStore(path)
    with store.transaction() as db:  # a write and a read, so a connection opened lazily is opened too
        EdgeStore.enqueue(db, "t", b"{}", 1, False, 0.0)
    assert store.outbox_size() == 1


def _use_awaiting(path: Path) -> None:
    EdgeStore(path)  # the agent's store creates the file in WAL mode first (agent.py)
    awaiting = AwaitingAck(path)
    awaiting.sent("e1", "t", b"{}", 0.0)
    assert awaiting.acknowledged(["e1"]) == 1


@pytest.mark.parametrize("use", [_use_store, _use_awaiting], ids=["store", "awaiting-ack"])
def test_every_connection_is_wal_with_synchronous_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       use: Callable[[Path], None]) -> None:
    opened: list[sqlite3.Connection] = []
    connect = sqlite3.connect

    def connect_at_normal(*args, **kwargs) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)
        # Debian's SQLite starts a connection at FULL; builds with SQLITE_DEFAULT_WAL_SYNCHRONOUS=1 start
        # it at NORMAL, which may lose the last commits on a power cut. Start every connection at NORMAL,
        # so only the store's own setting can make it FULL, whatever the SQLite build.
        connection.execute("PRAGMA synchronous=NORMAL")
        opened.append(connection)
        return connection

    monkeypatch.setattr(sqlite3, "connect", connect_at_normal)
    path = tmp_path / "edge.sqlite3"
    try:
        use(path)
        assert opened, "no connection was opened"
        for connection in opened:
            assert connection.execute("PRAGMA database_list").fetchone()[2] == str(path)
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert connection.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS_FULL
    finally:
        for connection in opened:
            connection.close()
