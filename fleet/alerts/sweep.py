"""A thread that runs periodic jobs (alert rules, case deadlines, config drift, command time-outs).

Each job is a plain function of the current time; a failing job is logged and
retried at its next turn, never stopping the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    interval_s: float
    run: Callable[[datetime], object]
    last: datetime | None = None


class Sweeper:
    def __init__(self, jobs: list[Job], clock: Callable[[], datetime], tick_s: float = 1.0) -> None:
        self.jobs = jobs
        self.clock = clock
        self.tick_s = min([tick_s, *[job.interval_s for job in jobs]])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> None:
        """Run every job whose interval has passed since its last run."""
        for job in self.jobs:
            now = self.clock()
            if job.last is not None and (now - job.last).total_seconds() < job.interval_s:
                continue
            job.last = now
            try:
                job.run(now)
            except Exception:
                log.exception("periodic job %s failed", job.name)

    def start(self) -> Sweeper:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="fleet-jobs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.run_due()
