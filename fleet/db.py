"""Database engine and sessions.

SQLite is the default (one file per county is plenty). The ingest threads and
the web server use it at the same time, so every SQLite connection gets WAL
(readers never block the writer) and a busy timeout (a writer waits for the
other instead of failing). Write transactions start with BEGIN IMMEDIATE: a
deferred transaction that reads first and writes later can fail at once with
"database is locked" when another writer committed in between, and the busy
timeout does not help then; taking the write lock up front makes writers queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel, create_engine

# Sessions and the IN helper live below every table module (which use them); this module creates the
# tables of all of them, so it sits above them.
from fleet.sessions import (  # noqa: F401  (their long-standing import path)
    BEGIN_OPTION,
    LONG_IN_LIST,
    among,
    read_session,
    write_session,
)

BUSY_TIMEOUT_MS = 10_000


def create_db_engine(database_url: str, echo: bool = False) -> Engine:
    """An engine for `database_url`; for SQLite also creates the file's directory."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(database_url, echo=echo, pool_pre_ping=True)

    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        database_url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def init_db(engine: Engine) -> None:
    """Create missing tables (the walking skeleton has no migrations yet)."""
    from fleet import (  # noqa: F401  (registers the tables on SQLModel.metadata)
        audit,
        health_history,
        models,
        province,
        satisfaction,  # noqa: F401  (alerts, cases, configuration: their own tables)
    )
    from fleet.alerts import models as alert_models  # noqa: F401
    from fleet.auth import models as auth_models  # noqa: F401
    from fleet.cases import models as case_models  # noqa: F401
    from fleet.catalogue import models as catalogue_models  # noqa: F401
    from fleet.centers import models as center_models  # noqa: F401
    from fleet.devconfig import models as devconfig_models  # noqa: F401
    from fleet.registration import models as registration_models  # noqa: F401
    from fleet.reports import models as report_models  # noqa: F401
    from fleet.rollouts import models as rollout_models  # noqa: F401

    SQLModel.metadata.create_all(engine)
