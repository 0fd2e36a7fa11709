"""Sessions on the fleet's engine (fleet.db creates the engine and the tables), and the IN helper.

Below every module that keeps tables: fleet.db imports all of those to create their tables, so they take
their sessions from here, never from fleet.db.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col

# An execution option read by fleet.db's SQLite "begin" hook: the mode of BEGIN (IMMEDIATE for writers).
BEGIN_OPTION = "fleet_sqlite_begin"


def read_session(engine: Engine) -> Session:
    return Session(engine)


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds SQLite's write lock from its first statement.

    Commits on success, rolls back on error; objects stay readable after the commit.
    """
    with Session(engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"}), expire_on_commit=False) as session:
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
