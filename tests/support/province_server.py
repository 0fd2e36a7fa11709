"""A stand-in for a province's unified 好差评 system: an HTTP server on a loopback port that records every
report POSTed to it and answers with the statuses the test queues (200 when none is queued)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ProvinceServer:
    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token
        self.received: list[tuple[int, dict[str, Any], dict[str, str]]] = []  # (status answered, body, headers)
        self.statuses: list[int] = []  # answered in turn before the 200s
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/haochaping/ratings"

    def start(self) -> ProvinceServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def taken(self) -> list[dict[str, Any]]:
        """The bodies answered 2xx, in order."""
        with self._lock:
            return [body for status, body, _headers in self.received if status // 100 == 2]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server._lock:
                    if server.token is not None and headers.get("authorization") != f"Bearer {server.token}":
                        status = 401
                    else:
                        status = server.statuses.pop(0) if server.statuses else 200
                    server.received.append((status, body, headers))
                answer = json.dumps({"code": 0 if status == 200 else status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        return Handler
