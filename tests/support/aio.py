"""Run a coroutine to completion from a sync test, whatever the test before it left behind.

Playwright's sync API (the `page` fixture) keeps an event loop marked as
running in the main thread for the whole session, so a later plain
`asyncio.run` fails with "cannot be called from a running event loop".
A fresh thread has no running loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    if timeout is not None:
        coro = asyncio.wait_for(coro, timeout)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
