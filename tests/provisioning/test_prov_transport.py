"""provisioning.transport: mpremote's SerialTransport as a library, every failure a clear ProvisionError."""

from __future__ import annotations

import grp
import hashlib
import os
import subprocess
import sys
from pathlib import Path

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


# `provision list --probe PORT` run as a user who may not open the port: imports are done first, as root if the
# test runs as root (the interpreter may live where `nobody` cannot read), then the process gives up root for
# good, so the kernel refuses the open exactly as it refuses a technician who is not in the port's group.
PROBE_AS_NOBODY = """
import os, sys
from provisioning.main import main
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)  # nogroup
    os.setuid(65534)  # nobody
sys.exit(main(["list", "--probe", "--answer-timeout", "5", sys.argv[1]]))
"""


def test_a_port_without_permission_names_the_dialout_group(board) -> None:
    """A real port the user may not open (mpremote then says only "failed to access <port>")."""
    repo = Path(__file__).resolve().parents[2]
    before = os.stat(board.port)
    if os.geteuid() == 0:  # root opens anything: hand the port to dialout as udev does, and probe as nobody
        os.chown(board.port, 0, grp.getgrnam("dialout").gr_gid)
        os.chmod(board.port, 0o660)
        group = "dialout"
    else:  # a pty is its owner's: take the owner's rights away, leave them to the port's group
        os.chmod(board.port, 0o060)
        group = grp.getgrgid(os.stat(board.port).st_gid).gr_name
    try:
        refused = subprocess.run([sys.executable, "-c", PROBE_AS_NOBODY, board.port], cwd=repo,
                                 capture_output=True, text=True, timeout=60)
    finally:
        if os.geteuid() == 0:
            os.chown(board.port, before.st_uid, before.st_gid)
        os.chmod(board.port, before.st_mode & 0o777)
    assert refused.returncode == 0, refused.stderr
    assert (f"(not answering as MicroPython: cannot open {board.port}: permission denied: add your user to the "
            f"{group} group (sudo usermod -aG {group} $USER), log in again and retry)") in refused.stdout
    with Board.connect(board.port, answer_timeout=5) as remote:  # the same port with its rights back: it answers
        assert remote.info().mac == "a4cf12ab34cd"


def test_only_the_pinned_release_of_a_supported_image_is_accepted_and_a_role_needing_psram_gets_it() -> None:
    from provisioning.supported_images import check_running_image, load

    spec = load()
    pinned = spec["micropython"]["version"]
    stock = "Generic ESP32 module with SPIRAM with ESP32"
    psram = 4 * 1024 * 1024
    assert check_running_image(pinned, stock, psram, "rating_pad", "/dev/ttyUSB0").kind == "stock"
    production = check_running_image(pinned, spec["machine"], psram, "queue_display", "/dev/ttyUSB0")
    assert production.kind == "production" and production.frozen
    # Any 1.27 or newer used to pass: another release, a plain (no SPIRAM) image, another variant.
    for version, machine in (("1.26.1", stock), ("1.28.1", stock), ("preview", stock), ("1.28.0", spec["machine"]),
                             (pinned, "Generic ESP32 module with ESP32"), (pinned, "ESP32 D2WD with ESP32")):
        with pytest.raises(ProvisionError, match="not a supported image|is built for"):
            check_running_image(version, machine, psram, "rating_pad", "/dev/ttyUSB0")
    # the SPIRAM image on a WROOM module (no PSRAM found at boot): a small heap
    for role in ("rating_pad", "queue_display"):
        with pytest.raises(ProvisionError, match=f"has a 150 KB MicroPython heap: no PSRAM .* a {role} needs"):
            check_running_image(pinned, stock, 150 * 1024, role, "/dev/ttyUSB0")
