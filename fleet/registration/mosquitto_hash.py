"""Broker passwords as Mosquitto 2 stores them: `$7$<iterations>$<base64 salt>$<base64 hash>`.

PBKDF2-HMAC-SHA512 with a 12-byte salt and a 64-byte hash, what `mosquitto_passwd` writes by
default (sha512-pbkdf2). The passwords are 32 random bytes, so the iteration count does not
protect them; it only has to be one Mosquitto accepts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

ITERATIONS = 1000
SALT_BYTES = 12
HASH_BYTES = 64
PREFIX = "$7$"


def new_password() -> str:
    """A fresh random broker password (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def hash_password(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    return f"{PREFIX}{iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `$7$` hash (what Mosquitto checks on CONNECT)."""
    parts = stored.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]), len(expected))
    return hmac.compare_digest(digest, expected)


def passwd_line(username: str, password_hash: str) -> str:
    if ":" in username or "\n" in username:
        raise ValueError(f"broker user name {username!r} cannot go in a password file")
    return f"{username}:{password_hash}"
