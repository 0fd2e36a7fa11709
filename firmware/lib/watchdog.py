"""Feed the hardware watchdog only while the firmware is making progress.

Feeding from a timer or from any task that happens to run would keep a
board alive whose main loop is stuck (a task died, a coroutine waits for
ever): the wall display would freeze instead of rebooting. So each part
that must keep working beats its own named heart (`beat("tick", now_ms)`),
each with a deadline; the watchdog is fed only while every heart beat
within its deadline. A stalled part stops the feeding, and the hardware
watchdog (machine.WDT via firmware/drivers/wdt.py, or its simulated twin)
resets the board.

ProgressMonitor is pure (time comes in as now_ms); WatchdogFeeder adds the
driver: `feed_if_alive(now_ms)` is called periodically by the runtime.
"""

from firmware.lib.clock import ticks_diff


class ProgressMonitor:
    def __init__(self, deadlines_ms):
        """deadlines_ms: {name: longest gap in ms between two beats of that part}."""
        self.deadlines_ms = dict(deadlines_ms)
        self._last = {}

    def start(self, now_ms):
        """Every heart counts as having beaten now (the board just booted)."""
        for name in self.deadlines_ms:
            self._last[name] = now_ms

    def beat(self, name, now_ms):
        if name not in self.deadlines_ms:
            raise ValueError("unknown progress source %r" % (name,))
        self._last[name] = now_ms

    def stalled(self, now_ms):
        """Names of the parts that have not beaten within their deadline (sorted)."""
        out = []
        for name in self.deadlines_ms:
            last = self._last.get(name)
            # A beat is never in the future: a negative gap is one of more than 2**29 ms (half the ticks
            # period), a stall, not a beat just now.
            if last is None or not 0 <= ticks_diff(now_ms, last) <= self.deadlines_ms[name]:
                out.append(name)
        out.sort()
        return out

    def alive(self, now_ms):
        return not self.stalled(now_ms)


class WatchdogFeeder:
    """Feeds `driver` (anything with feed()) while `monitor` says alive."""

    def __init__(self, monitor, driver, log=print):
        self.monitor = monitor
        self.driver = driver
        self.feeds = 0
        self.starved = None  # names of the stalled parts once feeding stopped, for the log
        self._log = log

    def feed_if_alive(self, now_ms):
        stalled = self.monitor.stalled(now_ms)
        if stalled:
            if self.starved != stalled:
                self.starved = stalled
                if self._log is not None:
                    self._log("watchdog: not fed, no progress from %s" % ", ".join(stalled))
            return False
        self.starved = None
        self.driver.feed()
        self.feeds += 1
        return True
