"""Run a real PostgreSQL server as our own process, for `make test-postgres` and the fleet's tests.

Debian's postgresql package provides the binaries; the cluster lives in a
fresh temporary directory, listens on a free loopback port with trust
authentication, and is removed when stopped. initdb refuses to run as root,
so under root the cluster belongs to the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tools.mosquitto import free_port, port_is_open


class PostgresError(RuntimeError):
    pass


def find_bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for candidate in reversed(candidates):
        if os.access(Path(candidate) / "initdb", os.X_OK):
            return Path(candidate)
    raise PostgresError("PostgreSQL is not installed: run tools/install-system-deps.sh --test")


class PostgresServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.bin = find_bin_dir()
        self.base = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
        self.data = self.base / "data"
        self.as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = list(args)
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise PostgresError(f"{args[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    @property
    def user(self) -> str:
        return "postgres" if self.as_postgres else os.environ.get("USER", "postgres")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30, durable: bool = False) -> PostgresServer:
        """`durable`: fsync on, as a production server (benchmarks); tests run without it, for speed."""
        if self.as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user, "-E", "UTF8",
                  "--no-sync")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"), "-w", "-o",
                  f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync={'on' if durable else 'off'}",
                  "start")
        deadline = time.monotonic() + timeout
        while not port_is_open(self.port):
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL did not listen on {self.port}; see {self.base / 'server.log'}")
            time.sleep(0.05)
        return self

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = "fleet_" + uuid.uuid4().hex[:12]
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            except PostgresError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)
