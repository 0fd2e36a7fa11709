"""Rollouts in the fleet's database with a driven clock: what is published, reports ingested, halting, acting."""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from fleet.audit import AuditEntry
from fleet.auth.principal import CLI_USER, CurrentUser
from fleet.db import write_session
from fleet.devconfig.keys import KeyBox, set_key
from fleet.ingest import handle_message
from fleet.registration.service import issue_edge_credentials
from fleet.rollouts import plan, service
from fleet.rollouts.models import DeviceFirmware, FirmwareRollout, RolloutDevice
from protocol import signing, topics
from protocol.firmware import manifest_digest, sha256_hex

T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
BOX = KeyBox(b"k" * 32)
CENTER = "445202101001"
NEIGHBOUR = "445202101002"  # same town
FAR = "445202102001"  # another town
# (device, center, role, window)
DEVICES = [("dev-a4cf12000001", CENTER, "queue_display", 1), ("dev-a4cf12000002", CENTER, "rating_pad", 1),
           ("dev-a4cf12000003", NEIGHBOUR, "queue_display", 1), ("dev-a4cf12000004", FAR, "queue_display", 1),
           ("dev-a4cf12000005", FAR, "rating_pad", 1)]
CANARY = DEVICES[0][0]
OLD, NEW, CRASHING = "0.1.0", "0.2.0", "0.3.0"


def device_key(device_id: str) -> bytes:
    return device_id.encode().ljust(32, b"k")


@dataclass
class Built:
    """Shaped like provisioning.ota_bundle.build_bundle's answer (what service.store_bundle reads)."""

    version: str
    manifest: dict[str, Any] = field(init=False)
    digest: str = field(init=False)
    data: bytes = field(init=False)

    def __post_init__(self) -> None:
        content = f"VERSION = {self.version!r}\n".encode()
        self.manifest = {"format": 1, "version": self.version, "roles": ["queue_display", "rating_pad"],
                         "created_at": 1764750000,
                         "files": [{"path": "firmware/lib/version.py", "sha256": sha256_hex(content),
                                    "size": len(content)}]}
        self.digest = manifest_digest(self.manifest)
        self.data = zlib.compress(content)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], int, bool]] = []

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        self.sent.append((topic, json.loads(payload), qos, retain))
        return True

    def desired(self) -> dict[str, str]:
        """device id -> the version last desired for it."""
        out = {}
        for topic, payload, _qos, _retain in self.sent:
            if topic.endswith("/firmware/desired"):
                out[topic.split("/")[3]] = payload["version"]
        return out

    def take(self) -> list[tuple[str, dict[str, Any], int, bool]]:
        sent, self.sent = self.sent, []
        return sent


def birth(engine, device: str, center: str, role: str, window: int, fw: str = OLD) -> None:
    payload = {"v": 1, "state": "online", "session": 1, "boot": "b1", "role": role, "board": "esp32", "fw": fw,
               "contract": 1, "window": window}
    handle_message(engine, topics.build(topics.DEVICE_PRESENCE, center=center, device=device),
                   json.dumps(payload).encode(), T0)


def status(engine, device: str, state: str, running: str, now: datetime, **more: Any) -> None:
    center = next(c for d, c, _r, _w in DEVICES if d == device)
    payload = {"v": 1, "state": state, "running": running, **more}
    outcome = handle_message(engine, topics.build(topics.FIRMWARE_STATUS, center=center, device=device),
                             json.dumps(payload).encode(), now)
    assert outcome == "applied"


@pytest.fixture
def fleet(engine) -> Any:
    for device, center, role, window in DEVICES:
        birth(engine, device, center, role, window)
    edge_keys = {}
    with write_session(engine) as session:
        for device, _center, _role, _window in DEVICES:
            set_key(session, BOX, device, device_key(device), "tester", T0)
        for center in (CENTER, NEIGHBOUR, FAR):
            edge_keys[center] = bytes.fromhex(issue_edge_credentials(session, BOX, CLI_USER, center, T0).edge_key_hex)
        for version in (OLD, NEW, CRASHING):
            service.store_bundle(session, Built(version), "tester", T0)
    return edge_keys


def create(engine, version: str, canary: list[str], user: CurrentUser = CLI_USER, prefix: str = "445202",
           **policy: Any) -> int:
    with write_session(engine) as session:
        request = service.RolloutRequest(version, prefix, canary, policy=plan.Policy(**policy))
        return service.create_rollout(session, user, request, T0).id


def tick(engine, recorder: Recorder | None, now: datetime) -> None:
    with write_session(engine) as session:
        service.advance_all(session, BOX, recorder, now)


def rollout(engine, rollout_id: int) -> dict[str, Any]:
    with Session(engine) as session:
        return service.rollout_view(session, session.get(FirmwareRollout, rollout_id))


def states(engine, rollout_id: int) -> dict[str, str]:
    return {t["device_id"]: t["state"] for t in rollout(engine, rollout_id)["targets"]}


def test_waves_run_canary_first_then_the_rest_and_complete(engine, fleet) -> None:
    recorder = Recorder()
    rid = create(engine, NEW, [CANARY], max_in_flight=10)
    tick(engine, recorder, T0)
    sent = recorder.take()
    # The bundle first, to the canary's center only, retained, signed for that center's edge ...
    bundle_msgs = [p for t, p, _q, r in sent if t == topics.build(topics.FIRMWARE_BUNDLE, center=CENTER) and r]
    assert len(bundle_msgs) == 1 and signing.verify_for_edge(fleet[CENTER], CENTER, bundle_msgs[0])
    assert zlib.decompress(base64.b64decode(bundle_msgs[0]["data"])) == b"VERSION = '0.2.0'\n"
    # ... then the canary's retained firmware_desired, signed with its own key, naming the manifest digest.
    desired = [(p, r) for t, p, _q, r in sent if t.endswith("/firmware/desired")]
    assert len(desired) == 1 and desired[0][1] is True
    payload = desired[0][0]
    assert signing.verify(device_key(CANARY), CANARY, payload)
    assert payload["manifest_sha256"] == Built(NEW).digest and payload["version"] == NEW
    assert states(engine, rid)[CANARY] == plan.UPDATING

    later = T0 + timedelta(seconds=30)
    status(engine, CANARY, "staged", OLD, later, target=NEW, staged=NEW)
    tick(engine, recorder, later)
    assert recorder.take() == [] and states(engine, rid)[CANARY] == plan.UPDATING
    status(engine, CANARY, "confirmed", NEW, later, target=NEW)
    assert states(engine, rid)[CANARY] == plan.SUCCEEDED
    tick(engine, recorder, later)
    assert set(recorder.desired()) == {DEVICES[1][0]}  # the rest of the canary's center; its bundle is there
    assert not [t for t, *_ in recorder.sent if t.endswith("/edge/firmware/bundle")]
    recorder.take()
    status(engine, DEVICES[1][0], "confirmed", NEW, later, target=NEW)
    tick(engine, recorder, later)
    assert set(recorder.desired()) == {DEVICES[2][0]}  # the town
    status(engine, DEVICES[2][0], "idle", NEW, later)
    recorder.take()
    tick(engine, recorder, later)
    assert set(recorder.desired()) == {DEVICES[3][0], DEVICES[4][0]}  # the county, both at once
    for device in (DEVICES[3][0], DEVICES[4][0]):
        status(engine, device, "confirmed", NEW, later, target=NEW)
    tick(engine, recorder, later)
    view = rollout(engine, rid)
    assert view["status"] == plan.COMPLETED
    assert view["counts"][plan.SUCCEEDED] == 5 and [w["size"] for w in view["waves"]] == [1, 1, 1, 2]


def test_a_bundle_that_crashes_at_boot_halts_after_the_canary(engine, fleet) -> None:
    recorder = Recorder()
    rid = create(engine, CRASHING, [CANARY])
    tick(engine, recorder, T0)
    assert set(recorder.desired()) == {CANARY}
    later = T0 + timedelta(seconds=40)
    status(engine, CANARY, "trying", CRASHING, later, target=CRASHING)
    assert states(engine, rid)[CANARY] == plan.UPDATING  # not kept yet
    # The board came back on the old files and says why.
    status(engine, CANARY, "failed", OLD, later, target=CRASHING, failed=CRASHING, error="crashed at boot")
    tick(engine, recorder, later)
    view = rollout(engine, rid)
    assert view["status"] == plan.HALTED and "wave 0" in view["reason"]
    assert view["counts"] == {**plan.counts(()), plan.FAILED: 1, plan.PENDING: 4}
    canary = next(t for t in view["targets"] if t["device_id"] == CANARY)
    assert (canary["running"], canary["failed"], canary["reason"]) == (OLD, CRASHING, "crashed at boot")
    assert set(recorder.desired()) == {CANARY}  # nobody else was told
    with Session(engine) as session:
        halted = session.exec(select(AuditEntry).where(AuditEntry.action == "rollout.halted")).one()
        assert halted.username == "system"
    # Halted stays halted: no later tick starts anyone.
    tick(engine, recorder, later + timedelta(hours=1))
    assert set(recorder.desired()) == {CANARY}


def test_a_silent_device_times_out_on_the_driven_clock(engine, fleet) -> None:
    recorder = Recorder()
    rid = create(engine, NEW, [CANARY], device_timeout_s=600)
    tick(engine, recorder, T0)
    tick(engine, recorder, T0 + timedelta(seconds=599))
    assert rollout(engine, rid)["status"] == plan.RUNNING
    tick(engine, recorder, T0 + timedelta(seconds=600))
    view = rollout(engine, rid)
    assert view["status"] == plan.HALTED
    assert next(t for t in view["targets"] if t["device_id"] == CANARY)["reason"].startswith("timeout")


def test_pause_resume_abort_and_who_did_it(engine, fleet) -> None:
    recorder = Recorder()
    rid = create(engine, NEW, [CANARY])
    with write_session(engine) as session:
        service.act(session, CLI_USER, session.get(FirmwareRollout, rid), plan.PAUSE, T0)
    tick(engine, recorder, T0)
    assert recorder.desired() == {}  # paused before anything was sent
    with write_session(engine) as session:
        service.act(session, CLI_USER, session.get(FirmwareRollout, rid), plan.RESUME, T0)
    tick(engine, recorder, T0)
    assert set(recorder.desired()) == {CANARY}
    with write_session(engine) as session:
        service.act(session, CLI_USER, session.get(FirmwareRollout, rid), plan.ABORT, T0)
        with pytest.raises(service.RolloutError):
            service.act(session, CLI_USER, session.get(FirmwareRollout, rid), plan.RESUME, T0)
    # The canary told before the abort is still judged.
    status(engine, CANARY, "confirmed", NEW, T0, target=NEW)
    tick(engine, recorder, T0)
    view = rollout(engine, rid)
    assert view["status"] == plan.ABORTED and view["counts"][plan.SUCCEEDED] == 1
    assert set(recorder.desired()) == {CANARY}
    with Session(engine) as session:
        actions = [e.action for e in session.exec(select(AuditEntry).order_by(AuditEntry.id))]
    assert [a for a in actions if a.startswith("rollout.")] == ["rollout.create", "rollout.pause", "rollout.resume",
                                                                 "rollout.abort"]


def test_roll_back_sends_devices_back_to_what_they_ran(engine, fleet) -> None:
    recorder = Recorder()
    rid = create(engine, NEW, [CANARY])
    tick(engine, recorder, T0)
    status(engine, CANARY, "confirmed", NEW, T0, target=NEW)
    tick(engine, recorder, T0)  # the pad of the canary's center starts
    recorder.take()
    with write_session(engine) as session:
        service.act(session, CLI_USER, session.get(FirmwareRollout, rid), plan.ROLL_BACK, T0)
    tick(engine, recorder, T0)
    # Both the canary (succeeded) and the pad (updating: it may have taken it) go back to 0.1.0.
    assert recorder.desired() == {CANARY: OLD, DEVICES[1][0]: OLD}
    bundle = [p for t, p, *_ in recorder.sent if t.endswith("/edge/firmware/bundle")]
    assert [b["version"] for b in bundle] == [OLD]  # the old bundle goes to the center again
    assert states(engine, rid)[CANARY] == plan.ROLLING_BACK
    status(engine, CANARY, "confirmed", OLD, T0, target=OLD)
    status(engine, DEVICES[1][0], "idle", OLD, T0)
    tick(engine, recorder, T0)
    view = rollout(engine, rid)
    assert view["status"] == plan.ROLLOUT_ROLLED_BACK and view["counts"][plan.ROLLED_BACK] == 2


def test_a_device_in_an_active_rollout_is_not_taken_by_another(engine, fleet) -> None:
    create(engine, NEW, [CANARY])
    with pytest.raises(service.RolloutError, match="another active rollout"):
        create(engine, CRASHING, [CANARY], prefix=CENTER)


def test_a_town_operator_rolls_out_only_in_its_town(engine, fleet) -> None:
    town = CurrentUser(id=None, username="town-a", role="town_operator", division_prefix=FAR[:9])
    with pytest.raises(PermissionError):
        create(engine, NEW, [CANARY], user=town)
    rid = create(engine, NEW, [DEVICES[3][0]], user=town, prefix=FAR[:9])
    assert set(states(engine, rid)) == {DEVICES[3][0], DEVICES[4][0]}


def test_reports_are_kept_per_device_and_a_device_on_the_version_already_counts_as_done(engine, fleet) -> None:
    status(engine, CANARY, "failed", OLD, T0, target=CRASHING, failed=CRASHING, error="bad signature")
    with Session(engine) as session:
        row = session.get(DeviceFirmware, CANARY)
        assert (row.running, row.failed, row.error, row.state) == (OLD, CRASHING, "bad signature", "failed")
    status(engine, DEVICES[1][0], "idle", NEW, T0)
    rid = create(engine, NEW, [CANARY])
    with Session(engine) as session:
        pad = session.exec(select(RolloutDevice).where(RolloutDevice.device_id == DEVICES[1][0])).one()
        assert (pad.state, pad.previous_version) == (plan.SUCCEEDED, NEW)
    assert rollout(engine, rid)["counts"][plan.SUCCEEDED] == 1


def test_nothing_sent_without_a_broker_is_sent_once_it_is_back(engine, fleet) -> None:
    rid = create(engine, NEW, [CANARY])
    tick(engine, None, T0)
    target = next(t for t in rollout(engine, rid)["targets"] if t["device_id"] == CANARY)
    assert target["state"] == plan.UPDATING and not target["sent"] and "county broker" in target["reason"]
    recorder = Recorder()
    tick(engine, recorder, T0 + timedelta(seconds=5))
    assert set(recorder.desired()) == {CANARY}
    assert next(t for t in rollout(engine, rid)["targets"] if t["device_id"] == CANARY)["sent"]


def test_a_refused_order_fails_the_device_at_once_but_the_same_refusal_again_is_no_news(engine, fleet) -> None:
    recorder = Recorder()
    rid = create(engine, NEW, [CANARY])
    tick(engine, recorder, T0)
    status(engine, CANARY, "refused", OLD, T0, error="signature does not verify")  # names no order
    tick(engine, recorder, T0)
    view = rollout(engine, rid)
    assert view["status"] == plan.HALTED
    assert next(t for t in view["targets"] if t["device_id"] == CANARY)["reason"] == "signature does not verify"
    with write_session(engine) as session:
        service.act(session, CLI_USER, session.get(FirmwareRollout, rid), plan.ABORT, T0)
    # The next rollout tells the canary again; the retained refusal delivered again (a fleet restart) is no
    # verdict on the new order.
    second = create(engine, CRASHING, [CANARY])
    tick(engine, recorder, T0)
    status(engine, CANARY, "refused", OLD, T0, error="signature does not verify")
    assert states(engine, second)[CANARY] == plan.UPDATING


def test_a_roll_back_waits_for_another_active_rollout_of_its_devices(engine, fleet) -> None:
    recorder = Recorder()
    first = create(engine, NEW, [CANARY], prefix=CENTER)
    tick(engine, recorder, T0)
    for device in (CANARY, DEVICES[1][0]):
        status(engine, device, "confirmed", NEW, T0, target=NEW)
        tick(engine, recorder, T0)
    assert rollout(engine, first)["status"] == plan.COMPLETED
    second = create(engine, CRASHING, [CANARY], prefix=CENTER)
    with write_session(engine) as session:
        with pytest.raises(service.RolloutError, match=f"another active rollout: {CANARY} \\(#{second}\\)"):
            service.act(session, CLI_USER, session.get(FirmwareRollout, first), plan.ROLL_BACK, T0)
    with write_session(engine) as session:
        service.act(session, CLI_USER, session.get(FirmwareRollout, second), plan.ABORT, T0)
    with write_session(engine) as session:
        service.act(session, CLI_USER, session.get(FirmwareRollout, first), plan.ROLL_BACK, T0)
    assert rollout(engine, first)["status"] == plan.ROLLOUT_ROLLING_BACK
