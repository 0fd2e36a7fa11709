"""Columns added to existing tables after a database was created (there are no migrations yet).

`SQLModel.metadata.create_all` (fleet.db.init_db) creates missing tables but never
changes an existing one. A model that gains a nullable column registers it here;
after every create_all the column is added to a database that lacks it, so an
older county database keeps working, with NULL in the new column of old rows.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, MetaData, event, inspect
from sqlalchemy.schema import CreateColumn
from sqlmodel import SQLModel

log = logging.getLogger(__name__)

# table name -> names of the nullable columns added after the table first shipped
_ADDED_COLUMNS: dict[str, tuple[str, ...]] = {}


def added_columns(table_name: str, *column_names: str) -> None:
    """Declare nullable columns of `table_name` that older databases lack."""
    _ADDED_COLUMNS[table_name] = tuple(dict.fromkeys(_ADDED_COLUMNS.get(table_name, ()) + column_names))


def add_missing_columns(connection: Connection, metadata: MetaData) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for every declared column an existing table lacks; returns what was added."""
    inspector = inspect(connection)
    added: list[str] = []
    for table_name, column_names in _ADDED_COLUMNS.items():
        table = metadata.tables.get(table_name)
        if table is None or not inspector.has_table(table_name):
            continue
        present = {column["name"] for column in inspector.get_columns(table_name)}
        for name in column_names:
            if name in present:
                continue
            column = table.columns[name]
            if not column.nullable:
                raise ValueError(f"{table_name}.{name} must be nullable to be added to existing rows")
            ddl = CreateColumn(column).compile(dialect=connection.dialect)
            # PostgreSQL: another replica starting at the same moment may have added it already.
            guard = "IF NOT EXISTS " if connection.dialect.name == "postgresql" else ""
            connection.exec_driver_sql(f"ALTER TABLE {table_name} ADD COLUMN {guard}{ddl}")
            log.info("database upgraded: added column %s.%s", table_name, name)
            added.append(f"{table_name}.{name}")
    return added


@event.listens_for(SQLModel.metadata, "after_create")
def _after_create_all(metadata: MetaData, connection: Connection, **_kw: Any) -> None:
    # Fired by every create_all, also when every table existed already.
    add_missing_columns(connection, metadata)
