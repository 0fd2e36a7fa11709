"""`provision list`: USB serial ports, ESP32-class boards marked by the VID/PID of their USB bridge."""

from __future__ import annotations

import argparse
import io
from types import SimpleNamespace

from provisioning.commands import do_list
from provisioning.ports import serial_ports


def fake_comports():
    """What pyserial's list_ports.comports() gives on a laptop with three boards and two other devices."""
    return [
        SimpleNamespace(device="/dev/ttyS0", vid=None, pid=None, description="n/a", serial_number=None),
        SimpleNamespace(device="/dev/ttyUSB1", vid=0x1A86, pid=0x7523, description="USB Serial",
                        serial_number=None),
        SimpleNamespace(device="/dev/ttyACM0", vid=0x303A, pid=0x1001, description="USB JTAG/serial debug unit",
                        serial_number="F4:12:FA:00:11:22"),
        SimpleNamespace(device="/dev/ttyUSB0", vid=0x10C4, pid=0xEA60, description="CP2102 USB to UART Bridge",
                        serial_number="0001"),
        SimpleNamespace(device="/dev/ttyUSB2", vid=0x067B, pid=0x2303, description="PL2303 Serial Port",
                        serial_number=None),
        SimpleNamespace(device="/dev/ttyUSB3", vid=0x1A86, pid=0x55D4, description="USB Single Serial",
                        serial_number=None),
        SimpleNamespace(device="/dev/ttyUSB4", vid=0x0403, pid=0x6001, description="FT232R USB UART",
                        serial_number=None),
    ]


def test_esp32_bridges_are_recognised_by_vid_and_pid():
    ports = {port.device: port for port in serial_ports(fake_comports)}
    assert {device: port.bridge for device, port in ports.items()} == {
        "/dev/ttyUSB0": "CP210x",
        "/dev/ttyUSB1": "CH340",
        "/dev/ttyUSB3": "CH9102",
        "/dev/ttyUSB4": "FTDI FT232R",
        "/dev/ttyACM0": "Espressif native USB",
        "/dev/ttyS0": None,
        "/dev/ttyUSB2": None,  # a Prolific bridge: not on an ESP32 board
    }
    assert ports["/dev/ttyUSB0"].usb_id == "10c4:ea60" and ports["/dev/ttyS0"].usb_id == "-"


def run_list(*ports: str, probe: bool = False, answer_timeout: float = 5.0) -> str:
    out = io.StringIO()
    args = argparse.Namespace(ports=list(ports), probe=probe, answer_timeout=answer_timeout)
    assert do_list(args, out, comports=fake_comports) == 0
    return out.getvalue()


def test_list_shows_esp32_boards_first_and_marked():
    lines = run_list().splitlines()
    marked = [line.split()[1] for line in lines[:-1] if line.startswith("*")]
    assert marked == ["/dev/ttyACM0", "/dev/ttyUSB0", "/dev/ttyUSB1", "/dev/ttyUSB3", "/dev/ttyUSB4"]
    unmarked = [line.split()[0] for line in lines[5:-1]]
    assert unmarked == ["/dev/ttyS0", "/dev/ttyUSB2"]
    assert "PL2303 Serial Port" in lines[6]


def test_list_probe_asks_a_board_given_by_path_for_its_device_id(board_factory):
    board = board_factory(mac="a4:cf:12:ab:34:cd")
    out = run_list(board.port, probe=True)
    line = next(line for line in out.splitlines() if board.port in line)
    assert line.split()[0] == board.port
    assert "dev-a4cf12ab34cd MicroPython 1.27.0 (Generic ESP32 module with SPIRAM with ESP32)" in line
    unplugged = next(line for line in out.splitlines() if line.split()[1:2] == ["/dev/ttyUSB0"])
    assert "(not answering as MicroPython: no such port /dev/ttyUSB0" in unplugged
    prolific = next(line for line in out.splitlines() if "/dev/ttyUSB2" in line)
    assert "answering" not in prolific, "only ESP32-class ports and ports named are probed"


def test_list_probe_reports_a_port_without_micropython(board_factory):
    silent = board_factory(firmware="silent")
    out = run_list(silent.port, probe=True, answer_timeout=1.0)
    line = next(line for line in out.splitlines() if silent.port in line)
    assert "(not answering as MicroPython: no MicroPython REPL on" in line


def test_list_from_the_command_line_with_a_board_by_path(board, provision):
    result = provision("list", board.port, "--probe")
    assert result.status == 0, result.err
    assert any(line.split()[0] == board.port and "dev-a4cf12ab34cd" in line for line in result.out.splitlines())
