"""Simulated twins of the hardware drivers in firmware/drivers."""

from __future__ import annotations

from collections.abc import Callable

from firmware.rating_pad.app import BUTTON_SCORES
from protocol import messages

HISTORY = 50


class SimPanel:
    """Twin of a panel driver: records what would be shown."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.history: list[list[str]] = []  # newest last, bounded

    def show_lines(self, lines: list[str]) -> None:
        self.lines = list(lines)
        self.history.append(self.lines)
        del self.history[:-HISTORY]


class SimButtons:
    """Twin of firmware.drivers.buttons.Buttons: press(score) is a finger on a button."""

    LABELS: tuple[tuple[int, str], ...] = tuple((score, messages.RATING_LABELS[score]) for score in BUTTON_SCORES)

    def __init__(self, on_press: Callable[[int], bool | None]) -> None:
        self.on_press = on_press

    def press(self, score: int) -> bool:
        if score not in BUTTON_SCORES:
            raise ValueError(f"no button for score {score!r}")
        return bool(self.on_press(score))
