"""The interface every adapter has: start, stop, health.

Constructors do nothing (as in zigbee2mqtt's extensions); start() may fail
and the agent keeps running without that adapter, reporting it in health().
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Adapter(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> dict: ...


async def cancel_and_wait(*tasks: asyncio.Task | None) -> None:
    """Cancel tasks and wait until they have really ended.

    One cancel() is not always enough on Python 3.11: when asyncio.wait_for's
    inner future completes at the moment the task is cancelled, wait_for
    returns the result and the cancellation is lost, so the task runs on and
    a plain `await task` never returns (fixed in 3.12). So: cancel again
    until it is done.
    """
    pending = {task for task in tasks if task is not None}
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=1)


async def keep_running(name: str, loop: Callable[[], Awaitable[None]],
                       failed: Callable[[Exception], None] | None = None, *, detail: bool = True,
                       backoff_min_s: float = 1.0, backoff_max_s: float = 30.0) -> None:
    """Run an adapter's long-running loop for as long as the agent runs: an error is logged, then it runs again.

    An asyncio task that ends on an exception ends silently: asyncio complains only when the task is
    garbage-collected, which for an adapter's task is at exit. A full data disk (issue 19) ended the
    uplink's forwarder this way, and the county got nothing more until the agent was restarted by hand.
    Loops handle the errors they expect themselves; this is the boundary for the ones they do not.
    `failed` records the error in the adapter's health. `detail` False logs only the error's type, for
    loops whose errors could carry what must never be logged (an ID card's text, a scanned code).
    The wait before a restart doubles up to `backoff_max_s` while the loop keeps failing at once.
    Cancellation (the adapter stops) ends it.
    """
    delay = backoff_min_s
    while True:
        started = time.monotonic()
        try:
            await loop()
            log.error("%s: its loop returned; it is started again", name)  # loops never return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if detail:
                log.exception("%s: its loop failed; it is started again in %.0f s", name, delay)
            else:
                log.error("%s: its loop failed (%s); it is started again in %.0f s", name, type(exc).__name__,
                          delay)
            if failed is not None:
                failed(exc)
        if time.monotonic() - started > backoff_max_s:
            delay = backoff_min_s  # it ran well for a while: this is a new fault, not the same one again
        await asyncio.sleep(delay)
        delay = min(delay * 2, backoff_max_s)


def start_kept_running(name: str, loop: Callable[[], Awaitable[None]],
                       failed: Callable[[Exception], None] | None = None, *, detail: bool = True) -> asyncio.Task:
    """A task running `loop` under keep_running (see there)."""
    return asyncio.create_task(keep_running(name, loop, failed, detail=detail), name=name)


def log_task_error(task: asyncio.Task) -> None:
    """Done-callback of a one-off task: its error is logged now, not when (if ever) it is garbage-collected."""
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s failed", task.get_name(), exc_info=task.exception())
