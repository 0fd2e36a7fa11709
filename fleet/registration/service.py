"""Registering devices, issuing credential packs and edge accounts: plain functions of a session.

The caller commits (and checks the user's scope). Secrets are returned once and stored only as
Mosquitto hashes (broker passwords) or sealed with the KeyBox (device keys), like every device key.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from fleet import audit
from fleet.auth.principal import CurrentUser
from fleet.devconfig.keys import KEY_BYTES, KeyBox, fingerprint, get_key, set_key
from fleet.models import Center, Device
from fleet.registration.models import (
    CredentialPack,
    DeviceRegistration,
    EdgeCountyAccount,
    EdgeCredential,
    FleetBrokerAccount,
    PackSlot,
)
from fleet.registration.mosquitto_hash import hash_password, new_password, verify_password
from protocol import messages
from protocol.errors import ProtocolError
from protocol.identity import check_center_code, check_device_id, check_window, device_id_from_mac

log = logging.getLogger(__name__)

# A center's files must fit one message to its edge: an unbound slot takes about 710 bytes of it (its own acl
# section and a check account, fleet.registration.broker_files), so 20 fill a center with no device yet.
MAX_PACK = 20
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class RegistrationError(ValueError):
    """A request that cannot be honoured; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DeviceFacts:
    """What provisioning reports about the device it set up."""

    device_id: str
    center: str
    window: int
    role: str
    board: str | None
    mac: str
    image_sha256: str
    provisioned_by: str
    provisioned_at: datetime | None = None
    pack_slot: str | None = None


# Secrets are left out of the reprs below: a stray log line or traceback must not show them.


@dataclass(frozen=True)
class KeepProof:
    """The credentials a board already holds, offered to be kept on re-provisioning (never stored or logged)."""

    broker_username: str
    broker_password: str = field(repr=False)
    device_key: str = field(repr=False)  # hex


@dataclass(frozen=True)
class Issued:
    """The answer of a registration; the secrets are None when a pack slot was bound (the device has them)."""

    device_id: str
    center: str
    broker_username: str
    broker_password: str | None = field(repr=False)
    device_key_hex: str | None = field(repr=False)
    pack_slot: str | None
    registrations: int
    kept: bool = False  # the offered credentials were kept (re-provisioning without rotation)
    rotated_because: str | None = None  # why offered credentials were not kept, or why fresh ones were issued


@dataclass(frozen=True)
class SlotSecret:
    username: str
    password: str = field(repr=False)
    device_key_hex: str = field(repr=False)


def check_facts(facts: DeviceFacts) -> None:
    """RegistrationError (422) listing everything wrong with `facts`."""
    problems = []
    for label, check, value in (("device_id", check_device_id, facts.device_id),
                                ("center", check_center_code, facts.center), ("window", check_window, facts.window)):
        try:
            check(value)
        except ProtocolError as exc:
            problems.append(f"{label}: {exc}")
    if facts.role not in messages.DEVICE_ROLES:
        problems.append(f"role must be one of {', '.join(messages.DEVICE_ROLES)}")
    try:
        if device_id_from_mac(facts.mac) != facts.device_id:
            problems.append(f"mac {facts.mac} is not the MAC of {facts.device_id}")
    except ProtocolError as exc:
        problems.append(f"mac: {exc}")
    if not _SHA256_HEX.match(facts.image_sha256):
        problems.append("image_sha256 must be 64 lowercase hex digits")
    if not facts.provisioned_by.strip() or len(facts.provisioned_by) > 64:
        problems.append("provisioned_by: 1 to 64 characters")
    if facts.provisioned_at is not None and facts.provisioned_at.tzinfo is None:
        problems.append("provisioned_at needs a time zone")
    if problems:
        raise RegistrationError("; ".join(problems))


def register_device(session: Session, box: KeyBox, user: CurrentUser, facts: DeviceFacts,
                    now: datetime, keep: KeepProof | None = None) -> Issued:
    """Register `facts.device_id` (again): fresh broker password and device key, or bind a pack slot.

    Registering again rotates the credentials (the old password stops working once the center
    broker's files are rewritten, and configurations are signed with the new key from now on),
    unless `keep` proves the board holds the registered ones and center, window and role are
    unchanged: then they are kept and the re-provisioning is recorded (see `_keep`).
    Binding the same slot to the same device again answers the same (provision sync is idempotent).
    """
    check_facts(facts)
    row = session.get(DeviceRegistration, facts.device_id)
    rotated_because: str | None = None
    if facts.pack_slot is None and keep is not None:
        slot = _unsynced_slot(session, box, facts, row, keep)
        if slot is not None:  # provisioned offline, not synced yet: bind it now, as the sync would
            issued = register_device(session, box, user, replace(facts, pack_slot=slot.username), now)
            return replace(issued, broker_password=keep.broker_password, device_key_hex=keep.device_key,
                           kept=True)
        rotated_because = why_not_keep(session, box, facts, row, keep)
        if rotated_because is None:
            assert row is not None
            return _keep(session, user, facts, row, keep, now)
    elif facts.pack_slot is None:
        rotated_because = "no credentials offered to keep" if row is not None else None
    password: str | None = None
    key: bytes | None = None
    if facts.pack_slot is not None:
        slot = _slot_for(session, facts)
        if row is not None and row.pack_slot == slot.username and slot.device_id == facts.device_id:
            return _issued(row, None, None)  # already bound by an earlier sync
        _refuse_if_superseded(row, facts)
        slot.device_id, slot.bound_at = facts.device_id, now
        session.add(slot)
        username, password_hash = slot.username, slot.password_hash
        set_key(session, box, facts.device_id, box.open(slot.username, slot.sealed_key), user.username, now)
    else:
        password, key = new_password(), secrets.token_bytes(KEY_BYTES)
        username, password_hash = facts.device_id, hash_password(password)
        set_key(session, box, facts.device_id, key, user.username, now)
    if row is None:
        row = DeviceRegistration(device_id=facts.device_id, registrations=0, center_code=facts.center,
                                 window=facts.window, role=facts.role, mac=facts.mac, image_sha256=facts.image_sha256,
                                 provisioned_by=facts.provisioned_by, provisioned_at=now, registered_by=user.username,
                                 broker_username=username, broker_password_hash=password_hash)
    moved_from = row.center_code if row.center_code != facts.center else None
    moved_from = _move_device_record(session, facts.device_id, facts.center, now) or moved_from
    _note_provisioning(row, user, facts, now)
    row.broker_username, row.broker_password_hash, row.pack_slot = username, password_hash, facts.pack_slot
    row.activated_at = None  # active again only once it is seen with its new credentials
    session.add(row)
    detail = _detail(row, facts)
    if facts.pack_slot:
        detail["pack_slot"] = facts.pack_slot
    if moved_from:
        detail["moved_from"] = moved_from
    if rotated_because:
        detail["rotated_because"] = rotated_because
    audit.record(session, user, "device.register", target=f"{facts.center} {facts.device_id}", detail=detail,
                 center_code=facts.center, at=now)
    session.flush()
    log.info("registered %s in center %s as broker user %s (registration %d)", facts.device_id, facts.center,
             username, row.registrations)
    return replace(_issued(row, password, key.hex() if key else None), rotated_because=rotated_because)


def _move_device_record(session: Session, device_id: str, center: str, now: datetime) -> str | None:
    """Move the device's record (if it was seen) to `center`; returns the center it was in, None if unmoved.

    Registration is the only way a device changes center: the ingest drops a device's messages under any
    other center (fleet.ingest.device_home), so a device taken to another center is registered there.
    """
    device = session.get(Device, device_id)
    if device is None or device.center_code == center:
        return None
    if session.get(Center, center) is None:
        session.add(Center.new(center, now))
        session.flush()  # the device row refers to it
    was, device.center_code, device.updated = device.center_code, center, now
    session.add(device)
    log.info("device %s moved from center %s to %s by its registration", device_id, was, center)
    return was


def _refuse_if_superseded(row: DeviceRegistration | None, facts: DeviceFacts) -> None:
    """409 for a pack slot from an offline provisioning older than the device's last registration: binding
    it would undo that registration (e.g. a rerun online, from another laptop) and lock the device out."""
    if row is None or facts.provisioned_at is None:
        return
    # Both are aware: check_facts refuses a provisioned_at without a zone, UTCDateTime reads back UTC.
    done_offline, registered = facts.provisioned_at.astimezone(UTC), row.registered_at.astimezone(UTC)
    if done_offline < registered:
        raise RegistrationError(
            f"{facts.device_id} was registered again at {registered:%Y-%m-%d %H:%M} UTC, after this offline "
            f"provisioning ({done_offline:%Y-%m-%d %H:%M} UTC): pack slot {facts.pack_slot} is out of date and "
            "is not bound", 409)


def why_not_keep(session: Session, box: KeyBox, facts: DeviceFacts, row: DeviceRegistration | None,
                 keep: KeepProof) -> str | None:
    """None when `keep` may be kept for `facts`; else why not (no secret in it: it is answered and recorded)."""
    if row is None:
        return "not registered"
    for label, was, now_is in (("center", row.center_code, facts.center), ("window", row.window, facts.window),
                               ("role", row.role, facts.role)):
        if was != now_is:
            return f"{label} changed from {was} to {now_is}"
    if not hmac.compare_digest(keep.broker_username.encode(), row.broker_username.encode()):
        return "the board's broker user name is not the registered one"
    if not verify_password(keep.broker_password, row.broker_password_hash):
        return "the board's broker password does not match the registered one"
    if not _same_key(get_key(session, box, facts.device_id), keep.device_key):
        return "the board's device key does not match the registered one"
    return None


def _same_key(stored: bytes | None, offered_hex: str) -> bool:
    try:
        offered = bytes.fromhex(offered_hex)
    except ValueError:
        return False
    return stored is not None and hmac.compare_digest(stored, offered)


def _unsynced_slot(session: Session, box: KeyBox, facts: DeviceFacts, row: DeviceRegistration | None,
                   keep: KeepProof) -> PackSlot | None:
    """The pack slot the board holds when it was provisioned offline and not synced yet, if `keep` proves it."""
    if keep.broker_username == facts.device_id or (row is not None and row.broker_username == keep.broker_username):
        return None
    slot = session.get(PackSlot, keep.broker_username)
    # Only a slot never bound: a bound one the device has left (its credentials rotated since) stays revoked.
    if slot is None or slot.center_code != facts.center or slot.device_id is not None:
        return None
    if row is not None and (row.center_code, row.window, row.role) != (facts.center, facts.window, facts.role):
        return None
    if not verify_password(keep.broker_password, slot.password_hash):
        return None
    return slot if _same_key(box.open(slot.username, slot.sealed_key), keep.device_key) else None


def _keep(session: Session, user: CurrentUser, facts: DeviceFacts, row: DeviceRegistration, keep: KeepProof,
          now: datetime) -> Issued:
    """Re-provisioning with the same credentials: recorded and counted, nothing rotated, the broker files unchanged."""
    _note_provisioning(row, user, facts, now)
    session.add(row)  # activated_at stays: the device connects with the same account as before
    detail = {**_detail(row, facts), "kept": True}
    if row.pack_slot:
        detail["pack_slot"] = row.pack_slot
    audit.record(session, user, "device.reprovision", target=f"{facts.center} {facts.device_id}", detail=detail,
                 center_code=facts.center, at=now)
    session.flush()
    log.info("re-provisioned %s in center %s, broker user %s kept (registration %d)", facts.device_id,
             facts.center, row.broker_username, row.registrations)
    return replace(_issued(row, keep.broker_password, keep.device_key), kept=True)


def _note_provisioning(row: DeviceRegistration, user: CurrentUser, facts: DeviceFacts, now: datetime) -> None:
    row.center_code, row.window, row.role, row.board = facts.center, facts.window, facts.role, facts.board
    row.mac, row.image_sha256, row.provisioned_by = facts.mac, facts.image_sha256, facts.provisioned_by.strip()
    row.provisioned_at = facts.provisioned_at or now
    row.registered_at, row.registered_by, row.registrations = now, user.username, row.registrations + 1


def _detail(row: DeviceRegistration, facts: DeviceFacts) -> dict:
    return {"window": facts.window, "role": facts.role, "image_sha256": facts.image_sha256,
            "provisioned_by": row.provisioned_by, "provisioned_at": row.provisioned_at.isoformat(),
            "broker_username": row.broker_username, "registrations": row.registrations}


def _issued(row: DeviceRegistration, password: str | None, key_hex: str | None) -> Issued:
    return Issued(row.device_id, row.center_code, row.broker_username, password, key_hex, row.pack_slot,
                  row.registrations)


def _slot_for(session: Session, facts: DeviceFacts) -> PackSlot:
    slot = session.get(PackSlot, facts.pack_slot)
    if slot is None or slot.center_code != facts.center:
        raise RegistrationError(f"credential pack slot {facts.pack_slot} is unknown for center {facts.center}", 404)
    if slot.device_id is not None and slot.device_id != facts.device_id:
        raise RegistrationError(f"credential pack slot {slot.username} is already used by {slot.device_id}", 409)
    return slot


def issue_pack(session: Session, box: KeyBox, user: CurrentUser, center: str, count: int,
               now: datetime) -> tuple[CredentialPack, list[SlotSecret]]:
    """`count` slots for `center`; their secrets are in the answer and nowhere else."""
    try:
        check_center_code(center)
    except ProtocolError as exc:
        raise RegistrationError(str(exc)) from exc
    if not 1 <= count <= MAX_PACK:
        raise RegistrationError(f"count must be 1 to {MAX_PACK}")
    pack = CredentialPack(center_code=center, count=count, issued_at=now, issued_by=user.username)
    session.add(pack)
    session.flush()
    secrets_out = []
    for number in range(1, count + 1):
        username, password, key = f"p{pack.id}-{number}", new_password(), secrets.token_bytes(KEY_BYTES)
        session.add(PackSlot(username=username, pack_id=pack.id, center_code=center,
                             password_hash=hash_password(password), sealed_key=box.seal(username, key)))
        secrets_out.append(SlotSecret(username, password, key.hex()))
    audit.record(session, user, "credential_pack.issue", target=f"{center} pack {pack.id}",
                 detail={"count": count}, center_code=center, at=now)
    session.flush()
    return pack, secrets_out


def edge_username(center: str) -> str:
    return f"edge-{center}"


@dataclass(frozen=True)
class PackSummary:
    pack_id: int
    center: str
    count: int
    issued_at: datetime
    issued_by: str
    bound: int  # slots a device holds (registered or synced)
    unbound: list[str]  # slots no registration has bound yet: free, or taken offline and not synced


def list_packs(session: Session, center: str) -> list[PackSummary]:
    """The center's credential packs, oldest first, with which of their slots are still unbound."""
    packs = session.exec(select(CredentialPack).where(CredentialPack.center_code == center)
                         .order_by(col(CredentialPack.id))).all()
    slots = session.exec(select(PackSlot).where(PackSlot.center_code == center)).all()
    summaries = []
    for pack in packs:
        mine = sorted((s for s in slots if s.pack_id == pack.id), key=lambda s: _slot_number(s.username))
        summaries.append(PackSummary(pack.id or 0, center, pack.count, pack.issued_at, pack.issued_by,
                                     sum(1 for s in mine if s.device_id is not None),
                                     [s.username for s in mine if s.device_id is None]))
    return summaries


def _slot_number(username: str) -> int:
    """n of a slot's user name p<pack>-<n>: slots in the order they were issued."""
    return int(username.rsplit("-", 1)[1])


def revoke_pack(session: Session, user: CurrentUser, center: str, pack_id: int, now: datetime) -> list[str]:
    """Delete the pack's unbound slots (accounts and keys); returns their names.

    While any slot of a center is unbound its broker lets an account pick any device id of the center
    (the slots' `%c` ACL), so leftovers of a pack should not stay forever. A slot taken offline and not
    synced yet stops working too: sync every laptop first. Bound slots stay (their devices use them).
    """
    pack = session.get(CredentialPack, pack_id)
    if pack is None or pack.center_code != center:
        raise RegistrationError(f"credential pack {pack_id} is unknown for center {center}", 404)
    unbound = session.exec(select(PackSlot).where(PackSlot.pack_id == pack_id, col(PackSlot.device_id).is_(None))
                           ).all()
    names = sorted((s.username for s in unbound), key=_slot_number)
    for slot in unbound:
        session.delete(slot)
    audit.record(session, user, "credential_pack.revoke", target=f"{center} pack {pack_id}",
                 detail={"revoked": names}, center_code=center, at=now)
    session.flush()
    log.info("credential pack %d of center %s: %d unbound slots revoked", pack_id, center, len(names))
    return names


@dataclass(frozen=True)
class EdgeIssued:
    """What the center's edge agent is given, answered once: it goes into the edge's configuration."""

    center: str
    username: str  # on the center broker ([brokers.center])
    password: str = field(repr=False)
    county_username: str  # on the county broker ([brokers.county])
    county_password: str = field(repr=False)
    edge_key_hex: str = field(repr=False)  # [brokers.county] edge_key: checks what the fleet signs for this edge


def issue_edge_credentials(session: Session, box: KeyBox, user: CurrentUser, center: str,
                           now: datetime) -> EdgeIssued:
    """New credentials for the center's edge agent (rotating the old ones): its password on the center broker,
    its account on the county broker and its edge key, with which the fleet signs broker_accounts and
    event_ack for it. All three at once: one answer is one block of the edge's configuration."""
    try:
        check_center_code(center)
    except ProtocolError as exc:
        raise RegistrationError(str(exc)) from exc
    password, county_password, key = new_password(), new_password(), secrets.token_bytes(KEY_BYTES)
    row = session.get(EdgeCredential, center) or EdgeCredential(center_code=center, username=edge_username(center),
                                                                 password_hash="", issued_by=user.username)
    row.password_hash, row.issued_at, row.issued_by = hash_password(password), now, user.username
    session.add(row)
    county = session.get(EdgeCountyAccount, center) or EdgeCountyAccount(
        center_code=center, username=edge_username(center), password_hash="", sealed_key="", key_fingerprint="",
        issued_by=user.username)
    county.password_hash, county.issued_at, county.issued_by = hash_password(county_password), now, user.username
    county.sealed_key, county.key_fingerprint = box.seal(edge_username(center), key), fingerprint(key)
    session.add(county)
    audit.record(session, user, "edge.credentials", target=center,
                 detail={"username": row.username, "county_username": county.username,
                         "edge_key_fingerprint": county.key_fingerprint}, center_code=center, at=now)
    session.flush()
    return EdgeIssued(center, row.username, password, county.username, county_password, key.hex())


def edge_key(session: Session, box: KeyBox, center: str) -> bytes | None:
    """The edge key of `center` (what the fleet signs the edge's messages with); None before it was issued."""
    row = session.get(EdgeCountyAccount, center)
    return None if row is None else open_edge_key(box, row)


def open_edge_key(box: KeyBox, row: EdgeCountyAccount) -> bytes:
    """The edge key sealed in `row`; raises DeviceKeyError when it does not open."""
    return box.open(edge_username(row.center_code), row.sealed_key)


FLEET_ACCOUNT = re.compile(r"^fleet-[A-Za-z0-9][A-Za-z0-9._-]{0,57}$")


def issue_fleet_account(session: Session, user: CurrentUser, username: str, now: datetime) -> str:
    """A new password for one of the fleet's accounts on the county broker (an ingest worker's); rotates it.

    The name starts with `fleet-` (no edge's `edge-<code>` can be taken this way) and is the worker's MQTT
    client id too: the county broker binds client ids to user names (county_broker.COUNTY_BROKER_SETTINGS).
    """
    if not FLEET_ACCOUNT.match(username):
        raise RegistrationError("a fleet account is fleet-<name>: letters, digits, '.', '_' or '-', "
                                "at most 64 characters")
    password = new_password()
    row = session.get(FleetBrokerAccount, username) or FleetBrokerAccount(username=username, password_hash="",
                                                                          issued_by=user.username)
    row.password_hash, row.issued_at, row.issued_by = hash_password(password), now, user.username
    session.add(row)
    audit.record(session, user, "fleet.broker_account", target=username, detail={}, at=now)
    session.flush()
    return password


def note_birth(session: Session, device_id: str, center_code: str, now: datetime) -> bool:
    """Activate a registered device on its first birth; True when this birth activated it."""
    row = session.get(DeviceRegistration, device_id)
    if row is None or row.activated_at is not None:
        return False
    if row.center_code != center_code:
        log.warning("device %s registered for center %s was born in center %s", device_id, row.center_code,
                    center_code)
    row.activated_at = now
    session.add(row)
    return True


def awaiting_activation(session: Session, center: str | None = None) -> list[DeviceRegistration]:
    """Registered devices not seen online since (their latest) registration."""
    query = select(DeviceRegistration).where(col(DeviceRegistration.activated_at).is_(None))
    if center is not None:
        query = query.where(DeviceRegistration.center_code == center)
    return list(session.exec(query.order_by(col(DeviceRegistration.device_id))).all())
