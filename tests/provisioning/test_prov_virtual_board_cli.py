"""The virtual board answers the unmodified mpremote (PyPI 1.29.0) command line like an ESP32 would."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import wait_until

MPREMOTE = str(Path(sys.executable).with_name("mpremote"))


def mpremote(port: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MPREMOTE, "connect", port, *args], capture_output=True, text=True, timeout=60)


def test_mpremote_is_the_pinned_pypi_release():
    result = subprocess.run([MPREMOTE, "--version"], capture_output=True, text=True, timeout=30)
    assert result.stdout.split()[-1] == "1.29.0"


@pytest.mark.parametrize("raw_paste", [True, False], ids=["raw-paste", "plain-raw-fallback"])
def test_exec_runs_in_real_micropython_that_looks_like_an_esp32(board_factory, raw_paste):
    board = board_factory(mac="a4:cf:12:00:00:07", raw_paste=raw_paste)
    program = ("import os, sys, machine, network\n"
               "print(sys.implementation.name, os.uname().sysname, os.uname().machine)\n"
               "print(machine.unique_id().hex(), network.WLAN(network.STA_IF).config('mac').hex())\n"
               "print(sum(range(10)), '中文')")
    result = mpremote(board.port, "exec", program)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "micropython esp32 Generic ESP32 module with SPIRAM with ESP32",
        "a4cf12000007 a4cf12000007",
        "45 中文",
    ]
    assert board.programs, "the program reached the board"


def test_a_python_error_on_the_board_is_an_error_of_mpremote(board):
    result = mpremote(board.port, "exec", "print('before')\nraise ValueError('bad value')")
    assert result.returncode == 1
    assert "before" in result.stdout
    assert "ValueError: bad value" in result.stdout + result.stderr


def test_fs_commands_on_the_board_filesystem(board, tmp_path: Path):
    text = tmp_path / "hello.txt"
    text.write_text("你好, board\n", encoding="utf-8")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 40)  # binary, larger than one raw-paste window and one chunk

    result = mpremote(board.port, "fs", "mkdir", ":lib", "+", "fs", "cp", str(text), ":lib/hello.txt",
                      "+", "fs", "cp", str(blob), ":blob.bin")
    assert result.returncode == 0, result.stderr
    assert board.files()["/lib/hello.txt"] == text.read_bytes()
    assert board.files()["/blob.bin"] == blob.read_bytes()

    listing = mpremote(board.port, "fs", "ls", ":")
    assert listing.returncode == 0, listing.stderr
    names = {line.split()[-1]: line.split()[0] for line in listing.stdout.splitlines()[1:]}
    assert names == {"boot.py": str(len(board.files()["/boot.py"])), "lib/": "0", "blob.bin": "10240"}

    cat = mpremote(board.port, "fs", "cat", ":lib/hello.txt")
    assert cat.stdout == "你好, board\n"

    digest = mpremote(board.port, "fs", "sha256sum", ":blob.bin")
    assert hashlib.sha256(blob.read_bytes()).hexdigest() in digest.stdout

    back = tmp_path / "back.bin"
    copied_back = mpremote(board.port, "fs", "cp", ":blob.bin", str(back))
    assert copied_back.returncode == 0, copied_back.stderr
    assert back.read_bytes() == blob.read_bytes()

    removed = mpremote(board.port, "fs", "rm", ":lib/hello.txt", "+", "fs", "rmdir", ":lib", "+", "fs", "rm",
                       ":blob.bin")
    assert removed.returncode == 0, removed.stderr
    assert set(board.files()) == {"/boot.py"}
    assert board.dirs() == []


def test_errors_carry_the_board_errno_values(board):
    missing = mpremote(board.port, "fs", "cat", ":nope.txt")
    assert missing.returncode == 1
    assert "nope.txt: No such file or directory" in missing.stderr

    exists = mpremote(board.port, "fs", "mkdir", ":boot.py")
    assert "File exists" in exists.stderr

    raw = mpremote(board.port, "exec", "import os\nos.stat('/nope')")
    assert "OSError: [Errno 2] ENOENT" in raw.stdout + raw.stderr  # 44 in the WebAssembly port, 2 on a board
    caught = mpremote(board.port, "exec", "import errno\ntry:\n open('/nope')\nexcept OSError as e:\n"
                                          " print(e.errno == errno.ENOENT)")
    assert caught.stdout.strip() == "True"


def test_soft_reset_restarts_the_interpreter_and_keeps_the_files(board):
    first = mpremote(board.port, "exec", "open('/kept.txt', 'w').write('flash')\nimport builtins\n"
                                         "builtins.marker = 1")
    assert first.returncode == 0, first.stderr
    resets_before = board.soft_resets
    reset = mpremote(board.port, "soft-reset")
    assert reset.returncode == 0, reset.stderr
    assert board.soft_resets > resets_before
    # `resume` skips mpremote's own soft reset on connect, so this sees the interpreter soft-reset left
    after = mpremote(board.port, "resume", "exec", "import builtins\nprint(hasattr(builtins, 'marker'), "
                                                   "open('/kept.txt').read())")
    assert after.stdout.strip() == "False flash"


def test_df_reports_the_flash_of_the_board(board):
    df = mpremote(board.port, "df")
    assert df.returncode == 0, df.stderr
    used, capacity = board.flash_usage()
    size, _, avail = df.stdout.splitlines()[1].split()[1:4]
    assert (int(size), int(avail)) == (capacity // 4096 * 4096, (capacity - used) // 4096 * 4096)


def test_a_full_filesystem_refuses_writes_with_enospc(board, tmp_path: Path):
    board.set_free_bytes(1000)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 5000)
    result = mpremote(board.port, "fs", "cp", str(big), ":big.bin")
    assert result.returncode == 1
    assert "No space left on device" in result.stderr  # the board says OSError: 28 (ENOSPC has no name there)
    # mpremote's own cp leaves the part it wrote (why provisioning writes a temp name, then renames)
    assert 0 < len(board.files()["/big.bin"]) <= 1000
    assert mpremote(board.port, "fs", "rm", ":big.bin").returncode == 0
    small = mpremote(board.port, "exec", "open('/small.txt', 'w').write('x' * 500)")
    assert small.returncode == 0, small.stderr
    assert board.files()["/small.txt"] == b"x" * 500


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("started_by", ["a terminal", "a parent that ignores Ctrl-C"])
def test_a_virtual_board_as_a_program_for_demos_and_manual_trials(tmp_path: Path, started_by: str):
    """Ctrl-C stops it. A program started in the background by a script (`&`), or by a parent that ignores SIGINT
    (as a test worker did in the full suite), inherits SIGINT ignored; it then ran until killed."""
    port_file = tmp_path / "port"
    repo = Path(__file__).resolve().parents[2]
    program = subprocess.Popen([sys.executable, "-m", "provisioning.testing", "--mac", "02:00:00:00:00:42",
                                "--port-file", str(port_file)], cwd=repo, stdout=subprocess.PIPE, text=True,
                               preexec_fn=ignore_sigint if started_by != "a terminal" else None)
    try:
        wait_until(lambda: port_file.exists() and port_file.read_text().strip(), what="the virtual board's port")
        port = port_file.read_text().strip()
        result = mpremote(port, "exec", "import machine\nprint(machine.unique_id().hex())")
        assert result.stdout.strip() == "020000000042", result.stderr
    finally:
        program.send_signal(signal.SIGINT)
        try:
            out, _ = program.communicate(timeout=120)  # a hang guard: slow to stop on a loaded machine
        except subprocess.TimeoutExpired:
            status = Path(f"/proc/{program.pid}/status").read_text()
            signals = [line for line in status.splitlines() if line.startswith(("Sig", "Shd", "State"))]
            program.kill()
            raise AssertionError(f"Ctrl-C did not stop the virtual board: {signals}") from None
    assert program.returncode == 0
    assert out.startswith(f"virtual ESP32 (MAC 02:00:00:00:00:42) on {port}")
