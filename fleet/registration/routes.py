"""HTTP routes of registration (under /api, tag "registration"); see fleet/README.md, Registration.

All of them change or reveal credentials: a county administrator or town operator whose division
prefix covers the center (API token, or session plus CSRF token); each is audit-logged.
"""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlmodel import Session

from fleet import audit
from fleet.alerts.writes import WriteSessionDep
from fleet.auth.deps import CurrentUserDep, WriterDep, ensure_changeable, ensure_visible
from fleet.deps import NowDep, SessionDep
from fleet.devconfig.keys import KeyBox
from fleet.models import Device
from fleet.registration import delivery, service
from fleet.registration.broker_files import broker_files
from fleet.registration.models import DeviceRegistration
from protocol.errors import ProtocolError
from protocol.identity import check_center_code

log = logging.getLogger(__name__)


class KeepIn(BaseModel):
    """The credentials the board holds now, offered as proof to keep them (re-provisioning)."""

    broker_username: str = Field(max_length=32)
    broker_password: str = Field(max_length=128, repr=False)
    device_key: str = Field(max_length=128, repr=False)  # hex


class RegisterIn(BaseModel):
    device_id: str = Field(max_length=16)
    center: str = Field(max_length=12)
    window: int
    role: str = Field(max_length=16)
    board: str | None = Field(default=None, max_length=64)
    mac: str = Field(max_length=17)
    image_sha256: str = Field(max_length=64)
    provisioned_by: str = Field(max_length=64)
    provisioned_at: datetime | None = None  # when provisioned without the network, registered later
    pack_slot: str | None = Field(default=None, max_length=32)  # the credential-pack slot taken offline
    keep: KeepIn | None = None  # keep these if they are the registered ones and nothing else moved


class RegisteredOut(BaseModel):
    device_id: str
    center: str
    broker_username: str
    broker_password: str | None  # shown once; None when a pack slot was bound (the device has it)
    device_key: str | None  # 64 hex digits, shown once; None when a pack slot was bound
    pack_slot: str | None
    registrations: int  # how often the device has been registered (re-provisionings included)
    kept: bool = False  # the credentials in `keep` were kept: nothing rotated
    rotated_because: str | None = None  # why fresh credentials were issued (`keep` refused, none offered, ...)


class RegistrationOut(BaseModel):
    device_id: str
    center_code: str
    window: int
    role: str
    board: str | None
    image_sha256: str
    provisioned_by: str
    provisioned_at: datetime
    registered_at: datetime
    registered_by: str
    registrations: int
    broker_username: str
    pack_slot: str | None
    activated_at: datetime | None  # None: not seen online since it was registered


class PackIn(BaseModel):
    count: int = Field(ge=1, le=service.MAX_PACK)


class SlotOut(BaseModel):
    username: str
    password: str
    device_key: str


class PackOut(BaseModel):
    """Save this answer as a file for `provision device --pack FILE`: it is never shown again."""

    pack_id: int
    center: str
    issued_at: datetime
    slots: list[SlotOut]


class BrokerFilesOut(BaseModel):
    center: str
    passwd: str
    acl: str
    devices: int
    unbound_slots: int
    edge: bool


class EdgeCredentialsOut(BaseModel):
    """Shown once: [brokers.center] username/password, [brokers.county] username/password/edge_key of the edge."""

    center: str
    username: str  # on the center broker
    password: str
    county_username: str  # on the county broker
    county_password: str
    edge_key: str  # 64 hex digits: the fleet signs broker_accounts and event_ack for this edge with it


api = APIRouter(prefix="/api", tags=["registration"])
ERRORS = {403: {}, 404: {}, 409: {}, 422: {}}


def _box(request: Request) -> KeyBox:
    return request.app.state.key_box


def _center(code: str) -> str:
    try:
        return check_center_code(code)
    except ProtocolError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


def _deliver(request: Request, session: Session, center: str, now: datetime) -> None:
    """Publish the center broker's changed files to its edge (after the commit: the answer's secrets are
    already kept). A failure only delays the files: the periodic job publishes what is pending."""
    try:
        delivery.publish_center(session, getattr(request.app.state, "ingest", None), _box(request), center, now)
        session.commit()
    except Exception:
        session.rollback()
        log.exception("broker files of center %s not delivered now; the periodic job retries", center)


def _fail(exc: service.RegistrationError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=str(exc))


def _commit_if_files_fit(session: Session, center: str, now: datetime) -> None:
    """Commit, unless the center's broker files would no longer fit the message to its edge (409)."""
    try:
        delivery.check_fits(session, center, now)
    except ProtocolError as exc:
        session.rollback()
        raise HTTPException(status_code=409, detail=f"center {center}: its broker files would not reach its edge: "
                                                    f"{exc}; nothing was changed") from None
    session.commit()


@api.post("/devices/register", response_model=RegisteredOut, responses=ERRORS)
def post_register(body: RegisterIn, request: Request, user: WriterDep, session: WriteSessionDep,
                  now: NowDep) -> RegisteredOut:
    """Register a device, or again (rotating its broker password and device key unless `keep` proves the ones
    it holds and center, window and role are unchanged), or bind a pack slot to it."""
    ensure_changeable(user, _center(body.center))
    facts = service.DeviceFacts(**body.model_dump(exclude={"keep"}))
    keep = service.KeepProof(**body.keep.model_dump()) if body.keep is not None else None
    before = session.get(DeviceRegistration, body.device_id)
    seen = session.get(Device, body.device_id)
    for current in {row.center_code for row in (before, seen) if row is not None} - {body.center}:
        ensure_changeable(user, current)  # taking a device from another center needs the right to change that one
    moved_from = before.center_code if before is not None and before.center_code != body.center else None
    try:
        issued = service.register_device(session, _box(request), user, facts, now, keep)
    except service.RegistrationError as exc:
        raise _fail(exc) from exc
    _commit_if_files_fit(session, issued.center, now)
    for center in (issued.center, moved_from):  # a device moved to another center leaves its old files too
        if center is not None:
            _deliver(request, session, center, now)
    return RegisteredOut(device_id=issued.device_id, center=issued.center, broker_username=issued.broker_username,
                         broker_password=issued.broker_password, device_key=issued.device_key_hex,
                         pack_slot=issued.pack_slot, registrations=issued.registrations, kept=issued.kept,
                         rotated_because=issued.rotated_because)


@api.get("/devices/{device_id}/registration", response_model=RegistrationOut, responses={404: {}})
def get_registration(device_id: str, user: CurrentUserDep, session: SessionDep) -> DeviceRegistration:
    """Who provisioned the device, when, with which image, and whether it has been seen since (no secrets)."""
    row = session.get(DeviceRegistration, device_id)
    if row is None or not user.can_see(row.center_code):
        raise HTTPException(status_code=404, detail=f"device {device_id} is not registered")
    return row


@api.post("/centers/{code}/credential-packs", response_model=PackOut, responses=ERRORS)
def post_pack(code: str, body: PackIn, request: Request, user: WriterDep, session: WriteSessionDep,
              now: NowDep) -> PackOut:
    """`count` slots for provisioning offline; their passwords and keys are in this answer only."""
    ensure_changeable(user, _center(code))
    try:
        pack, slots = service.issue_pack(session, _box(request), user, code, body.count, now)
    except service.RegistrationError as exc:
        raise _fail(exc) from exc
    _commit_if_files_fit(session, code, now)
    _deliver(request, session, code, now)
    return PackOut(pack_id=pack.id, center=code, issued_at=pack.issued_at,
                   slots=[SlotOut(username=s.username, password=s.password, device_key=s.device_key_hex)
                          for s in slots])


class PackSummaryOut(BaseModel):
    pack_id: int
    center: str
    count: int
    issued_at: datetime
    issued_by: str
    bound: int
    unbound: list[str]  # free, or taken offline and not synced yet


class RevokedOut(BaseModel):
    pack_id: int
    center: str
    revoked: list[str]


@api.get("/centers/{code}/credential-packs", response_model=list[PackSummaryOut], responses={404: {}})
def get_packs(code: str, user: CurrentUserDep, session: SessionDep) -> list[PackSummaryOut]:
    """The center's credential packs and their unbound slots (no secrets)."""
    ensure_visible(user, _center(code))
    return [PackSummaryOut(**vars(summary)) for summary in service.list_packs(session, code)]


@api.post("/centers/{code}/credential-packs/{pack_id}/revoke", response_model=RevokedOut, responses=ERRORS)
def post_revoke_pack(code: str, pack_id: int, request: Request, user: WriterDep, session: WriteSessionDep,
                     now: NowDep) -> RevokedOut:
    """Revoke the pack's unbound slots: their accounts leave the center broker's files (sync laptops first)."""
    ensure_changeable(user, _center(code))
    try:
        revoked = service.revoke_pack(session, user, code, pack_id, now)
    except service.RegistrationError as exc:
        raise _fail(exc) from exc
    session.commit()
    _deliver(request, session, code, now)
    return RevokedOut(pack_id=pack_id, center=code, revoked=revoked)


@api.post("/centers/{code}/edge-credentials", response_model=EdgeCredentialsOut, responses=ERRORS)
def post_edge_credentials(code: str, request: Request, user: WriterDep, session: WriteSessionDep,
                          now: NowDep) -> EdgeCredentialsOut:
    """New credentials for the center's edge agent: its center broker password (the old one stops with the next
    files), its county broker account (in the county broker's files from their next writing) and its edge key
    (what the fleet signs from now on). All old ones stop working: put the answer into the edge's config."""
    ensure_changeable(user, _center(code))
    issued = service.issue_edge_credentials(session, _box(request), user, code, now)
    _commit_if_files_fit(session, code, now)
    _deliver(request, session, code, now)
    return EdgeCredentialsOut(center=code, username=issued.username, password=issued.password,
                              county_username=issued.county_username, county_password=issued.county_password,
                              edge_key=issued.edge_key_hex)


@api.get("/centers/{code}/broker-files", response_model=BrokerFilesOut, responses=ERRORS)
def get_broker_files(code: str, user: WriterDep, session: WriteSessionDep, now: NowDep) -> BrokerFilesOut:
    """The center broker's `passwd` (hashes only) and `acl`; install both and reload Mosquitto (SIGHUP)."""
    ensure_visible(user, _center(code))
    files = broker_files(session, code, now)
    audit.record(session, user, "broker_files.export", target=code,
                 detail={"devices": files.devices, "unbound_slots": files.unbound_slots, "edge": files.edge},
                 center_code=code, at=now)
    session.commit()
    return BrokerFilesOut(center=code, passwd=files.passwd, acl=files.acl, devices=files.devices,
                          unbound_slots=files.unbound_slots, edge=files.edge)
