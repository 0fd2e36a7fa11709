"""Set up users from scripts (the demo, end-to-end tests) without the web pages or the CLI."""

from __future__ import annotations

from fleet import audit
from fleet.auth.principal import CLI_USER
from fleet.auth.tokens import create_token
from fleet.auth.users import create_user, find_user, set_password
from fleet.db import create_db_engine, init_db, write_session


def ensure_user(database_url: str, username: str, role: str, password: str,
                division_prefix: str | None = None, display_name: str | None = None) -> None:
    """Create the user, or reset its password if it exists (the demo's admin after a restart)."""
    engine = create_db_engine(database_url)
    try:
        init_db(engine)
        with write_session(engine) as session:
            user = find_user(session, username)
            if user is None:
                create_user(session, username, role, password, division_prefix, display_name)
                audit.record(session, CLI_USER, "user.create", target=username,
                             detail={"role": role, "division_prefix": division_prefix})
            else:
                set_password(session, user, password)
    finally:
        engine.dispose()


def issue_token(database_url: str, username: str, name: str) -> str:
    """A new API token for an existing user (printed or used once by the caller)."""
    engine = create_db_engine(database_url)
    try:
        init_db(engine)
        with write_session(engine) as session:
            user = find_user(session, username)
            if user is None:
                raise ValueError(f"no user {username!r}")
            row, token = create_token(session, user, name)
            audit.record(session, CLI_USER, "token.create", target=username, detail={"token": row.name})
        return token
    finally:
        engine.dispose()
