"""The edge agent: the store, the queue and every adapter, wired together.

An adapter that fails to start is logged and reported in health; the agent
keeps serving the center with the others (a dead printer must not stop the
kiosk, a dead county link must not stop calling).
"""

from __future__ import annotations

import asyncio
import logging
import time

from edge_agent.adapters.center_link import CenterLink
from edge_agent.adapters.printer import TicketPrinter, TicketSlip
from edge_agent.adapters.uplink import Uplink
from edge_agent.awaiting_ack import AwaitingAck
from edge_agent.config import CenterConfig
from edge_agent.queue.service import QueueChange, QueueService
from edge_agent.retained import RetainedCopies
from edge_agent.store import EdgeStore

log = logging.getLogger(__name__)


class EdgeAgent:
    def __init__(self, config: CenterConfig) -> None:
        self.config = config
        self.store = EdgeStore(config.data_dir / "edge.sqlite3")
        self.queue = QueueService(self.store, config)
        self.printer = TicketPrinter(config.printer)
        self.retained = RetainedCopies(config.data_dir / "edge.sqlite3")
        self.awaiting = AwaitingAck(config.data_dir / "edge.sqlite3")
        self.uplink = Uplink(config, self.store, self.retained, self.awaiting)
        self.center_link = CenterLink(config, self.queue, self.store, self.uplink, self.retained)
        self.uplink.downlink = self.center_link.relay_down
        self.uplink.health_summary = self.health_summary
        self.adapters = [self.uplink, self.center_link, self.printer]
        self.change_listeners: list = []  # e.g. the hall page's live updates
        self.started_at = time.time()
        self.queue.listeners.append(self._on_change)

    def _on_change(self, change: QueueChange) -> None:
        self.uplink.wake()
        for listener in list(self.change_listeners):
            listener(change)

    async def start(self) -> None:
        for adapter in self.adapters:
            try:
                await adapter.start()
            except Exception:
                log.exception("adapter %s failed to start; the agent runs without it", adapter.name)

    async def stop(self) -> None:
        for adapter in reversed(self.adapters):
            try:
                await adapter.stop()
            except Exception:
                log.exception("adapter %s failed to stop cleanly", adapter.name)
        self.retained.close()
        self.awaiting.close()
        self.store.close()

    def health(self) -> dict:
        return {adapter.name: adapter.health() for adapter in self.adapters}

    def health_summary(self) -> dict:
        """The edge_health fields for the county: can this center serve residents right now, and why not."""
        health = self.health()
        components = {"center_broker": {"ok": health["center_broker"]["ok"],
                                        "state": "connected" if health["center_broker"]["ok"] else "unreachable"}}
        reasons = [] if health["center_broker"]["ok"] else ["中心消息服务器不可用"]
        if self.config.printer.kind != "none":
            printer = health["printer"]
            components["printer"] = {"ok": printer["ok"], "state": printer.get("state", "ok" if printer["ok"]
                                                                                 else "offline")}
            if not printer["ok"]:
                reasons.append("取号打印机故障")
        online = {(d["role"], d["window"]) for d in self.store.devices() if d["online"]}
        for window in self.config.windows:
            for role, label in (("queue_display", "排队显示屏"), ("rating_pad", "评价器")):
                if (role, window.number) not in online:
                    reasons.append(f"{window.number}号窗口{label}离线")
        return {"ready": not reasons, "reasons": reasons, "components": components,
                "outbox": health["county_uplink"]["outbox"], "uptime_s": round(time.time() - self.started_at),
                "ts": time.time()}

    async def take_ticket(self, service: str) -> dict:
        """A resident takes a ticket: issued first, then printed; a printer failure never loses it."""
        issued = self.queue.issue_ticket(service)
        slip = TicketSlip(self.config.name, issued.service_name, issued.ticket.number, issued.people_ahead,
                          issued.ticket.issued_at, f"{self.config.code}/{issued.ticket.business_day}/"
                          f"{issued.ticket.number}", self.config.timezone)
        printed = await self.printer.print_ticket(slip)
        return {"number": issued.ticket.number, "service": service, "service_name": issued.service_name,
                "people_ahead": issued.people_ahead, "printed": printed}


async def run_agent(config: CenterConfig, stop: asyncio.Event) -> None:
    import uvicorn

    from edge_agent.web.app import create_app

    agent = EdgeAgent(config)
    await agent.start()
    server = uvicorn.Server(uvicorn.Config(create_app(agent), host=config.http_host, port=config.http_port,
                                           log_level="warning", lifespan="off"))
    server.install_signal_handlers = lambda: None  # we own the signals
    web = asyncio.create_task(server.serve(), name="web")
    log.info("edge agent for %s (%s) serving http://%s:%d/", config.name, config.code, config.http_host,
             config.http_port)
    try:
        await stop.wait()
    finally:
        server.should_exit = True
        await web
        await agent.stop()
