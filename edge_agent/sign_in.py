"""Who may act at the center's pages: staff signed in at a window with 工号 + PIN, and the center administrator.

A staff session is bound to one window: the caller of window 3 acts only on window 3. It ends with sign-out,
when someone else signs in at that window, and with the business day. PINs and the administrator's password
are stored as scrypt hashes; wrong guesses are throttled per staff number (and for the administrator) and per
address, so a 6-digit PIN cannot be tried through from the center's LAN. Session tokens are stored hashed too:
a copy of the database opens no window.

Business rules only: the web app turns these into cookies and HTTP answers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.config import CenterConfig
from edge_agent.queue.service import QueueService
from edge_agent.store import EdgeStore

PIN_DIGITS = (4, 8)  # a PIN is 4 to 8 digits: typed on the caller's touch screen
MAX_FAILURES = 5  # wrong PINs in a row for one staff number (or one address) before a pause
ADDRESS_FAILURES = 20  # an address guessing across many staff numbers pauses later, but pauses
LOCKOUT_S = 300.0
ADMIN = "admin"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class SignInRefused(Exception):
    """A sign-in or a PIN change that cannot be done (shown to staff in Chinese)."""


def hash_secret(secret: str) -> str:
    """scrypt$<salt>$<hash>: what the store and the config keep of a PIN or a password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        kind, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        actual = hashlib.scrypt(secret.encode("utf-8"), salt=bytes.fromhex(salt), **_SCRYPT)
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class StaffSession:
    staff_no: str
    name: str
    window: int  # 0 for the administrator


class Throttle:
    """Failures per key (a staff number, an address) with a pause after too many; memory only."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.failures: dict[str, tuple[int, float]] = {}  # key -> (count, paused until)

    def paused(self, key: str) -> bool:
        count, until = self.failures.get(key, (0, 0.0))
        return until > self.clock()

    def failed(self, key: str, limit: int) -> None:
        count, until = self.failures.get(key, (0, 0.0))
        if until and until <= self.clock():
            count = 0  # the pause is over: start counting again
        count += 1
        self.failures[key] = (count, self.clock() + LOCKOUT_S if count >= limit else 0.0)

    def succeeded(self, key: str) -> None:
        self.failures.pop(key, None)


class SignIn:
    def __init__(self, store: EdgeStore, config: CenterConfig, queue: QueueService,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.config, self.queue, self.clock = store, config, queue, clock
        self.throttle = Throttle(clock)

    # -- PINs (the administrator sets them) --------------------------------

    def set_pin(self, staff_no: str, pin: str) -> None:
        try:
            self.config.staff_member(staff_no)
        except KeyError:
            raise SignInRefused("工号不存在，请核对") from None
        low, high = PIN_DIGITS
        if not (pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
            raise SignInRefused(f"密码须为{low}至{high}位数字")
        with self.store.transaction() as db:
            db.execute("INSERT INTO staff_pins (staff_no, pin_hash, set_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (staff_no) DO UPDATE SET pin_hash = excluded.pin_hash, set_at = excluded.set_at",
                       (staff_no, hash_secret(pin), self.clock()))
            # A new PIN ends the sessions opened with the old one.
            db.execute("UPDATE staff_sessions SET closed_at = ? WHERE staff_no = ? AND closed_at IS NULL",
                       (self.clock(), staff_no))

    def staff_list(self) -> list[dict]:
        with_pin = {r[0] for r in self.store.query("SELECT staff_no FROM staff_pins")}
        return [{"staff_no": m.staff_no, "name": m.name, "windows": list(self.allowed_windows(m.staff_no)),
                 "has_pin": m.staff_no in with_pin} for m in self.config.staff]

    def allowed_windows(self, staff_no: str) -> tuple[int, ...]:
        member = self.config.staff_member(staff_no)
        return member.windows or tuple(w.number for w in self.config.windows)

    # -- signing in and out -----------------------------------------------

    def _check(self, keys: tuple[str, str], secret: str, stored: str | None, limit: int) -> None:
        if any(self.throttle.paused(k) for k in keys):
            raise SignInRefused(f"尝试次数过多，请{int(LOCKOUT_S // 60)}分钟后再试")
        # Hash even without a stored secret, so the answer's timing does not tell which staff numbers exist.
        ok = verify_secret(secret, stored or hash_secret("-"))
        if not ok or stored is None:
            self.throttle.failed(keys[0], limit)
            self.throttle.failed(keys[1], ADDRESS_FAILURES)
            raise SignInRefused("工号或密码错误")
        for key in keys:
            self.throttle.succeeded(key)

    def _open_session(self, db, staff_no: str, window: int) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        db.execute("INSERT INTO staff_sessions (token_hash, staff_no, window, business_day, created_at) "
                   "VALUES (?, ?, ?, ?, ?)", (_token_hash(token), staff_no, window, self.queue.today(now), now))
        return token

    def sign_in(self, window: int, staff_no: str, pin: str, address: str) -> str:
        """工号 + PIN at a window's caller: the window opens (考勤 starts) and a session token is returned."""
        staff_no = staff_no.strip()
        rows = self.store.query("SELECT pin_hash FROM staff_pins WHERE staff_no = ?", (staff_no,))
        self._check((f"staff:{staff_no}", f"address:{address}"), pin, rows[0][0] if rows else None, MAX_FAILURES)
        if window not in self.allowed_windows(staff_no):
            raise SignInRefused(f"工号 {staff_no} 不能在{window}号窗口登录")
        self.queue.login(window, staff_no)  # refuses a staff member signed in at another window
        with self.store.transaction() as db:
            # Whoever was signed in at this window before is not any more.
            db.execute("UPDATE staff_sessions SET closed_at = ? WHERE window = ? AND closed_at IS NULL",
                       (self.clock(), window))
            return self._open_session(db, staff_no, window)

    def admin_sign_in(self, password: str, address: str) -> str:
        self._check((ADMIN, f"address:{address}"), password, self.config.admin_password_hash, MAX_FAILURES)
        with self.store.transaction() as db:
            return self._open_session(db, ADMIN, 0)

    def session(self, token: str | None) -> StaffSession | None:
        """The open session a token belongs to; None when unknown, signed out or of an earlier day."""
        if not token:
            return None
        rows = self.store.query("SELECT staff_no, window, business_day FROM staff_sessions "
                                "WHERE token_hash = ? AND closed_at IS NULL", (_token_hash(token),))
        if not rows:
            return None
        staff_no, window, day = rows[0]
        if day != self.queue.today():
            self.end_day()
            return None
        if staff_no == ADMIN:
            return StaffSession(ADMIN, "中心管理员", 0)
        state = self.queue.window_states().get(window)
        if state is None or state.staff_no != staff_no:  # signed out at the window, or replaced there
            return None
        return StaffSession(staff_no, state.staff_name or "", window)

    def sign_out(self, token: str) -> StaffSession | None:
        """Close the session; a staff member's window closes too (考勤 ends)."""
        current = self.session(token)
        if current is not None and current.window:
            self.queue.logout(current.window)
        with self.store.transaction() as db:
            db.execute("UPDATE staff_sessions SET closed_at = ? WHERE token_hash = ? AND closed_at IS NULL",
                       (self.clock(), _token_hash(token)))
        return current

    def end_day(self) -> int:
        """Close the sessions of earlier business days, and sign their staff out of their windows."""
        today = self.queue.today()
        stale = self.store.query("SELECT DISTINCT window FROM staff_sessions WHERE closed_at IS NULL "
                                 "AND business_day != ? AND window != 0", (today,))
        with self.store.transaction() as db:
            closed = db.execute("UPDATE staff_sessions SET closed_at = ? WHERE closed_at IS NULL "
                                "AND business_day != ?", (self.clock(), today)).rowcount
        for (window,) in stale:
            self.queue.end_of_day_logout(window, today)
        return closed
