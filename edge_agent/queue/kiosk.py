"""What the kiosk shows besides its buttons: a swiped ID card waiting for a service, the last scan's outcome.

A swiped card waits a minute for the resident to pick a service; the ticket
gets the green channel when the card holder is old enough. Only a
masked name and the age decision are kept, in memory, for a minute: never the
card's number, never its hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Protocol

CARD_PROMPT_S = 60.0  # how long a swiped card waits for the resident to pick a service
HELP_COMING_S = 120.0  # how long the kiosk says who is coming to help


class PresentedCard(Protocol):
    """What the kiosk needs from the ID card reader's ResidentCard (edge_agent/identity_card.py)."""

    name: str

    def age_on(self, day: date) -> int: ...


@dataclass(frozen=True)
class CardPrompt:
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
        self.help_asked_at: float | None = None  # 请工作人员帮助 pressed and nobody has gone yet
        self.help_coming = ""  # who went to help last
        self.help_given_at = 0.0

    def present_card(self, card: PresentedCard, today: date) -> CardPrompt:
        self.card = CardPrompt(masked(card.name),
                               card.age_on(today) >= self.green_channel_age, self.clock() + CARD_PROMPT_S)
        self.seq += 1
        return self.card

    def take_card(self) -> CardPrompt | None:
        """The card shown at the kiosk now, once; None when there is none or it has expired.

        No token goes to the kiosk page: the public state is readable by anyone on the LAN.
        """
        card = self.card
        if card is None or self.clock() > card.expires_at:
            return None
        self.card = None
        self.seq += 1
        return card

    def ask_for_help(self) -> None:
        if self.help_asked_at is None:  # pressing again while waiting changes nothing
            self.help_asked_at = self.clock()
            self.help_coming = ""
            self.seq += 1

    def help_given(self, staff_name: str) -> None:
        self.help_asked_at = None
        self.help_coming = staff_name
        self.help_given_at = self.clock()
        self.seq += 1

    def help_state(self) -> dict:
        coming = self.help_coming if self.clock() - self.help_given_at < HELP_COMING_S else ""
        return {"asked_at": self.help_asked_at, "coming": coming}

    def show(self, result: dict) -> None:
        self.result = result
        self.seq += 1

    def state(self) -> dict:
        card = self.card if self.card and self.clock() <= self.card.expires_at else None
        return {"seq": self.seq, "card": asdict(card) if card else None, "result": self.result}
