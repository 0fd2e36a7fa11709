"""Backup and restore of a center's queue: the SQLite database and the ID-card salt, in one archive.

Backup runs while the agent serves (nightly, service-center-backup.timer): SQLite's online backup API
copies a consistent snapshot of the database, WAL included, whatever the agent writes meanwhile; copying
the file would catch a transaction half-written. The copy is checked (`PRAGMA integrity_check`) before it
is kept. The salt goes with it: the ID-card hashes in the database (green channel, appointments) match only
with the salt they were made with (edge_agent/identity_card.py).

An archive is a tar file `edge-<center>-<UTC time>.tar` holding `edge.sqlite3`, `id_card_salt` (when the
center has one) and `manifest.json` (center code, agent version, time, sha256 of each file). Restore
checks all of it before it touches anything, refuses another center's archive, and keeps the database it
replaces beside it (`edge.sqlite3.before-restore-<time>`). The agent must be stopped first
(`service-center restore` stops and starts it): a running agent keeps the old file open.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import sqlite3
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from edge_agent.config import CenterConfig
from edge_agent.host_health import agent_version
from edge_agent.identity_card import SALT_FILE

DATABASE = "edge.sqlite3"
MANIFEST = "manifest.json"
DEFAULT_KEEP = 14  # two weeks of nightly archives


class BackupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Restored:
    archive: Path
    replaced: Path | None  # where the database it replaced was kept (None: there was none)
    made_at: float


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stamp(at: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(at))


def snapshot_database(database: Path, target: Path) -> None:
    """A consistent copy of a live database (online backup API), checked before it is trusted."""
    if not database.exists():
        raise BackupError(f"no database at {database}")
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        answer = copy.execute("PRAGMA integrity_check").fetchone()
        if answer != ("ok",):
            raise BackupError(f"the copy of {database} is not sound: {answer}")
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file in the archive
    finally:
        copy.close()
        source.close()


def backup(config: CenterConfig, backup_dir: Path, keep: int = DEFAULT_KEEP, now: float | None = None) -> Path:
    """Write one archive into `backup_dir`, then delete this center's oldest beyond the `keep` newest."""
    made_at = time.time() if now is None else now
    backup_dir.mkdir(parents=True, exist_ok=True)
    work = backup_dir / f".edge-{config.code}-{os.getpid()}.sqlite3"
    try:
        snapshot_database(config.data_dir / DATABASE, work)
        members = {DATABASE: work.read_bytes()}
    finally:
        work.unlink(missing_ok=True)
    salt = config.data_dir / SALT_FILE
    if salt.exists():
        members[SALT_FILE] = salt.read_bytes()
    manifest = {"center": config.code, "version": agent_version(), "made_at": made_at,
                "files": {name: _sha256(data) for name, data in members.items()}}
    members[MANIFEST] = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
    archive = backup_dir / f"edge-{config.code}-{_stamp(made_at)}.tar"
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(made_at), 0o600
            tar.addfile(info, io.BytesIO(data))
    partial.chmod(0o600)  # the salt is a secret
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, archive)
    for old in sorted(backup_dir.glob(f"edge-{config.code}-*.tar"))[:-keep]:
        old.unlink()
    return archive


def read_archive(archive: Path) -> tuple[dict, dict[str, bytes]]:
    """The manifest and the files of an archive, every checksum verified."""
    try:
        with tarfile.open(archive, "r") as tar:
            members = {}
            for info in tar.getmembers():
                if not info.isfile() or "/" in info.name or info.name.startswith("."):
                    raise BackupError(f"{archive}: unexpected member {info.name!r}")
                handle = tar.extractfile(info)
                members[info.name] = handle.read() if handle else b""
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{archive}: not a readable backup ({exc})") from exc
    try:
        manifest = json.loads(members.pop(MANIFEST))
    except (KeyError, ValueError) as exc:
        raise BackupError(f"{archive}: no manifest") from exc
    if set(manifest.get("files", {})) != set(members) or DATABASE not in members:
        raise BackupError(f"{archive}: the files do not match its manifest")
    for name, data in members.items():
        if _sha256(data) != manifest["files"][name]:
            raise BackupError(f"{archive}: {name} is damaged (checksum)")
    return manifest, members


def agent_is_running(config: CenterConfig) -> bool:
    """The agent answers on its port: restoring under it would be lost (it keeps the old file open)."""
    host = "127.0.0.1" if config.http_host in ("0.0.0.0", "::", "") else config.http_host
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, config.http_port)) == 0


def restore(config: CenterConfig, archive: Path, now: float | None = None) -> Restored:
    """Put an archive's database and salt in place of the current ones (kept aside)."""
    if agent_is_running(config):
        raise BackupError(f"the agent is running (port {config.http_port}): stop it first, or use "
                          "`service-center restore`, which does")
    manifest, members = read_archive(archive)
    if manifest.get("center") != config.code:
        raise BackupError(f"{archive} is the backup of center {manifest.get('center')}, not of {config.code}")
    at = time.time() if now is None else now
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    database = data_dir / DATABASE
    incoming = data_dir / f".{DATABASE}.restoring"
    incoming.write_bytes(members[DATABASE])
    with open(incoming, "rb") as handle:
        os.fsync(handle.fileno())
    replaced = None
    if database.exists():
        replaced = data_dir / f"{DATABASE}.before-restore-{_stamp(at)}"
        os.replace(database, replaced)
    for suffix in ("-wal", "-shm"):  # the old database's log must not be replayed into the restored one
        side = database.with_name(DATABASE + suffix)
        if side.exists():
            os.replace(side, replaced.with_name(replaced.name + suffix)) if replaced else side.unlink()
    os.replace(incoming, database)
    if SALT_FILE in members:
        salt = data_dir / SALT_FILE
        descriptor = os.open(salt.with_name(SALT_FILE + ".restoring"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(members[SALT_FILE])
        os.replace(salt.with_name(SALT_FILE + ".restoring"), salt)
    return Restored(archive, replaced, float(manifest.get("made_at", 0)))
