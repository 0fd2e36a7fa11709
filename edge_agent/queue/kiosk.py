"""What the kiosk shows besides its buttons: a swiped ID card waiting for a service, the last scan's outcome.

A swiped card gives a short-lived token; the resident then picks a service and
the ticket gets the green channel when the card holder is old enough. Only a
masked name and the age decision are kept, in memory, for a minute: never the
card's number, never its hash.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Protocol

CARD_PROMPT_S = 60.0  # how long a swiped card waits for the resident to pick a service


class PresentedCard(Protocol):
    """What the kiosk needs from the ID card reader's ResidentCard (edge_agent/identity_card.py)."""

    name: str

    def age_on(self, day: date) -> int: ...


@dataclass(frozen=True)
class CardPrompt:
    token: str
    name_masked: str
    green: bool
    expires_at: float


def masked(name: str) -> str:
    return (name[:1] + "*" * max(1, len(name) - 1)) if name else ""


class KioskDesk:
    def __init__(self, green_channel_age: int, clock: Callable[[], float] = time.time) -> None:
        self.green_channel_age = green_channel_age
        self.clock = clock
        self.card: CardPrompt | None = None
        self.result: dict | None = None
        self.seq = 0  # increases with every change, so a page shows each prompt and result once

    def present_card(self, card: PresentedCard, today: date) -> CardPrompt:
        self.card = CardPrompt(secrets.token_hex(8), masked(card.name),
                               card.age_on(today) >= self.green_channel_age, self.clock() + CARD_PROMPT_S)
        self.seq += 1
        return self.card

    def take_card(self, token: str) -> CardPrompt | None:
        """The prompt a token refers to, once; None when it is unknown or expired."""
        card = self.card
        if card is None or not secrets.compare_digest(card.token, token) or self.clock() > card.expires_at:
            return None
        self.card = None
        self.seq += 1
        return card

    def show(self, result: dict) -> None:
        self.result = result
        self.seq += 1

    def state(self) -> dict:
        card = self.card if self.card and self.clock() <= self.card.expires_at else None
        return {"seq": self.seq, "card": asdict(card) if card else None, "result": self.result}
