"""The ticket printer's paper, asked with DLE EOT 4 (10 04 04) where the printer can answer.

Network (port 9100) and serial printers answer one status byte: 0x12 paper OK, 0x1E near end,
0x72 out (0x7E out with the near-end sensor on too). DLE EOT is used rather than GS r because a
printer stopped for paper end does not answer GS r. File and USB printers are written to only:
their paper stays "unknown", which is not an alarm. Also here: the printer's extra settings
(serial speed, USB ids, how often to ask) with their validation.
"""

from __future__ import annotations

import logging
import socket
import time

from escpos.escpos import Escpos

log = logging.getLogger(__name__)

DLE_EOT_PAPER = b"\x10\x04\x04"
PAPER_OK, PAPER_NEAR_END, PAPER_OUT, PAPER_UNKNOWN = "ok", "near_end", "out", "unknown"
KINDS_THAT_ANSWER = ("network", "serial")
PAPER_ALARM = "取号打印机缺纸"
PAPER_WARNING = "取号打印机纸将用尽"


def parse_paper_status(reply: bytes) -> str:
    """The paper state in a DLE EOT 4 reply; unknown when the byte is not a status byte at all."""
    if not reply:
        return PAPER_UNKNOWN
    status = reply[-1]  # the latest answer, should a late one be in front of it
    if status & 0x93 != 0x12:  # bits 1 and 4 are always set, 0 and 7 always clear
        return PAPER_UNKNOWN
    if status & 0x60:  # paper end sensor
        return PAPER_OUT
    if status & 0x0C:  # paper near-end sensor
        return PAPER_NEAR_END
    return PAPER_OK


def _drain(printer: Escpos) -> None:
    """Drop a late answer to an earlier question, so it is not taken for this one's."""
    device = printer.device
    if isinstance(device, socket.socket):
        device.setblocking(False)
        try:
            while device.recv(64):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            device.setblocking(True)
    elif hasattr(device, "reset_input_buffer"):
        device.reset_input_buffer()


def query_paper(printer: Escpos, timeout: float = 1.0) -> str:
    """Ask a network or serial printer for its paper (blocking, at most `timeout` seconds)."""
    device = printer.device
    _drain(printer)
    printer._raw(DLE_EOT_PAPER)
    if isinstance(device, socket.socket):
        previous = device.gettimeout()
        device.settimeout(timeout)
        try:
            reply = device.recv(16)
        except TimeoutError:
            reply = b""
        finally:
            device.settimeout(previous)
    else:  # pyserial: read() waits at most its timeout for the one byte
        previous = device.timeout
        device.timeout = timeout
        try:
            reply = device.read(1)
        finally:
            device.timeout = previous
    return parse_paper_status(reply)


class PaperWatch:
    """What is known about the paper and since when; the printer adapter asks, this remembers."""

    def __init__(self, kind: str) -> None:
        self.can_ask = kind in KINDS_THAT_ANSWER
        self.state = PAPER_UNKNOWN
        self.checked_at: float | None = None

    def record(self, state: str) -> None:
        if state != self.state:
            if state == PAPER_OUT:
                log.error("printer: out of paper")
            elif state == PAPER_NEAR_END:
                log.warning("printer: paper near its end")
            elif state == PAPER_OK and self.state in (PAPER_OUT, PAPER_NEAR_END):
                log.info("printer: paper replaced")
        self.state = state
        self.checked_at = time.time()

    def health_fields(self) -> dict:
        fields: dict = {"paper": self.state, "paper_checked_at": self.checked_at}
        if self.state == PAPER_OUT:
            fields["alarm"] = PAPER_ALARM
        elif self.state == PAPER_NEAR_END:
            fields["warning"] = PAPER_WARNING
        return fields


# -- the printer's extra settings --------------------------------------------

SERIAL_BAUD_RATES = (9600, 19200, 38400, 57600, 115200)


def parse_printer_extras(raw: dict, path: str, problems: list[str]) -> dict:
    """Keyword arguments for PrinterConfig beyond the file/network ones, each problem with its path."""
    kind = raw.get("kind", "none")
    extras: dict = {}
    baud = raw.get("baud", 9600)
    if baud not in SERIAL_BAUD_RATES:
        problems.append(f"{path}.baud: must be one of {', '.join(map(str, SERIAL_BAUD_RATES))}, got {baud!r}")
    else:
        extras["baud"] = baud
    for key in ("usb_vendor", "usb_product"):
        value = raw.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            problems.append(f"{path}.{key}: must be a USB id such as 0x0416, got {value!r}")
        else:
            extras[key] = value
        if kind == "usb" and not value:
            problems.append(f"{path}.{key}: a USB printer needs its vendor and product id (see lsusb)")
    interval = raw.get("paper_check_s", 30)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 1 <= interval <= 3600:
        problems.append(f"{path}.paper_check_s: must be 1..3600 seconds, got {interval!r}")
    else:
        extras["paper_check_s"] = float(interval)
    if kind == "serial" and not raw.get("path"):
        problems.append(f"{path}.path: a serial printer needs its port, e.g. /dev/ttyUSB0")
    if kind == "network" and not raw.get("host"):
        problems.append(f"{path}.host: a network printer needs its address")
    return extras
