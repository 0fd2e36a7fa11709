"""API tokens: random, shown once, stored as SHA-256 (they are long and random, so no slow hash is needed)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from fleet.auth.models import ApiToken, User
from fleet.db import write_session

TOKEN_PREFIX = "fleet_"
# last_used is refreshed at most this often, so automation polling the API does not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the token itself (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 64:
        raise ValueError("token name: 1 to 64 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=token_hash(token), hint=token[:10])
    session.add(row)
    session.flush()
    return row, token


def find_token(session: Session, token: str) -> ApiToken | None:
    """The unrevoked token row for `token`, else None."""
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash(token))).first()
    return None if row is None or row.revoked else row


def touch_token(engine: Engine, row: ApiToken, now: datetime) -> None:
    """Record that the token was used (at most once per LAST_USED_RESOLUTION)."""
    if row.last_used is not None and now - row.last_used <= LAST_USED_RESOLUTION:
        return
    with write_session(engine) as session:
        session.exec(update(ApiToken).where(col(ApiToken.id) == row.id).values(last_used=now))


def list_tokens(session: Session, user_ids: list[int]) -> list[ApiToken]:
    query = select(ApiToken).where(col(ApiToken.user_id).in_(user_ids)).order_by(col(ApiToken.id))
    return list(session.exec(query).all())


def revoke_token(session: Session, token_id: int) -> ApiToken | None:
    row = session.get(ApiToken, token_id)
    if row is not None and not row.revoked:
        row.revoked = True
        session.add(row)
    return row
