"""Tables of users, API tokens, browser sessions and the server's signing key."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from fleet.auth.schema import added_columns
from fleet.models import UTCDateTime, utcnow


class User(SQLModel, table=True):
    """A person (or a service account) using the dashboard or the API."""

    __tablename__ = "fleet_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    # The person's name as colleagues know it (王主任), shown e.g. as a case's assignee; None: the username.
    display_name: str | None = Field(default=None, max_length=64)
    password_hash: str | None = None  # argon2; None: no password login (tokens only)
    role: str = Field(max_length=16)
    # Centers whose division code starts with this; None = every center.
    division_prefix: str | None = Field(default=None, max_length=12)
    disabled: bool = False
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


added_columns("fleet_user", "display_name")


class ApiToken(SQLModel, table=True):
    """An API token of a user; only its SHA-256 is stored, the token is shown once."""

    __tablename__ = "fleet_api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="fleet_user.id", index=True)
    name: str = Field(max_length=64)
    token_hash: str = Field(unique=True, max_length=64)
    hint: str = Field(max_length=16)  # the first characters, to tell tokens apart
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked: bool = False


class WebSession(SQLModel, table=True):
    """A logged-in browser. The cookie holds the id (signed); we keep only its SHA-256."""

    __tablename__ = "fleet_web_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="fleet_user.id", index=True)
    csrf_token: str = Field(max_length=64)
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires: datetime = Field(sa_type=UTCDateTime, index=True)
    source: str | None = Field(default=None, max_length=64)


class SigningKey(SQLModel, table=True):
    """The key that signs session cookies, made once per database unless settings give one."""

    __tablename__ = "fleet_signing_key"

    name: str = Field(primary_key=True, max_length=32)
    value: str = Field(max_length=128)


LOCK_BY_USER = "user"  # failed logins counted per user name ...
LOCK_BY_SOURCE = "source"  # ... and per client address


class LoginFailure(SQLModel, table=True):
    """One failed login, counted against its user name and, in a second row, its client address.

    In the database, not in memory: every API replica sees the same count.
    """

    __tablename__ = "fleet_login_failure"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=8, index=True)  # LOCK_BY_USER or LOCK_BY_SOURCE
    key: str = Field(max_length=64, index=True)  # the user name or the client address
    at: datetime = Field(sa_type=UTCDateTime, index=True)


class LoginLock(SQLModel, table=True):
    """Logins for a user name or from a client address are refused until `until` (too many failures)."""

    __tablename__ = "fleet_login_lock"

    kind: str = Field(primary_key=True, max_length=8)
    key: str = Field(primary_key=True, max_length=64)
    locked_at: datetime = Field(sa_type=UTCDateTime)
    until: datetime = Field(sa_type=UTCDateTime)
    failures: int
