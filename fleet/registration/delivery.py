"""Delivering a center broker's `passwd` and `acl` to its edge agent over the county broker.

The files are a function of the registrations (broker_files.py). Their version is a counter per center
that rises when the content changes, so the edge can ignore an older or repeated copy:

    publish_center(session, publisher, box, center, now)     # after a change: make the version, publish it
    publish_all(session, publisher, box, now, repush_s)      # the periodic job: pending, failed and due ones

The message is retained (QoS 1) on `broker_accounts` of the center (protocol.topics), so an edge that
connects later still gets the latest files. Anyone who may read it there sees the edge's own password
line, so that line proves nothing: the message is signed with the center's edge key (issued with the
edge's credentials, service.issue_edge_credentials), and the edge installs only what verifies. A center
without an edge key gets nothing (NO_KEY) until its edge credentials are issued.
Publishing goes through the same Publisher as desired configurations (the ingest's client); without one
the version stays pending and the job retries. The caller commits.

Versions only rise at the edge. When the fleet's counter went back (its database restored from a backup),
the edge ignores the lower versions and says so in its health (`broker_accounts`: its installed `version`,
`stale`); note_edge_version then moves the counter past the edge's, and the job publishes again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from fleet.db import write_session
from fleet.devconfig.keys import KeyBox
from fleet.devconfig.publisher import Publisher
from fleet.registration.broker_files import MAX_CHECK_ACCOUNTS, BrokerFiles, broker_files
from fleet.registration.models import BrokerAccountsState, DeviceRegistration, EdgeCredential, PackSlot
from fleet.registration.service import edge_key
from protocol import messages, signing, topics
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

PUBLISHED = "published"
CURRENT = "current"  # this version was published and is not due again
NO_BROKER = "no_broker"  # no county connection now; retried by the job
TOO_BIG = "too_big"  # the message would not fit protocol.messages.MAX_PAYLOAD_BYTES
NO_KEY = "no_key"  # no edge credentials issued for the center: nothing to sign with, nothing the edge would take
# Only the size matters where a message is built to see whether it fits: any key gives a signature as long.
_SIZE_PROBE_KEY = bytes(32)


@dataclass
class DeliveryResult:
    outcomes: dict[str, list[str]] = field(default_factory=dict)  # outcome -> center codes

    def add(self, outcome: str, center: str) -> None:
        self.outcomes.setdefault(outcome, []).append(center)


def files_digest(files: BrokerFiles) -> str:
    """What a version stands for: the files and the registered devices (a new window or role is a new version)."""
    devices = json.dumps([list(entry) for entry in files.registered], separators=(",", ":"))
    return hashlib.sha256(("passwd\0" + files.passwd + "\0acl\0" + files.acl + "\0devices\0" + devices)
                          .encode("utf-8")).hexdigest()


def fitting_files(session: Session, center: str, now: datetime) -> BrokerFiles:
    """The center's files at `now`, with as many of the recent registrations' check accounts as fit one message.

    Check accounts only help a provisioning laptop for a while (broker_files.CHECK_ACCOUNT_S): they take only
    the room the devices do not need, so they never make a registration too big to be delivered. When even
    none fit, the files without any are answered (and are too big: see accounts_message).
    """
    current = session.get(BrokerAccountsState, center)
    probe = BrokerAccountsState(center_code=center, version=(current.version if current else 0) + 1, changed_at=now)
    for checks in range(MAX_CHECK_ACCOUNTS, 0, -1):
        files = broker_files(session, center, now, checks)
        try:
            accounts_message(probe, files, _SIZE_PROBE_KEY)
            return files
        except ProtocolError:
            continue
    return broker_files(session, center, now, 0)


def note_files(session: Session, center: str, now: datetime) -> tuple[BrokerAccountsState, BrokerFiles]:
    """The center's current files and their version: a new version when the content changed."""
    files = fitting_files(session, center, now)
    digest = files_digest(files)
    state = session.get(BrokerAccountsState, center) or BrokerAccountsState(center_code=center, changed_at=now)
    if state.digest != digest:
        state.version, state.digest, state.changed_at = state.version + 1, digest, now
        session.add(state)
    return state, files


def accounts_message(state: BrokerAccountsState, files: BrokerFiles, key: bytes) -> bytes:
    """The encoded broker_accounts message, signed with the edge key `key`; ProtocolError when it is not valid
    or does not fit."""
    payload = signing.make_signed("broker_accounts", key, state.center_code, version=state.version,
                                  passwd=files.passwd, acl=files.acl, issued_at=int(state.changed_at.timestamp()),
                                  devices=[list(entry) for entry in files.registered])
    raw = messages.encode("broker_accounts", payload)
    if len(raw) > messages.MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{len(raw)} bytes is more than the {messages.MAX_PAYLOAD_BYTES} an edge accepts "
                            f"({files.devices} devices, {files.unbound_slots} unbound pack slots)")
    return raw


def check_fits(session: Session, center: str, now: datetime) -> None:
    """ProtocolError when the center's files, as `session` has them now (uncommitted changes included),
    would not fit one broker_accounts message: such a change must be refused, not committed, or every
    later change of the center would wait behind files its edge can never receive."""
    files = fitting_files(session, center, now)
    current = session.get(BrokerAccountsState, center)
    probe = BrokerAccountsState(center_code=center, version=(current.version if current else 0) + 1, changed_at=now)
    accounts_message(probe, files, _SIZE_PROBE_KEY)


def is_due(state: BrokerAccountsState, now: datetime, repush_s: float | None) -> bool:
    """Publish when this version was never published, or (repush_s given) it was published that long ago."""
    if state.published_version != state.version or state.published_at is None:
        return True
    return repush_s is not None and now - state.published_at >= timedelta(seconds=repush_s)


def publish_center(session: Session, publisher: Publisher | None, box: KeyBox, center: str, now: datetime,
                   repush_s: float | None = None) -> str:
    """Make the center's current version and publish it if due; returns one of the outcomes above."""
    state, files = note_files(session, center, now)
    if not is_due(state, now, repush_s):
        return CURRENT
    key = edge_key(session, box, center)
    if key is None:
        log.warning("broker files v%d of center %s not published: no edge credentials issued, nothing to sign "
                    "them with (POST /api/centers/%s/edge-credentials)", state.version, center, center)
        return NO_KEY
    try:
        raw = accounts_message(state, files, key)
    except ProtocolError as exc:
        log.error("broker files v%d of center %s not published: %s", state.version, center, exc)
        return TOO_BIG
    spec = topics.topic(topics.BROKER_ACCOUNTS)
    if publisher is None or not publisher.publish(topics.build(topics.BROKER_ACCOUNTS, center=center), raw,
                                                  spec.qos, spec.retained):
        log.info("broker files v%d of center %s wait for the county broker", state.version, center)
        return NO_BROKER
    state.published_version, state.published_at = state.version, now
    session.add(state)
    log.info("broker files v%d of center %s published (%d devices, %d unbound slots, edge account: %s)",
             state.version, center, files.devices, files.unbound_slots, "yes" if files.edge else "no")
    return PUBLISHED


def centers_with_accounts(session: Session) -> list[str]:
    """Every center that has (or had) a broker account issued by the fleet."""
    codes: set[str] = set()
    for column in (DeviceRegistration.center_code, PackSlot.center_code, EdgeCredential.center_code,
                   BrokerAccountsState.center_code):
        codes.update(session.exec(select(col(column)).distinct()).all())
    return sorted(codes)


def publish_all(session: Session, publisher: Publisher | None, box: KeyBox, now: datetime,
                repush_s: float | None = None) -> DeliveryResult:
    """publish_center for every center; with repush_s, versions published that long ago go out again."""
    result = DeliveryResult()
    for center in centers_with_accounts(session):
        result.add(publish_center(session, publisher, box, center, now, repush_s), center)
    return result


def broker_accounts_job(engine: Engine, publisher: Publisher | None, box: KeyBox, now: datetime,
                        repush_s: float) -> DeliveryResult:
    """The periodic job (also at start-up): changed, unpublished and due files of every center go out."""
    with write_session(engine) as session:
        result = publish_all(session, publisher, box, now, repush_s)
    for center in result.outcomes.get(TOO_BIG, []):
        log.error("center %s: its broker files do not fit one message; the edge keeps its old files", center)
    return result


def note_edge_version(session: Session, center: str, component: object, now: datetime) -> bool:
    """Recover from a counter that went back: True when the center's version was moved past the edge's.

    `component` is the `broker_accounts` part of the edge's health (edge_health.components). An edge whose
    installed `version` is not below the fleet's and that says it ignored what the fleet sent (`stale`) will
    never install a version the fleet makes from its counter: the counter moves to the edge's version + 1 and
    the version is due again (the job publishes it, signed: the edge's key is what makes it the fleet's).
    Only the center's own edge may publish its health on the county broker (county_broker.county_acl).
    """
    if not isinstance(component, dict) or component.get("stale") is not True:
        return False
    installed = component.get("version")
    if isinstance(installed, bool) or not isinstance(installed, int) or not 0 < installed < messages.INT_MAX:
        return False
    state = session.get(BrokerAccountsState, center)
    if state is None or installed < state.version:
        return False  # the edge is behind: what the fleet sends is newer and will be installed
    log.warning("center %s: its edge has broker files v%d installed and ignores the fleet's v%d (the fleet's "
                "counter went back); the next version is v%d", center, installed, state.version, installed + 1)
    state.version, state.changed_at, state.published_version = installed + 1, now, 0
    session.add(state)
    return True
