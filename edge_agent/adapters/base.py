"""The interface every adapter has: start, stop, health.

Constructors do nothing (as in zigbee2mqtt's extensions); start() may fail
and the agent keeps running without that adapter, reporting it in health().
"""

from __future__ import annotations

import asyncio
from typing import Protocol


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
