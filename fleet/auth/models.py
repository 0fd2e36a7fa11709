"""Tables of users, API tokens, browser sessions and the server's signing key."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from fleet.models import UTCDateTime, utcnow


class User(SQLModel, table=True):
    """A person (or a service account) using the dashboard or the API."""

    __tablename__ = "fleet_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    password_hash: str | None = None  # argon2; None: no password login (tokens only)
    role: str = Field(max_length=16)
    # Centers whose division code starts with this; None = every center.
    division_prefix: str | None = Field(default=None, max_length=12)
    disabled: bool = False
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


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
