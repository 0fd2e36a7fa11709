"""The virtual board through mpremote's SerialTransport used as a library, and its faults."""

from __future__ import annotations

import errno
import hashlib

import pytest
import serial
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from provisioning.testing.virtual_board import BANNER, PROMPT


@pytest.fixture
def transport_to():
    opened: list[SerialTransport] = []

    def connect(board, timeout: float | None = 1.0) -> SerialTransport:
        transport = SerialTransport(board.port, baudrate=115200, timeout=timeout)
        opened.append(transport)
        return transport

    yield connect
    for transport in opened:
        try:
            transport.close()
        except (OSError, serial.SerialException):
            pass


def test_serial_transport_file_operations(board, transport_to):
    transport = transport_to(board)
    transport.enter_raw_repl()
    data = bytes(range(256)) * 9
    transport.fs_mkdir("/lib")
    transport.fs_writefile("/lib/data.bin", data)
    assert transport.fs_readfile("/lib/data.bin") == data
    assert transport.fs_hashfile("/lib/data.bin", "sha256") == hashlib.sha256(data).digest()
    assert transport.fs_stat("/lib/data.bin").st_size == len(data)
    assert [(entry.name, entry.st_size) for entry in transport.fs_listdir("/lib")] == [("data.bin", len(data))]
    assert transport.fs_isdir("/lib") and not transport.fs_exists("/nope")
    with pytest.raises(FileNotFoundError):
        transport.fs_readfile("/nope")
    transport.fs_rmfile("/lib/data.bin")
    transport.fs_rmdir("/lib")
    assert set(board.files()) == {"/boot.py"}
    assert transport.use_raw_paste, "raw-paste mode was accepted"


def test_a_board_without_raw_paste_gets_the_plain_raw_repl(board_factory, transport_to):
    board = board_factory(raw_paste=False)
    transport = transport_to(board)
    transport.enter_raw_repl()
    program = "x = %r\nprint(len(x))" % ("a" * 3000)  # many 256-byte chunks of plain raw mode
    assert transport.exec(program).strip() == b"3000"
    assert transport.use_raw_paste is False, "mpremote fell back to plain raw mode"


def test_raw_paste_honours_the_flow_control_window(board, transport_to):
    transport = transport_to(board)
    transport.enter_raw_repl()
    program = "s = %r\nprint(len(s))" % ("b" * 10_000)  # dozens of 128-byte windows
    assert transport.exec(program).strip() == b"10000"
    assert board.programs[-1] == program.encode()


def test_friendly_repl_banner_echo_and_soft_reboot(board):
    with serial.Serial(board.port, timeout=1) as port:
        port.timeout = 10  # only a guard against a hung test: read_until returns at the prompt
        port.reset_input_buffer()
        port.write(b"\x02")
        assert port.read_until(PROMPT) == b"\r\n" + BANNER + PROMPT
        port.write(b"6*7\r")
        assert port.read_until(PROMPT) == b"6*7\r\n42\r\n" + PROMPT
        port.write(b"open('/x')\r")
        assert b"OSError: [Errno 2] ENOENT\r\n" + PROMPT in port.read_until(PROMPT)
        port.write(b"\x04")
        assert port.read_until(PROMPT) == b"\r\nMPY: soft reboot\r\n" + BANNER + PROMPT


def test_machine_reset_reboots_the_board_into_the_friendly_repl(board, transport_to):
    transport = transport_to(board)
    transport.enter_raw_repl()
    transport.exec_raw_no_follow("import machine\nmachine.reset()")
    assert transport.read_until(1, PROMPT, timeout=5).endswith(BANNER + PROMPT)
    assert board.hard_resets == 1


def test_files_survive_unplugging_but_the_interpreter_does_not(board, transport_to):
    transport = transport_to(board)
    transport.enter_raw_repl()
    transport.exec("open('/kept', 'w').write('1')\nimport builtins\nbuiltins.marker = 1")
    transport.close()
    board.pull_cable()
    board.plug()
    again = transport_to(board)
    again.enter_raw_repl(soft_reset=False)
    assert again.exec("import builtins\nprint(hasattr(builtins, 'marker'), open('/kept').read())") == b"False 1\r\n"


def test_a_pulled_cable_is_an_error_of_the_transport(board, transport_to):
    transport = transport_to(board)
    transport.enter_raw_repl()
    board.pull_cable(after_bytes=2000)
    with pytest.raises((serial.SerialException, OSError)):
        transport.fs_writefile("/big.bin", b"z" * 20_000)
    board.wait_unplugged()
    assert not board.plugged
    assert len(board.files().get("/big.bin", b"")) < 20_000


def test_enospc_reaches_mpremote_as_the_board_errno(board, transport_to):
    transport = transport_to(board)
    transport.enter_raw_repl()
    board.set_free_bytes(300)
    with pytest.raises(OSError) as raised:
        transport.fs_writefile("/big.bin", b"z" * 2000)
    assert raised.value.errno == errno.ENOSPC
    assert "OSError: 28" in transport.exec_raw("open('/more', 'wb').write(b'y' * 4000)")[1].decode()


@pytest.mark.parametrize("firmware", ["silent", "garbage"])
def test_a_board_without_micropython_never_shows_the_raw_repl(board_factory, transport_to, firmware, capsys):
    board = board_factory(firmware=firmware)
    transport = transport_to(board)
    with pytest.raises(TransportError, match="could not enter raw repl"):
        transport.enter_raw_repl(timeout_overall=1)
    if firmware == "garbage":
        assert b"ERROR" in capsys.readouterr().out.encode()  # mpremote prints what it got instead
