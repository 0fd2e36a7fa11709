"""Sessions on the fleet's engine (fleet.db creates the engine and the tables), and the IN helper.

Below every module that keeps tables: fleet.db imports all of those to create their tables, so they take
their sessions from here, never from fleet.db.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col

# An execution option read by fleet.db's SQLite "begin" hook: the mode of BEGIN (IMMEDIATE for writers).
BEGIN_OPTION = "fleet_sqlite_begin"


def read_session(engine: Engine) -> Session:
    return Session(engine)


class WriteTurns:
    """Turns at SQLite's write lock for the threads of this process, first come first served.

    SQLite's busy handler polls: a writer waiting for the lock sleeps and tries again, so one that commits
    and begins again at once (the ingest catching up, batch after batch) could keep the heartbeat sweep or a
    web request out until its busy timeout ran out ("database is locked"). Here a writer waits its turn
    instead. A thread already holding the turn passes (re-entrant), so nothing waits for itself.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._next = 0  # the ticket the next arriving writer takes
        self._serving = 0  # the ticket whose turn it is
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> WriteTurns:
        me = threading.get_ident()
        with self._changed:
            if self._owner == me:
                self._depth += 1
                return self
            ticket = self._next
            self._next += 1
            self._changed.wait_for(lambda: self._serving == ticket)
            self._owner, self._depth = me, 1
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._changed:
            self._depth -= 1
            if self._depth:
                return
            self._owner = None
            self._serving += 1
            self._changed.notify_all()


_TURNS: dict[str, WriteTurns] = {}
_TURNS_LOCK = threading.Lock()


def write_turns(engine: Engine) -> WriteTurns | None:
    """The turns of the SQLite file behind `engine` (shared by every engine on it); None for other databases,
    whose writers lock rows, not the whole database."""
    if engine.url.get_backend_name() != "sqlite":
        return None
    with _TURNS_LOCK:
        return _TURNS.setdefault(str(engine.url), WriteTurns())


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds SQLite's write lock from its first statement (in turn, WriteTurns).

    Commits on success, rolls back on error; objects stay readable after the commit.
    """
    with write_turns(engine) or nullcontext(), \
            Session(engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"}), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


LONG_IN_LIST = 500  # more values than this: one scan of the table beats a huge IN (SQLite allows 32,766)


def among(column: Any, values: Iterable[Any]) -> list[Any]:
    """WHERE clauses keeping rows whose `column` is in `values`: `[column IN values]`, or none at all when
    the list is long (SQLite refuses more than 32,766 parameters); the caller then filters in Python."""
    values = list(values)
    return [] if len(values) > LONG_IN_LIST else [col(column).in_(values)]
