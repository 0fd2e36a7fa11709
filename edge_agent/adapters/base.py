"""The interface every adapter has: start, stop, health.

Constructors do nothing (as in zigbee2mqtt's extensions); start() may fail
and the agent keeps running without that adapter, reporting it in health().
"""

from __future__ import annotations

from typing import Protocol


class Adapter(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> dict: ...
