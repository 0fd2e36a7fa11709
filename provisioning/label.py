"""The label stuck on a device after it is set up: its id as text and as a QR code, where it belongs, the date.

Printed with python-escpos on an ESC/POS label or receipt printer: `--label-printer FILE` (the bytes go
to that file or device node, e.g. /dev/usb/lp0) or `--label-printer tcp:HOST:PORT` (a network printer,
usually port 9100). Chinese text goes out as GB18030 in the printer's Chinese mode (FS &), as on the
tickets (edge_agent/adapters/printer.py): python-escpos' own encoder would turn some of it into '?'.
The QR code is the printer's native one (GS ( k), which python-escpos cannot centre by itself, so the
line alignment (ESC a) centres it.

A printer that cannot be reached is not a failed provisioning: the board is set up already. The caller
prints a warning line and records it; the label can be printed again later.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date

from escpos.escpos import Escpos

from provisioning.progress import Progress

CHINESE_MODE_ON = b"\x1c\x26"  # FS &
ENCODING = "gb18030"
NETWORK_TIMEOUT_S = 5
ROLE_NAMES = {"rating_pad": "评价器", "queue_display": "叫号屏"}  # what staff call the devices


@dataclass(frozen=True)
class DeviceLabel:
    device_id: str
    center: str
    window: int
    role: str
    day: date

    def lines(self) -> list[str]:
        return [f"中心 {self.center}", f"窗口 {self.window}", ROLE_NAMES.get(self.role, self.role),
                self.day.isoformat()]


@dataclass(frozen=True)
class PrinterTarget:
    kind: str  # "file" or "network"
    path: str = ""
    host: str = ""
    port: int = 9100

    def __str__(self) -> str:
        return f"tcp:{self.host}:{self.port}" if self.kind == "network" else self.path


def parse_target(text: str) -> PrinterTarget:
    """`tcp:HOST:PORT` (or tcp://HOST:PORT) is a network printer; anything else is a file path."""
    for prefix in ("tcp://", "tcp:"):
        if text.startswith(prefix):
            host, _, port = text[len(prefix):].rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"--label-printer {text}: a network printer is tcp:HOST:PORT, e.g. "
                                 "tcp:192.168.10.50:9100")
            return PrinterTarget("network", host=host, port=int(port))
    if not text:
        raise ValueError("--label-printer needs a file path or tcp:HOST:PORT")
    return PrinterTarget("file", path=text)


def render_label(printer: Escpos, label: DeviceLabel) -> None:
    """The label's bytes: device id large, its QR code, then center, window, role and date in Chinese."""

    def line(text: str) -> None:
        printer._raw(text.encode(ENCODING, errors="replace") + b"\n")

    printer._raw(CHINESE_MODE_ON)
    printer.set(align="center", bold=True, double_height=True)
    line(label.device_id)
    printer.set(align="center", normal_textsize=True, bold=False)
    printer.qr(label.device_id, native=True, size=6)
    for text in label.lines():
        line(text)
    printer.cut(mode="PART", feed=True)


def open_printer(target: PrinterTarget) -> Escpos:
    if target.kind == "network":
        from escpos.printer import Network

        printer = Network(target.host, target.port, timeout=NETWORK_TIMEOUT_S)
    else:
        from escpos.printer import File

        printer = File(target.path, auto_flush=True)
    printer.open(raise_not_found=True)
    return printer


def print_label(target: PrinterTarget, label: DeviceLabel) -> None:
    """Print one label; any failure of the printer is raised as LabelError with a message for the technician."""
    try:
        printer = open_printer(target)
    except Exception as exc:  # python-escpos raises its own errors, OSError or socket errors: all mean "unreachable"
        raise LabelError(f"cannot reach the label printer {target}: {_reason(exc)}") from None
    try:
        render_label(printer, label)
    except Exception as exc:
        raise LabelError(f"printing the label on {target} failed: {_reason(exc)}") from None
    finally:
        try:
            printer.close()
        except Exception:  # the connection is broken already; closing is only tidying up
            pass


class LabelError(Exception):
    """The label was not printed (the printer is unreachable or broke off); a warning, not a failure."""


def _reason(exc: BaseException) -> str:
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


def printer_target_argument(text: str) -> PrinterTarget:
    """argparse type of --label-printer: a malformed target is a usage error, before any board is touched."""
    try:
        return parse_target(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def label_step(target: PrinterTarget, device_id: str, center: str, window: int, role: str,
               progress: Progress, record) -> None:
    """Print the label after a successful setup; an unreachable printer is a warning line and a note in the record."""
    label = DeviceLabel(device_id, center, window, role, date.today())
    try:
        print_label(target, label)
    except LabelError as exc:
        record.label = f"not printed: {exc}"
        progress.line(f"! label: not printed, {exc}; the board is set up (print the label again later)")
        return
    record.label = f"printed on {target}"
    progress.report("ok", "label", f"{device_id} printed on {target}")
