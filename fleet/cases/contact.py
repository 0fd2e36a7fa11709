"""The phone number a resident left for the callback of their 差评: on its case only, sealed, seen by one person.

The edge sends it once (callback_phone, docs/protocol.md) and forgets it when the fleet acknowledges it. Here
it is kept in one place, the case's `callback_phone_sealed`: AES-256-GCM with a key derived from the server
secret (as device keys are, fleet.devconfig.keys, but a key of its own) and the case's id as associated data,
so a sealed number copied to another case does not open. It is opened only for the page of the case's assignee;
no list, API answer, audit entry or log line holds it, and the case's timeline says only that a number was
left. `erase_callback_phones` (a periodic job) erases it `callback_phone_keep_days` after the case closed.
"""

from __future__ import annotations

import base64
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlmodel import Session, col, select

from fleet.auth.principal import CurrentUser
from fleet.cases.models import CLOSED, CaseAction, FollowUpCase
from fleet.devconfig.keys import server_secret
from fleet.models import RatingEvent
from fleet.settings import Settings
from protocol.messages import BAD_SCORES

log = logging.getLogger(__name__)

SYSTEM = "system"
_PREFIX = "p1:"

# What the ingest makes of a callback_phone message (its outcome names, fleet.ingest).
STORED = "stored"
WAITING = "waiting"  # the rating is not stored yet: not acknowledged, the edge sends it again
DISCARDED = "discarded"  # not for a 差评's case, or its number was erased already: acknowledged, not kept


class ContactBox:
    """Seals and opens callback phone numbers, each bound to its case."""

    def __init__(self, secret: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"fleet-callback-phone",
                       info=b"callback phone encryption v1").derive(secret)
        self._aead = AESGCM(derived)

    def seal(self, case_id: int, phone: str) -> str:
        nonce = os.urandom(12)
        return _PREFIX + base64.b64encode(nonce + self._aead.encrypt(nonce, phone.encode(), _bound(case_id))).decode()

    def open(self, case_id: int, sealed: str) -> str | None:
        """The number, or None when it does not open (another case's, another server secret)."""
        if not sealed.startswith(_PREFIX):
            return None
        raw = base64.b64decode(sealed[len(_PREFIX):])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], _bound(case_id)).decode()
        except InvalidTag:
            return None


def _bound(case_id: int) -> bytes:
    return f"followup_case:{case_id}".encode()


_BOXES: dict[tuple[str, str], ContactBox] = {}


def contact_box(settings: Settings) -> ContactBox:
    """The box of `settings`' server secret (made once per secret: the key derivation is not free)."""
    key = (settings.device_key_secret.get_secret_value() if settings.device_key_secret else "",
           str(settings.data_dir))
    box = _BOXES.get(key)
    if box is None:
        box = _BOXES[key] = ContactBox(server_secret(settings))
    return box


def record_callback_phone(session: Session, box: ContactBox, center_code: str, payload: dict[str, Any],
                          now: datetime, keep_days: int) -> str:
    """Seal the number of a callback_phone message into its rating's case; returns STORED, WAITING or DISCARDED.

    A later number for the same case replaces the earlier one (the resident corrected it at the kiosk).
    """
    rating = session.exec(select(RatingEvent).where(RatingEvent.center_code == center_code,
                                                    RatingEvent.rating_id == payload["rating_id"])).first()
    if rating is None:
        return WAITING
    if rating.score not in BAD_SCORES:
        log.warning("center %s: a callback phone for rating %s, which is not a 差评, was not kept", center_code,
                    payload["rating_id"])
        return DISCARDED
    case = session.exec(select(FollowUpCase).where(FollowUpCase.rating_event_id == rating.id)).first()
    if case is None or case.id is None:
        return WAITING  # the case job opens it; the edge sends the number again
    if case.callback_phone_erased_at is not None or _past_keeping(case, now, keep_days):
        return DISCARDED
    case.callback_phone_sealed = box.seal(case.id, payload["phone"])
    case.callback_phone_at = now
    session.add(case)
    session.add(CaseAction(case_id=case.id, at=now, username=SYSTEM, action="callback_phone",
                           note="群众留下回访电话（仅责任人可见）"))
    return STORED


def _past_keeping(case: FollowUpCase, now: datetime, keep_days: int) -> bool:
    return case.state == CLOSED and case.closed_at is not None and now - case.closed_at >= timedelta(days=keep_days)


@dataclass(frozen=True)
class PhoneView:
    """What a user may see of a case's callback phone."""

    state: str  # none, hidden (left, not for this user), shown, erased
    phone: str | None = None


def visible_phone(box: ContactBox, case: FollowUpCase, user: CurrentUser) -> PhoneView:
    """The number for the case's assignee; for anyone else only whether one was left."""
    if case.callback_phone_sealed is None:
        return PhoneView("erased" if case.callback_phone_erased_at is not None else "none")
    if user.id is None or case.assignee_user_id != user.id or case.id is None:
        return PhoneView("hidden")
    phone = box.open(case.id, case.callback_phone_sealed)
    return PhoneView("shown", phone) if phone is not None else PhoneView("hidden")


def erase_callback_phones(session: Session, now: datetime, keep_days: int) -> int:
    """Erase the number of every case closed `keep_days` or more before `now`; returns how many."""
    cutoff = now - timedelta(days=keep_days)
    due = session.exec(select(FollowUpCase).where(col(FollowUpCase.callback_phone_sealed).is_not(None),
                                                  FollowUpCase.state == CLOSED,
                                                  col(FollowUpCase.closed_at) <= cutoff)).all()
    for case in due:
        case.callback_phone_sealed = None
        case.callback_phone_erased_at = now
        session.add(case)
        assert case.id is not None
        session.add(CaseAction(case_id=case.id, at=now, username=SYSTEM, action="callback_phone_erased",
                               note=f"办结 {keep_days} 天后删除回访电话"))
    if due:
        log.info("erased the callback phone of %d closed cases", len(due))
    return len(due)
