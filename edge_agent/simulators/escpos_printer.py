"""A thermal ticket printer that collects ESC/POS bytes and answers real-time status (DLE EOT n).

Two cables: a TCP server on loopback like a network printer's raw port 9100, and a pseudo-terminal
like a serial printer. `paper` is what the paper sensors say: "ok", "near_end", "out", or "silent"
for a printer that does not answer status at all. What the printer would print is in `received`
(decode it with tests/support/escpos_decoder.py).
"""

from __future__ import annotations

import os
import select
import socket
import threading
import tty

DLE_EOT = b"\x10\x04"
PAPER_STATUS = {"ok": 0x12, "near_end": 0x1E, "out": 0x72}


class PrinterModel:
    """Bytes in, status replies out; shared by both cables."""

    def __init__(self) -> None:
        self.paper = "ok"
        self.received = bytearray()
        self.status_queries: list[int] = []
        self._scanned = 0
        self._lock = threading.Lock()

    def _status(self, n: int) -> bytes:
        if self.paper == "silent":
            return b""
        out = self.paper == "out"
        if n == 4:
            return bytes([PAPER_STATUS[self.paper]])
        if n == 1:  # printer status: offline while out of paper
            return bytes([0x1A if out else 0x12])
        if n == 2:  # offline cause: printing stopped by paper end
            return bytes([0x32 if out else 0x12])
        return bytes([0x12])

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the host; return what the printer answers right away."""
        with self._lock:
            self.received += data
            replies = b""
            # DLE EOT is executed as it arrives, wherever it is in the stream (as real printers do).
            while True:
                at = self.received.find(DLE_EOT, self._scanned)
                if at < 0 or at + 2 >= len(self.received):
                    self._scanned = max(self._scanned, len(self.received) - 2)
                    break
                n = self.received[at + 2]
                self.status_queries.append(n)
                replies += self._status(n)
                self._scanned = at + 3
            return replies

    def take(self) -> bytes:
        with self._lock:
            return bytes(self.received)


class NetworkPrinterSimulator(PrinterModel):
    def __init__(self) -> None:
        super().__init__()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="network-printer-sim")

    def start(self) -> NetworkPrinterSimulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _serve(self) -> None:
        clients: list[socket.socket] = []
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([self._server, *clients], [], [], 0.05)
                for sock in readable:
                    if sock is self._server:
                        client, _ = self._server.accept()
                        clients.append(client)
                        self.connections += 1
                        continue
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        clients.remove(sock)
                        sock.close()
                        continue
                    reply = self.feed(data)
                    if reply:
                        sock.sendall(reply)
        finally:
            for client in clients:
                client.close()


class SerialPrinterSimulator(PrinterModel):
    def __init__(self) -> None:
        super().__init__()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="serial-printer-sim")

    def start(self) -> SerialPrinterSimulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        os.write(self._wake_write, b"x")
        self._thread.join(5)
        for fd in (self._master, self._slave, self._wake_read, self._wake_write):
            os.close(fd)

    def _serve(self) -> None:
        while True:
            readable, _, _ = select.select([self._master, self._wake_read], [], [])
            if self._wake_read in readable:
                return
            try:
                data = os.read(self._master, 65536)
            except OSError:  # the host closed its side
                if select.select([self._wake_read], [], [], 0.1)[0]:
                    return
                continue
            reply = self.feed(data)
            if reply:
                os.write(self._master, reply)
