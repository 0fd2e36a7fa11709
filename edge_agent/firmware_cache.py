"""The center's firmware bundles: received once from the fleet, kept on disk, served to the boards in chunks.

The fleet publishes a bundle to the center (firmware_bundle, retained on the county broker, signed with this
edge's key); every board of the center then fetches the same files from here over the center broker
(firmware_fetch -> firmware_chunk), so the county link carries a bundle once per center, not once per board.
A board asks for at most FIRMWARE_CHUNK_MAX_BYTES at a time from any offset: a download cut by a reboot or a
lost answer resumes where the board's flash ends.

Layout under `<data_dir>/firmware/`: one folder per bundle, named by its manifest's sha256, holding
`manifest.json` and the files at their manifest paths. A bundle is written into `<digest>.partial/` and
renamed into place only once every file is there, so a crash never leaves a half bundle to serve. The newest
KEEP bundles stay (the previous ones are what a roll back needs); older ones are removed.

The edge checks the fleet's signature and every file's sha256 before it keeps anything, but a board trusts
no edge: it checks the manifest against the digest in its own signed firmware_desired (protocol/firmware.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import zlib
from pathlib import Path

from protocol import firmware, messages, signing
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
PARTIAL_SUFFIX = ".partial"
KEEP = 4  # bundles kept: the one being rolled out, and what a roll back may ask for


class FirmwareCache:
    def __init__(self, root: Path, center: str, edge_key: bytes | None, keep: int = KEEP) -> None:
        self.root = root
        self.center = center
        self.edge_key = edge_key
        self.keep = keep
        self.received = 0  # bundles stored
        self.refused = 0  # bundles not kept: bad signature, bad manifest, a file not matching it
        self.last_error = ""
        self.served_chunks = 0

    # -- from the fleet --------------------------------------------------------------------------------

    def receive(self, raw: bytes) -> bool:
        """Keep the bundle a firmware_bundle message carries, if the fleet signed it and it is whole."""
        if not raw:
            return False  # a retained bundle being cleared: what is cached stays
        try:
            digest = self._store(raw)
        except ProtocolError as exc:
            self.refused += 1
            self.last_error = str(exc)
            log.warning("firmware bundle refused: %s", exc)
            return False
        except OSError as exc:  # a full disk: the fleet's retained message comes again at the next connect
            self.refused += 1
            self.last_error = f"not stored: {exc}"
            log.warning("firmware bundle not stored: %s", exc)
            return False
        self.last_error = ""
        log.info("firmware bundle %s cached", digest)
        return True

    def _store(self, raw: bytes) -> str:
        if len(raw) > messages.FIRMWARE_BUNDLE_MAX_BYTES:
            raise ProtocolError(f"{len(raw)} bytes is more than a bundle may have")
        payload = messages.decode("firmware_bundle", raw)
        if self.edge_key is None:
            raise ProtocolError("brokers.county.edge_key is not configured: no bundle can be verified")
        if not signing.verify_for_edge(self.edge_key, self.center, payload):
            raise ProtocolError("its signature does not verify with the edge key")
        manifest = firmware.check_manifest(payload["manifest"])
        digest = firmware.manifest_digest(manifest)
        if digest != payload["manifest_sha256"]:
            raise ProtocolError("manifest_sha256 is not the digest of its manifest")
        if self.has(digest):
            self._touch(digest)
            return digest
        files = _unpack(manifest, payload["data"])
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.root / (digest + PARTIAL_SUFFIX)
        shutil.rmtree(partial, ignore_errors=True)
        for path, data in files:
            target = partial / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (partial / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, self.root / digest)
        self.received += 1
        self._prune()
        return digest

    def _touch(self, digest: str) -> None:
        os.utime(self.root / digest / MANIFEST_FILE)  # sent again: newest, kept longest

    def _prune(self) -> None:
        bundles = sorted(self.digests(), key=lambda d: (self.root / d / MANIFEST_FILE).stat().st_mtime,
                         reverse=True)
        for digest in bundles[self.keep:]:
            shutil.rmtree(self.root / digest, ignore_errors=True)

    # -- what is cached --------------------------------------------------------------------------------

    def digests(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [p.name for p in self.root.iterdir() if len(p.name) == 64 and (p / MANIFEST_FILE).is_file()]

    def has(self, digest: str) -> bool:
        return len(digest) == 64 and (self.root / digest / MANIFEST_FILE).is_file()

    def versions(self) -> dict[str, str]:
        """manifest sha256 -> version of every cached bundle (for health)."""
        out = {}
        for digest in self.digests():
            try:
                out[digest] = json.loads((self.root / digest / MANIFEST_FILE).read_text(encoding="utf-8"))["version"]
            except (OSError, ValueError, KeyError):
                continue
        return out

    def health(self) -> dict:
        return {"ok": not self.last_error, "state": "ok" if not self.last_error else "refused",
                "bundles": self.versions(), "received": self.received, "refused": self.refused,
                "last_error": self.last_error, "served_chunks": self.served_chunks}

    # -- to the boards ---------------------------------------------------------------------------------

    def chunk(self, fetch: dict) -> dict:
        """The firmware_chunk answering one firmware_fetch: the bytes asked for, or an error saying why not."""
        digest, path, offset = fetch["manifest_sha256"], fetch["path"], fetch["offset"]
        answer = {"manifest_sha256": digest, "path": path, "offset": offset}
        if not self.has(digest):
            return messages.make("firmware_chunk", **answer, error="this center's edge has no such bundle")
        folder = self.root / digest
        if path == firmware.MANIFEST_PATH:
            source = folder / MANIFEST_FILE
        else:
            try:
                firmware.check_path(path)
            except ProtocolError as exc:
                return messages.make("firmware_chunk", **answer, error=str(exc))
            source = folder / path
        try:
            with open(source, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(min(offset, size))
                data = f.read(min(fetch["length"], messages.FIRMWARE_CHUNK_MAX_BYTES))
        except OSError:
            return messages.make("firmware_chunk", **answer, error=f"the bundle has no file {path}")
        self.served_chunks += 1
        return messages.make("firmware_chunk", **answer, size=size, data=base64.b64encode(data).decode("ascii"))


def _unpack(manifest: dict, data: str) -> list[tuple[str, bytes]]:
    """(path, bytes) of every file of the manifest from a bundle's `data`, each checked against its sha256."""
    total = firmware.total_bytes(manifest)
    try:
        packed = base64.b64decode(data, validate=True)
        inflater = zlib.decompressobj()
        blob = inflater.decompress(packed, total + 1)  # never more than the manifest says, however it is packed
    except (ValueError, zlib.error) as exc:
        raise ProtocolError(f"bundle data unreadable: {exc}") from None
    if len(blob) != total or inflater.unconsumed_tail:
        raise ProtocolError(f"bundle data does not hold the {total} bytes its manifest names")
    files = []
    at = 0
    for entry in manifest["files"]:
        chunk = blob[at:at + entry["size"]]
        at += entry["size"]
        if hashlib.sha256(chunk).hexdigest() != entry["sha256"]:
            raise ProtocolError(f"{entry['path']}: its bytes do not match the manifest's sha256")
        files.append((entry["path"], chunk))
    return files
