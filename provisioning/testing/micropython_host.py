"""The virtual board's processor: a long-lived Node process running MicroPython's WebAssembly port.

micropython_host.mjs does the work; this is its Python end (one JSON line out, one back).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

HOST_SCRIPT = Path(__file__).with_name("micropython_host.mjs")
REPO = Path(__file__).resolve().parents[2]
WASM_PACKAGE = REPO / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"


class HostError(RuntimeError):
    """The Node process is missing, died, or refused a request."""


@dataclass
class ExecResult:
    stdout: bytes
    error: str | None  # MicroPython's traceback text, None when the program ran to its end
    error_type: str | None  # "OSError", "SystemExit", "HardReset" (machine.reset()), ...
    wdt_started: int | None = None  # machine.WDT(timeout=...) was created: its timeout in ms
    wdt_feeds: int = 0  # machine.WDT.feed() calls


def _result(answer: dict) -> ExecResult:
    wdt = answer.get("wdt") or {}
    return ExecResult(base64.b64decode(answer["stdout"]), answer["error"], answer["error_type"],
                      wdt.get("started"), int(wdt.get("feeds") or 0))


class MicroPythonHost:
    """One MicroPython (WebAssembly) interpreter whose files outlive its restarts."""

    def __init__(self, mac_hex: str, capacity: int, machine: str | None = None, heap_bytes: int | None = None) -> None:
        node = shutil.which("node")
        if node is None:
            raise HostError("node is not installed (the virtual board runs MicroPython's WebAssembly port on it)")
        if not WASM_PACKAGE.exists():
            raise HostError(f"{WASM_PACKAGE} is missing: run npm install (package.json)")
        options = json.dumps({"mac": mac_hex, "capacity": capacity, "machine": machine, "heap": heap_bytes})
        self._process = subprocess.Popen(
            [node, str(HOST_SCRIPT), options],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True, bufsize=1,
        )
        self._lock = threading.Lock()

    def _call(self, request: dict) -> dict:
        with self._lock:
            if self._process.poll() is not None:
                raise HostError(f"the MicroPython host exited with status {self._process.returncode}")
            try:
                self._process.stdin.write(json.dumps(request) + "\n")
                self._process.stdin.flush()
                line = self._process.stdout.readline()
            except (BrokenPipeError, ValueError) as exc:
                raise HostError(f"the MicroPython host is gone: {exc}") from exc
        if not line:
            raise HostError("the MicroPython host closed its output")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise HostError(answer.get("message", "request failed"))
        return answer

    def boot(self) -> None:
        """Start a fresh interpreter (power-on or soft reset); the files stay."""
        self._call({"op": "boot"})

    def exec(self, code: bytes) -> ExecResult:
        return _result(self._call({"op": "exec", "code": base64.b64encode(code).decode()}))

    def run_file(self, path: str) -> ExecResult | None:
        """Run a file of the board (boot.py, main.py); None when it does not exist."""
        answer = self._call({"op": "run_file", "path": path})
        if answer.get("missing"):
            return None
        return _result(answer)

    def set_capacity(self, capacity: int, reported: int | None = None) -> None:
        self._call({"op": "capacity", "bytes": capacity, "reported": reported})

    def flash_usage(self) -> tuple[int, int]:
        """(used, capacity) in bytes."""
        answer = self._call({"op": "free"})
        return answer["used"], answer["capacity"]

    def files(self) -> tuple[dict[str, bytes], list[str]]:
        """Every file of the board with its content, and every folder."""
        answer = self._call({"op": "files"})
        return {path: base64.b64decode(data) for path, data in answer["files"].items()}, answer["dirs"]

    def put(self, path: str, data: bytes) -> None:
        self._call({"op": "put", "path": path, "data": base64.b64encode(data).decode()})

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self._process.stdin.close()
            except OSError:
                pass
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout:
            self._process.stdout.close()
