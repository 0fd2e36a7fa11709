"""A barcode/QR scanner in serial line mode: one code per line (the scanner adds CR, LF or CR LF).

Each code goes to a callback (the agent's code_scanned). Codes can carry personal data (a health
code, an appointment with a name), so only their length is ever logged. Codes are UTF-8 as most
scanners send them; a line that is not UTF-8 is read as GB18030 (scanners set to GBK).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from edge_agent.adapters.serial_port import AsyncSerialPort, SerialGone, SerialPortAdapter

log = logging.getLogger(__name__)

MAX_CODE_BYTES = 4096  # a QR code holds at most 2,953 bytes; anything longer is noise on the line


@dataclass(frozen=True)
class ScannerConfig:
    port: str
    baud: int = 9600


BAUD_RATES = (9600, 19200, 38400, 57600, 115200)


def parse_scanner_config(raw: object, path: str, problems: list[str]) -> ScannerConfig | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a table")
        return None
    for key in sorted(set(raw) - {"port", "baud"}):
        problems.append(f"{path}.{key}: unknown key")
    port = raw.get("port")
    if not isinstance(port, str) or not port:
        problems.append(f"{path}.port: the scanner's serial device is required, e.g. /dev/ttyACM0")
    baud = raw.get("baud", 9600)
    if baud not in BAUD_RATES:
        problems.append(f"{path}.baud: must be one of {', '.join(map(str, BAUD_RATES))}, got {baud!r}")
    if not isinstance(port, str) or not port or baud not in BAUD_RATES:
        return None
    return ScannerConfig(port, baud)


def decode_code(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("gb18030", errors="replace")


class LineSplitter:
    """Bytes in, complete codes out; an overlong line is dropped and counted."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False
        self.overlong = 0

    def feed(self, data: bytes) -> list[str]:
        codes = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                if not self._discarding and self._buffer.strip():
                    codes.append(decode_code(bytes(self._buffer)).strip())
                self._buffer.clear()
                self._discarding = False
            elif not self._discarding:
                self._buffer.append(byte)
                if len(self._buffer) > MAX_CODE_BYTES:
                    self._buffer.clear()
                    self._discarding = True
                    self.overlong += 1
        return codes


CodeCallback = Callable[[str], object]


class BarcodeScanner(SerialPortAdapter):
    name = "scanner"
    reopen_after_s = 3.0

    def __init__(self, config: ScannerConfig, on_code: CodeCallback) -> None:
        self.config = config
        self.on_code = on_code
        self.codes = 0
        self.last_error = ""
        self.last_code_at: float | None = None
        self.state = "stopped"
        self._splitter = LineSplitter()

    def health(self) -> dict:
        return {"ok": self.state == "ready", "state": self.state, "port": self.config.port, "codes": self.codes,
                "overlong_lines": self._splitter.overlong, "last_error": self.last_error,
                "last_code_at": self.last_code_at}

    async def _run(self) -> None:
        while True:
            port = AsyncSerialPort(self.config.port, self.config.baud)
            try:
                port.open()
            except (serial.SerialException, OSError) as exc:
                if self.state != "offline":
                    self.last_error = f"cannot open the port: {exc}"
                    log.warning("scanner %s: %s", self.config.port, self.last_error)
                self.state = "offline"
                await asyncio.sleep(self.reopen_after_s)
                continue
            self._port = port
            self.state = "ready"
            self._splitter = LineSplitter()
            log.info("scanner %s: port open at %d baud", self.config.port, self.config.baud)
            try:
                while True:
                    chunk = await port.read(3600)
                    overlong = self._splitter.overlong
                    for code in self._splitter.feed(chunk):
                        await self._deliver(code)
                    if self._splitter.overlong > overlong:
                        self.last_error = f"a line longer than {MAX_CODE_BYTES} bytes was dropped"
                        log.warning("scanner %s: %s", self.config.port, self.last_error)
            except SerialGone as exc:
                self.last_error = f"the port went away: {exc}"
                log.warning("scanner %s: %s", self.config.port, self.last_error)
                self.state = "offline"
            except Exception as exc:  # a bug must not end the reading; its text could carry a code
                self.last_error = f"unexpected {type(exc).__name__}; the port is opened again"
                log.error("scanner %s: %s", self.config.port, self.last_error)
                self.state = "offline"
            finally:
                port.close()
                self._port = None
            await asyncio.sleep(self.reopen_after_s)

    async def _deliver(self, code: str) -> None:
        self.codes += 1
        self.last_code_at = time.time()
        log.info("scanner %s: a code of %d characters", self.config.port, len(code))
        try:
            result = self.on_code(code)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            log.error("scanner %s: the code handler failed (%s)", self.config.port, type(exc).__name__)
