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
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_records(path: Path = DEFAULT_RECORDS) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
