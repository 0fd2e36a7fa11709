"""The resident ID card reader: a serial ("SAM") reader polled with find, select, read.

Frames (see /work/shared/reference/id-card-reader.md):
host -> reader  AA AA AA 96 69 | LEN(2, BE) | CMD PARA | data | CHK
reader -> host  AA AA AA 96 69 | LEN(2, BE) | SW1 SW2 SW3 | data | CHK
LEN counts every byte after itself, CHK included; CHK is the XOR of LEN..the byte before CHK.

A corrupt frame, a bad checksum, an error status or silence is logged and the polling goes on; an
unplugged reader is reopened every few seconds. After a good read the same card is not delivered
again until "find" has failed once (the card was lifted). Nothing read from a card is ever logged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import serial

from edge_agent.adapters.serial_port import AsyncSerialPort, SerialGone, SerialPortAdapter
from edge_agent.identity_card import (
    TEXT_BLOCK_BYTES,
    CardDataError,
    ResidentCard,
    card_from_text_block,
    load_or_create_salt,
)

log = logging.getLogger(__name__)

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
MAX_FRAME_LENGTH = 4096  # LEN of the largest reply (text + photo + fingerprint) is under 2,400

FIND = (0x20, 0x01)
SELECT = (0x20, 0x02)
READ_TEXT_AND_PHOTO = (0x30, 0x01)

FOUND = 0x9F
SUCCESS = 0x90
FIND_FAILED = 0x80
STATUS_MEANINGS = {
    0x90: "success", 0x9F: "card found", 0x91: "no content for this item", 0x10: "checksum error (reader side)",
    0x11: "length error", 0x21: "command error", 0x23: "unauthorised", 0x24: "unknown error",
    0x31: "card authentication failed", 0x32: "SAM authentication failed", 0x33: "information verification error",
    0x40: "unknown card type", 0x41: "read failed", 0x47: "random number failed", 0x60: "SAM self-test failed",
    0x66: "SAM not authorised", 0x80: "find failed (no card)", 0x81: "select failed",
}


class FrameError(ValueError):
    """A frame that cannot be trusted (bad checksum, impossible length, wrong shape)."""


@dataclass(frozen=True)
class Reply:
    sw1: int
    sw2: int
    sw3: int
    data: bytes

    @property
    def status(self) -> int:
        return self.sw3

    def meaning(self) -> str:
        return STATUS_MEANINGS.get(self.sw3, f"status {self.sw3:#04x}")


def checksum(body: bytes) -> int:
    value = 0
    for byte in body:
        value ^= byte
    return value


def encode_command(command: tuple[int, int], data: bytes = b"") -> bytes:
    body = (len(data) + 3).to_bytes(2, "big") + bytes(command) + data
    return PREAMBLE + body + bytes([checksum(body)])


def take_reply(buffer: bytearray) -> Reply | None:
    """Take the first complete reply frame out of `buffer` (bytes before it are dropped).

    None: no complete frame yet. FrameError: a frame was there but is corrupt; it has been removed,
    so calling again goes on with what follows.
    """
    start = buffer.find(PREAMBLE)
    if start < 0:
        del buffer[:max(0, len(buffer) - (len(PREAMBLE) - 1))]  # keep what may be the start of a preamble
        return None
    del buffer[:start]
    if len(buffer) < 7:
        return None
    length = int.from_bytes(buffer[5:7], "big")
    if not 4 <= length <= MAX_FRAME_LENGTH:
        del buffer[:1]  # not a real frame start: look for the next preamble
        raise FrameError(f"impossible frame length {length}")
    if len(buffer) < 7 + length:
        return None
    frame = bytes(buffer[:7 + length])
    del buffer[:7 + length]
    if checksum(frame[5:-1]) != frame[-1]:
        raise FrameError(f"bad checksum in a {len(frame)}-byte frame")
    return Reply(frame[7], frame[8], frame[9], frame[10:-1])


def text_block_of(read_reply: Reply) -> bytes:
    """The 256-byte text block of a successful 'read text + photo' reply; the photo (WLT) is dropped."""
    data = read_reply.data
    if len(data) < 4:
        raise FrameError("read reply too short")
    text_length = int.from_bytes(data[0:2], "big")
    photo_length = int.from_bytes(data[2:4], "big")
    if text_length != TEXT_BLOCK_BYTES or len(data) != 4 + text_length + photo_length:
        raise FrameError(f"read reply with text {text_length} and photo {photo_length} bytes in {len(data)}")
    return data[4:4 + text_length]


# -- configuration ---------------------------------------------------------

@dataclass(frozen=True)
class IdCardReaderConfig:
    port: str
    baud: int = 115200
    poll_interval_s: float = 0.3


BAUD_RATES = (9600, 19200, 38400, 57600, 115200)


def parse_id_card_config(raw: object, path: str, problems: list[str]) -> IdCardReaderConfig | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a table")
        return None
    for key in sorted(set(raw) - {"port", "baud", "poll_interval_s"}):
        problems.append(f"{path}.{key}: unknown key")
    port = raw.get("port")
    if not isinstance(port, str) or not port:
        problems.append(f"{path}.port: the reader's serial device is required, e.g. /dev/ttyUSB0")
    baud = raw.get("baud", 115200)
    if baud not in BAUD_RATES:
        problems.append(f"{path}.baud: must be one of {', '.join(map(str, BAUD_RATES))}, got {baud!r}")
    interval = raw.get("poll_interval_s", 0.3)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0.05 <= interval <= 10:
        problems.append(f"{path}.poll_interval_s: must be 0.05..10 seconds, got {interval!r}")
        interval = 0.3
    if not isinstance(port, str) or not port or baud not in BAUD_RATES:
        return None
    return IdCardReaderConfig(port, baud, float(interval))


# -- the adapter -------------------------------------------------------------

CardCallback = Callable[[ResidentCard], object]


class IdCardReader(SerialPortAdapter):
    name = "id_card_reader"
    reply_timeout_s = 1.0  # find and select answer in tens of milliseconds
    read_timeout_s = 3.0  # 1,295 bytes at 115200 baud take ~0.1 s, plus the card's own time
    reopen_after_s = 3.0  # an unplugged reader is looked for again this often

    def __init__(self, config: IdCardReaderConfig, data_dir: Path, on_card: CardCallback) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.on_card = on_card
        self.cards_read = 0
        self.errors = 0
        self.last_error = ""
        self.last_card_at: float | None = None
        self.state = "stopped"
        self._salt: bytes | None = None
        self._card_lifted = True

    def health(self) -> dict:
        return {"ok": self.state == "ready", "state": self.state, "port": self.config.port,
                "cards_read": self.cards_read, "errors": self.errors, "last_error": self.last_error,
                "last_card_at": self.last_card_at}

    def _error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        log.warning("id card reader %s: %s", self.config.port, message)

    async def _run(self) -> None:
        while True:
            port = AsyncSerialPort(self.config.port, self.config.baud)
            try:
                port.open()
            except (serial.SerialException, OSError) as exc:
                if self.state != "offline":
                    self._error(f"cannot open the port: {exc}")
                self.state = "offline"
                await asyncio.sleep(self.reopen_after_s)
                continue
            self._port = port
            log.info("id card reader %s: port open at %d baud", self.config.port, self.config.baud)
            try:
                await self._poll(port)
            except SerialGone as exc:
                self._error(f"the port went away: {exc}")
                self.state = "offline"
            except Exception as exc:  # a bug must not end the polling; its text could carry card data
                self._error(f"unexpected {type(exc).__name__}; the port is opened again")
                self.state = "offline"
            finally:
                port.close()
                self._port = None
            await asyncio.sleep(self.reopen_after_s)

    async def _transact(self, port: AsyncSerialPort, command: tuple[int, int], timeout: float) -> Reply | None:
        """Send one command and wait for its reply; None (logged) on silence or a corrupt reply."""
        port.discard_input()
        port.write(encode_command(command))
        buffer = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = take_reply(buffer)
            except FrameError as exc:
                self._error(f"corrupt reply to {command[0]:02X} {command[1]:02X} dropped: {exc}")
                return None
            if reply is not None:
                if self.state != "ready":
                    log.info("id card reader %s: answering", self.config.port)
                self.state = "ready"
                return reply
            left = deadline - time.monotonic()
            chunk = await port.read(left) if left > 0 else b""
            if not chunk:
                if self.state != "not responding":
                    self._error(f"no reply to {command[0]:02X} {command[1]:02X} within {timeout:g} s")
                self.state = "not responding"
                return None
            buffer += chunk

    async def _poll(self, port: AsyncSerialPort) -> None:
        while True:
            await self._read_once(port)
            await asyncio.sleep(self.config.poll_interval_s)

    async def _read_once(self, port: AsyncSerialPort) -> None:
        found = await self._transact(port, FIND, self.reply_timeout_s)
        if found is None:
            return
        if found.status != FOUND:
            self._card_lifted = True
            if found.status != FIND_FAILED:
                self._error(f"find: {found.meaning()}")
            return
        if not self._card_lifted:
            return  # the card just read is still there: deliver it once
        selected = await self._transact(port, SELECT, self.reply_timeout_s)
        if selected is None:
            return
        if selected.status != SUCCESS:
            self._error(f"select: {selected.meaning()}")
            return
        read = await self._transact(port, READ_TEXT_AND_PHOTO, self.read_timeout_s)
        if read is None:
            return
        if read.status != SUCCESS:
            self._error(f"read: {read.meaning()}")
            return
        try:
            if self._salt is None:
                self._salt = await asyncio.to_thread(load_or_create_salt, self.data_dir)
            card = card_from_text_block(text_block_of(read), self._salt)
        except (CardDataError, FrameError) as exc:
            self._error(f"a card could not be parsed: {exc}")  # the reason never quotes card data
            return
        self._card_lifted = False
        self.cards_read += 1
        self.last_card_at = time.time()
        log.info("id card reader %s: a card was read", self.config.port)
        await self._deliver(card)

    async def _deliver(self, card: ResidentCard) -> None:
        try:
            result = self.on_card(card)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            # Only the exception's type: its text could carry what the handler was given.
            log.error("id card reader %s: the card handler failed (%s)", self.config.port, type(exc).__name__)

