"""Over-the-air firmware bundles: the manifest, its digest, and the checks both ends make.

A bundle is a board's application files (protocol/, firmware/lib, drivers and both roles' packages, as they
sit under a slot folder on the board) plus a manifest naming every file with its sha256 and size:

    {"format": 1, "version": "0.2.0", "roles": ["queue_display", "rating_pad"], "created_at": 1764750000,
     "files": [{"path": "firmware/lib/mqtt.py", "sha256": "<hex>", "size": 21345}, ...]}

Trust runs in one chain that a board can check with what it has (HMAC-SHA256 and its own key; MicroPython
has no public-key signatures here): the fleet signs a firmware_desired for the board with the board's key,
naming the manifest by its sha256 (manifest_digest: of the canonical JSON, protocol.signing.canonical, so
both runtimes compute the same); the manifest names each file by its sha256. The edge only caches and
serves: the bundle it gets is signed with the edge's key so it keeps nothing the fleet did not send, but a
board trusts no edge.

Runs on CPython and MicroPython: hashlib.sha256 without hexdigest (MicroPython has none).
"""

import binascii
import hashlib

from protocol.errors import ProtocolError
from protocol.signing import canonical

FORMAT = 1
MANIFEST_PATH = ""  # the `path` of a firmware_fetch that asks for the manifest itself
VERSION_MAX_CHARS = 32
PATH_MAX_CHARS = 96
FILES_MAX = 200
# What a bundle's files may add up to: two sets (running and staged) must fit a 4 MB board's file system.
FILES_MAX_BYTES = 1048576
_PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"
_HEX = "0123456789abcdef"


def hex_digest(hasher):
    """The lowercase hex of a sha256 object's digest (MicroPython's hashlib has no hexdigest)."""
    return binascii.hexlify(hasher.digest()).decode()


def sha256_hex(data):
    return hex_digest(hashlib.sha256(data))


def manifest_digest(manifest):
    """The sha256 (hex) of a manifest's canonical JSON: what a firmware_desired names and signs."""
    return sha256_hex(canonical(manifest).encode("utf-8"))


def check_sha256(text, what):
    if not isinstance(text, str) or len(text) != 64:
        raise ProtocolError("%s must be 64 hex digits" % what)
    for ch in text:
        if ch not in _HEX:
            raise ProtocolError("%s must be 64 lowercase hex digits" % what)
    return text


def check_version(text):
    if not isinstance(text, str) or not 0 < len(text) <= VERSION_MAX_CHARS:
        raise ProtocolError("version must be 1 to %d characters" % VERSION_MAX_CHARS)
    for ch in text:
        if ch not in _PATH_CHARS or ch == "/":
            raise ProtocolError("version %r may hold only letters, digits and . _ -" % (text,))
    return text


def check_path(path):
    """A file's path inside a slot: relative, no '..', no empty part, only plain characters (it becomes a
    path on the board's flash, so a manifest must not be able to name /main.py or ../config.json)."""
    if not isinstance(path, str) or not 0 < len(path) <= PATH_MAX_CHARS:
        raise ProtocolError("file path must be 1 to %d characters" % PATH_MAX_CHARS)
    for ch in path:
        if ch not in _PATH_CHARS:
            raise ProtocolError("file path %r has a character other than letters, digits, _ - . /" % (path,))
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ProtocolError("file path %r must be relative, without empty, '.' or '..' parts" % (path,))
    return path


def check_manifest(manifest):
    """Return `manifest` if it is a well-formed manifest, else raise ProtocolError."""
    if not isinstance(manifest, dict):
        raise ProtocolError("manifest must be a JSON object")
    if manifest.get("format") != FORMAT:
        raise ProtocolError("manifest format %r is not %d" % (manifest.get("format"), FORMAT))
    check_version(manifest.get("version"))
    roles = manifest.get("roles")
    if not isinstance(roles, list) or not roles:
        raise ProtocolError("manifest roles must be a non-empty array")
    files = manifest.get("files")
    if not isinstance(files, list) or not 0 < len(files) <= FILES_MAX:
        raise ProtocolError("manifest files must be an array of 1 to %d files" % FILES_MAX)
    seen = {}
    total = 0
    for entry in files:
        if not isinstance(entry, dict):
            raise ProtocolError("each manifest file must be an object")
        path = check_path(entry.get("path"))
        if path in seen:
            raise ProtocolError("manifest names %s twice" % path)
        seen[path] = True
        check_sha256(entry.get("sha256"), path + ": sha256")
        size = entry.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ProtocolError("%s: size must be a whole number of bytes" % path)
        total += size
    if total > FILES_MAX_BYTES:
        raise ProtocolError("the bundle's files add up to %d bytes, more than %d" % (total, FILES_MAX_BYTES))
    return manifest


def total_bytes(manifest):
    total = 0
    for entry in manifest["files"]:
        total += entry["size"]
    return total
