"""protocol/firmware.py: what a bundle's manifest may hold, and the digest a firmware_desired names."""

from __future__ import annotations

import hashlib

import pytest

from protocol import firmware, signing
from protocol.errors import ProtocolError

SHA = "ab" * 32


def manifest(**changes: object) -> dict:
    base = {"format": 1, "version": "0.2.0", "roles": ["queue_display"], "created_at": 1795400000,
            "files": [{"path": "firmware/lib/mqtt.py", "sha256": SHA, "size": 10},
                      {"path": "protocol/topics.py", "sha256": SHA, "size": 20}]}
    base.update(changes)
    return base


def test_a_well_formed_manifest_passes_and_its_digest_is_of_the_canonical_json() -> None:
    given = manifest()
    assert firmware.check_manifest(given) is given
    assert firmware.manifest_digest(given) == hashlib.sha256(signing.canonical(given).encode()).hexdigest()
    reordered = dict(reversed(list(given.items())))  # key order is not part of the digest
    assert firmware.manifest_digest(reordered) == firmware.manifest_digest(given)
    assert firmware.total_bytes(given) == 30


@pytest.mark.parametrize("path", ["/main.py", "../config.json", "firmware/../../x", "a//b", "", "a b.py",
                                  "firmware/./x.py", "x" * 97, "配置.py"])
def test_a_file_path_must_stay_inside_the_slot(path: str) -> None:
    bad = manifest(files=[{"path": path, "sha256": SHA, "size": 1}])
    with pytest.raises(ProtocolError):
        firmware.check_manifest(bad)


@pytest.mark.parametrize("changes", [
    {"format": 2}, {"version": ""}, {"version": "1/2"}, {"version": "x" * 33}, {"roles": []}, {"files": []},
    {"files": [{"path": "a.py", "sha256": "AB" * 32, "size": 1}]},
    {"files": [{"path": "a.py", "sha256": SHA[:-1], "size": 1}]},
    {"files": [{"path": "a.py", "sha256": SHA, "size": -1}]},
    {"files": [{"path": "a.py", "sha256": SHA, "size": True}]},
    {"files": [{"path": "a.py", "sha256": SHA, "size": 1}, {"path": "a.py", "sha256": SHA, "size": 1}]},
    {"files": [{"path": "a.py", "sha256": SHA, "size": firmware.FILES_MAX_BYTES + 1}]},
])
def test_a_malformed_manifest_is_refused(changes: dict) -> None:
    with pytest.raises(ProtocolError):
        firmware.check_manifest(manifest(**changes))
