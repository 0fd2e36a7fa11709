"""A virtual ESP32 running MicroPython, on a pseudo-terminal: what `provision` and mpremote talk to in tests.

The far end of `os.openpty()` behaves like the USB serial port of an ESP32 with MicroPython 1.27:
the friendly REPL (banner, `>>> `, echo), the raw REPL (Ctrl-A, Ctrl-B, Ctrl-C, Ctrl-D soft reset
with `soft reboot` and the banner), raw-paste mode (`\\x05A\\x01`, flow-control windows of 128 bytes)
or, with `raw_paste=False`, an older MicroPython that does not know raw-paste (the host falls back to
plain raw mode). Every program received is executed by real MicroPython, the WebAssembly port
(micropython_host.mjs), over an in-memory filesystem that survives soft resets, hard resets and
unplugging, like flash. `machine.unique_id()`, `network.WLAN().config('mac')`, `os.uname()` and
`os.statvfs()` answer as on an ESP32; filesystem errors carry the board's errno values.

The image it runs: `machine=` (os.uname().machine and the banner; MicroPython's ESP32_GENERIC-SPIRAM
by default) and `heap_bytes=` (what gc reports: a WROVER's 4 MB of PSRAM heap by default, less for a
board without PSRAM), for the supported-image checks of provisioning/supported_images.py.

Faults, for the error paths of the tools that talk to a board:
- `set_free_bytes(n)`: the filesystem is full after n more bytes (writes fail with ENOSPC);
  `statvfs_free=` makes os.statvfs() claim another figure, as littlefs's estimate can.
- `pull_cable(after_bytes=n)`: the port disappears after n more bytes from the host (mid-transfer);
  `plug()` gives a new port to the same board, which has lost power and boots again.
- `firmware="silent"` (nothing answers: no firmware, or a board in download mode) or
  `firmware="garbage"` (another firmware, answering ERROR to every line).

    with VirtualBoard(mac="a4:cf:12:ab:34:cd") as board:
        subprocess.run(["mpremote", "connect", board.port, "exec", "print(1)"])

The firmware and its watchdog (`run_firmware=True`): at every power-on, reset, and soft reset in the
friendly REPL, the real /main.py is loaded and its `start()` runs (the provisioning hold check, then
machine.WDT). When it returns a watchdog the firmware is running: the serial line is ignored but for
Ctrl-C, the firmware feeds the watchdog, and `on_power_on` (the firmware twin) starts its network side.
Ctrl-C stops the firmware (KeyboardInterrupt, then the friendly REPL), not the watchdog: as on the
ESP32 it survives Ctrl-C and soft resets, and unless something feeds it, resets the board `timeout`
after the last feed (a hard reset: only that stops it). Its time is `clock` (seconds, time.monotonic by
default); `ProgramClock` makes it pass with the board's work instead, one second per program run, so a
test sizes "30 s into a copy" in programs, not in wall-clock time.

Limits: a program that never returns hangs the board (the WebAssembly interpreter cannot be interrupted
from outside, so Ctrl-C reaches it only between programs, and so does the watchdog's reset); main.py
as a whole is not run at boot unless `run_main=True` (the firmware would wait for Wi-Fi forever;
`run_firmware` runs its start() only, and `on_power_on=FirmwareTwin(...).boot` the provisioned
firmware's network side under CPython, see firmware_twin.py); friendly-REPL input is one line at a time
(no continuation lines, no paste mode).
"""

from __future__ import annotations

import os
import select
import signal
import struct
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from provisioning.testing.micropython_host import ExecResult, MicroPythonHost

# The image a WROVER board runs until the production image is flashed: MicroPython's ESP32_GENERIC-SPIRAM
# (firmware/image/image.json, "stock_images"). `machine=` makes the board run another one.
STOCK_MACHINE = "Generic ESP32 module with SPIRAM with ESP32"
PSRAM_HEAP_BYTES = 4 * 1024 * 1024  # MicroPython's heap on a WROVER: the PSRAM; `heap_bytes=` for less


def _banner(machine: str) -> bytes:
    return (f"MicroPython v1.27.0 on 2025-12-09; {machine}\r\n".encode()
            + b'Type "help()" for more information.\r\n')


BANNER = _banner(STOCK_MACHINE)
PROMPT = b">>> "
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
SOFT_REBOOT = b"MPY: soft reboot\r\n"
# What the ESP32's ROM bootloader prints after a reset, before MicroPython starts.
ROM_BOOT = (b"ets Jul 29 2019 12:21:46\r\n\r\nrst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
            b"configsip: 0, SPIWP:0xee\r\nmode:DIO, clock div:2\r\nentry 0x400805f0\r\n")
PASTE_WINDOW = 128  # MICROPY_REPL_STDIN_BUFFER_MAX (256) / 2, as the firmware announces it
WRITE_PATIENCE_S = 2.0  # how long output waits for a host that does not read before it is dropped, like a UART
DEFAULT_FLASH_BYTES = 2 * 1024 * 1024  # the filesystem partition of a 4 MB ESP32
WRAPPER_FRAME = '  File "<stdin>", line 1, in <module>\n'
HIDDEN_FRAME = '"/.hw/'  # where micropython_host.mjs keeps the board's hardware modules while importing them

# What the ESP-IDF prints when the task watchdog fires, before the chip resets.
WATCHDOG_FIRED = b"E (30000) task_wdt: Task watchdog got triggered.\r\n"
KEYBOARD_INTERRUPT = (b"Traceback (most recent call last):\r\n  File \"main.py\", line 1, in <module>\r\n"
                      b"KeyboardInterrupt: \r\n")
WATCHDOG_POLL_S = 0.05  # how often an idle board looks at its watchdog

# Runs on the board at boot: /main.py's start() (the hold check, then machine.WDT), as main.py would.
START_FIRMWARE = b"""
_vb_main = {"__name__": "__vboard_main__"}
with open("/main.py") as _vb_f:
    exec(_vb_f.read(), _vb_main)
if "start" in _vb_main and _vb_main["start"]() is None:
    print("\\x00vboard: held")
del _vb_main, _vb_f
"""
HELD_MARK = b"\x00vboard: held\n"

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
FIRMWARES = ("micropython", "silent", "garbage")


class ProgramClock:
    """The watchdog's time passing with the board's work: one second per program it has run."""

    def __init__(self, seconds_per_program: float = 1.0) -> None:
        self.board: VirtualBoard | None = None  # set by the board it is given to
        self.seconds_per_program = seconds_per_program

    def __call__(self) -> float:
        return len(self.board.programs) * self.seconds_per_program if self.board is not None else 0.0


def _cooked(data: bytes) -> bytes:
    """MicroPython's stdout on a UART turns every \\n into \\r\\n."""
    return data.replace(b"\n", b"\r\n")


def _board_traceback(text: str | None) -> bytes:
    """The traceback as the board prints it: without the frames of the virtual board's own wrappers."""
    if not text:
        return b""
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if HIDDEN_FRAME not in line]
    return _cooked("".join(kept).encode())


class VirtualBoard:
    """An ESP32 with MicroPython on a pseudo-terminal; `port` is the path a host opens."""

    def __init__(self, mac: str = "a4:cf:12:ab:34:cd", flash_bytes: int = DEFAULT_FLASH_BYTES,
                 raw_paste: bool = True, firmware: str = "micropython", run_main: bool = False,
                 on_power_on: Callable[[dict[str, bytes], str], None] | None = None,
                 run_firmware: bool = False, clock: Callable[[], float] = time.monotonic,
                 machine: str = STOCK_MACHINE, heap_bytes: int = PSRAM_HEAP_BYTES) -> None:
        if firmware not in FIRMWARES:
            raise ValueError(f"firmware must be one of {FIRMWARES}, got {firmware!r}")
        self.mac_hex = mac.replace(":", "").replace("-", "").lower()
        if len(self.mac_hex) != 12:
            raise ValueError(f"MAC must have 12 hex digits, got {mac!r}")
        self.raw_paste = raw_paste
        self.firmware = firmware
        self.run_main = run_main
        self.run_firmware = run_firmware
        self.machine = machine
        self.heap_bytes = heap_bytes
        self.banner = _banner(machine)
        self.on_power_on = on_power_on  # the board's network side after a boot (firmware_twin.FirmwareTwin.boot)
        self.clock = clock
        if isinstance(clock, ProgramClock):
            clock.board = self
        self._flash_bytes = flash_bytes
        self._host: MicroPythonHost | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._port_lock = threading.Lock()
        self._port: str | None = None
        self._cable_budget: int | None = None  # bytes from the host until the cable is pulled
        self._powered = False  # False after a pulled cable: the board boots again when plugged
        self.received_bytes = 0  # from the host, over the board's life: tests size faults with it
        self.programs: list[bytes] = []  # every program executed, in order
        self.soft_resets = 0
        self.hard_resets = 0
        self.watchdog_resets = 0  # hard resets the watchdog made
        self.firmware_running = False  # main.py's firmware runs (run_firmware): only Ctrl-C reaches the board
        self._wdt_timeout_s: float | None = None  # the watchdog, once started: until a hard reset
        self._wdt_deadline = 0.0
        # REPL state (only the serving thread touches it)
        self._mode = "friendly"
        self._line = bytearray()
        self._paste = bytearray()
        self._paste_remain = 0

    # ----- life cycle -----

    def start(self) -> VirtualBoard:
        self._host = MicroPythonHost(self.mac_hex, self._flash_bytes, self.machine, self.heap_bytes)
        if self.firmware != "micropython":
            self._host.boot()  # the flash exists even when no MicroPython runs on it
        self.plug()
        return self

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> str:
        if self._port is None:
            raise RuntimeError("the board is not plugged in")
        return self._port

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> str:
        """Connect the board to a new pseudo-terminal (a USB port); after a pulled cable it boots again."""
        if self.plugged:
            raise RuntimeError("the board is already plugged in")
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: the host sees exactly what the board writes
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._port = os.ttyname(slave)
        self._wake_r, self._wake_w = os.pipe()
        self._cable_budget = None
        if not self._powered and self.firmware == "micropython":
            self._power_on()
        self._powered = True
        self._thread = threading.Thread(target=self._serve, name=f"virtual-board-{self.mac_hex}", daemon=True)
        self._thread.start()
        return self._port

    def pull_cable(self, after_bytes: int = 0) -> None:
        """The port disappears now, or after `after_bytes` more bytes from the host (mid-transfer)."""
        if after_bytes <= 0:
            self._unplug()
        else:
            self._cable_budget = after_bytes

    def wait_unplugged(self, timeout: float = 10.0) -> None:
        """Wait until a cable pull armed with `after_bytes` has happened (a safety net, not a timing)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if self.plugged and (thread is None or not thread.is_alive()):
            self._close_port()

    def close(self) -> None:
        self._unplug()
        if self._host is not None:
            self._host.close()
            self._host = None

    def _unplug(self) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            if self._wake_w >= 0:
                os.write(self._wake_w, b"x")
            thread.join(10)
        self._close_port()

    def _close_port(self) -> None:
        with self._port_lock:
            fds = (self._master, self._slave, self._wake_r, self._wake_w)
            self._master = self._slave = None
            self._wake_r = self._wake_w = -1
            self._thread = None
            self._powered = False  # a USB-powered board loses power with its cable
        for fd in fds:
            if fd is not None and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    # ----- faults and inspection -----

    def set_free_bytes(self, free_bytes: int, statvfs_free: int | None = None) -> None:
        """From now on the filesystem holds only `free_bytes` more; os.statvfs() reports `statvfs_free` if given."""
        used, _ = self.host.flash_usage()
        reported = None if statvfs_free is None else used + statvfs_free
        self.host.set_capacity(used + free_bytes, reported)

    def flash_usage(self) -> tuple[int, int]:
        return self.host.flash_usage()

    def files(self) -> dict[str, bytes]:
        """Every file on the board's flash with its content (read behind the board's back)."""
        return self.host.files()[0]

    def dirs(self) -> list[str]:
        return self.host.files()[1]

    def put_file(self, path: str, data: bytes) -> None:
        """Write a file onto the board's flash behind its back (test set-up)."""
        self.host.put(path, data)

    @property
    def host(self) -> MicroPythonHost:
        if self._host is None:
            raise RuntimeError("the board is not started")
        return self._host

    # ----- the serial line -----

    def _serve(self) -> None:
        master, wake = self._master, self._wake_r
        while True:
            try:
                timeout = WATCHDOG_POLL_S if self._wdt_timeout_s is not None else None
                ready, _, _ = select.select([master, wake], [], [], timeout)
            except (OSError, ValueError):
                return
            if wake in ready:
                return
            self._check_watchdog()
            if master not in ready:
                continue
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            for byte in data:
                if self._cable_budget is not None:
                    if self._cable_budget <= 0:
                        self._close_port()
                        return
                    self._cable_budget -= 1
                self.received_bytes += 1
                self._receive(byte)
            if self._cable_budget is not None and self._cable_budget <= 0:
                self._close_port()
                return

    def _write(self, data: bytes) -> None:
        master = self._master
        if master is None or not data:
            return
        view = memoryview(data)
        deadline = time.monotonic() + WRITE_PATIENCE_S
        while view:
            try:
                sent = os.write(master, view)
                view = view[sent:]
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return  # nobody reads: a UART drops what it cannot send
                select.select([], [master], [], remaining)
            except OSError:
                return

    def _receive(self, byte: int) -> None:
        if self.firmware == "silent":
            return
        if self.firmware == "garbage":
            if byte == 0x0D:
                self._write(b"\r\nERROR\r\n")
            elif byte < 0x20:
                self._write(b"\xfe\x07")
            return
        if self.firmware_running:
            if byte == CTRL_C:  # KeyboardInterrupt in main.py: the friendly REPL; the watchdog runs on
                self._check_watchdog()  # fed one last time
                self.firmware_running = False
                self._write(KEYBOARD_INTERRUPT + self.banner + PROMPT)
            return  # the firmware reads no serial input
        if self._mode == "paste":
            self._receive_paste(byte)
        elif self._mode == "raw":
            self._receive_raw(byte)
        else:
            self._receive_friendly(byte)

    # ----- the REPLs, as shared/runtime/pyexec.c does them -----

    def _receive_friendly(self, byte: int) -> None:
        if byte == CTRL_A:
            self._write(b"\r\n")
            self._enter_raw()
        elif byte == CTRL_B:
            self._line.clear()
            self._write(b"\r\n" + self.banner + PROMPT)
        elif byte == CTRL_C:
            self._line.clear()
            self._write(b"\r\n" + PROMPT)
        elif byte == CTRL_D:
            if not self._line:
                self._write(b"\r\n")
                self._soft_reboot()
        elif byte == 0x0D:
            self._write(b"\r\n")
            line = bytes(self._line)
            self._line.clear()
            if not line.strip() or self._run_interactive(line):
                self._write(PROMPT)
        elif byte in (0x08, 0x7F):
            if self._line:
                self._line.pop()
                self._write(b"\x08 \x08")
        elif byte >= 0x20 or byte == 0x09:
            self._line.append(byte)
            self._write(bytes([byte]))

    def _enter_raw(self) -> None:
        self._mode = "raw"
        self._line.clear()
        self._write(RAW_BANNER + b">")

    def _receive_raw(self, byte: int) -> None:
        if byte == CTRL_A:
            if self.raw_paste and bytes(self._line) == b"\x05A":
                self._line.clear()
                self._mode = "paste"
                self._paste.clear()
                self._paste_remain = PASTE_WINDOW
                # "R\x01", the window size, and one more window granted at once (mp_reader_new_stdin)
                self._write(b"R\x01" + struct.pack("<H", PASTE_WINDOW) + b"\x01")
                return
            self._enter_raw()  # a raw REPL reset; a MicroPython without raw-paste also lands here
        elif byte == CTRL_B:
            self._mode = "friendly"
            self._line.clear()
            self._write(b"\r\n" + self.banner + PROMPT)
        elif byte == CTRL_C:
            self._line.clear()
        elif byte == CTRL_D:
            self._write(b"OK")
            program = bytes(self._line)
            self._line.clear()
            if not program:
                self._write(b"\r\n")
                self._soft_reboot()
                return
            if self._run_program(program):
                self._write(b">")
        else:
            self._line.append(byte)

    def _receive_paste(self, byte: int) -> None:
        if byte in (CTRL_C, CTRL_D):
            self._write(b"\x04")  # end of data acknowledged
            self._mode = "raw"
            if byte == CTRL_C:
                self._write(b"\x04Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n\x04>")
                return
            if self._run_program(bytes(self._paste)):
                self._write(b">")
            return
        self._paste.append(byte)
        self._paste_remain -= 1
        if self._paste_remain == 0:
            self._write(b"\x01")  # the next window is free
            self._paste_remain = PASTE_WINDOW

    def _run_program(self, program: bytes) -> bool:
        """Execute a raw-REPL program: stdout, \\x04, the traceback, \\x04. False when the board reset."""
        if self._check_watchdog():
            return False  # the chip reset before the program arrived
        self.programs.append(program)
        result = self.host.exec(program)
        self._watchdog_calls(result)
        self._write(_cooked(result.stdout))
        if result.error_type == "HardReset":
            self._hard_reset()
            return False
        if result.error_type == "SystemExit":
            self._write(b"\x04\x04")
            self._soft_reboot()
            return False
        self._write(b"\x04" + _board_traceback(result.error) + b"\x04")
        return True

    def _run_interactive(self, line: bytes) -> bool:
        """A friendly-REPL line, compiled in 'single' mode so expressions print their value.

        False when the board reset (it has printed its banner and prompt already).
        """
        if self._check_watchdog():
            return False
        self.programs.append(line)
        code = b"exec(compile(%r, '<stdin>', 'single'))" % line.decode("utf-8", "replace")
        result = self.host.exec(code)
        self._watchdog_calls(result)
        self._write(_cooked(result.stdout))
        if result.error_type == "HardReset":
            self._hard_reset()
            return False
        if result.error_type == "SystemExit":
            self._soft_reboot()
            return False
        if result.error:
            # the first frame is the exec() wrapper above, not the user's line
            self._write(_board_traceback(result.error.replace(WRAPPER_FRAME, "", 1)))
        return True

    # ----- the watchdog -----

    def _watchdog_calls(self, result: ExecResult) -> None:
        """What a program did to machine.WDT: started it (again), fed it."""
        if result.wdt_started is not None:
            self._wdt_timeout_s = result.wdt_started / 1000
        if self._wdt_timeout_s is not None and (result.wdt_started is not None or result.wdt_feeds):
            self._wdt_deadline = self.clock() + self._wdt_timeout_s

    def _check_watchdog(self) -> bool:
        """Feed it while the firmware runs; reset the board once it has gone unfed too long. True: reset."""
        if self._wdt_timeout_s is None:
            return False
        now = self.clock()
        if self.firmware_running:
            self._wdt_deadline = now + self._wdt_timeout_s
            return False
        if now < self._wdt_deadline:
            return False
        self._write(WATCHDOG_FIRED)
        self._hard_reset()
        self.watchdog_resets += 1  # counted once the board has booted again: tests wait on it
        return True

    # ----- resets -----

    def _boot(self) -> None:
        """A fresh interpreter over the same files: boot.py, then main.py in the friendly REPL."""
        self.host.boot()
        for script in ("/boot.py", "/main.py"):
            if script == "/main.py" and self._mode == "friendly" and self.run_firmware:
                return self._start_firmware()
            if script == "/main.py" and (self._mode != "friendly" or not self.run_main):
                continue
            result = self.host.run_file(script)
            if result is not None:
                self._write_script_output(result)
                if result.error_type == "HardReset":
                    return self._hard_reset()

    def _start_firmware(self) -> None:
        """main.py's start(): the hold check, then the watchdog. The firmware runs unless held or absent."""
        if "/main.py" not in self.files():
            return
        result = self.host.exec(START_FIRMWARE)
        self._watchdog_calls(result)
        held = HELD_MARK in result.stdout
        self._write(_cooked(result.stdout.replace(HELD_MARK, b"")))
        if result.error:
            self._write(_board_traceback(result.error))
            return  # main.py crashed: the REPL
        self.firmware_running = not held

    def _write_script_output(self, result: ExecResult) -> None:
        self._write(_cooked(result.stdout))
        if result.error and result.error_type not in ("HardReset", "SystemExit"):
            self._write(_board_traceback(result.error))

    def _soft_reboot(self) -> None:
        # The watchdog is not touched: on the ESP32 it survives a soft reset.
        self.soft_resets += 1
        self._write(SOFT_REBOOT)
        self._boot()
        if self._mode == "raw":
            self._write(RAW_BANNER + b">")
        else:
            self._mode = "friendly"
            if not self.firmware_running:
                self._write(self.banner + PROMPT)

    def _hard_reset(self) -> None:
        self.hard_resets += 1
        self._write(ROM_BOOT)
        self._power_on()

    def _power_on(self) -> None:
        """Power-on or reset: the watchdog is gone, MicroPython starts in the friendly REPL."""
        self._wdt_timeout_s = None
        self.firmware_running = False
        self._mode = "friendly"
        self._line.clear()
        self._boot()
        if not self.firmware_running:
            self._write(self.banner + PROMPT)
        if self.on_power_on is not None and (self.firmware_running or not self.run_firmware):
            mac = ":".join(self.mac_hex[i:i + 2] for i in range(0, 12, 2))
            self.on_power_on(self.files(), mac)


def main() -> None:
    """Run one virtual board until Ctrl-C: `python -m provisioning.testing [--mac ...]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m provisioning.testing", description=__doc__.split("\n")[0])
    parser.add_argument("--mac", default="a4:cf:12:ab:34:cd")
    parser.add_argument("--flash-bytes", type=int, default=DEFAULT_FLASH_BYTES)
    parser.add_argument("--no-raw-paste", action="store_true", help="behave like a MicroPython without raw-paste")
    parser.add_argument("--port-file", type=Path, help="also write the port's path to this file")
    args = parser.parse_args()
    # Ctrl-C stops it whatever its parent left it: an ignored SIGINT is inherited across exec (then Python installs
    # no KeyboardInterrupt), and so is a blocked one.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    with VirtualBoard(mac=args.mac, flash_bytes=args.flash_bytes, raw_paste=not args.no_raw_paste) as board:
        print(f"virtual ESP32 (MAC {args.mac}) on {board.port}; Ctrl-C stops it", flush=True)
        if args.port_file:
            args.port_file.write_text(board.port + "\n")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
