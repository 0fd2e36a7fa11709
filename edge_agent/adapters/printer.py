"""Ticket printer through python-escpos: file, network (port 9100), serial, USB or none.

Chinese text goes out as GB18030 bytes in the printer's Chinese mode (FS &):
python-escpos' magic encoder turns full-width punctuation alone into '?'.
A ticket that cannot be printed is still issued; the failure shows in health(), and so does
the paper of printers that answer DLE EOT (printer_status.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from escpos.escpos import Escpos

from edge_agent.adapters.base import log_task_error, start_kept_running
from edge_agent.adapters.printer_status import PAPER_OUT, PAPER_UNKNOWN, PaperWatch, query_paper
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
    wait_text: str = ""  # e.g. 预计等候约 10 分钟
    note: str = ""  # e.g. 绿色通道 or 预约签到
    guide: str = ""  # the item (事项) the ticket was taken for, with its type and promised time limit
    materials: tuple[str, ...] = ()  # 一次性告知: what to bring for that item, one line each
    windows: tuple[int, ...] = ()  # the windows that serve this service


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
    if slip.note:
        line(slip.note)
    line(f"您前面还有 {slip.people_ahead} 人在等待")
    if slip.wait_text:
        line(slip.wait_text)
    if slip.windows:
        line("办理窗口：" + "、".join(str(w) for w in slip.windows) + "号窗口")
    line("请在休息区等候，注意呼叫及大屏显示信息")
    # What really happens to a missed number: staff put it back in the queue (重新排队), no new ticket needed.
    line("过号请持本票到办理窗口，可重新排队")
    issued = datetime.fromtimestamp(slip.issued_at, ZoneInfo(slip.timezone))
    line(issued.strftime("%Y-%m-%d %H:%M"))
    printer.qr(slip.reference, native=True, size=6)
    if slip.guide or slip.materials:
        render_guide(line, printer, slip)
    printer.cut(mode="PART", feed=True)


def render_guide(line, printer: Escpos, slip: TicketSlip) -> None:
    """The block under the QR code of a ticket taken for an item: the item and the materials to bring."""
    printer.set(align="left", normal_textsize=True, bold=False)
    line("-" * 32)
    if slip.guide:
        printer.set(align="left", bold=True)
        line("【办理事项】")
        printer.set(align="left", bold=False)
        line(slip.guide)
    if slip.materials:
        printer.set(align="left", bold=True)
        line("【一次性告知】请携带以下材料：")
        printer.set(align="left", bold=False)
        for i, material in enumerate(slip.materials, 1):
            line(f"{i}. {material}")
    line("")


@dataclass(frozen=True)
class NoticeSlip:
    """一次性告知书: everything a resident needs for an item, told at once, printed without a ticket."""

    center_name: str
    title: str  # the item's name
    lines: tuple[str, ...]  # edge_agent.guide.notice_lines
    printed_at: float
    timezone: str = "Asia/Shanghai"
    label: str = "一次性告知书"  # names it in the log and health


def render_notice(printer: Escpos, slip: NoticeSlip, encoding: str = "gb18030") -> None:
    def line(text: str) -> None:
        printer._raw(text.encode(encoding, errors="replace") + b"\n")

    printer._raw(CHINESE_MODE_ON)
    printer.set(align="center", double_width=True, double_height=True, bold=True)
    line("一次性告知书")
    printer.set(align="center", normal_textsize=True, bold=True)
    line(slip.title)
    printer.set(align="left", normal_textsize=True, bold=False)
    line("-" * 32)
    for text in slip.lines:
        line(text)
    line("-" * 32)
    printer.set(align="center", normal_textsize=True, bold=False)
    line(slip.center_name)
    line(datetime.fromtimestamp(slip.printed_at, ZoneInfo(slip.timezone)).strftime("%Y-%m-%d %H:%M"))
    printer.cut(mode="PART", feed=True)


def _open_printer(config: PrinterConfig) -> Escpos | None:
    if config.kind == "file":
        from escpos.printer import File

        printer = File(config.path, auto_flush=True)
    elif config.kind == "network":
        from escpos.printer import Network

        printer = Network(config.host, config.port, timeout=5)
    elif config.kind == "serial":
        from escpos.printer import Serial

        printer = Serial(config.path, baudrate=config.baud, timeout=1)
    elif config.kind == "usb":
        from escpos.printer import Usb

        printer = Usb(config.usb_vendor, config.usb_product, timeout=5000)
    else:
        return None
    printer.open()
    return printer


def _close_quietly(printer: Escpos) -> None:
    try:
        printer.close()
    except Exception:  # already broken; closing is only tidying up
        pass


class TicketPrinter:
    name = "printer"

    def __init__(self, config: PrinterConfig) -> None:
        self.config = config
        self._printer: Escpos | None = None
        self._lock = asyncio.Lock()
        self._open_lock = asyncio.Lock()  # the paper watcher and a ticket may both try to reopen
        self.printed = 0
        self.last_error = ""
        self.paper = PaperWatch(config.kind)
        self._paper_watcher: asyncio.Task | None = None
        self._paper_checks: set[asyncio.Task] = set()

    async def start(self) -> None:
        if self.config.kind == "none":
            return
        async with self._open_lock:
            if self._printer is None:
                try:
                    self._printer = await asyncio.to_thread(_open_printer, self.config)
                    self.last_error = ""
                except Exception as exc:  # unplugged or unreachable: keep issuing tickets on screen
                    self.last_error = f"cannot open {self.config.kind} printer: {exc}"
                    log.error("printer: %s", self.last_error)
        if self.paper.can_ask and self._paper_watcher is None:
            self._paper_watcher = start_kept_running("printer_paper", self._watch_paper, self._watch_failed)

    async def stop(self) -> None:
        tasks = [*self._paper_checks, *([self._paper_watcher] if self._paper_watcher else [])]
        self._paper_watcher = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._printer is not None:
            await asyncio.to_thread(self._printer.close)
            self._printer = None

    def health(self) -> dict:
        if self.config.kind == "none":
            return {"ok": True, "state": "not configured"}
        return {"ok": self._printer is not None and not self.last_error and self.paper.state != PAPER_OUT,
                "printed": self.printed, "last_error": self.last_error, **self.paper.health_fields()}

    def _watch_failed(self, exc: Exception) -> None:
        self.last_error = f"paper watch failed: {type(exc).__name__}: {exc}"

    def _check_paper_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.check_paper(), name="printer_paper_after_ticket")
        self._paper_checks.add(task)
        task.add_done_callback(log_task_error)
        task.add_done_callback(self._paper_checks.discard)

    async def check_paper(self) -> str:
        """Ask a network or serial printer for its paper now; the answer shows in health()."""
        if not self.paper.can_ask or self._printer is None:
            return self.paper.state
        async with self._lock:  # never between the bytes of a ticket
            printer = self._printer
            if printer is None:
                return self.paper.state
            try:
                state = await asyncio.to_thread(query_paper, printer)
            except Exception as exc:  # the connection broke: the next ticket or check opens it again
                self.last_error = f"paper status not read: {exc}"
                log.error("printer: %s", self.last_error)
                self._printer = None
                await asyncio.to_thread(_close_quietly, printer)
                state = PAPER_UNKNOWN
        self.paper.record(state)
        return state

    async def _watch_paper(self) -> None:
        while True:
            if self._printer is None:
                await self.start()
            await self.check_paper()
            await asyncio.sleep(self.config.paper_check_s)

    async def print_ticket(self, slip: TicketSlip) -> bool:
        """Print one ticket; False (and a health error) when it could not be printed."""
        return await self._print(render_ticket, slip, slip.number)

    async def print_notice(self, slip: NoticeSlip) -> bool:
        """Print a 一次性告知书; False (and a health error) when it could not be printed."""
        return await self._print(render_notice, slip, slip.label)

    async def _print(self, render, slip: TicketSlip | NoticeSlip, label: str) -> bool:
        if self._printer is None:
            if self.config.kind != "none":
                await self.start()
            if self._printer is None:
                return False
        if self.paper.state == PAPER_OUT and await self.check_paper() == PAPER_OUT:
            log.warning("printer: %s not printed: out of paper", label)
            return False
        async with self._lock:  # one ticket at a time, never interleaved bytes
            try:
                await asyncio.to_thread(render, self._printer, slip, self.config.encoding)
            except Exception as exc:
                self.last_error = f"printing {label} failed: {exc}"
                log.error("printer: %s", self.last_error)
                self._printer = None
                return False
        self.printed += 1
        self.last_error = ""
        if self.paper.can_ask:  # in the background: the resident does not wait for the answer
            self._check_paper_soon()
        return True
