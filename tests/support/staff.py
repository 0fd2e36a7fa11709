"""A window's staff caller driven over HTTP the way its page does: signed in with 工号 + PIN, then buttons.

Every ticket action names what the window shows (its number served and its call count), so a test that
presses 下一位 first reads the window's state, as the page has it from its live updates.
"""

from __future__ import annotations

import httpx

from edge_agent.sign_in import hash_secret

ADMIN_PASSWORD = "test-center-admin"
ADMIN_HASH = hash_secret(ADMIN_PASSWORD)  # [admin] password_hash of the test centers
ADMIN_TOML = f'[admin]\npassword_hash = "{ADMIN_HASH}"\n'
PINS = {"1001": "100101", "1002": "100202", "1003": "100303", "1009": "100909"}
WINDOW_STAFF = {1: "1001", 2: "1002", 3: "1003"}  # each test center window's own staff

NAMES_TICKET = {"skip", "finish", "transfer"}
NAMES_CALL = {"next", "recall"}


def set_pins(base: str, pins: dict[str, str] = PINS) -> None:
    """The center administrator gives the staff their PINs (as on /admin)."""
    with httpx.Client(base_url=base) as admin:
        admin.post("/api/admin/login", json={"password": ADMIN_PASSWORD}).raise_for_status()
        staff = {m["staff_no"] for m in admin.get("/api/admin/staff").json()}
        for staff_no, pin in pins.items():
            if staff_no in staff:  # the centers of the tests differ in their stand-ins
                admin.post(f"/api/admin/staff/{staff_no}/pin", json={"pin": pin}).raise_for_status()


def window_seen(base: str, window: int) -> dict:
    """What the window's caller page shows now: the number served ("" for none) and the call count."""
    state = httpx.get(f"{base}/api/state").json()
    w = next(w for w in state["windows"] if w["number"] == window)
    return {"ticket": w["ticket"], "call_seq": w["call_seq"]}


class Caller:
    """One browser at one window's caller: its session cookie rides along with every request."""

    def __init__(self, base: str, window: int) -> None:
        self.base, self.window = base, window
        self.client = httpx.Client(base_url=base)

    def sign_in(self, staff_no: str | None = None, pin: str | None = None) -> httpx.Response:
        staff_no = staff_no or WINDOW_STAFF[self.window]
        return self.client.post(f"/api/windows/{self.window}/login",
                                json={"staff_no": staff_no, "pin": PINS[staff_no] if pin is None else pin})

    def press(self, action: str, **body) -> httpx.Response:
        """POST a window action naming what the window shows now (extra fields, e.g. a transfer's target)."""
        seen = window_seen(self.base, self.window)
        if action in NAMES_CALL:
            body = {**seen, **body}
        elif action in NAMES_TICKET:
            body = {"ticket": seen["ticket"], **body}
        return self.client.post(f"/api/windows/{self.window}/{action}", json=body)

    def post(self, path: str, **body) -> httpx.Response:
        return self.client.post(path, json=body)

    def close(self) -> None:
        self.client.close()


def signed_in(base: str, window: int, pins_set: bool = False) -> Caller:
    """A caller signed in by the window's own staff (PINs set first unless `pins_set`)."""
    if not pins_set:
        set_pins(base)
    caller = Caller(base, window)
    caller.sign_in().raise_for_status()
    return caller
