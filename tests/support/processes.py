"""Start the project's own programs as subprocesses, as a user would run them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


class Program:
    def __init__(self, args: list[str], log_path: Path, ready_url: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self.ready_url = ready_url
        self.env = env or {}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> Program:  # a hang guard: a loaded machine starts programs slowly
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, *self.args], cwd=ROOT, stdout=log, stderr=log,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        if self.ready_url:
            def ready() -> bool:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.args} exited early; see {self.log_path}:\n{self.log()}")
                return httpx.get(self.ready_url, timeout=1).status_code < 500

            try:
                wait_until(ready, timeout, f"{self.args[1] if len(self.args) > 1 else self.args} to serve")
            except BaseException:
                # The caller gets no Program to stop (its fixture never yields): stop it here, or it outlives the run.
                self.stop(signal.SIGKILL)
                raise
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode if self.process else None
