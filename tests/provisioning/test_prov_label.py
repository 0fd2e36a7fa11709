"""The device label: ESC/POS bytes from python-escpos, decoded by the project's decoder; printer faults are warnings."""

from __future__ import annotations

import socket
import threading
from datetime import date

from escpos.printer import Dummy

from provisioning.label import DeviceLabel, PrinterTarget, parse_target, print_label, render_label
from tests.support.escpos_decoder import decode

LABEL = DeviceLabel("dev-a4cf12ab34cd", "445202101001", 3, "rating_pad", date(2026, 12, 1))


def assert_is_the_label(data: bytes, label: DeviceLabel = LABEL, role_name: str = "评价器") -> None:
    printout = decode(data)  # GB18030: refuses Chinese outside Chinese mode, unknown commands, cut-short bytes
    assert printout.chinese_mode
    assert printout.qr_codes == [label.device_id]
    texts = printout.texts()
    assert texts[0] == label.device_id and printout.lines[0].align == "center"
    for text in (f"中心 {label.center}", f"窗口 {label.window}", role_name, label.day.isoformat()):
        assert text in texts, texts
    assert "中心".encode("gb18030") in data and "中心".encode() not in data
    assert printout.cuts == ["partial"]


def test_label_bytes_have_the_qr_of_the_device_id_and_chinese_text():
    printer = Dummy()
    render_label(printer, LABEL)
    assert_is_the_label(printer.output)
    display = DeviceLabel("dev-a4cf12ab34ce", "445202101001", 12, "queue_display", date(2026, 12, 1))
    printer = Dummy()
    render_label(printer, display)
    assert_is_the_label(printer.output, display, "叫号屏")


def test_targets():
    assert parse_target("tcp:192.168.10.50:9100") == PrinterTarget("network", host="192.168.10.50", port=9100)
    assert parse_target("tcp://printer.local:9100").host == "printer.local"
    assert parse_target("/dev/usb/lp0") == PrinterTarget("file", path="/dev/usb/lp0")


def test_a_network_printer_receives_the_label():
    server = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            while chunk := connection.recv(4096):
                received.extend(chunk)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    print_label(PrinterTarget("network", host="127.0.0.1", port=server.getsockname()[1]), LABEL)
    thread.join(10)
    server.close()
    assert_is_the_label(bytes(received))


def test_provision_prints_the_label_after_the_setup(board, provision, device_args, tmp_path):
    target = tmp_path / "label.bin"
    result = provision(*device_args(board.port, "--label-printer", str(target)))
    assert result.status == 0, result.err
    assert f"✓ label: dev-a4cf12ab34cd printed on {target}" in result.out
    assert result.out.index("is set up for center") < result.out.index("✓ label")
    assert_is_the_label(target.read_bytes(), DeviceLabel("dev-a4cf12ab34cd", "445202101001", 3, "rating_pad",
                                                         date.today()))
    assert provision.read_records()[0]["label"] == f"printed on {target}"


def test_an_unreachable_printer_is_a_warning_not_a_failure(board, provision, device_args):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connection refused
    result = provision(*device_args(board.port, "--label-printer", f"tcp:127.0.0.1:{port}"))
    assert result.status == 0, result.err
    assert f"! label: not printed, cannot reach the label printer tcp:127.0.0.1:{port}" in result.out
    assert "/config.json" in board.files()
    record = provision.read_records()[0]
    assert record["outcome"] == "ok"
    assert record["label"].startswith(f"not printed: cannot reach the label printer tcp:127.0.0.1:{port}")


def test_a_malformed_printer_target_is_a_usage_error(board, provision, device_args):
    result = provision(*device_args(board.port, "--label-printer", "tcp:printer-without-port"))
    assert result.status == 1
    assert "a network printer is tcp:HOST:PORT" in result.err
    assert board.programs == []  # refused before the board was touched
