"""Pressing a staff caller's buttons over HTTP the way its page does.

Every ticket action names what the window shows (its number served and its call count), so a test that
presses 下一位 first reads the window's state, as the page has it from its live updates.
"""

from __future__ import annotations

import httpx

NAMES_TICKET = {"skip", "finish", "transfer"}
NAMES_CALL = {"next", "recall"}


def window_seen(base: str, window: int) -> dict:
    """What the window's caller page shows now: the number served ("" for none) and the call count."""
    state = httpx.get(f"{base}/api/state").json()
    w = next(w for w in state["windows"] if w["number"] == window)
    return {"ticket": w["ticket"], "call_seq": w["call_seq"]}


def press(base: str, window: int, action: str, **body) -> httpx.Response:
    """POST a window action naming what the window shows now (extra fields, e.g. a transfer's target, in body)."""
    seen = window_seen(base, window)
    if action in NAMES_CALL:
        body = {**seen, **body}
    elif action in NAMES_TICKET:
        body = {"ticket": seen["ticket"], **body}
    return httpx.post(f"{base}/api/windows/{window}/{action}", json=body)
