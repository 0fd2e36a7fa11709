"""Tables of registration: what was issued to whom, kept only as hashes and sealed keys.

They are apart from `device` on purpose: a registered device has no `device` row until its first
birth arrives (the ingest creates it then), so the overview, the alerts and the device lists only
ever show devices that have been seen; `DeviceRegistration.activated_at` says when that happened.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from fleet.models import UTCDateTime, utcnow


class DeviceRegistration(SQLModel, table=True):
    """One registered device and the broker account it was given (the latest registration wins)."""

    __tablename__ = "device_registration"

    device_id: str = Field(primary_key=True, max_length=16)
    center_code: str = Field(max_length=12, index=True)
    window: int
    role: str = Field(max_length=16)
    board: str | None = Field(default=None, max_length=64)
    mac: str = Field(max_length=17)
    image_sha256: str = Field(max_length=64)
    provisioned_by: str = Field(max_length=64)  # the technician on the provisioning laptop
    provisioned_at: datetime = Field(sa_type=UTCDateTime)  # on the laptop; earlier than registered_at offline
    registered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    registered_by: str = Field(max_length=64)  # the fleet user (or token owner) who registered it
    registrations: int = 1  # every registration rotates the credentials
    broker_username: str = Field(max_length=32, index=True)  # the device id, or the pack slot it took
    broker_password_hash: str  # Mosquitto `$7$` hash; the password itself is never stored
    pack_slot: str | None = Field(default=None, max_length=32)
    activated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # its first birth after registering


class CredentialPack(SQLModel, table=True):
    """Slots issued for provisioning without the network; their secrets were answered once."""

    __tablename__ = "credential_pack"

    id: int | None = Field(default=None, primary_key=True)
    center_code: str = Field(max_length=12, index=True)
    count: int
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    issued_by: str = Field(max_length=64)


class PackSlot(SQLModel, table=True):
    """One slot of a pack: a broker account and a device key waiting for a device."""

    __tablename__ = "credential_pack_slot"

    username: str = Field(primary_key=True, max_length=32)  # p<pack>-<n>
    pack_id: int = Field(foreign_key="credential_pack.id", index=True)
    center_code: str = Field(max_length=12, index=True)
    password_hash: str
    sealed_key: str  # KeyBox-sealed with the slot's user name as associated data
    device_id: str | None = Field(default=None, max_length=16)  # set when a registration binds it
    bound_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EdgeCredential(SQLModel, table=True):
    """The center edge agent's account on its center broker."""

    __tablename__ = "edge_credential"

    center_code: str = Field(primary_key=True, max_length=12)
    username: str = Field(max_length=32)
    password_hash: str
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    issued_by: str = Field(max_length=64)


class EdgeCountyAccount(SQLModel, table=True):
    """The center edge agent's account on the county broker, and its edge key (issued with EdgeCredential).

    The key signs what the fleet tells this edge (broker_accounts, event_ack: protocol.signing.sign_for_edge);
    it is sealed with the device-key box like a device key, `edge-<code>` as associated data.
    """

    __tablename__ = "edge_county_account"

    center_code: str = Field(primary_key=True, max_length=12)
    username: str = Field(max_length=32)
    password_hash: str  # Mosquitto `$7$` hash, for the county broker's passwd (fleet.registration.county_broker)
    sealed_key: str
    key_fingerprint: str = Field(max_length=12)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    issued_by: str = Field(max_length=64)


class FleetBrokerAccount(SQLModel, table=True):
    """One of the fleet's own accounts on the county broker: one per ingest worker (its client id is its user
    name there, so two workers cannot share one), for fleet.registration.county_broker."""

    __tablename__ = "fleet_broker_account"

    username: str = Field(primary_key=True, max_length=64)
    password_hash: str
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    issued_by: str = Field(max_length=64)


class BrokerAccountsState(SQLModel, table=True):
    """Which version of a center broker's files the fleet made and published (fleet.registration.delivery)."""

    __tablename__ = "broker_accounts_state"

    center_code: str = Field(primary_key=True, max_length=12)
    version: int = 0  # rises whenever the files' content changes
    digest: str = Field(default="", max_length=64)  # sha256 of passwd and acl of `version`
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_version: int = 0  # 0: never published
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
