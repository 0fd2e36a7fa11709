"""A virtual ESP32 in download mode, on a pseudo-terminal: the ROM serial bootloader that esptool talks to.

The far end of `os.openpty()` speaks the ESP32 ROM loader protocol as esptool's own documentation
describes it: SLIP frames (0xC0 delimiters, 0xDB escapes), requests `00 op len16 checksum32 data`,
responses `01 op len16 value32 data status error 00 00` (the ESP32 ROM's four status bytes). It answers

- SYNC (with eight responses, as the ROM does), READ_REG / WRITE_REG over a small register file holding
  the ESP32's chip magic (0x00F01D83 at 0x40001000), its eFuses (MAC, chip revision), the UART clock
  divider of a 40 MHz crystal and the SPI1 registers, where a user command RDID (0x9F) answers a
  4 MB flash id: enough for esptool's chip detection, MAC, crystal and flash size;
- SPI_ATTACH, SPI_SET_PARAMS, CHANGE_BAUDRATE (a pty has no baud rate: acknowledged);
- FLASH_BEGIN / FLASH_DATA (checksum 0xEF xor every byte, sequence numbers checked) / FLASH_END into a
  4 MB flash that starts erased (0xFF), and SPI_FLASH_MD5 answered as the ROM does (32 hex digits);
- every other command (GET_SECURITY_INFO, which the ESP32 ROM lacks, or the compressed FLASH_DEFL_*
  that esptool uses only with its stub) with status 1, error 0x05 "invalid message", like the ROM.

esptool must run with `--no-stub` (the virtual ROM executes no uploaded code) and `--before no-reset`
(a pty has no DTR/RTS lines to pull the chip into download mode: the virtual chip is in it already).
FLASH_END with "run user code" (what esptool's `--after soft-reset` sends) boots the flashed image:
with `then=VirtualBoard(...)` the port from then on carries that board's MicroPython REPL (bytes are
relayed to the board's own pty), as a real board starts MicroPython after flashing.

Faults: `fail_write_at=OFFSET` answers a FLASH_DATA block covering that flash offset with error 0x08
(as the ROM reports an SPI write failure) and writes nothing of it.

    with VirtualRom() as rom:
        subprocess.run([sys.executable, "-m", "esptool", "--port", rom.port, "--no-stub",
                        "--before", "no-reset", "write-flash", "0x1000", "micropython.bin"])
        rom.flash_at(0x1000, size)
"""

from __future__ import annotations

import hashlib
import os
import select
import struct
import threading
import tty

from provisioning.testing.virtual_board import ROM_BOOT, VirtualBoard

FLASH_BYTES = 4 * 1024 * 1024
CHIP_MAGIC_ADDR, ESP32_MAGIC = 0x40001000, 0x00F01D83
EFUSE_BASE = 0x3FF5A000
UART_CLKDIV_REG = 0x3FF40014
RTCCALICFG1 = 0x3FF5F06C
SPI_BASE = 0x3FF42000
SPI_CMD, SPI_USR2, SPI_W0 = SPI_BASE + 0x00, SPI_BASE + 0x24, SPI_BASE + 0x80
SPI_CMD_USR = 1 << 18
FLASH_ID = 0x164020  # manufacturer 0x20, type 0x40, capacity 0x16 (4 MB)
SYNC_DATA = b"\x07\x07\x12\x20" + 32 * b"\x55"
SYNC_VALUE = 0x20120707  # ROM loaders answer SYNC with a non-zero value (esptool's stub answers 0)

SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
OP = {"FLASH_BEGIN": 0x02, "FLASH_DATA": 0x03, "FLASH_END": 0x04, "SYNC": 0x08, "WRITE_REG": 0x09,
      "READ_REG": 0x0A, "SPI_SET_PARAMS": 0x0B, "SPI_ATTACH": 0x0D, "CHANGE_BAUDRATE": 0x0F,
      "SPI_FLASH_MD5": 0x13, "GET_SECURITY_INFO": 0x14}
OP_NAMES = {code: name for name, code in OP.items()}
# ROM error codes (esptool's loader knows them by these numbers)
ERR_INVALID_MESSAGE, ERR_FAILED, ERR_BAD_CRC, ERR_FLASH_WRITE = 0x05, 0x06, 0x07, 0x08


def slip_encode(packet: bytes) -> bytes:
    body = packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")
    return b"\xc0" + body + b"\xc0"


def _efuses(mac: bytes) -> dict[int, int]:
    """eFuse words of an ESP32-D0WD v3.0 with this MAC (words 1 and 2; esptool reads [2, 1] big-endian)."""
    word1 = int.from_bytes(mac[2:6], "big")
    word2 = int.from_bytes(mac[0:2], "big")  # top 16 bits: the MAC's CRC, which esptool ignores
    return {
        EFUSE_BASE + 4 * 1: word1,
        EFUSE_BASE + 4 * 2: word2,
        EFUSE_BASE + 4 * 3: 1 << 15,  # CHIP_VER_REV1
        EFUSE_BASE + 4 * 4: 0x80,  # CK8M frequency, used by esptool's crystal estimate for CHANGE_BAUDRATE
        EFUSE_BASE + 4 * 5: 1 << 20,  # CHIP_VER_REV2: with APB_CTL_DATE bit 31 below, revision v3.0
        0x3FF6607C: 1 << 31,  # APB_CTL_DATE
    }


class VirtualRom:
    """An ESP32 held in its ROM download mode on a pseudo-terminal; `port` is the path esptool opens."""

    def __init__(self, mac: str = "a4:cf:12:ab:34:cd", flash_bytes: int = FLASH_BYTES,
                 then: VirtualBoard | None = None, fail_write_at: int | None = None) -> None:
        mac_hex = mac.replace(":", "").replace("-", "").lower()
        if len(mac_hex) != 12:
            raise ValueError(f"MAC must have 12 hex digits, got {mac!r}")
        self.mac = bytes.fromhex(mac_hex)
        self.flash = bytearray(b"\xff" * flash_bytes)
        self.then = then
        self.fail_write_at = fail_write_at
        self.commands: list[str] = []  # every request received, by name (or hex code), in order
        self.blocks_written = 0
        self.booted = False  # True once FLASH_END "run user code" started the flashed image
        self._registers: dict[int, int] = {
            CHIP_MAGIC_ADDR: ESP32_MAGIC, UART_CLKDIV_REG: 40_000_000 // 115_200,
            RTCCALICFG1: 800 << 7,  # with CK8M 0x80: the ROM's crystal estimate is 40 MHz
            **_efuses(self.mac)}
        self._write_region: tuple[int, int, int] | None = None  # offset, size, next sequence number
        self._master: int | None = None
        self._slave: int | None = None
        self._relay: int | None = None  # the booted board's pty, once booted
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._frame: bytearray | None = None
        self._escaped = False
        self.port = ""

    # ----- life cycle -----

    def start(self) -> VirtualRom:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="virtual-rom", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> VirtualRom:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        thread = self._thread
        if thread is not None and self._wake_w >= 0:
            os.write(self._wake_w, b"x")
            thread.join(10)
        for fd in (self._master, self._slave, self._relay, self._wake_r, self._wake_w):
            if fd is not None and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = self._relay = None
        self._wake_r = self._wake_w = -1
        self._thread = None

    def flash_at(self, offset: int, size: int) -> bytes:
        """The flash's bytes, read behind the chip's back."""
        return bytes(self.flash[offset:offset + size])

    # ----- the serial line -----

    def _serve(self) -> None:
        while True:
            watched = [self._master, self._wake_r] + ([self._relay] if self._relay is not None else [])
            try:
                ready, _, _ = select.select(watched, [], [])
            except (OSError, ValueError):
                return
            if self._wake_r in ready:
                return
            if self._relay is not None and self._relay in ready:
                data = self._read(self._relay)
                if data is None:
                    return
                self._write(data)
            if self._master in ready:
                data = self._read(self._master)
                if data is None:
                    return
                if self._relay is not None:
                    _write_all(self._relay, data)
                else:
                    for byte in data:
                        self._receive(byte)

    @staticmethod
    def _read(fd: int) -> bytes | None:
        try:
            return os.read(fd, 4096)
        except BlockingIOError:
            return b""
        except OSError:
            return None

    def _write(self, data: bytes) -> None:
        if self._master is not None:
            _write_all(self._master, data)

    def _receive(self, byte: int) -> None:
        """SLIP decoding: bytes outside a frame are line noise and are dropped, as the ROM does."""
        if self._frame is None:
            if byte == SLIP_END:
                self._frame = bytearray()
            return
        if self._escaped:
            self._escaped = False
            if byte not in (SLIP_ESC_END, SLIP_ESC_ESC):
                self._frame = None  # a broken escape: drop the frame
                return
            self._frame.append(SLIP_END if byte == SLIP_ESC_END else SLIP_ESC)
        elif byte == SLIP_ESC:
            self._escaped = True
        elif byte == SLIP_END:
            frame, self._frame = bytes(self._frame), bytearray()
            if frame:  # an empty frame is the start of the next one (c0 c0)
                self._frame = None
                self._handle(frame)
        else:
            self._frame.append(byte)

    # ----- the loader's commands -----

    def _respond(self, op: int, value: int = 0, data: bytes = b"", error: int = 0) -> None:
        body = data + bytes([1 if error else 0, error, 0, 0])
        self._write(slip_encode(struct.pack("<BBHI", 1, op, len(body), value) + body))

    def _handle(self, frame: bytes) -> None:
        if len(frame) < 8 or frame[0] != 0:
            return  # not a request: the ROM ignores it
        _, op, size, checksum = struct.unpack("<BBHI", frame[:8])
        data = frame[8:8 + size]
        self.commands.append(OP_NAMES.get(op, f"0x{op:02x}"))
        if len(data) != size:
            return self._respond(op, error=ERR_INVALID_MESSAGE)
        if op == OP["SYNC"]:
            if data != SYNC_DATA:
                return self._respond(op, error=ERR_INVALID_MESSAGE)
            for _ in range(8):
                self._respond(op, SYNC_VALUE)
        elif op == OP["READ_REG"] and size == 4:
            self._respond(op, self._registers.get(struct.unpack("<I", data)[0], 0))
        elif op == OP["WRITE_REG"] and size % 16 == 0:
            for at in range(0, size, 16):
                address, value, mask, _delay = struct.unpack("<IIII", data[at:at + 16])
                self._write_register(address, value, mask)
            self._respond(op)
        elif op in (OP["SPI_ATTACH"], OP["SPI_SET_PARAMS"], OP["CHANGE_BAUDRATE"]):
            self._respond(op)
        elif op == OP["FLASH_BEGIN"] and size in (16, 20):
            self._flash_begin(op, data)
        elif op == OP["FLASH_DATA"] and size >= 16:
            self._flash_data(op, data, checksum)
        elif op == OP["FLASH_END"] and size == 4:
            self._write_region = None
            self._respond(op)
            if struct.unpack("<I", data)[0] == 1:  # 1: run user code (0 would reboot into download mode)
                self._boot()
        elif op == OP["SPI_FLASH_MD5"] and size == 16:
            address, length = struct.unpack("<II", data[:8])
            if address + length > len(self.flash):
                return self._respond(op, error=ERR_FAILED)
            digest = hashlib.md5(self.flash[address:address + length]).hexdigest().encode()
            self._respond(op, data=digest)
        else:
            self._respond(op, error=ERR_INVALID_MESSAGE)

    def _write_register(self, address: int, value: int, mask: int) -> None:
        old = self._registers.get(address, 0)
        self._registers[address] = (old & ~mask) | (value & mask)
        if address == SPI_CMD and self._registers[address] & SPI_CMD_USR:
            command = self._registers.get(SPI_USR2, 0) & 0xFFFF
            self._registers[SPI_W0] = FLASH_ID if command == 0x9F else 0  # RDID; anything else reads 0
            self._registers[SPI_CMD] &= ~SPI_CMD_USR  # the SPI transaction is done at once

    def _flash_begin(self, op: int, data: bytes) -> None:
        erase_size, _blocks, _block_size, offset = struct.unpack("<IIII", data[:16])
        if offset + erase_size > len(self.flash):
            return self._respond(op, error=ERR_FAILED)
        self.flash[offset:offset + erase_size] = b"\xff" * erase_size
        self._write_region = (offset, erase_size, 0)
        self._respond(op)

    def _flash_data(self, op: int, data: bytes, checksum: int) -> None:
        length, sequence = struct.unpack("<II", data[:8])
        block = data[16:16 + length]
        if self._write_region is None or len(block) != length:
            return self._respond(op, error=ERR_INVALID_MESSAGE)
        expected = 0xEF
        for byte in block:
            expected ^= byte
        if expected != checksum & 0xFF:
            return self._respond(op, error=ERR_BAD_CRC)
        offset, size, next_sequence = self._write_region
        if sequence != next_sequence:
            return self._respond(op, error=ERR_FAILED)
        at = offset + sequence * length
        if at + length > len(self.flash):
            return self._respond(op, error=ERR_FAILED)
        if self.fail_write_at is not None and at <= self.fail_write_at < at + length:
            return self._respond(op, error=ERR_FLASH_WRITE)
        self.flash[at:at + length] = block
        self.blocks_written += 1
        self._write_region = (offset, size, next_sequence + 1)
        self._respond(op)

    def _boot(self) -> None:
        """Run the flashed application: MicroPython (the `then` board) when an ESP32 image is at 0x1000."""
        self.booted = True
        self._write(ROM_BOOT)
        if self.then is None or self.flash[0x1000] != 0xE9:
            return
        relay = os.open(self.then.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(relay)
        self._relay = relay


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
        except OSError:
            return
