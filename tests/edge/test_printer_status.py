"""The ticket printer over a network and a serial cable, its paper asked with DLE EOT 4.

The printers are simulators speaking ESC/POS (edge_agent/simulators/escpos_printer.py); what they
receive is decoded by tests/support/escpos_decoder.py, so the tickets are checked as a printer
would read them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from escpos.printer import Dummy

from edge_agent.adapters.printer import TicketPrinter, TicketSlip, render_ticket
from edge_agent.adapters.printer_status import parse_paper_status, parse_printer_extras
from edge_agent.config import ConfigError, PrinterConfig, parse_config
from edge_agent.simulators.escpos_printer import NetworkPrinterSimulator, SerialPrinterSimulator
from tests.support.escpos_decoder import EscposDecodeError, decode
from tests.support.loop import LoopThread
from tests.support.waiting import wait_until

SLIP = TicketSlip("示例镇便民服务中心", "社保业务", "A001", 2, 1_795_400_000.0, "445202101001/2026-11-23/A001")


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    with LoopThread() as loop:
        yield loop


@pytest.fixture
def network_printer() -> Iterator[NetworkPrinterSimulator]:
    printer = NetworkPrinterSimulator().start()
    yield printer
    printer.stop()


def test_paper_status_bytes():
    assert parse_paper_status(b"\x12") == "ok"
    assert parse_paper_status(b"\x1e") == "near_end"
    assert parse_paper_status(b"\x72") == "out"
    assert parse_paper_status(b"\x7e") == "out"
    assert parse_paper_status(b"") == "unknown"
    assert parse_paper_status(b"A") == "unknown"  # not a status byte (bit 4 clear, bit 6 set)
    assert parse_paper_status(b"\x12\x72") == "out"  # the latest answer counts


def test_the_decoder_reads_a_ticket_and_refuses_malformed_bytes():
    dummy = Dummy()
    render_ticket(dummy, SLIP)
    printout = decode(dummy.output)
    assert printout.chinese_mode
    assert printout.texts()[:3] == ["示例镇便民服务中心", "社保业务", "A001"]
    assert (printout.line("A001").width, printout.line("A001").height, printout.line("A001").bold) == (4, 4, True)
    assert printout.line("示例镇便民服务中心").align == "center"
    assert printout.qr_codes == ["445202101001/2026-11-23/A001"] and printout.cuts == ["partial"]
    with pytest.raises(EscposDecodeError, match="outside Chinese mode"):
        decode("社保".encode("gb18030") + b"\n")
    with pytest.raises(EscposDecodeError, match="unknown command"):
        decode(b"\x1b\x99")
    with pytest.raises(EscposDecodeError, match="cut short"):
        decode(b"\x1d(k\x10\x001P0abc")


def network_config(printer: NetworkPrinterSimulator, **kwargs) -> PrinterConfig:
    return PrinterConfig(kind="network", host="127.0.0.1", port=printer.port, **kwargs)


def test_a_network_ticket_is_printed_and_the_paper_known(loop, network_printer):
    printer = TicketPrinter(network_config(network_printer))
    loop.run(printer.start())
    try:
        assert loop.run(printer.print_ticket(SLIP)) is True
        wait_until(lambda: printer.health()["paper"] == "ok", what="the paper asked")
        printout = wait_until(lambda: decode(network_printer.take()).cuts and decode(network_printer.take()),
                              what="the whole ticket received")
        assert "您前面还有 2 人在等待" in printout.texts()
        assert printout.line("A001").width == 4
        assert printout.qr_codes == [SLIP.reference] and printout.cuts == ["partial"]
        assert 4 in printout.status_queries  # DLE EOT 4
        assert printer.health()["ok"] and "alarm" not in printer.health()
    finally:
        loop.run(printer.stop())


def test_near_end_warns_out_alarms_and_stops_printing_until_refilled(loop, network_printer):
    printer = TicketPrinter(network_config(network_printer, paper_check_s=1))
    loop.run(printer.start())
    try:
        wait_until(lambda: printer.health()["paper"] == "ok", what="first paper check")
        network_printer.paper = "near_end"
        assert loop.run(printer.check_paper()) == "near_end"
        health = printer.health()
        assert health["ok"] and health["warning"] == "取号打印机纸将用尽"
        network_printer.paper = "out"
        wait_until(lambda: printer.health()["paper"] == "out", what="the watcher notices the paper is out")
        health = printer.health()
        assert health["ok"] is False and health["alarm"] == "取号打印机缺纸"
        before = len(network_printer.take())
        assert loop.run(printer.print_ticket(SLIP)) is False  # issued on screen, not printed
        assert decode(network_printer.take()[before:]).lines == []
        network_printer.paper = "ok"
        assert loop.run(printer.print_ticket(SLIP)) is True  # asks again before refusing
        assert printer.health()["ok"]
        wait_until(lambda: "A001" in decode(network_printer.take()[before:]).texts(), what="the ticket printed")
    finally:
        loop.run(printer.stop())


def test_a_printer_that_does_not_answer_status_still_prints(loop, network_printer):
    network_printer.paper = "silent"
    printer = TicketPrinter(network_config(network_printer))
    loop.run(printer.start())
    try:
        assert loop.run(printer.check_paper()) == "unknown"
        assert loop.run(printer.print_ticket(SLIP)) is True
        assert printer.health()["ok"] and printer.health()["paper"] == "unknown"
    finally:
        loop.run(printer.stop())


def test_a_serial_printer_prints_and_reports_its_paper(loop):
    simulator = SerialPrinterSimulator().start()
    printer = TicketPrinter(PrinterConfig(kind="serial", path=simulator.path, baud=115200))
    loop.run(printer.start())
    try:
        assert loop.run(printer.print_ticket(SLIP)) is True
        wait_until(lambda: "A001" in decode(simulator.take()).texts(), what="the ticket on the serial line")
        simulator.paper = "out"
        assert loop.run(printer.check_paper()) == "out"
        assert printer.health()["alarm"] == "取号打印机缺纸"
    finally:
        loop.run(printer.stop())
        simulator.stop()


def test_a_missing_usb_printer_is_reported_not_fatal(loop):
    printer = TicketPrinter(PrinterConfig(kind="usb", usb_vendor=0x0416, usb_product=0x5011))
    loop.run(printer.start())
    assert loop.run(printer.print_ticket(SLIP)) is False
    health = printer.health()
    assert health["ok"] is False and "cannot open usb printer" in health["last_error"]
    assert health["paper"] == "unknown"  # USB printers are not asked
    loop.run(printer.stop())


def test_printer_settings_are_validated_with_their_paths():
    problems: list[str] = []
    parse_printer_extras({"kind": "usb", "baud": 1200, "usb_vendor": "0416", "paper_check_s": 0}, "printer",
                         problems)
    assert problems == [
        "printer.baud: must be one of 9600, 19200, 38400, 57600, 115200, got 1200",
        "printer.usb_vendor: must be a USB id such as 0x0416, got '0416'",
        "printer.usb_product: a USB printer needs its vendor and product id (see lsusb)",
        "printer.paper_check_s: must be 1..3600 seconds, got 0",
    ]
    problems = []
    parse_printer_extras({"kind": "serial"}, "printer", problems)
    assert problems == ["printer.path: a serial printer needs its port, e.g. /dev/ttyUSB0"]


BASE = {"center": {"code": "445202101001"}, "services": [{"prefix": "A", "name": "社保业务"}],
        "windows": [{"number": 1, "services": ["A"]}]}


def test_the_printer_may_be_written_under_peripherals_but_only_once():
    config = parse_config({**BASE, "peripherals": {"printer": {"kind": "serial", "path": "/dev/ttyS0",
                                                               "baud": 19200}}})
    assert (config.printer.kind, config.printer.path, config.printer.baud) == ("serial", "/dev/ttyS0", 19200)
    with pytest.raises(ConfigError, match="already configured"):
        parse_config({**BASE, "printer": {"kind": "none"}, "peripherals": {"printer": {"kind": "none"}}})
