"""A resident ID card reader on a pseudo-terminal, speaking the real SAM frame protocol.

The agent opens `simulator.path` as it would open /dev/ttyUSB0. A test or the demo puts a card on
the reader (`present`), lifts it (`lift`) and injects faults into the next replies (`inject`):
a bad checksum, silence, garbage before the frame or an error status. Like real readers, "find"
fails after a successful read until the card is presented again (unless `sticky`, as a few
readers behave). This module builds its frames itself, independently of the adapter's code.
"""

from __future__ import annotations

import os
import random
import select
import threading
import tty
from collections import deque
from dataclasses import dataclass

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
FIND, SELECT, READ = b"\x20\x01", b"\x20\x02", b"\x30\x01"
PHOTO_BYTES = 1024  # WLT-compressed photo; content does not matter to the agent


@dataclass
class Fault:
    kind: str  # "bad_checksum" | "silence" | "garbage" | "status" | "truncated"
    command: bytes | None = None  # only for this command (FIND, SELECT, READ); None: the next reply
    status: int = 0x41  # for "status"


def _xor(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def reply_frame(status: int, data: bytes = b"") -> bytes:
    body = (len(data) + 4).to_bytes(2, "big") + bytes([0, 0, status]) + data
    return PREAMBLE + body + bytes([_xor(body)])


class SamReaderSimulator:
    def __init__(self, sticky: bool = False) -> None:
        self.sticky = sticky
        self.commands: list[bytes] = []  # CMD PARA of every well-formed command received
        self.bad_commands = 0
        self._lock = threading.Lock()
        self._text: bytes | None = None
        self._read_done = False
        self._selected = False
        self._faults: deque[Fault] = deque()
        self._photo = random.Random(1).randbytes(PHOTO_BYTES)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass as they are
        self.path = os.ttyname(self._slave)
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="sam-reader-sim")
        self._stopped = False

    # -- what a test or the demo does -------------------------------------

    def start(self) -> SamReaderSimulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Unplug the reader: the agent's port sees it go away."""
        if self._stopped:
            return
        self._stopped = True
        os.write(self._wake_write, b"x")
        if self._thread.is_alive():
            self._thread.join(5)
        for fd in (self._master, self._slave, self._wake_read, self._wake_write):
            os.close(fd)

    def present(self, text_block: bytes) -> None:
        """Put a card on the reader (256-byte text block, see identity_card.encode_text_block)."""
        with self._lock:
            self._text = text_block
            self._read_done = False
            self._selected = False

    def lift(self) -> None:
        with self._lock:
            self._text = None
            self._selected = False

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def count(self, command: bytes) -> int:
        with self._lock:
            return sum(1 for c in self.commands if c == command)

    # -- the reader -------------------------------------------------------

    def _serve(self) -> None:
        buffer = bytearray()
        while True:
            readable, _, _ = select.select([self._master, self._wake_read], [], [])
            if self._wake_read in readable:
                return
            try:
                buffer += os.read(self._master, 4096)
            except OSError:  # the agent closed its side (EIO until it opens it again)
                if select.select([self._wake_read], [], [], 0.1)[0]:
                    return
                continue
            while True:
                command = self._take_command(buffer)
                if command is None:
                    break
                answer = self._answer(command)
                if answer:
                    os.write(self._master, answer)

    def _take_command(self, buffer: bytearray) -> bytes | None:
        start = buffer.find(PREAMBLE)
        if start < 0 or len(buffer) < start + 7:
            return None
        del buffer[:start]
        length = int.from_bytes(buffer[5:7], "big")
        if len(buffer) < 7 + length:
            return None
        frame = bytes(buffer[:7 + length])
        del buffer[:7 + length]
        if length < 3 or _xor(frame[5:-1]) != frame[-1]:
            self.bad_commands += 1
            return b"bad"
        return frame[7:9]

    def _next_fault(self, command: bytes) -> Fault | None:
        for fault in list(self._faults):
            if fault.command is None or fault.command == command:
                self._faults.remove(fault)
                return fault
        return None

    def _answer(self, command: bytes) -> bytes:
        with self._lock:
            if command == b"bad":
                return reply_frame(0x10)
            self.commands.append(command)
            fault = self._next_fault(command)
            if fault is not None and fault.kind == "silence":
                return b""
            if fault is not None and fault.kind == "status":
                return reply_frame(fault.status)
            frame = self._normal_answer(command)
        if fault is None:
            return frame
        if fault.kind == "bad_checksum":
            return frame[:-1] + bytes([frame[-1] ^ 0xFF])
        if fault.kind == "garbage":
            return b"\x00\x17\xaa\x96" + frame
        if fault.kind == "truncated":
            return frame[: len(frame) // 2]
        raise ValueError(f"unknown fault {fault.kind!r}")


    def _normal_answer(self, command: bytes) -> bytes:
        card_ready = self._text is not None and (self.sticky or not self._read_done)
        if command == FIND:
            return reply_frame(0x9F, bytes(4)) if card_ready else reply_frame(0x80)
        if command == SELECT:
            if not card_ready:
                return reply_frame(0x81)
            self._selected = True
            return reply_frame(0x90, bytes(8))
        if command == READ:
            if not self._selected or self._text is None:
                return reply_frame(0x41)
            self._selected = False
            self._read_done = True
            data = len(self._text).to_bytes(2, "big") + PHOTO_BYTES.to_bytes(2, "big") + self._text + self._photo
            return reply_frame(0x90, data)
        return reply_frame(0x21)


def sample_text_block(*, name: str = "张三", sex_code: str = "1", ethnicity_code: str = "01",
                      birth_date: str = "19500102", region: str = "445202", sequence: str = "123",
                      valid_to: str = "长期") -> bytes:
    """A made-up card with a number that passes the GB 11643 check (for tests and the demo)."""
    from edge_agent.identity_card import check_character, encode_text_block

    first17 = region + birth_date + sequence
    return encode_text_block(name=name, sex_code=sex_code, ethnicity_code=ethnicity_code, birth_date=birth_date,
                             address="广东省揭阳市榕城区示例镇示例村1号", number=first17 + check_character(first17),
                             authority="揭阳市公安局榕城分局", valid_from="20200101", valid_to=valid_to)
