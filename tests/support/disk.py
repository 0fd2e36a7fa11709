"""A real small filesystem for a test: a tmpfs mounted on a directory, filled to the last byte, freed again.

Not a simulation: SQLite, the agent and the kernel see a real full disk (ENOSPC). Mounting needs root
(the tests run as root in CI); where it is refused the test is skipped with the reason.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest


class SmallDisk:
    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = Path(path)
        self.size_mb = size_mb
        self.filler = self.path / "filler.bin"

    def mount(self) -> SmallDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs as the agent's data directory needs root")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", str(self.path)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here: {result.stderr.strip()}")
        return self

    def unmount(self) -> None:
        # Lazy: a process of a failed test may still hold a file open; the mount goes when it lets go.
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free

    def fill(self) -> int:
        """Write a file until the filesystem refuses another byte (ENOSPC); returns the bytes written."""
        written = 0
        descriptor = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk_size in (1 << 20, 4096, 1):  # big chunks first, then the last partial pages
                chunk = b"\0" * chunk_size
                while True:
                    try:
                        written += os.write(descriptor, chunk)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(descriptor)
        assert self.free_bytes() == 0, f"{self.path} still has {self.free_bytes()} bytes free"
        return written

    def free(self) -> None:
        self.filler.unlink()
