"""Provisioning without the network: credential packs and the registrations waiting to be sent.

A credential pack is the JSON the fleet answered to `POST /api/centers/{code}/credential-packs`,
saved on the laptop (it holds passwords and keys: keep it like one). Each run takes the next free
slot and marks it used (`used_by`, `used_at`) in the pack file itself, replaced whole under a lock
file, so two runs never take the same slot and a crash never leaves half a file. A rerun for the
same device takes the slot it already has (its config.json is the same, nothing is copied again).

Each offline run adds a line to the pending file (pending-registrations.jsonl next to the records):
what the fleet needs to bind the slot to the device, never a secret. `provision sync` sends them.
A device has at most one pending line: a later run (offline again, e.g. for another window, or
online) marks the earlier one superseded, so a sync never sends facts or a slot the board no longer
has. A line the fleet refuses with a conflict (409: the slot taken by another device, or the device
registered again since) is marked refused: retrying cannot change the answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from provisioning.device_config import DeviceCredentials
from provisioning.errors import ProvisionError

PENDING_FILE = "pending-registrations.jsonl"
LOCK_WAIT_S = 10.0
PENDING, SYNCED, SUPERSEDED, REFUSED = "pending", "synced", "superseded", "refused"


@dataclass(frozen=True)
class TakenSlot:
    slot: str
    credentials: DeviceCredentials
    reused: bool  # this device had taken it already


def pending_path(records_path: Path) -> Path:
    return records_path.parent / PENDING_FILE


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold `<path>.lock` (created exclusively) while changing `path`; portable, no fcntl."""
    lock = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise ProvisionError(f"{path} is locked by another provision run ({lock} exists); if no other run "
                                     "is going on, delete that file and run again") from None
            time.sleep(0.05)
        except OSError as exc:
            raise ProvisionError(f"cannot lock {path}: {exc.strerror or exc}") from None
    try:
        os.close(fd)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)


def replace_file(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (mode 0600: a pack holds secrets)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_pack(path: Path) -> dict:
    try:
        pack = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvisionError(f"cannot read credential pack {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"credential pack {path} is not JSON: {exc}") from None
    slots = pack.get("slots") if isinstance(pack, dict) else None
    if not isinstance(slots, list) or not isinstance(pack.get("center"), str) or not all(
            isinstance(s, dict) and {"username", "password", "device_key"} <= s.keys() for s in slots):
        raise ProvisionError(f"{path} is not a credential pack (the fleet's answer to POST "
                             "/api/centers/{code}/credential-packs, saved as it came)")
    return pack


def take_slot(path: Path, center: str, device_id: str, now: datetime | None = None) -> TakenSlot:
    """The slot this device already has, else the next free one, marked used in the pack file."""
    with locked(path):
        pack = _read_pack(path)
        if pack["center"] != center:
            raise ProvisionError(f"credential pack {path} is for center {pack['center']}, not {center}")
        slots = pack["slots"]
        mine = next((s for s in slots if s.get("used_by") == device_id), None)
        slot = mine or next((s for s in slots if not s.get("used_by")), None)
        if slot is None:
            raise ProvisionError(f"credential pack {path} has no free slot left (all {len(slots)} used): get a new "
                                 "pack from the fleet, or connect to it")
        if mine is None:
            slot["used_by"] = device_id
            slot["used_at"] = (now or datetime.now(UTC)).isoformat(timespec="seconds")
            try:
                replace_file(path, json.dumps(pack, ensure_ascii=False, indent=2) + "\n")
            except OSError as exc:
                raise ProvisionError(f"cannot mark slot {slot['username']} used in credential pack {path}: "
                                     f"{exc.strerror or exc}; nothing was copied to the board") from None
    credentials = DeviceCredentials(slot["username"], slot["password"], slot["device_key"])
    return TakenSlot(slot["username"], credentials, reused=mine is not None)


def record_pending(path: Path, registration: dict, now: datetime | None = None) -> None:
    """Add one registration to send later (no secrets: the slot's name, not its password); the device's
    earlier pending one, if any, is superseded by it."""
    why = f"provisioned again offline ({registration.get('pack_slot')})"

    def change(entries: list[dict]) -> bool:
        _supersede(entries, registration["device_id"], why, now)
        entries.append({**registration, "status": PENDING})
        return True

    _update_pending(path, change)


def supersede_pending(path: Path, device_id: str, why: str, now: datetime | None = None) -> None:
    """Mark `device_id`'s pending registration superseded (it was registered online since)."""
    if path.exists():
        _update_pending(path, lambda entries: _supersede(entries, device_id, why, now))


def _supersede(entries: list[dict], device_id: str, why: str, now: datetime | None) -> bool:
    """Mark the device's pending entries superseded; whether there was one."""
    at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    found = [e for e in entries if e.get("device_id") == device_id and e.get("status") == PENDING]
    for entry in found:
        entry.update(status=SUPERSEDED, superseded_at=at, superseded_because=why)
    return bool(found)


def _update_pending(path: Path, change: Callable[[list[dict]], bool]) -> None:
    """Re-read the pending file under its lock, let `change` edit the entries, and replace the file whole
    when it says it changed something."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with locked(path):
            entries = read_pending(path)
            if change(entries):
                replace_file(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
    except OSError as exc:
        raise ProvisionError(f"cannot write pending registrations {path}: {exc.strerror or exc}") from None


def read_pending(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise ProvisionError(f"cannot read pending registrations {path}: {exc}") from None


def mark_done(path: Path, done: dict[tuple[str, str], tuple[str, str]]) -> None:
    """Set (status, at) on the pending entries (device_id, pack_slot) in `done` (synced or refused),
    re-reading the file under the lock."""

    def change(entries: list[dict]) -> bool:
        for entry in entries:
            outcome = done.get((entry.get("device_id"), entry.get("pack_slot")))
            if outcome and entry.get("status") == PENDING:
                entry["status"], entry[f"{outcome[0]}_at"] = outcome
        return True

    _update_pending(path, change)
