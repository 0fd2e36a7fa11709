"""A broker connection that keeps itself up: reconnect with backoff and jitter.

Subclasses say what to do on every (re)connection and with each message;
they never retry anything themselves.
"""

from __future__ import annotations

import asyncio
import logging
import random

import aiomqtt

from edge_agent.adapters.base import cancel_and_wait, start_kept_running
from edge_agent.config import BrokerConfig

log = logging.getLogger(__name__)


class MqttLink:
    name = "mqtt"
    backoff_min_s = 0.5
    keepalive_s = 30

    def __init__(self, broker: BrokerConfig, client_id: str) -> None:
        self.broker = broker
        self.client_id = client_id
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.last_error = ""
        self._task: asyncio.Task | None = None

    # -- what subclasses provide ----------------------------------------

    def will(self) -> aiomqtt.Will | None:
        return None

    async def on_connected(self, client: aiomqtt.Client) -> None:
        """Subscribe, publish births; runs after every (re)connection."""

    async def on_message(self, message: aiomqtt.Message) -> None:
        """One incoming message; exceptions are logged, never fatal."""

    # -- the adapter interface ------------------------------------------

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return  # already running: a second start must not open a second connection
        self._task = start_kept_running(self.name, self._run, self._loop_failed)

    async def stop(self) -> None:
        if self._task:
            await cancel_and_wait(self._task)
            self._task = None
        self.connected.clear()

    def health(self) -> dict:
        return {"ok": self.connected.is_set(), "broker": f"{self.broker.host}:{self.broker.port}",
                "reconnects": self.reconnects, "last_error": self.last_error}

    def _loop_failed(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"

    # -- the loop ---------------------------------------------------------

    async def _run(self) -> None:
        delay = self.backoff_min_s
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host, self.broker.port, identifier=self.client_id,
                    username=self.broker.username, password=self.broker.password,
                    will=self.will(), keepalive=self.keepalive_s, clean_session=True, timeout=10,
                ) as client:
                    self.client = client
                    await self.on_connected(client)
                    self.connected.set()
                    delay = self.backoff_min_s
                    log.info("%s: connected to %s:%s", self.name, self.broker.host, self.broker.port)
                    async for message in client.messages:
                        try:
                            await self.on_message(message)
                        except Exception:
                            log.exception("%s: message on %s could not be handled", self.name, message.topic)
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc)
            except OSError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # e.g. the database behind will() or on_connected() on a full disk
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s: the connection failed", self.name)
            finally:
                self.client = None
                if self.connected.is_set():
                    self.reconnects += 1
                self.connected.clear()
            log.warning("%s: broker %s:%s unreachable (%s); retrying in %.1fs", self.name, self.broker.host,
                        self.broker.port, self.last_error, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.broker.backoff_max_s)
