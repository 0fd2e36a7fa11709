"""Over-the-air updates on the board: which set boots (otaboot), what an order does (ota.Updater), and the
download against an edge held in memory (ota_download): resumed, checked, reused for a roll back."""

import json

from case_support import DEVICE, KEY, OTHER_DEVICE, raises, scratch_dir

from firmware.lib import ota, ota_download, otaboot
from protocol import firmware, messages, signing

FACTORY = "0.1.0"
BIG = b"".join(b"line %04d of a module that spans chunks\n" % n for n in range(200))  # ~8 KB: four chunks


def bundle(version="0.2.0", files=None):
    """(manifest, {path: bytes}) of a small bundle."""
    if files is None:
        files = {"firmware/lib/big.py": BIG, "protocol/small.py": b"X = 1\n", "firmware/__init__.py": b""}
    entries = []
    for path in sorted(files):
        entries.append({"path": path, "sha256": firmware.sha256_hex(files[path]), "size": len(files[path])})
    return {"format": 1, "version": version, "roles": ["queue_display"], "created_at": 1, "files": entries}, files


class Edge:
    """Answers fetches from one bundle; counts what it served; may stop answering after `answers`."""

    def __init__(self, manifest, files, answers=-1, corrupt=None):
        self.digest = firmware.manifest_digest(manifest)
        self.manifest_bytes = json.dumps(manifest).encode()
        self.files = files
        self.answers = answers
        self.corrupt = corrupt  # a path whose bytes are served wrong
        self.asked = []

    async def fetch(self, sha, path, offset, length):
        self.asked.append((path, offset))
        if self.answers == 0:
            raise ota_download.FetchError("the edge did not answer")
        self.answers -= 1
        if sha != self.digest:
            raise ota_download.FetchError("the edge: no such bundle")
        data = self.manifest_bytes if path == "" else self.files[path]
        chunk = data[offset:offset + length]
        if path == self.corrupt:
            chunk = bytes(len(chunk))
        return chunk, len(data)


def run(coro):
    """Run a coroutine that never really waits (the Edge above answers at once), on both runtimes."""
    try:
        while True:
            coro.send(None)
    except StopIteration as done:
        return done.value


def order(manifest, issued_at=100, key=KEY, device=DEVICE):
    return signing.make_signed("firmware_desired", key, device, version=manifest["version"],
                               manifest_sha256=firmware.manifest_digest(manifest), issued_at=issued_at)


def updater(folder):
    return ota.Updater(folder + "/ota", DEVICE, KEY, FACTORY, log=None)


def test_an_order_signed_with_the_devices_key_is_downloaded_verified_and_staged():
    folder = scratch_dir("ota")
    manifest, files = bundle()
    up = updater(folder)
    assert up.running_version() == FACTORY and up.status()["state"] == messages.FW_IDLE
    assert up.consider(order(manifest)) is True
    assert up.status()["state"] == messages.FW_DOWNLOADING and up.status()["target"] == "0.2.0"
    edge = Edge(manifest, files)
    run(up.download(edge.fetch))
    status = up.status()
    assert status["state"] == messages.FW_STAGED and status["staged"] == "0.2.0"
    messages.validate("firmware_status", status)
    state = otaboot.read_state(folder + "/ota")
    assert state["pending"]["sha"] == firmware.manifest_digest(manifest) and state["pending"]["slot"] == "a"
    with open(folder + "/ota/a/firmware/lib/big.py", "rb") as f:
        assert f.read() == BIG
    assert ("firmware/lib/big.py", 6144) in edge.asked and ("protocol/small.py", 0) in edge.asked


def test_bad_signatures_and_bad_orders_are_refused_and_nothing_is_fetched():
    manifest, _ = bundle()
    for payload, why in (
        (order(manifest, key=bytes(32)), "signature does not verify"),
        (order(manifest, device=OTHER_DEVICE), "signature does not verify"),  # another board's order
        ({"v": 1, "version": "x"}, "not a valid firmware_desired"),
    ):
        up = updater(scratch_dir("ota"))
        assert up.consider(payload) is False
        status = up.status()
        assert status["state"] == messages.FW_REFUSED and why in status["error"], status
        messages.validate("firmware_status", status)
    unkeyed = ota.Updater(scratch_dir("ota") + "/ota", DEVICE, None, FACTORY, log=None)
    assert unkeyed.consider(order(manifest)) is False and unkeyed.status()["error"] == "no device key provisioned"


def test_a_download_cut_anywhere_resumes_from_the_bytes_on_flash():
    folder = scratch_dir("ota")
    manifest, files = bundle()
    up = updater(folder)
    up.consider(order(manifest))
    cut = Edge(manifest, files, answers=4)  # the manifest, then three chunks: big.py stops after 6 KB
    raises(ota_download.FetchError, run, up.download(cut.fetch))
    assert cut.asked[-2] == ("firmware/lib/big.py", 4096)
    rebooted = updater(folder)  # a reboot: everything in RAM is gone
    rebooted.consider(order(manifest))
    edge = Edge(manifest, files)
    run(rebooted.download(edge.fetch))
    assert edge.asked[0] == ("firmware/lib/big.py", 6144)  # neither the manifest nor the first 6 KB again
    assert rebooted.status()["state"] == messages.FW_STAGED


def test_an_edge_without_the_bundle_is_asked_again_later_and_the_order_has_not_failed():
    folder = scratch_dir("ota")
    manifest, files = bundle()
    up = updater(folder)
    up.consider(order(manifest))
    other, _ = bundle("9.9.9")
    error = raises(ota_download.FetchError, run, up.download(Edge(other, files).fetch))
    up.download_failed(error, False)
    status = up.status()
    assert status["state"] == messages.FW_DOWNLOADING and "no such bundle" in status["error"]
    assert "failed" not in status and otaboot.read_state(folder + "/ota").get("failed") is None
    run(up.download(Edge(manifest, files).fetch))  # the edge has it now
    assert up.status()["state"] == messages.FW_STAGED and "error" not in up.status()


def test_a_file_not_matching_the_manifest_fails_the_order_and_it_is_not_tried_again():
    folder = scratch_dir("ota")
    manifest, files = bundle()
    up = updater(folder)
    up.consider(order(manifest))
    bad = Edge(manifest, files, corrupt="protocol/small.py")
    error = raises(ota_download.BundleError, run, up.download(bad.fetch))
    assert bad.asked.count(("protocol/small.py", 0)) == 2  # fetched once more before it is judged bad
    up.download_failed(error, True)
    status = up.status()
    assert status["state"] == messages.FW_FAILED and status["failed"] == "0.2.0"
    assert "protocol/small.py" in status["error"]
    again = updater(folder)
    assert again.consider(order(manifest)) is False and again.status()["state"] == messages.FW_FAILED
    assert again.consider(order(manifest, issued_at=101)) is True  # a new order is a retry


def test_a_manifest_not_matching_the_signed_digest_is_refused():
    manifest, files = bundle()
    other, _ = bundle(version="0.2.1")
    up = updater(scratch_dir("ota"))
    up.consider(order(manifest))
    lying = Edge(other, files)
    lying.digest = firmware.manifest_digest(manifest)  # serves another manifest under the signed digest
    error = raises(ota_download.BundleError, run, up.download(lying.fetch))
    assert "does not match the signed manifest_sha256" in str(error)


def test_the_boot_selector_tries_a_staged_set_once_and_keeps_it_only_when_confirmed():
    folder = scratch_dir("ota")
    ota_dir = folder + "/ota"
    manifest, files = bundle()
    up = updater(folder)
    up.consider(order(manifest))
    run(up.download(Edge(manifest, files).fetch))
    assert otaboot.choose(ota_dir) == ota_dir + "/a"  # the reset after staging: on trial
    trying = updater(folder)
    assert trying.running_version() == "0.2.0" and trying.status()["state"] == messages.FW_TRYING
    assert trying.judge_trial(1000, []) is None  # no birth yet
    trying.birth_sent(2000)
    assert trying.judge_trial(2000 + trying.TRIAL_HEALTHY_S * 1000 - 1, []) is None
    assert trying.judge_trial(2000 + trying.TRIAL_HEALTHY_S * 1000, []) == "confirm"
    trying.confirm()
    assert trying.status()["state"] == messages.FW_CONFIRMED and trying.status()["running"] == "0.2.0"
    assert otaboot.choose(ota_dir) == ota_dir + "/a"  # kept at every later boot
    assert updater(folder).status()["running_sha256"] == firmware.manifest_digest(manifest)


def test_a_trial_that_never_confirms_boots_the_previous_set_and_says_why():
    folder = scratch_dir("ota")
    ota_dir = folder + "/ota"
    manifest, files = bundle()
    up = updater(folder)
    up.consider(order(manifest))
    run(up.download(Edge(manifest, files).fetch))
    otaboot.choose(ota_dir)
    assert otaboot.note_failure(ota_dir, "crashed: RuntimeError: broken") is True
    assert otaboot.note_failure(ota_dir, "crashed: the reset that followed") is True  # the first reason stays
    assert otaboot.choose(ota_dir) is None  # the factory set again
    back = updater(folder)
    status = back.status()
    assert status["state"] == messages.FW_FAILED and status["running"] == FACTORY
    assert status["error"] == "crashed: RuntimeError: broken" and status["failed"] == "0.2.0"
    assert back.consider(order(manifest)) is False  # this order failed here: not again


def test_a_trial_is_failed_by_a_stalled_loop_or_no_birth_in_time():
    folder = scratch_dir("ota")
    ota_dir = folder + "/ota"
    manifest, files = bundle()
    up = updater(folder)
    up.consider(order(manifest))
    run(up.download(Edge(manifest, files).fetch))
    otaboot.choose(ota_dir)
    trying = updater(folder)
    assert "no birth within" in trying.judge_trial(trying.TRIAL_BIRTH_S * 1000 + 1, [])
    trying = updater(folder)
    trying.birth_sent(10)
    assert trying.judge_trial(20, ["tick"]) == "no progress from tick during the trial"
    trying.fail_trial("no progress from tick during the trial")
    assert trying.judge_trial(10 ** 6, []) is None  # judged once
    assert otaboot.choose(ota_dir) is None
    assert otaboot.read_state(ota_dir)["failed"]["reason"] == "no progress from tick during the trial"


def test_a_power_cut_during_a_replace_of_boot_json_leaves_the_old_or_the_new_decision():
    folder = scratch_dir("ota")
    ota_dir = folder + "/ota"
    manifest, files = bundle()
    up = updater(folder)
    up.consider(order(manifest))
    run(up.download(Edge(manifest, files).fetch))
    with open(ota_dir + "/boot.json.tmp", "w") as f:  # a torn replace: the old file is still there
        f.write('{"trying": ')
    assert otaboot.read_state(ota_dir)["pending"]["slot"] == "a"
    with open(ota_dir + "/boot.json") as f:  # FAT: the old removed, the complete new one left as .tmp
        text = f.read()
    import os

    os.remove(ota_dir + "/boot.json")
    with open(ota_dir + "/boot.json.tmp", "w") as f:
        f.write(text)
    assert otaboot.choose(ota_dir) == ota_dir + "/a"
    assert otaboot.read_state(ota_dir)["trying"]["slot"] == "a"


def test_a_roll_back_to_the_set_still_in_the_other_slot_fetches_nothing():
    folder = scratch_dir("ota")
    ota_dir = folder + "/ota"
    old, old_files = bundle("0.2.0")
    new, new_files = bundle("0.3.0", {"firmware/lib/big.py": BIG + b"# 0.3.0\n", "protocol/small.py": b"X = 2\n"})
    for manifest, files in ((old, old_files), (new, new_files)):
        up = updater(folder)
        up.consider(order(manifest))
        run(up.download(Edge(manifest, files).fetch))
        otaboot.choose(ota_dir)
        updater(folder).confirm()
    assert otaboot.read_state(ota_dir)["active"]["version"] == "0.3.0"  # in slot b; 0.2.0 still in a
    back = updater(folder)
    assert back.consider(order(old, issued_at=200)) is True
    edge = Edge(old, old_files)
    run(back.download(edge.fetch))
    assert edge.asked == [] and back.status()["staged"] == "0.2.0"


def test_an_order_during_a_trial_waits_for_its_verdict():
    folder = scratch_dir("ota")
    manifest, files = bundle()
    newer, _ = bundle("0.3.0")
    up = updater(folder)
    up.consider(order(manifest))
    run(up.download(Edge(manifest, files).fetch))
    otaboot.choose(folder + "/ota")
    trying = updater(folder)
    assert trying.consider(order(newer, issued_at=300)) is False and trying.status()["state"] == messages.FW_TRYING
    deferred = trying.confirm()
    assert deferred is not None and deferred["version"] == "0.3.0"


def test_a_download_holds_a_chunk_on_the_heap_never_a_file():
    try:
        import gc

        gc.mem_alloc  # noqa: B018  (MicroPython's; CPython has no such figure and skips the measure)
    except AttributeError:
        return
    if _files_live_on_the_heap():
        return  # the WebAssembly port: the file written would count too; the unix port measures it
    big = b"".join(b"%06d some module text to fill a large file\n" % n for n in range(3000))  # ~138 KB
    manifest, files = bundle(files={"firmware/lib/huge.py": big})
    del big
    up = updater(scratch_dir("ota"))
    up.consider(order(manifest))
    edge = Edge(manifest, files)
    seen = []
    fetch = edge.fetch

    async def measured(sha, path, offset, length):
        gc.collect()
        seen.append(gc.mem_alloc())
        return await fetch(sha, path, offset, length)

    run(up.download(measured))
    assert up.status()["state"] == messages.FW_STAGED
    growth = max(seen) - min(seen)
    assert growth < 16 * 1024, growth  # a few chunks' worth at most, for a file of 138 KB


def _files_live_on_the_heap():
    """True where bytes written to a file take MicroPython heap (a RAM filesystem), as on the WebAssembly port."""
    import gc

    path = scratch_dir("probe") + "/probe.bin"
    gc.collect()
    before = gc.mem_alloc()
    with open(path, "wb") as f:
        for n in range(32):
            f.write(bytes([n]) * 1024)  # a new object each time, as chunks are
    gc.collect()
    return gc.mem_alloc() - before > 16 * 1024
