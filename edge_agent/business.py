"""The window's business system: its evaluation interface (评价接口) on the edge.

How vendors wire 好差评: the window's business system finishes a case, gets its 办件编号 and calls the
evaluation interface with the case's data; the window's pad then asks the resident, and the rating reaches the
province's 好差评 system with that 办件编号 (through the fleet, fleet.province). Here the call is
`POST /api/business/rating` with a bearer token: the center's config holds only the token's SHA-256
(`[business_system] token_sha256`), so the file gives the token away to nobody who reads it. Without that
setting every call is refused: an open interface would let anyone on the LAN close a resident's ticket.
"""

from __future__ import annotations

import hashlib
import hmac

TOKEN_MIN_CHARS = 24  # a random token (`python -m edge_agent business-token` prints one and its hash)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def token_matches(expected_sha256: str, authorization: str | None) -> bool:
    token = bearer_token(authorization)
    if token is None:
        return False
    return hmac.compare_digest(token_sha256(token), expected_sha256)
