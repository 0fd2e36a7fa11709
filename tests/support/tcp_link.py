"""A TCP link between two real programs that a test can cut and mend: a network cable, nothing more.

It only copies bytes. `cut()` closes every connection through it and stops listening (a peer connecting then is
refused, as across a broken line); `mend()` listens again on the same port.
"""

from __future__ import annotations

import socket
import threading

from tools.mosquitto import free_port


class TcpLink:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0  # accepted so far, for a test that waits for a peer to come back

    def start(self) -> TcpLink:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="tcp-link-accept").start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                near, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                far = socket.create_connection((self.host, self.target_port))
            except OSError:
                near.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    near.close()
                    far.close()
                    return
                self._sockets.update((near, far))
                self.connections += 1
            for source, sink in ((near, far), (far, near)):
                threading.Thread(target=self._copy, args=(source, sink), daemon=True, name="tcp-link-copy").start()

    def _copy(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets = list(self._sockets)
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept() (Linux)
            except OSError:
                pass
            listener.close()
        for sock in sockets:
            self._close(sock)

    def mend(self) -> None:
        self.start()

    def stop(self) -> None:
        self.cut()
