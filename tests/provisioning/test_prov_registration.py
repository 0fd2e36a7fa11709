"""`provision device` registering with the real fleet (served by uvicorn) and `provision sync` for
boards set up offline from a credential pack, against a virtual ESP32 running real MicroPython."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from fleet.app import create_app
from fleet.devconfig.keys import KeyBox
from fleet.devconfig.models import DeviceKey
from fleet.registration.models import DeviceRegistration
from fleet.registration.mosquitto_hash import verify_password
from fleet.settings import Settings
from provisioning.image import build_image
from tests.fleet.fleet_testkit import add_user
from tests.fleet.live_fleet import serve
from tools.mosquitto import free_port

CENTER = "445202101001"
DEVICE = "dev-a4cf12ab34cd"  # the virtual board's MAC
IMAGE = build_image("rating_pad", "esp32-devkitc-ssd1306").sha256
IN_CLEAR = ", over plain http (--insecure)"  # how a record ends when the test fleet (http) was used


class Fleet:
    def __init__(self, url: str, token: str, app) -> None:
        self.url, self.token, self.app = url, token, app

    @property
    def online(self) -> tuple[str, ...]:
        """The options naming this fleet: it serves plain http on loopback, so --insecure too (see
        test_an_http_fleet_is_refused_unless_insecure_and_the_record_then_says_so)."""
        return ("--fleet", self.url, "--token", self.token, "--insecure")

    def registration(self, device: str = DEVICE) -> DeviceRegistration | None:
        with Session(self.app.state.engine) as session:
            return session.get(DeviceRegistration, device)

    def key(self, device: str = DEVICE) -> str:
        with Session(self.app.state.engine) as session:
            sealed = session.get(DeviceKey, device).encrypted
        return KeyBox.from_settings(self.app.state.settings).open(device, sealed).hex()

    def pack(self, path: Path, count: int = 2) -> dict:
        """A credential pack, saved as the fleet answered it."""
        answer = httpx.post(f"{self.url}/api/centers/{CENTER}/credential-packs", json={"count": count},
                            headers={"Authorization": f"Bearer {self.token}"})
        assert answer.status_code == 200, answer.text
        path.write_text(answer.text)
        return answer.json()


@pytest.fixture
def fleet(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "fleet", database_url=f"sqlite:///{tmp_path / 'fleet.db'}",
                        ingest_enabled=False)
    app = create_app(settings)
    token = add_user(app.state.engine, "tech-admin", "town_operator", CENTER[:9])
    with serve(app) as url:
        yield Fleet(url, token, app)


def config_on(board) -> dict:
    return json.loads(board.files()["/config.json"])


def test_provisioning_registers_online_and_writes_the_credentials_to_config_json(
        board, provision, device_args, fleet) -> None:
    result = provision(*device_args(board.port, "--technician", "李工", *fleet.online))
    assert result.status == 0, result.err
    assert "✓ fleet registration: online: registration 1 as dev-a4cf12ab34cd" in result.out
    broker = config_on(board)["broker"]
    registered = fleet.registration()
    assert broker["username"] == DEVICE and verify_password(broker["password"], registered.broker_password_hash)
    assert config_on(board)["device_key"] == fleet.key()  # the fleet signs with the key the device holds
    assert (registered.provisioned_by, registered.image_sha256, registered.window) == ("李工", IMAGE, 3)
    assert registered.activated_at is None  # until its first birth
    record = provision.read_records()[0]
    assert record["outcome"] == "ok" and record["fleet_registration"].startswith("online: registration 1")
    text = provision.records.read_text()
    assert broker["password"] not in text and fleet.key() not in text


def test_an_http_fleet_is_refused_unless_insecure_and_the_record_then_says_so(
        board, provision, device_args, fleet, tmp_path) -> None:
    """Over http:// the API token goes out, and the broker password and device key come back, unencrypted."""
    before = board.files()
    refused = provision(*device_args(board.port, "--fleet", fleet.url, "--token", fleet.token))
    assert refused.status == 1
    assert refused.err.startswith(f"provision: --fleet {fleet.url} is plain http") and "--insecure" in refused.err
    assert board.files() == before and fleet.registration() is None  # nothing asked, nothing copied
    sync = provision("sync", "--fleet", fleet.url, "--token", fleet.token, "--records", str(tmp_path / "r.jsonl"))
    assert sync.status == 1 and "is plain http" in sync.err

    allowed = provision(*device_args(board.port, *fleet.online))
    assert allowed.status == 0, allowed.err
    assert "new credentials" + IN_CLEAR in allowed.out
    assert provision.read_records()[-1]["fleet_registration"].endswith(IN_CLEAR)


def test_a_rerun_keeps_the_credentials_the_board_holds_and_copies_nothing(
        board, provision, device_args, fleet) -> None:
    online = fleet.online
    first = provision(*device_args(board.port, *online))
    assert first.status == 0, first.err
    assert "online: registration 1 as dev-a4cf12ab34cd, new credentials" in first.out
    config_before = board.files()["/config.json"]
    hash_before, key_before = fleet.registration().broker_password_hash, fleet.key()

    again = provision(*device_args(board.port, *online))
    assert again.status == 0, again.err
    assert "✓ fleet registration: online: registration 2 as dev-a4cf12ab34cd, credentials kept" in again.out
    image_files = len(build_image("rating_pad", "esp32-devkitc-ssd1306").files)
    assert f"0 of {image_files + 1} files to copy" in again.out  # config.json included
    assert board.files()["/config.json"] == config_before
    registered = fleet.registration()
    assert registered.broker_password_hash == hash_before and fleet.key() == key_before
    assert registered.registrations == 2
    assert provision.read_records()[-1]["fleet_registration"].endswith("credentials kept" + IN_CLEAR)

    rotated = provision(*device_args(board.port, *online, "--new-credentials"))
    assert rotated.status == 0, rotated.err
    assert "online: registration 3 as dev-a4cf12ab34cd, credentials rotated (--new-credentials)" in rotated.out
    assert f"2 of {image_files + 1} files to copy" in rotated.out  # config.json, and main.py written last
    password = config_on(board)["broker"]["password"]
    assert password != json.loads(config_before)["broker"]["password"] and config_on(board)["device_key"] != key_before
    assert fleet.registration().broker_password_hash != hash_before
    assert verify_password(password, fleet.registration().broker_password_hash)
    assert config_on(board)["device_key"] == fleet.key()
    text = provision.records.read_text()
    assert password not in text and json.loads(config_before)["broker"]["password"] not in text


def test_a_rerun_for_another_window_rotates_and_says_why(board, provision, device_args, fleet) -> None:
    online = fleet.online
    assert provision(*device_args(board.port, *online)).status == 0
    before = config_on(board)
    moved = provision(*device_args(board.port, *online, window=4))
    assert moved.status == 0, moved.err
    assert "credentials rotated (window changed from 3 to 4)" in moved.out
    assert config_on(board)["broker"]["password"] != before["broker"]["password"]
    assert provision.read_records()[-1]["fleet_registration"].endswith("(window changed from 3 to 4)" + IN_CLEAR)


def test_an_unreachable_fleet_without_a_pack_stops_before_anything_is_copied(board, provision, device_args) -> None:
    before = board.files()
    result = provision(*device_args(board.port, "--fleet", f"http://127.0.0.1:{free_port()}", "--token", "t",
                                    "--insecure"))
    assert result.status == 1
    assert result.err.startswith("provision: dev-a4cf12ab34cd: cannot reach the fleet at http://127.0.0.1:")
    assert "nothing was copied to the board" in result.err and "--pack" in result.err
    assert board.files() == before
    assert provision.read_records()[0]["outcome"] == "failed"


def test_an_unreachable_fleet_falls_back_to_the_pack(board, provision, device_args, fleet, tmp_path) -> None:
    pack_file = tmp_path / "pack.json"
    slot = fleet.pack(pack_file, count=1)["slots"][0]
    result = provision(*device_args(board.port, "--fleet", f"http://127.0.0.1:{free_port()}", "--token", "t",
                                    "--insecure", "--pack", str(pack_file)))
    assert result.status == 0, result.err
    assert f"offline: pack slot {slot['username']}, pending until provision sync (cannot reach the fleet" in result.out
    assert config_on(board)["broker"]["username"] == slot["username"]


def test_offline_provisioning_takes_a_pack_slot_and_sync_registers_it_once(
        board, provision, device_args, fleet, tmp_path) -> None:
    pack_file = tmp_path / "pack.json"
    pack = fleet.pack(pack_file)
    slot = pack["slots"][0]

    first = provision(*device_args(board.port, "--pack", str(pack_file)))
    assert first.status == 0, first.err
    assert f"✓ fleet registration: offline: pack slot {slot['username']}, pending until provision sync" in first.out
    config = config_on(board)
    assert (config["broker"]["username"], config["broker"]["password"], config["device_key"]) == \
        (slot["username"], slot["password"], slot["device_key"])
    saved = json.loads(pack_file.read_text())
    assert saved["slots"][0]["used_by"] == DEVICE and "used_by" not in saved["slots"][1]
    assert fleet.registration() is None  # the fleet does not know yet

    again = provision(*device_args(board.port, "--pack", str(pack_file)))  # a rerun keeps its slot
    assert again.status == 0, again.err
    assert config_on(board)["broker"]["username"] == slot["username"]
    assert "used_by" not in json.loads(pack_file.read_text())["slots"][1]

    records = str(provision.records)
    synced = provision("sync", *fleet.online, "--records", records)
    assert synced.status == 0, synced.err
    assert f"✓ {DEVICE}: pack slot {slot['username']} registered with the fleet" in synced.out
    registered = fleet.registration()
    assert registered.broker_username == slot["username"] and registered.pack_slot == slot["username"]
    assert fleet.key() == slot["device_key"]
    pending = [json.loads(line) for line in (tmp_path / "pending-registrations.jsonl").read_text().splitlines()]
    assert [entry["status"] for entry in pending] == ["superseded", "synced"]  # one pending line a device
    assert slot["password"] not in json.dumps(pending)

    nothing = provision("sync", *fleet.online, "--records", records)
    assert nothing.status == 0 and "nothing to sync" in nothing.out
    outcomes = [r["fleet_registration"] for r in provision.read_records()]
    assert outcomes[0].startswith("offline: pack slot")
    assert outcomes[-1] == f"synced: pack slot {slot['username']}{IN_CLEAR}"
    assert slot["password"] not in provision.records.read_text()


def test_sync_says_which_registration_the_fleet_refused_and_exits_1(provision, fleet, tmp_path) -> None:
    pending = tmp_path / "pending-registrations.jsonl"
    entry = {"device_id": DEVICE, "center": CENTER, "window": 3, "role": "rating_pad", "board": None,
             "mac": DEVICE[4:], "image_sha256": IMAGE, "provisioned_by": "李工",
             "provisioned_at": "2026-03-01T08:00:00+00:00", "pack_slot": "p999-1", "status": "pending"}
    pending.write_text(json.dumps(entry) + "\n")
    result = provision("sync", *fleet.online, "--records", str(provision.records))
    assert result.status == 1
    assert f"✗ {DEVICE}: the fleet refused to register {DEVICE} (404): credential pack slot p999-1 is unknown" \
        in result.out
    assert "1 of 1 pending registrations were refused" in result.err
    assert json.loads(pending.read_text())["status"] == "pending"
    assert fleet.registration() is None


def pending_lines(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "pending-registrations.jsonl").read_text().splitlines()]


def test_an_offline_rerun_for_another_window_replaces_its_pending_registration(
        board, provision, device_args, fleet, tmp_path) -> None:
    pack_file = tmp_path / "pack.json"
    slot = fleet.pack(pack_file)["slots"][0]
    assert provision(*device_args(board.port, "--pack", str(pack_file))).status == 0
    moved = provision(*device_args(board.port, "--pack", str(pack_file), window=4))
    assert moved.status == 0, moved.err
    assert [(e["status"], e["window"]) for e in pending_lines(tmp_path)] == [("superseded", 3), ("pending", 4)]
    synced = provision("sync", *fleet.online, "--records", str(provision.records))
    assert synced.status == 0, synced.err
    registered = fleet.registration()
    assert (registered.window, registered.pack_slot) == (4, slot["username"])  # what the board has now


def test_an_online_registration_supersedes_the_pending_offline_one(
        board, provision, device_args, fleet, tmp_path) -> None:
    pack_file = tmp_path / "pack.json"
    fleet.pack(pack_file)
    assert provision(*device_args(board.port, "--pack", str(pack_file))).status == 0
    online = provision(*device_args(board.port, *fleet.online, "--new-credentials"))
    assert online.status == 0, online.err
    assert [e["status"] for e in pending_lines(tmp_path)] == ["superseded"]
    nothing = provision("sync", *fleet.online, "--records", str(provision.records))
    assert nothing.status == 0 and "nothing to sync" in nothing.out
    registered = fleet.registration()
    assert registered.broker_username == DEVICE and config_on(board)["broker"]["username"] == DEVICE
    assert verify_password(config_on(board)["broker"]["password"], registered.broker_password_hash)


def test_an_offline_registration_older_than_the_last_one_is_refused_for_good(
        board, provision, device_args, fleet, tmp_path) -> None:
    """Another laptop's pending line, from before this device was registered online: binding its slot
    would lock the device out, so the fleet refuses (409) and the line is not sent again."""
    slot = fleet.pack(tmp_path / "pack.json")["slots"][0]
    assert provision(*device_args(board.port, *fleet.online)).status == 0
    entry = {"device_id": DEVICE, "center": CENTER, "window": 3, "role": "rating_pad", "board": None,
             "mac": DEVICE[4:], "image_sha256": IMAGE, "provisioned_by": "王工",
             "provisioned_at": "2026-03-01T08:00:00+00:00", "pack_slot": slot["username"], "status": "pending"}
    (tmp_path / "pending-registrations.jsonl").write_text(json.dumps(entry) + "\n")
    refused = provision("sync", *fleet.online, "--records", str(provision.records))
    assert refused.status == 1
    assert "(409)" in refused.out and "is out of date" in refused.out and "(not sent again)" in refused.out
    assert [e["status"] for e in pending_lines(tmp_path)] == ["refused"]
    registered = fleet.registration()
    assert registered.broker_username == DEVICE and registered.pack_slot is None
    assert verify_password(config_on(board)["broker"]["password"], registered.broker_password_hash)
    again = provision("sync", *fleet.online, "--records", str(provision.records))
    assert again.status == 0 and "nothing to sync" in again.out


def test_a_board_without_room_is_refused_before_the_fleet_rotates_anything(
        board, provision, device_args, fleet, tmp_path) -> None:
    online = fleet.online
    assert provision(*device_args(board.port, *online)).status == 0
    hash_before, config_before = fleet.registration().broker_password_hash, config_on(board)
    board.set_free_bytes(1)
    # The center's own font (a new /font.bin) does not fit; the fleet would have rotated (--new-credentials).
    sample = (Path(__file__).resolve().parents[2] / "edge_agent" / "sample-center.toml").read_text(encoding="utf-8")
    center = tmp_path / "center.toml"
    center.write_text(sample.replace('name = "民政业务"', 'name = "堃喆专窗"', 1), encoding="utf-8")  # beyond GB2312
    full = provision(*device_args(board.port, *online, "--new-credentials", "--center-config", str(center)))
    assert full.status == 1 and "the board's filesystem is too small" in full.err
    assert "fleet registration" not in full.out  # never asked
    registered = fleet.registration()
    assert registered.broker_password_hash == hash_before and registered.registrations == 1
    assert config_on(board) == config_before  # the device keeps working with what it has
