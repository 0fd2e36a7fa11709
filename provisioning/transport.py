"""A board on a serial port: mpremote's SerialTransport used as a library, and the few operations we need.

SerialTransport speaks MicroPython's raw REPL and raw-paste protocol; this layer adds what provisioning
needs on top (board identity, sha256 of many files at once, mkdir -p, atomic writes, removal, soft
reset) and turns every failure into a ProvisionError whose message says what happened on which port:
no such port, port busy, no MicroPython answering, the cable pulled, the filesystem full.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from provisioning.errors import BoardFullError, ConnectionLostError, ProvisionError

BAUDRATE = 115200
READ_TIMEOUT_S = 1.0  # one serial read; without it a silent board on a pseudo-terminal blocks forever
ANSWER_TIMEOUT_S = 5.0  # how long a board may take to show the raw REPL prompt
RESET_TIMEOUT_S = 20.0  # how long a board may take to boot after machine.reset() and answer again
RECONNECT_PAUSE_S = 0.2  # between tries to reach a board that is still booting
WRITE_CHUNK = 1536  # bytes per exec when writing a file: 2 KB of base64 text for the board to compile
TMP_SUFFIX = ".tmp"  # firmware.lib.flashfs uses the same suffix for its own atomic writes

# Board errno values (MicroPython on ESP32; littlefs) and what they mean for a technician.
ERRNO_TEXT = {
    2: "no such file or directory",
    5: "input/output error",
    13: "permission denied",
    17: "already exists",
    20: "not a directory",
    21: "is a directory",
    28: "the board's filesystem is full",
    30: "the board's filesystem is read-only",
    39: "directory not empty",
}
ENOSPC = 28
ERRNO_IN_TRACEBACK = re.compile(r"OSError: (?:\[Errno )?(\d+)")


@dataclass(frozen=True)
class BoardInfo:
    implementation: str  # "micropython"
    version: str  # "1.27.0"
    sysname: str  # "esp32"
    machine: str  # "Generic ESP32 module with ESP32"
    mac: str  # 12 hex digits: the Wi-Fi station MAC, the one the firmware derives its device id from
    free_bytes: int
    total_bytes: int
    block_bytes: int  # the filesystem's allocation unit: a file takes whole blocks
    heap_bytes: int = 0  # MicroPython's heap: about 4 MB with PSRAM, a few hundred KB at most without


@dataclass(frozen=True)
class RemoteFile:
    sha256: str
    size: int


# Runs on the board: who it is. The firmware's device id comes from the Wi-Fi station MAC
# (firmware/drivers/wifi.py), so that is the MAC read here.
BOARD_INFO_PROGRAM = """
import os, sys, json, binascii, gc
try:
    import network
    _mac = network.WLAN(network.STA_IF).config('mac')
except Exception:
    import machine
    _mac = machine.unique_id()
_u = os.uname()
_s = os.statvfs('/')
print(json.dumps({'implementation': sys.implementation.name,
                  'version': '.'.join(str(n) for n in sys.implementation.version[:3]),
                  'sysname': _u[0], 'machine': _u[4], 'mac': binascii.hexlify(_mac).decode(),
                  'free_bytes': _s[1] * _s[4], 'total_bytes': _s[1] * _s[2], 'block_bytes': _s[1],
                  'heap_bytes': gc.mem_free() + gc.mem_alloc()}))
"""

# Runs on the board: [sha256, size] of every file under the given folders (recursively) and of the given files.
HASH_TREE_PROGRAM = """
import os, json, hashlib, binascii
_buf = bytearray(512)
def _sha(path):
    h = hashlib.sha256()
    size = 0
    with open(path, 'rb') as f:
        while True:
            n = f.readinto(_buf)
            if not n:
                break
            size += n
            h.update(_buf if n == len(_buf) else _buf[:n])
    return [binascii.hexlify(h.digest()).decode(), size]
def _walk(folder, out):
    try:
        entries = list(os.ilistdir(folder))
    except OSError:
        return
    for entry in entries:
        path = folder.rstrip('/') + '/' + entry[0]
        if entry[1] & 0x4000:
            _walk(path, out)
        else:
            out[path] = _sha(path)
_out = {}
for _folder in %(folders)r:
    _walk(_folder, _out)
for _path in %(files)r:
    try:
        _out[_path] = _sha(_path)
    except OSError:
        pass
print(json.dumps(_out))
"""

MAKEDIRS_PROGRAM = """
import os
_p = ''
for _part in %(path)r.strip('/').split('/'):
    _p += '/' + _part
    try:
        os.stat(_p)
    except OSError:
        os.mkdir(_p)
"""

# FAT (some boards) refuses to rename over an existing file: remove it first, as firmware.lib.flashfs does.
RENAME_PROGRAM = """
import os
try:
    os.rename(%(tmp)r, %(path)r)
except OSError:
    os.remove(%(path)r)
    os.rename(%(tmp)r, %(path)r)
"""

HOLD_PROGRAM = """
with open(%(path)r, 'w') as _f:
    _f.write('written by provisioning: main.py starts no firmware while this file exists\\n')
"""

REMOVE_IF_EXISTS_PROGRAM = """
import os
try:
    os.remove(%(path)r)
except OSError:
    pass
"""

CLOSE_AND_REMOVE_PROGRAM = """
import os
try:
    _f.close()
except Exception:
    pass
try:
    os.remove(%(tmp)r)
except OSError:
    pass
"""


def board_errno(exc: TransportExecError) -> int | None:
    """The errno of an OSError raised on the board, from its traceback."""
    match = ERRNO_IN_TRACEBACK.search(exc.error_output or "")
    return int(match.group(1)) if match else None


def port_group(port: str) -> str:
    """The group that may use a serial port: `dialout` on Debian and Raspberry Pi OS (udev gives USB serial
    ports to it), `uucp` on some other systems; `dialout` when the port's group has no name."""
    try:
        import grp  # POSIX only
        return grp.getgrgid(os.stat(port).st_gid).gr_name
    except (ImportError, OSError, KeyError):
        return "dialout"


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


class Board:
    """One connection to a board running MicroPython; close() it (or use `with`)."""

    def __init__(self, port: str, transport: SerialTransport) -> None:
        self.port = port
        self._transport = transport

    # ----- connecting -----

    @classmethod
    def connect(cls, port: str, answer_timeout: float = ANSWER_TIMEOUT_S) -> Board:
        """Open `port` and enter the raw REPL (soft reset first, as mpremote does, for a clean interpreter)."""
        if "://" not in port:
            if not os.path.exists(port):
                raise ProvisionError(f"no such port {port} (`provision list` shows the boards plugged in)")
            # Asked before opening because mpremote's SerialTransport swallows the OSError of the open and
            # raises only "failed to access <port>", without the errno. os.access opens nothing, so no
            # DTR/RTS edge can reset the board (or disturb another program holding the port).
            if not os.access(port, os.R_OK | os.W_OK):
                group = port_group(port)
                raise ProvisionError(f"cannot open {port}: permission denied: add your user to the {group} group "
                                     f"(sudo usermod -aG {group} $USER), log in again and retry")
        try:
            transport = SerialTransport(port, baudrate=BAUDRATE, timeout=READ_TIMEOUT_S)
        except TransportError as exc:
            raise ProvisionError(f"cannot open {port}: it may be in use by another program ({exc})") from None
        except (OSError, ValueError) as exc:
            raise ProvisionError(f"cannot open {port}: {exc}") from None
        board = cls(port, transport)
        try:
            board._enter_raw_repl(soft_reset=True, timeout=answer_timeout)
        except BaseException:
            board.close()
            raise
        return board

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the raw REPL and close the port; never raises (the cable may be gone already)."""
        transport, self._transport = self._transport, None
        if transport is None:
            return
        try:
            if transport.in_raw_repl:
                transport.exit_raw_repl()
        except Exception:
            pass
        try:
            transport.close()
        except Exception:
            pass

    def _enter_raw_repl(self, soft_reset: bool, timeout: float) -> None:
        received = io.StringIO()
        try:
            # SerialTransport prints what it received when the prompt does not come: keep that for the message
            with contextlib.redirect_stdout(received):
                self._live.enter_raw_repl(soft_reset=soft_reset, timeout_overall=timeout)
        except TransportError:
            seen = received.getvalue().strip()
            detail = f"it answered {seen[:80]}" if seen not in ("", "b''") else "it answered nothing"
            raise ProvisionError(
                f"no MicroPython REPL on {self.port}: {detail} (is MicroPython flashed on the board, "
                "and is nothing else using the port?)") from None
        except (OSError, serial.SerialException) as exc:
            raise self._lost(exc, "entering the raw REPL") from None

    @property
    def _live(self) -> SerialTransport:
        if self._transport is None:
            raise ProvisionError(f"the connection to {self.port} is closed")
        return self._transport

    def _lost(self, exc: BaseException, doing: str) -> ProvisionError:
        detail = str(exc).split(" (")[0]  # pyserial adds a long guess in parentheses
        return ConnectionLostError(f"lost the connection to the board on {self.port} while {doing} "
                                   f"(cable pulled or board reset?): {detail}")

    # ----- running code -----

    def exec(self, program: str, doing: str) -> bytes:
        """Run `program` on the board; its stdout. A Python error on the board becomes a ProvisionError."""
        try:
            return self._live.exec(program)
        except TransportExecError as exc:
            raise self._exec_failed(exc, doing) from None
        except TransportError as exc:
            raise ProvisionError(f"the board on {self.port} stopped answering while {doing}: {exc}") from None
        except (OSError, serial.SerialException) as exc:
            raise self._lost(exc, doing) from None

    def _exec_failed(self, exc: TransportExecError, doing: str) -> ProvisionError:
        code = board_errno(exc)
        if code == ENOSPC:
            return BoardFullError(f"{doing}: {ERRNO_TEXT[ENOSPC]} (on {self.port})")
        if code is not None:
            return ProvisionError(f"{doing}: {ERRNO_TEXT.get(code, f'OSError {code}')} (on {self.port})")
        return ProvisionError(f"{doing}: the board said {last_line(exc.error_output)} (on {self.port})")

    def _os_failed(self, exc: OSError, doing: str) -> ProvisionError:
        """An OSError out of mpremote: the port failing, or the board's errno (mpremote maps it to the host's)."""
        if isinstance(exc, serial.SerialException) or exc.errno is None:
            return self._lost(exc, doing)
        if exc.errno == errno.ENOSPC:
            return BoardFullError(f"{doing}: {ERRNO_TEXT[ENOSPC]} (on {self.port})")
        return ProvisionError(f"{doing}: {os.strerror(exc.errno).lower()} (on {self.port})")

    def exec_json(self, program: str, doing: str) -> object:
        out = self.exec(program, doing)
        try:
            return json.loads(out.decode("utf-8").strip())
        except (UnicodeDecodeError, ValueError):
            raise ProvisionError(f"{doing}: unexpected answer from the board on {self.port}: {out[:80]!r}") from None

    # ----- what provisioning needs -----

    def info(self) -> BoardInfo:
        data = self.exec_json(BOARD_INFO_PROGRAM, "reading the board's identity")
        try:
            return BoardInfo(**data)  # type: ignore[arg-type]
        except TypeError:
            raise ProvisionError(f"unexpected board identity from {self.port}: {data!r}") from None

    def sha256_tree(self, folders: list[str], files: list[str]) -> dict[str, RemoteFile]:
        """Every file under `folders` and those of `files` that exist, with their sha256 and size."""
        program = HASH_TREE_PROGRAM % {"folders": list(folders), "files": list(files)}
        data = self.exec_json(program, "hashing the files on the board")
        try:
            return {path: RemoteFile(sha, int(size)) for path, (sha, size) in data.items()}  # type: ignore[union-attr]
        except (AttributeError, TypeError, ValueError):
            raise ProvisionError(f"unexpected file list from {self.port}: {str(data)[:80]}") from None

    def sha256(self, path: str) -> str | None:
        """sha256 hex of one file on the board (mpremote's own fs_hashfile), None when it does not exist."""
        try:
            return self._live.fs_hashfile(path, "sha256").hex()
        except FileNotFoundError:
            return None
        except TransportExecError as exc:
            raise self._exec_failed(exc, f"hashing {path}") from None
        except OSError as exc:
            raise self._os_failed(exc, f"hashing {path}") from None

    def read_file(self, path: str) -> bytes:
        """The content of a file on the board (mpremote's fs_readfile)."""
        try:
            return bytes(self._live.fs_readfile(path))
        except TransportExecError as exc:
            raise self._exec_failed(exc, f"reading {path}") from None
        except OSError as exc:
            raise self._os_failed(exc, f"reading {path}") from None

    def read_file_if_exists(self, path: str) -> bytes | None:
        """The content of a file on the board, None when it does not exist."""
        try:
            return bytes(self._live.fs_readfile(path))
        except FileNotFoundError:
            return None
        except TransportExecError as exc:
            raise self._exec_failed(exc, f"reading {path}") from None
        except OSError as exc:
            raise self._os_failed(exc, f"reading {path}") from None

    def makedirs(self, path: str) -> None:
        self.exec(MAKEDIRS_PROGRAM % {"path": path}, f"creating {path}")

    def remove(self, path: str) -> None:
        self.exec(f"import os\nos.remove({path!r})", f"removing {path}")

    def write_file(self, path: str, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        """Write `path` atomically: to `path.tmp`, then rename. A failure leaves no temp file behind when the
        board still answers; a pulled cable may leave the temp file, never a half-written `path`."""
        tmp = path + TMP_SUFFIX
        doing = f"writing {path}"
        self.exec(f"from binascii import a2b_base64 as _a\n_f = open({tmp!r}, 'wb')\n_w = _f.write", doing)
        try:
            for start in range(0, len(data), WRITE_CHUNK):
                chunk = base64.b64encode(data[start:start + WRITE_CHUNK])  # bytes: the wasm port's binascii wants them
                self.exec(f"_w(_a({chunk!r}))", doing)
                if progress is not None:
                    progress(min(start + WRITE_CHUNK, len(data)))
            self.exec("_f.close()", doing)
            self.exec(RENAME_PROGRAM % {"tmp": tmp, "path": path}, doing)
        except ProvisionError:
            self._discard(tmp)
            raise

    def _discard(self, tmp: str) -> None:
        """Best effort: close and remove a temp file after a failed write (not possible when the cable is gone)."""
        if self._transport is None:
            return
        with contextlib.suppress(ProvisionError):
            self.exec(CLOSE_AND_REMOVE_PROGRAM % {"tmp": tmp}, f"removing {tmp}")

    def soft_reset(self) -> None:
        """Ctrl-D in the raw REPL: a fresh interpreter over the same files (main.py does not run)."""
        self._enter_raw_repl(soft_reset=True, timeout=ANSWER_TIMEOUT_S)

    def hold_firmware(self, hold_file: str, timeout: float = RESET_TIMEOUT_S) -> None:
        """Stop the board's firmware and its hardware watchdog until release_hold(): write `hold_file`
        (firmware/lib/hold.py), reset the board, and connect again.

        Ctrl-C stops a running firmware but not its watchdog, which the ESP32 keeps running across Ctrl-C
        and soft resets: 30 s later it would reset the board in the middle of the copy. Only a reset stops
        it, and main.py starts no watchdog while the hold file exists.
        """
        self.exec(HOLD_PROGRAM % {"path": hold_file}, f"writing {hold_file}")
        self.hard_reset()
        self._transport = self._reconnect(timeout)

    def release_hold(self, hold_file: str) -> None:
        """Remove the hold file: the next reset starts the firmware."""
        self.exec(REMOVE_IF_EXISTS_PROGRAM % {"path": hold_file}, f"removing {hold_file}")

    def _reconnect(self, timeout: float) -> SerialTransport:
        """The raw REPL of the board on the same port once it has booted again (it may take a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                fresh = Board.connect(self.port, max(1.0, min(ANSWER_TIMEOUT_S, left)))
            except ProvisionError as exc:
                if time.monotonic() >= deadline:
                    raise ProvisionError(f"the board on {self.port} did not answer again within {timeout:.0f} s "
                                         f"of its reset: {exc}") from None
                time.sleep(RECONNECT_PAUSE_S)
                continue
            transport, fresh._transport = fresh._transport, None
            return transport

    def hard_reset(self) -> None:
        """machine.reset(): the board restarts as after power-on and runs main.py (the firmware).

        The program never answers (the board is gone mid-run), so it is sent without waiting for its
        output, and the connection is closed: from here the board is on its own.
        """
        try:
            self._live.exec_raw_no_follow("import machine\nmachine.reset()\n")
        except TransportError as exc:
            raise ProvisionError(f"the board on {self.port} did not take the reset: {exc}") from None
        except (OSError, serial.SerialException) as exc:
            raise self._lost(exc, "resetting the board") from None
        transport, self._transport = self._transport, None
        with contextlib.suppress(Exception):
            transport.close()  # not exit_raw_repl: the board left the raw REPL by resetting


@contextlib.contextmanager
def connected(port: str, answer_timeout: float = ANSWER_TIMEOUT_S) -> Iterator[Board]:
    board = Board.connect(port, answer_timeout)
    try:
        yield board
    finally:
        board.close()
