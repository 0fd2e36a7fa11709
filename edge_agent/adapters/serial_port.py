"""A serial port that moves bytes for asyncio: the transport under the card reader and the scanner.

pyserial opens and configures the port; the event loop watches its file descriptor, so nothing blocks
and nothing needs a thread. A port that disappears (USB cable pulled) raises SerialGone on the next
read or write; the adapter above decides when to try again.
"""

from __future__ import annotations

import asyncio
import os

import serial

from edge_agent.adapters.base import cancel_and_wait, start_kept_running


class SerialGone(OSError):
    """The port closed under us (unplugged, or the other side went away)."""


class AsyncSerialPort:
    def __init__(self, path: str, baudrate: int) -> None:
        self.path = path
        self.baudrate = baudrate
        self._serial: serial.Serial | None = None
        self._data = asyncio.Queue[bytes | None]()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> None:
        """Open and configure the port (8N1, no flow control); raises serial.SerialException when it cannot."""
        port = serial.Serial(self.path, self.baudrate, bytesize=8, parity="N", stopbits=1, timeout=0,
                             write_timeout=2, exclusive=True)
        self._serial = port
        self._data = asyncio.Queue()  # nothing from an earlier connection
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(port.fileno(), self._readable)

    def close(self) -> None:
        port, self._serial = self._serial, None
        if port is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(port.fileno())
        try:
            port.close()
        except (OSError, serial.SerialException):
            pass

    def _readable(self) -> None:
        try:
            chunk = os.read(self._serial.fileno(), 4096)
        except OSError:
            chunk = b""
        if not chunk:  # EOF or EIO: the device is gone
            self._loop.remove_reader(self._serial.fileno())
            self._data.put_nowait(None)
            return
        self._data.put_nowait(chunk)

    def discard_input(self) -> None:
        """Forget bytes already received (a late reply to a command we gave up on)."""
        while not self._data.empty():
            if self._data.get_nowait() is None:
                self._data.put_nowait(None)  # keep the news that the port is gone
                return

    async def read(self, timeout: float) -> bytes:
        """The next bytes received; b'' when nothing came within `timeout`."""
        if self._serial is None:
            raise SerialGone(f"{self.path} is not open")
        try:
            chunk = await asyncio.wait_for(self._data.get(), timeout)
        except TimeoutError:
            return b""
        if chunk is None:
            self._data.put_nowait(None)
            raise SerialGone(f"{self.path} went away")
        return chunk

    def write(self, data: bytes) -> None:
        if self._serial is None:
            raise SerialGone(f"{self.path} is not open")
        try:
            self._serial.write(data)
        except (OSError, serial.SerialException) as exc:
            raise SerialGone(f"{self.path}: {exc}") from exc


class SerialPortAdapter:
    """start and stop for an adapter that owns one serial port and a task reading it.

    Subclasses give `name` and `_run()`, the loop that opens the port (kept in
    `_port` while open) and reopens it after a failure.
    """

    name = "serial"
    state = "stopped"
    _task: asyncio.Task | None = None
    _port: AsyncSerialPort | None = None

    async def start(self) -> None:
        if self._task is not None:
            return
        self.state = "starting"
        # detail=False: what a serial device sends (an ID card's text, a scanned code) is never logged.
        self._task = start_kept_running(self.name, self._run, self._loop_failed, detail=False)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        if self._port is not None:
            self._port.close()
            self._port = None
        self.state = "stopped"

    def _loop_failed(self, exc: Exception) -> None:
        self.state = "offline"  # the loop starts again and opens the port anew
        self.last_error = f"unexpected {type(exc).__name__}; the port is opened again"

    async def _run(self) -> None:
        raise NotImplementedError
