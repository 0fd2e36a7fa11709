"""Which presence message is news: one rule for the edge agent, the fleet and the device itself.

A device (or edge agent) says who it is with two numbers in every birth, last will and heartbeat:

- `boot`, a random id drawn at every start of its program (`new_boot_id`);
- `session`, a counter kept in flash that grows by one before every CONNECT.

Within one boot the counter orders the connections, so a late will of an
earlier connection cannot mark a reconnected device offline. Across boots
the counter cannot be trusted: a board whose session file was lost (a torn
write, a worn sector, a full or read-only flash) starts again at 1, and must
still be seen. So a birth or a heartbeat of another boot is news, whatever
its counter (the newest by arrival wins), while a will of another boot is
not: it is the late will of a boot that has ended (its broker noticed the
old connection's death only after the board was back; rule 5 of
docs/protocol.md has the board repair the retained copy) or of a boot whose
birth never arrived, which the watcher's heartbeat timeout covers.

A counter far ahead of the stored one is not believed: no board connects a
hundred thousand times unseen, but a forged birth with session 2147483647,
once stored, would make every later real message of the device look old and
freeze its presence for ever. Such a message is SUSPECT: ignored, and the
watcher counts and logs it. (A board whose counter was lost and starts at 1
is never suspect: it is below the stored counter, not above.)

`judge(stored_boot, stored_session, stored_ended, kind, boot, session)`,
stored = what the watcher holds (`stored_ended`: that session ended with its
will), incoming = `kind` (BIRTH, WILL or HEARTBEAT) with `boot`, `session`;
a message without `boot` (older senders) has the boot None, which is a boot
of its own:

    stored               incoming                                    verdict  why
    -------------------  ------------------------------------------  -------  --------------------------------------
    nothing              anything                                    NEW      first news of the device
    boot B, session S    session > S + MAX_SESSION_JUMP (any boot)   SUSPECT  not believed: would block all later news
    boot B, session S    birth or heartbeat of another boot          NEW      a new boot; counter restarted or not
    boot B, session S    will of another boot                        STALE    a boot that ended, or one never seen
    boot B, session S    boot B, session < S                         STALE    an older connection of this boot
    boot B, session S    boot B, S < session <= S + MAX_SESSION_JUMP NEW      a reconnection
    boot B, session S    boot B, session S, will                     CURRENT  the connection has ended
    boot B, session S    boot B, session S, birth or heartbeat       CURRENT  the connection is alive (a refresh)
    S ended by its will  boot B, session S, birth or heartbeat       STALE    an ended connection cannot revive

NEW and CURRENT are applied (NEW replaces the stored boot and session),
STALE and SUSPECT are not. The rule runs the same on CPython and MicroPython.
"""

import binascii

from protocol.messages import ONLINE

BIRTH = "birth"
WILL = "will"
HEARTBEAT = "heartbeat"

NEW = "new"  # a newer connection (or the first news): apply it, and keep its boot and session
CURRENT = "current"  # the stored connection itself: apply it (a will ends it)
STALE = "stale"  # older news: ignore it
SUSPECT = "suspect"  # a counter too far ahead to believe: ignore it, count it, log it
APPLIED = (NEW, CURRENT)

# More connections than a board makes unseen in months of a reconnect a minute (1,440 a day), and far less
# than the 2,147,483,647 a 32-bit counter allows: a jump beyond this is a forgery or a broken sender.
MAX_SESSION_JUMP = 100000

BOOT_ID_BYTES = 4  # 8 hex digits: two boots of one board share an id once in four billion


def judge(stored_boot, stored_session, stored_ended, kind, boot, session):
    """The verdict (NEW, CURRENT, STALE or SUSPECT) on news `kind` of (`boot`, `session`); see the table above.

    `stored_session` None: nothing is stored yet.
    """
    if stored_session is None:
        return NEW
    if session > stored_session + MAX_SESSION_JUMP:
        return SUSPECT
    if boot != stored_boot:
        return STALE if kind == WILL else NEW
    if session < stored_session:
        return STALE
    if session > stored_session:
        return NEW
    if kind == WILL or not stored_ended:
        return CURRENT
    return STALE


def kind_of(name, payload):
    """BIRTH, WILL or HEARTBEAT for a validated payload of message kind `name` ("presence" or "health")."""
    if name == "health":
        return HEARTBEAT
    return BIRTH if payload.get("state") == ONLINE else WILL


def new_boot_id():
    """A fresh random boot id (hex), drawn once at every start of the program."""
    try:
        import os

        raw = os.urandom(BOOT_ID_BYTES)
    except (ImportError, AttributeError, NotImplementedError):
        import random  # a port without os.urandom: MicroPython seeds it from the hardware RNG

        raw = bytes([random.getrandbits(8) for _ in range(BOOT_ID_BYTES)])
    return binascii.hexlify(raw).decode()
