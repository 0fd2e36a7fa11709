"""provisioning.transport: mpremote's SerialTransport as a library, every failure a clear ProvisionError."""

from __future__ import annotations

import hashlib

import pytest

from provisioning.errors import BoardFullError, ConnectionLostError, ProvisionError
from provisioning.transport import Board


def test_file_operations_on_a_board(board):
    with Board.connect(board.port, answer_timeout=5) as remote:
        info = remote.info()
        assert (info.implementation, info.sysname, info.mac) == ("micropython", "esp32", "a4cf12ab34cd")
        assert info.free_bytes > 0 and info.block_bytes == 4096
        remote.makedirs("/lib/firmware/lib")
        remote.makedirs("/lib/firmware/lib")  # mkdir -p: no error when it exists
        data = bytes(range(256)) * 20
        remote.write_file("/lib/firmware/lib/x.bin", data)
        assert remote.read_file("/lib/firmware/lib/x.bin") == data
        assert remote.sha256("/lib/firmware/lib/x.bin") == hashlib.sha256(data).hexdigest()
        assert remote.sha256("/nope") is None
        tree = remote.sha256_tree(["/lib"], ["/boot.py", "/missing.py"])
        assert set(tree) == {"/lib/firmware/lib/x.bin", "/boot.py"}
        assert tree["/lib/firmware/lib/x.bin"].size == len(data)
        remote.write_file("/lib/firmware/lib/x.bin", b"replaced")  # rename over the old file
        assert board.files()["/lib/firmware/lib/x.bin"] == b"replaced"
        remote.remove("/lib/firmware/lib/x.bin")
        assert "/lib/firmware/lib/x.bin" not in board.files()
        with pytest.raises(ProvisionError, match=r"^reading /nope: no such file or directory \(on /dev/pts/"):
            remote.read_file("/nope")
        with pytest.raises(ProvisionError, match="removing /nope: no such file or directory"):
            remote.remove("/nope")
        with pytest.raises(ProvisionError, match="checking: the board said ZeroDivisionError: divide by zero"):
            remote.exec("1/0", "checking")


def test_a_write_that_fills_the_filesystem_leaves_neither_file_nor_temp(board):
    with Board.connect(board.port, answer_timeout=5) as remote:
        remote.write_file("/kept.bin", b"old")
        board.set_free_bytes(2000)
        with pytest.raises(BoardFullError, match="writing /kept.bin: the board's filesystem is full"):
            remote.write_file("/kept.bin", b"n" * 5000)
        assert board.files()["/kept.bin"] == b"old"
        assert "/kept.bin.tmp" not in board.files()


def test_a_pulled_cable_is_a_lost_connection_and_closing_still_works(board):
    remote = Board.connect(board.port, answer_timeout=5)
    board.pull_cable(after_bytes=500)
    with pytest.raises(ConnectionLostError, match=f"lost the connection to the board on {board.port} while writing"):
        remote.write_file("/big.bin", b"x" * 10_000)
    remote.close()
    remote.close()
    board.wait_unplugged()
    assert "/big.bin" not in board.files()


def test_a_port_in_use_is_refused(board):
    with Board.connect(board.port, answer_timeout=5):
        with pytest.raises(ProvisionError, match=f"cannot open {board.port}: it may be in use by another program"):
            Board.connect(board.port, answer_timeout=5)


def test_soft_reset_keeps_the_files(board):
    with Board.connect(board.port, answer_timeout=5) as remote:
        remote.write_file("/a.txt", b"1")
        resets = board.soft_resets
        remote.soft_reset()
        assert board.soft_resets == resets + 1
        assert remote.read_file("/a.txt") == b"1"


def test_a_port_without_permission_names_the_dialout_group(monkeypatch, tmp_path) -> None:
    from mpremote.transport import TransportError

    from provisioning import transport

    def refuse(*_args, **_kwargs):
        raise TransportError("failed to access /dev/ttyUSB0: [Errno 13] Permission denied: '/dev/ttyUSB0'")

    port = tmp_path / "ttyUSB0"
    port.write_text("")
    monkeypatch.setattr(transport, "SerialTransport", refuse)
    with pytest.raises(ProvisionError, match="permission denied: add your user to the dialout group"):
        Board.connect(str(port))


def test_a_board_with_an_older_micropython_is_refused() -> None:
    from provisioning.commands import _check_board
    from provisioning.transport import BoardInfo

    def info(version: str) -> BoardInfo:
        return BoardInfo("micropython", version, "esp32", "Generic ESP32 module with ESP32", "a4cf12ab34cd",
                         1_000_000, 2_000_000, 4096)

    assert _check_board(info("1.27.0"), "/dev/ttyUSB0") == "dev-a4cf12ab34cd"
    assert _check_board(info("1.28.1"), "/dev/ttyUSB0") == "dev-a4cf12ab34cd"
    for old in ("1.26.1", "1.9", "preview"):
        with pytest.raises(ProvisionError, match="needs 1.27 or newer"):
            _check_board(info(old), "/dev/ttyUSB0")
