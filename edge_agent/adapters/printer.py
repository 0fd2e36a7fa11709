"""Ticket printer through python-escpos: file, network (port 9100) or none.

Chinese text goes out as GB18030 bytes in the printer's Chinese mode (FS &):
python-escpos' magic encoder turns full-width punctuation alone into '?'.
A ticket that cannot be printed is still issued; the failure shows in health().
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from escpos.escpos import Escpos

from edge_agent.config import PrinterConfig

log = logging.getLogger(__name__)

CHINESE_MODE_ON = b"\x1c\x26"  # FS &


@dataclass(frozen=True)
class TicketSlip:
    center_name: str
    service_name: str
    number: str
    people_ahead: int
    issued_at: float
    reference: str  # encoded in the QR code so a phone can follow the queue
    timezone: str = "Asia/Shanghai"


def render_ticket(printer: Escpos, slip: TicketSlip, encoding: str = "gb18030") -> None:
    """The ticket layout residents know: center, service, the big number, who is ahead, time, QR."""

    def line(text: str) -> None:
        printer._raw(text.encode(encoding, errors="replace") + b"\n")

    printer._raw(CHINESE_MODE_ON)
    printer.set(align="center", double_width=True, double_height=True, bold=True)
    line(slip.center_name)
    printer.set(align="center", normal_textsize=True)
    line(slip.service_name)
    printer.set(align="center", custom_size=True, width=4, height=4, bold=True)
    line(slip.number)
    printer.set(align="center", normal_textsize=True, bold=False)
    line(f"您前面还有 {slip.people_ahead} 人在等待")
    line("请在休息区等候，注意呼叫及大屏显示信息")
    line("过号请重新取号")
    issued = datetime.fromtimestamp(slip.issued_at, ZoneInfo(slip.timezone))
    line(issued.strftime("%Y-%m-%d %H:%M"))
    printer.qr(slip.reference, native=True, size=6)
    printer.cut(mode="PART", feed=True)


def _open_printer(config: PrinterConfig) -> Escpos | None:
    if config.kind == "file":
        from escpos.printer import File

        printer = File(config.path, auto_flush=True)
    elif config.kind == "network":
        from escpos.printer import Network

        printer = Network(config.host, config.port, timeout=5)
    else:
        return None
    printer.open()
    return printer


class TicketPrinter:
    name = "printer"

    def __init__(self, config: PrinterConfig) -> None:
        self.config = config
        self._printer: Escpos | None = None
        self._lock = asyncio.Lock()
        self.printed = 0
        self.last_error = ""

    async def start(self) -> None:
        if self.config.kind == "none":
            return
        try:
            self._printer = await asyncio.to_thread(_open_printer, self.config)
        except Exception as exc:  # unplugged or unreachable: keep issuing tickets on screen
            self.last_error = f"cannot open {self.config.kind} printer: {exc}"
            log.error("printer: %s", self.last_error)

    async def stop(self) -> None:
        if self._printer is not None:
            await asyncio.to_thread(self._printer.close)
            self._printer = None

    def health(self) -> dict:
        if self.config.kind == "none":
            return {"ok": True, "state": "not configured"}
        return {"ok": self._printer is not None and not self.last_error, "printed": self.printed,
                "last_error": self.last_error}

    async def print_ticket(self, slip: TicketSlip) -> bool:
        """Print one ticket; False (and a health error) when it could not be printed."""
        if self._printer is None:
            if self.config.kind != "none":
                await self.start()
            if self._printer is None:
                return False
        async with self._lock:  # one ticket at a time, never interleaved bytes
            try:
                await asyncio.to_thread(render_ticket, self._printer, slip, self.config.encoding)
            except Exception as exc:
                self.last_error = f"printing {slip.number} failed: {exc}"
                log.error("printer: %s", self.last_error)
                self._printer = None
                return False
        self.printed += 1
        self.last_error = ""
        return True
