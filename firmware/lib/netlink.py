"""Keeps the board's network link (Wi-Fi or Ethernet) up, without ever blocking.

The driver is a plain object (firmware/drivers/wifi.py WifiLink,
firmware/drivers/ethernet.py EthernetLink, or the simulated twin
firmware.sim.hardware.SimNetwork) with:

    start()       begin connecting; returns at once
    is_up()       True once the board has an address
    reconnect()   drop and begin connecting again; returns at once
    mac()         the MAC the device id comes from
    rssi()        signal in dBm, or None (Ethernet)

LinkSupervisor decides, on every tick, whether to kick the driver: once
the link has been down longer than `grace_ms` (the radio's own
reconnection gets a chance first), it calls reconnect(), then waits longer
after each failed try (exponential backoff with jitter, up to
`backoff_max_ms`) so a whole center of devices does not hammer an access
point coming back. The MQTT client owns its own reconnection on top.

Only one tick is kept while the link is down: when the next kick is due,
always less than backoff_max_ms ahead. (The moment the link went down would
be 2**29 ms old after 6.2 days, when ticks_diff turns negative and the grace
would seem never to end: the link would not be kicked again for days.)
"""

import random

from firmware.lib.clock import ticks_add, ticks_diff

GRACE_MS = 15000
BACKOFF_MIN_MS = 5000
BACKOFF_MAX_MS = 120000


class LinkSupervisor:
    def __init__(self, driver, grace_ms=GRACE_MS, backoff_min_ms=BACKOFF_MIN_MS, backoff_max_ms=BACKOFF_MAX_MS,
                 log=print):
        self.driver = driver
        self.grace_ms = grace_ms
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.up = False
        self.attempts = 0  # reconnect() calls since the link was last up
        self.reconnects = 0  # reconnect() calls since boot
        self.last_error = None
        self._next_try = None  # tick the next reconnect() is due, while down
        self._log = log

    def step(self, now_ms):
        """Call periodically. Returns True while the link is up."""
        try:
            up = bool(self.driver.is_up())
        except Exception as exc:  # a driver fault is a down link, never a crash
            self.last_error = "network: %s" % exc
            up = False
        if up:
            if not self.up and self._log is not None:
                self._log("network: up")
            self.up = True
            self.attempts = 0
            self._next_try = None
            return True
        if self.up or self._next_try is None:
            self._next_try = ticks_add(now_ms, self.grace_ms)
            if self.up and self._log is not None:
                self._log("network: down")
        self.up = False
        wait = -ticks_diff(now_ms, self._next_try)
        # Never set further ahead than the grace or the longest pause: more means a stale tick, so kick now.
        if 0 < wait <= max(self.grace_ms, self.backoff_max_ms):
            return False
        self.attempts += 1
        self.reconnects += 1
        try:
            self.driver.reconnect()
        except Exception as exc:
            self.last_error = "network reconnect: %s" % exc
        self._next_try = ticks_add(now_ms, self.delay_ms(self.attempts))
        return False

    def delay_ms(self, attempt):
        """Wait after the attempt-th failed try: doubles from backoff_min_ms, jitter in [base/2, base)."""
        base = self.backoff_min_ms
        for _ in range(attempt - 1):
            base *= 2
            if base >= self.backoff_max_ms:
                base = self.backoff_max_ms
                break
        return base // 2 + (base // 2) * random.getrandbits(16) // 65536
