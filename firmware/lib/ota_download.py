"""The download half of an over-the-air update (firmware/lib/ota.py): imported only when an update comes.

`run_update(runtime)` fetches the wanted bundle from the center's edge (firmware_fetch -> firmware_chunk over
the center broker), checks the manifest against the signed sha256, appends every file to the staging slot
chunk by chunk while hashing it, checks it against the manifest, marks the set `pending` and resets the board
into it. The heap holds one chunk at a time; a download cut anywhere resumes from the bytes on flash (they are
hashed again first, with one buffer allocated here once).

Files under the ota folder: download.json (which bundle the staging slot is being filled with: anything else
there is wiped first) and <slot>.manifest.json (the slot's manifest, saved once it matched the signed sha256).
"""

import asyncio
import binascii
import hashlib
import json
import os

from firmware.lib import flashfs, ota, otaboot
from protocol import firmware, messages, topics
from protocol.errors import ProtocolError

DOWNLOAD_FILE = "download.json"
MANIFEST_SUFFIX = ".manifest.json"
PROGRESS_STEPS = 5  # firmware_status goes out about every fifth of the bundle while it downloads
STAGED_STATUS_TIMEOUT_S = 5  # the staged status is PUBACKed before the reset, unless the link is gone
_BUFFER = bytearray(512)  # hashing the bytes of a resumed file


class FetchError(Exception):
    """The edge did not answer, or answered with an error: tried again later (not the bundle's fault)."""


class BundleError(Exception):
    """The bundle itself is bad (a manifest or file not matching what was signed): failed for this order."""


def _remove_tree(path):
    """Delete a folder and everything in it (a missing one is fine)."""
    try:
        entries = os.listdir(path)
    except OSError:
        flashfs.remove(path)
        return
    for name in entries:
        child = flashfs.join(path, name)
        try:
            is_dir = os.stat(child)[0] & 0x4000
        except OSError:
            continue
        if is_dir:
            _remove_tree(child)
        else:
            flashfs.remove(child)
    try:
        os.rmdir(path)
    except OSError:
        pass


def discard_staging(updater):
    """Delete what a failed download left in the staging slot (its files, manifest and download record)."""
    folder = otaboot.slot_dir(updater.ota_dir, updater.staging_slot())
    _remove_tree(folder)
    flashfs.remove(folder + MANIFEST_SUFFIX)
    flashfs.remove(flashfs.join(updater.ota_dir, DOWNLOAD_FILE))


def _file_size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


async def run_update(runtime):
    """Download and stage runtime.updater.target, then reset the board into it (otaboot tries it)."""
    updater = runtime.updater
    while True:
        try:
            await download(updater, lambda sha, path, offset, length: fetch(runtime, sha, path, offset, length),
                           runtime.publish_firmware_status)
            break
        except FetchError as exc:
            updater.download_failed(exc, False)
            runtime.publish_firmware_status()
            await asyncio.sleep(runtime.OTA_RETRY_S)  # the edge may get the bundle later: try again
            updater.error = None
        except (BundleError, OSError) as exc:  # a bad bundle, or a full or broken flash
            updater.download_failed(exc, True)
            discard_staging(updater)  # its space back: nothing names the staging slot while it downloads
            runtime.note_error("firmware update failed: %s" % exc)
            runtime.publish_firmware_status()
            return
    spec = topics.topic(topics.FIRMWARE_STATUS)
    status = messages.encode(spec.payload, updater.status())
    try:  # staged goes out (PUBACKed) before the reset, so the fleet sees the step
        await asyncio.wait_for(runtime.client.publish(runtime.topic_of(topics.FIRMWARE_STATUS), status, spec.qos,
                                                      spec.retained), STAGED_STATUS_TIMEOUT_S)
    except Exception as exc:
        updater.note("staged status not confirmed: %s" % exc)
    await runtime.reset_into("the staged firmware")


async def fetch(runtime, sha, path, offset, length):
    """One chunk from the edge: (bytes, the file's whole size). Asked again when unanswered."""
    request = messages.encode("firmware_fetch", messages.make(
        "firmware_fetch", manifest_sha256=sha, path=path, offset=offset, length=length))
    topic = runtime.topic_of(topics.FIRMWARE_FETCH)
    qos = topics.topic(topics.FIRMWARE_FETCH).qos
    updater = runtime.updater
    timeout_s = updater.FETCH_TIMEOUT_MS / 1000
    event = runtime.chunk_event
    runtime.chunk_wanted = (sha, path, offset)
    try:
        for _ in range(updater.FETCH_ATTEMPTS):
            runtime.chunk = None
            event.clear()
            await runtime.client.publish(topic, request, qos, False)  # waits while the link is down
            try:
                await asyncio.wait_for(event.wait(), timeout_s)
            except asyncio.TimeoutError:
                continue
            chunk = runtime.chunk
            if chunk.get("error"):
                raise FetchError("the edge: %s" % chunk["error"])
            try:
                data = binascii.a2b_base64(chunk.get("data") or "")
            except ValueError:
                continue  # mangled: ask again
            return data, chunk.get("size", 0)
    finally:
        runtime.chunk_wanted = None
    raise FetchError("the edge did not answer %d fetches in a row" % updater.FETCH_ATTEMPTS)


async def download(updater, fetch, progress=None):
    """Fetch, verify and stage updater.target. `fetch(sha, path, offset, length)` is a coroutine returning
    (bytes, size of the whole file) or raising FetchError. Raises FetchError (try again later) or
    BundleError (the bundle is bad: failed); on success the set is `pending` (staged). `progress()` is called
    after every fifth or so of the bytes (the runtime publishes firmware_status with done_bytes)."""
    target = updater.target
    sha = target["manifest_sha256"]
    slot = updater.staging_slot()
    folder = otaboot.slot_dir(updater.ota_dir, slot)
    flashfs.ensure_dir(updater.ota_dir)
    pending = updater.state.get("pending")
    if isinstance(pending, dict) and pending.get("slot") == slot:
        # Another bundle waits in the staging slot: forget it before a byte of it is overwritten.
        updater.state["pending"] = None
        updater._save("pending dropped")
    record_path = flashfs.join(updater.ota_dir, DOWNLOAD_FILE)
    record, _ = flashfs.read_json(record_path)
    if not isinstance(record, dict) or record.get("sha") != sha or record.get("slot") != slot:
        kept, _ = flashfs.read_json(folder + MANIFEST_SUFFIX)
        if not isinstance(kept, dict) or firmware.manifest_digest(kept) != sha:
            ota.step("slot wipe")
            _remove_tree(folder)
            flashfs.remove(folder + MANIFEST_SUFFIX)
        # else: the slot holds this very bundle (a roll back to the set that ran before): its files are
        # checked against the manifest below, and only what does not match is fetched.
        ota.step("download record")
        flashfs.write_json(record_path, {"sha": sha, "slot": slot})
    flashfs.ensure_dir(folder)
    manifest = await _manifest(updater, fetch, sha, folder + MANIFEST_SUFFIX)
    updater.total_bytes = firmware.total_bytes(manifest)
    updater.done_bytes = 0
    told = 0
    for entry in manifest["files"]:
        await _file(updater, fetch, sha, folder, entry)
        if progress is not None and updater.done_bytes - told >= updater.total_bytes // PROGRESS_STEPS:
            told = updater.done_bytes
            progress()  # firmware_status with done_bytes: the fleet sees the download move
    ota.step("pending")
    updater.state["pending"] = {"slot": slot, "version": manifest["version"], "sha": sha,
                             "issued_at": target["issued_at"]}
    updater.state["last"] = messages.FW_STAGED
    updater._save("staged")
    flashfs.remove(record_path)
    updater.phase = messages.FW_STAGED
    updater.note("firmware %s staged in slot %s; the reboot swaps it in" % (manifest["version"], slot))


async def _manifest(updater, fetch, sha, path):
    manifest, _ = flashfs.read_json(path)
    if not isinstance(manifest, dict) or firmware.manifest_digest(manifest) != sha:
        text = b""
        size = 1
        while len(text) < size:
            data, size = await fetch(sha, firmware.MANIFEST_PATH, len(text), updater.CHUNK_BYTES)
            if not data and len(text) < size:
                raise FetchError("the manifest ended early")
            text += data
        try:
            manifest = json.loads(text.decode("utf-8"))
        except (ValueError, UnicodeError):
            raise BundleError("the manifest is not JSON")
        if not isinstance(manifest, dict) or firmware.manifest_digest(manifest) != sha:
            raise BundleError("the manifest does not match the signed manifest_sha256")
        ota.step("manifest")
        flashfs.write_json(path, manifest)
    try:
        firmware.check_manifest(manifest)
    except ProtocolError as exc:
        raise BundleError("bad manifest: %s" % exc)
    return manifest


async def _file(updater, fetch, sha, folder, entry):
    path = flashfs.join(folder, entry["path"])
    size = entry["size"]
    for attempt in (1, 2):
        have = _file_size(path)
        if have > size:
            flashfs.remove(path)
            have = -1
        if have < 0:
            flashfs.ensure_dir(path[:path.rfind("/")])
            have = 0
        hasher = _hash_existing(path, have)
        updater.done_bytes += have
        if have < size:
            with open(path, "ab") as f:
                while have < size:
                    data, whole = await fetch(sha, entry["path"], have, min(updater.CHUNK_BYTES, size - have))
                    if whole != size or not data:
                        raise BundleError("%s: the edge has %d bytes, the manifest says %d" % (entry["path"],
                                                                                                 whole, size))
                    f.write(data)
                    f.flush()  # on flash before the next is asked for: a cut loses at most this chunk
                    hasher.update(data)
                    have += len(data)
                    updater.done_bytes += len(data)
                    ota.step("chunk")
        if binascii.hexlify(hasher.digest()).decode() == entry["sha256"]:
            return
        # Bytes on flash that are not the file's (a write torn by a power cut): fetch it once more.
        updater.note("%s does not match its sha256 (attempt %d)" % (entry["path"], attempt))
        flashfs.remove(path)
        updater.done_bytes -= have
    raise BundleError("%s does not match the manifest's sha256" % entry["path"])


def _hash_existing(path, length):
    hasher = hashlib.sha256()
    if length <= 0:
        return hasher
    buffer = _BUFFER
    view = memoryview(buffer)
    left = length
    with open(path, "rb") as f:
        while left > 0:
            got = f.readinto(buffer)
            if not got:
                break
            if got > left:
                got = left
            hasher.update(view[:got])
            left -= got
    return hasher
