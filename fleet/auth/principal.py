"""CurrentUser: who is making this request, and what they may see and change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, true

from fleet.auth.roles import COUNTY_ADMIN, READ_ONLY, ROLE_LABELS, WRITER_ROLES

VIA_SESSION = "session"  # a browser with a session cookie: state changes need the CSRF token
VIA_TOKEN = "token"  # Authorization: Bearer
VIA_CLI = "cli"


@dataclass(frozen=True)
class CurrentUser:
    """A logged-in user as the routes see it (a plain value, not a database row)."""

    id: int | None
    username: str
    role: str
    division_prefix: str | None
    via: str = VIA_SESSION
    source: str | None = None  # where the request came from (client address), for the audit log
    csrf_token: str | None = None  # of the browser session; None for tokens and the CLI

    @property
    def can_write(self) -> bool:
        """May change things (within scope): county administrators and town operators."""
        return self.role in WRITER_ROLES

    @property
    def is_admin(self) -> bool:
        """Manages users and tokens: a county administrator."""
        return self.role == COUNTY_ADMIN

    @property
    def is_read_only(self) -> bool:
        return self.role == READ_ONLY

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    def can_see(self, center_code: str | None) -> bool:
        """Whether the center `center_code` is in this user's part of the county."""
        if self.division_prefix is None:
            return True
        return center_code is not None and center_code.startswith(self.division_prefix)

    def can_change(self, center_code: str | None) -> bool:
        return self.can_write and self.can_see(center_code)

    def scope_clause(self, code_column: Any) -> ColumnElement[bool]:
        """A WHERE clause keeping rows whose center code column is in scope."""
        if self.division_prefix is None:
            return true()
        return col(code_column).startswith(self.division_prefix, autoescape=True)


CLI_USER = CurrentUser(id=None, username="cli", role=COUNTY_ADMIN, division_prefix=None, via=VIA_CLI)
