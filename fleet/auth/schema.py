"""Columns and indexes added to existing tables after a database was created (there are no migrations yet).

`SQLModel.metadata.create_all` (fleet.db.init_db) creates missing tables but never
changes an existing one. A model that gains a nullable column registers it here;
after every create_all the column is added to a database that lacks it, so an
older county database keeps working, with NULL in the new column of old rows.
An index declared in a model's __table_args__ later is registered the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, MetaData, event, inspect
from sqlalchemy.schema import CreateColumn, CreateIndex
from sqlmodel import SQLModel

log = logging.getLogger(__name__)

# table name -> names of the nullable columns added after the table first shipped
_ADDED_COLUMNS: dict[str, tuple[str, ...]] = {}
# table name -> names of the (non-unique) indexes declared after the table first shipped
_ADDED_INDEXES: dict[str, tuple[str, ...]] = {}


def added_columns(table_name: str, *column_names: str) -> None:
    """Declare nullable columns of `table_name` that older databases lack."""
    _ADDED_COLUMNS[table_name] = tuple(dict.fromkeys(_ADDED_COLUMNS.get(table_name, ()) + column_names))


def added_indexes(table_name: str, *index_names: str) -> None:
    """Declare indexes of `table_name` (in its __table_args__) that older databases lack."""
    _ADDED_INDEXES[table_name] = tuple(dict.fromkeys(_ADDED_INDEXES.get(table_name, ()) + index_names))


def add_missing_indexes(connection: Connection, metadata: MetaData) -> list[str]:
    """CREATE INDEX for every declared index an existing table lacks; returns what was added."""
    inspector = inspect(connection)
    added: list[str] = []
    for table_name, index_names in _ADDED_INDEXES.items():
        table = metadata.tables.get(table_name)
        if table is None or not inspector.has_table(table_name):
            continue
        present = {index["name"] for index in inspector.get_indexes(table_name)}
        for index in table.indexes:
            if index.name in index_names and index.name not in present:
                # IF NOT EXISTS: another replica starting at the same moment may have made it already.
                connection.execute(CreateIndex(index, if_not_exists=True))
                log.info("database upgraded: added index %s on %s", index.name, table_name)
                added.append(f"{table_name}.{index.name}")
    return added


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
    add_missing_indexes(connection, metadata)  # after the columns: an index may be on a column just added
