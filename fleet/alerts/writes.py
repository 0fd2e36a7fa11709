"""A FastAPI dependency for routes that change things: a session that holds SQLite's write lock.

A plain session reads first and writes later; if the sweep or the ingest commits in
between, SQLite refuses the upgrade at once ("database is locked"). BEGIN IMMEDIATE
(fleet.db.write_session) makes writers queue instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from fleet.db import write_session


def get_write_session(request: Request) -> Iterator[Session]:
    with write_session(request.app.state.engine) as session:
        yield session


WriteSessionDep = Annotated[Session, Depends(get_write_session)]
