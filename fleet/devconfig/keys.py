"""Device keys: kept encrypted at rest, decrypted only to sign.

The encryption key is derived (HKDF-SHA256) from a server secret: the setting
`device_key_secret` (FLEET_DEVICE_KEY_SECRET), or else a random secret the fleet
creates once in `<data_dir>/device-key-secret` (mode 0600) — outside the
database, so a copy of the database alone does not give away the keys. Each
key is sealed with AES-256-GCM, the device id as associated data (a row copied
to another device does not decrypt). Keys appear in no API answer, page or log:
only a short fingerprint does.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlmodel import Session

from fleet.devconfig.models import DeviceKey
from fleet.settings import Settings
from protocol.identity import check_device_id

log = logging.getLogger(__name__)

SECRET_FILE = "device-key-secret"
KEY_BYTES = 32
MIN_KEY_BYTES = 16
_PREFIX = "v1:"


class DeviceKeyError(ValueError):
    """A key that cannot be used or stored (wrong length, not hex, does not decrypt)."""


def server_secret(settings: Settings) -> bytes:
    if settings.device_key_secret is not None:
        return settings.device_key_secret.get_secret_value().encode()
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        log.info("created %s for encrypting device keys; keep it with (but apart from) the database", path)
    return path.read_text().strip().encode()


class KeyBox:
    """Seals and opens device keys with the key derived from the server secret."""

    def __init__(self, secret: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"fleet-device-keys",
                       info=b"device key encryption v1").derive(secret)
        self._aead = AESGCM(derived)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyBox:
        return cls(server_secret(settings))

    def seal(self, device_id: str, key: bytes) -> str:
        nonce = os.urandom(12)
        return _PREFIX + base64.b64encode(nonce + self._aead.encrypt(nonce, key, device_id.encode())).decode()

    def open(self, device_id: str, sealed: str) -> bytes:
        if not sealed.startswith(_PREFIX):
            raise DeviceKeyError("unknown key format")
        raw = base64.b64decode(sealed[len(_PREFIX):])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], device_id.encode())
        except InvalidTag as exc:
            raise DeviceKeyError("device key does not decrypt (wrong server secret?)") from exc


def fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:12]


def parse_key_hex(text: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise DeviceKeyError("device key must be hex") from exc
    if len(key) < MIN_KEY_BYTES:
        raise DeviceKeyError(f"device key must be at least {MIN_KEY_BYTES} bytes")
    return key


def set_key(session: Session, box: KeyBox, device_id: str, key: bytes, username: str, now: datetime) -> DeviceKey:
    check_device_id(device_id)
    if len(key) < MIN_KEY_BYTES:
        raise DeviceKeyError(f"device key must be at least {MIN_KEY_BYTES} bytes")
    row = session.get(DeviceKey, device_id) or DeviceKey(device_id=device_id, encrypted="", fingerprint="",
                                                         updated_by=username)
    row.encrypted, row.fingerprint, row.updated_at, row.updated_by = box.seal(device_id, key), fingerprint(key), \
        now, username
    session.add(row)
    return row


def generate_key(session: Session, box: KeyBox, device_id: str, username: str, now: datetime) -> bytes:
    """A new random key for `device_id` (stored sealed); the caller hands it to provisioning once."""
    key = secrets.token_bytes(KEY_BYTES)
    set_key(session, box, device_id, key, username, now)
    return key


def get_key(session: Session, box: KeyBox, device_id: str) -> bytes | None:
    row = session.get(DeviceKey, device_id)
    return None if row is None else box.open(device_id, row.encrypted)
