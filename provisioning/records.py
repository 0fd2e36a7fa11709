"""Every provisioning run is recorded on the laptop, whatever its outcome: who, when, which image, which device.

One JSON object per line in provisioning/records/provisioning.jsonl (or --records). No secrets: the
Wi-Fi password and device credentials never go in here.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from provisioning.errors import ProvisionError

DEFAULT_RECORDS = Path(__file__).resolve().parent / "records" / "provisioning.jsonl"


def current_technician() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class ProvisioningRecord:
    technician: str
    port: str
    center: str
    window: int | None
    role: str
    board: str | None
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    laptop: str = field(default_factory=socket.gethostname)
    device_id: str | None = None
    image_sha256: str | None = None
    micropython: str | None = None
    files_copied: int = 0
    files_removed: int = 0
    bytes_copied: int = 0
    fleet_registration: str = "not attempted"  # online: ... / offline: pack slot ... / not registered / synced: ...
    after_reset: str | None = None  # restarted / online / self-test passed
    flashed_image: str | None = None  # `--flash`: the MicroPython image's name and sha256
    label: str | None = None  # `--label-printer`: printed on TARGET / not printed: why
    outcome: str = "started"  # ok, failed, dry-run, interrupted
    error: str | None = None
    finished_at: str | None = None


def append_record(record: ProvisioningRecord, path: Path = DEFAULT_RECORDS) -> None:
    """Append one line; a line is written whole (O_APPEND) so two runs at once do not interleave."""
    record.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(asdict(record), ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size and os.pread(fd, 1, os.fstat(fd).st_size - 1) != b"\n":
            line = b"\n" + line  # after a torn last line (power lost mid-write): this one starts a line of its own
        os.write(fd, line)
    finally:
        os.close(fd)


def check_records_writable(path: Path) -> None:
    """ProvisionError now, before the board is touched, when the run could not be recorded at the end."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
    except OSError as exc:
        raise ProvisionError(f"cannot write the provisioning records {path}: {exc.strerror or exc}") from None


def read_records(path: Path = DEFAULT_RECORDS) -> list[dict]:
    """The recorded runs; a torn line (a laptop that lost power mid-write) is skipped, not fatal."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
