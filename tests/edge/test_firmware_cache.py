"""The edge's firmware cache: a bundle from the fleet is kept only if the fleet signed it and every file
matches its manifest; boards get any chunk of it, from any offset (resume)."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import pytest

from edge_agent.firmware_cache import FirmwareCache
from protocol import firmware, messages
from provisioning.ota_bundle import build_bundle, bundle_message

CENTER = "445202101001"
EDGE_KEY = bytes(range(32))


@pytest.fixture(scope="module")
def bundle():
    return build_bundle("0.2.0", compiled=False, created_at=1795400000)


def encoded(payload: dict) -> bytes:
    return messages.encode("firmware_bundle", dict(payload))


def test_a_signed_bundle_is_cached_and_served_in_chunks_from_any_offset(tmp_path: Path, bundle) -> None:
    cache = FirmwareCache(tmp_path / "firmware", CENTER, EDGE_KEY)
    assert cache.receive(encoded(bundle_message(bundle, EDGE_KEY, CENTER, 1795400000)))
    assert cache.has(bundle.digest) and cache.versions() == {bundle.digest: "0.2.0"}

    manifest = cache.chunk({"manifest_sha256": bundle.digest, "path": "", "offset": 0, "length": 4096})
    text = base64.b64decode(manifest["data"])
    while len(text) < manifest["size"]:
        more = cache.chunk({"manifest_sha256": bundle.digest, "path": "", "offset": len(text), "length": 4096})
        text += base64.b64decode(more["data"])
    assert firmware.manifest_digest(json.loads(text)) == bundle.digest  # what a board checks

    path, data = max(bundle.files, key=lambda item: len(item[1]))
    assert len(data) > 3 * 4096
    for offset in (0, 4096, 3000, 4096 + 3000):  # a download cut at 3000 and resumed there
        part = cache.chunk({"manifest_sha256": bundle.digest, "path": path, "offset": offset, "length": 3000})
        assert part["size"] == len(data)
        messages.validate("firmware_chunk", part)
        assert base64.b64decode(part["data"]) == data[offset:offset + 3000]
    end = cache.chunk({"manifest_sha256": bundle.digest, "path": path, "offset": len(data), "length": 10})
    assert end["data"] == "" and end["size"] == len(data)


def test_chunks_of_unknown_bundles_or_files_outside_it_are_refused(tmp_path: Path, bundle) -> None:
    cache = FirmwareCache(tmp_path / "firmware", CENTER, EDGE_KEY)
    cache.receive(encoded(bundle_message(bundle, EDGE_KEY, CENTER, 1)))
    (tmp_path / "secret.txt").write_text("no")
    for digest, path in (("ab" * 32, ""), (bundle.digest, "../../secret.txt"), (bundle.digest, "nope.py")):
        answer = cache.chunk({"manifest_sha256": digest, "path": path, "offset": 0, "length": 10})
        assert answer["error"] and "data" not in answer


def test_a_bundle_not_signed_with_this_edges_key_or_not_matching_its_manifest_is_refused(tmp_path: Path,
                                                                                        bundle) -> None:
    cache = FirmwareCache(tmp_path / "firmware", CENTER, EDGE_KEY)
    other_center = bundle_message(bundle, EDGE_KEY, "445202101002", 1)
    other_key = bundle_message(bundle, bytes(32), CENTER, 1)
    tampered = bundle_message(bundle, EDGE_KEY, CENTER, 1)
    blob = bytearray(zlib.decompress(base64.b64decode(tampered["data"])))
    blob[100] ^= 1
    tampered["data"] = base64.b64encode(zlib.compress(bytes(blob))).decode()
    tampered["sig"] = bundle_message(bundle, EDGE_KEY, CENTER, 1)["sig"]  # signed before the bytes changed
    for payload in (other_center, other_key, tampered):
        assert not cache.receive(encoded(payload))
    assert cache.refused == 3 and cache.digests() == [] and "signature" in cache.health()["last_error"]
    unconfigured = FirmwareCache(tmp_path / "f2", CENTER, None)
    assert not unconfigured.receive(encoded(bundle_message(bundle, EDGE_KEY, CENTER, 1)))


def test_only_the_newest_bundles_are_kept(tmp_path: Path) -> None:
    cache = FirmwareCache(tmp_path / "firmware", CENTER, EDGE_KEY, keep=2)
    digests = []
    for number in range(3):
        bundle = build_bundle(f"0.{number}.0", compiled=False, created_at=1795400000)
        digests.append(bundle.digest)
        assert cache.receive(encoded(bundle_message(bundle, EDGE_KEY, CENTER, number)))
    assert sorted(cache.digests()) == sorted(digests[1:])
