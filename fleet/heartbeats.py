"""Heartbeats of known devices, a batch at a time, in plain SQL statements.

Device heartbeats are nearly all a county's traffic (every device, every 30 s), and nearly all of them are
of a device the fleet already knows, in the center it belongs to. For those the ingest needs no ORM objects:
one SELECT reads the batch's device rows, `fleet.presence.apply_health` judges each heartbeat against a plain
copy of its row, and executemany statements write the rows back, the drops and the health samples (and
`refresh_centers` the centers' edge_last_seen). The outcome is exactly what `fleet.ingest.record_message`
gives for each heartbeat in turn (tests/fleet/test_fleet_scale.py compares the two); everything else (first
messages, moved devices, presence) keeps going through `record_message`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from fleet.alerts.models import DeviceDrop
from fleet.alerts.rules import drops_revealed
from fleet.health_history import Retention, SampleBatch
from fleet.models import Center, Device
from fleet.presence import apply_health
from protocol import presence as presence_rule

# The device columns a heartbeat reads or writes (fleet.presence.apply_health).
STATE_COLUMNS = ("boot", "session", "online", "offline_reason", "last_seen", "uptime_s", "free_heap", "rssi",
                 "reconnects", "last_error", "updated")

_DEVICES = Device.__table__  # type: ignore[attr-defined]
_CENTERS = Center.__table__  # type: ignore[attr-defined]


class KnownDevice:
    """A device's row as a heartbeat sees it: what apply_health reads and writes, without an ORM object."""

    __slots__ = ("device_id", "center_code", *STATE_COLUMNS)

    def __init__(self, row: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(row, name))

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in STATE_COLUMNS}


def load_known(connection: Connection, device_ids: Collection[str]) -> dict[str, KnownDevice]:
    """The stored rows of these devices, by id (one SELECT)."""
    if not device_ids:
        return {}
    columns = [_DEVICES.c[name] for name in KnownDevice.__slots__]
    rows = connection.execute(select(*columns).where(_DEVICES.c.device_id.in_(list(device_ids))))
    return {row.device_id: KnownDevice(row) for row in rows}


class HeartbeatBatch:
    """The heartbeats of one batch for devices already stored in their own center (see the module docstring)."""

    def __init__(self, known: dict[str, KnownDevice]) -> None:
        self.known = known
        self.touched: dict[str, KnownDevice] = {}
        self.drops: list[dict[str, Any]] = []
        self.samples = SampleBatch()

    def takes(self, center_code: str, device_id: str) -> bool:
        """Whether this device's heartbeat under `center_code` is one for this path."""
        device = self.known.get(device_id)
        return device is not None and device.center_code == center_code

    def apply(self, center_code: str, device_id: str, payload: dict[str, Any], now: datetime) -> str:
        """Judge one validated heartbeat (only of a device this batch `takes`); returns apply_health's verdict.
        One that applies is kept in the health history, as record_message keeps it."""
        device = self.known[device_id]
        before_online, before_session = device.online, device.session
        verdict = apply_health(device, payload, now)
        self.touched[device_id] = device
        count, reason = drops_revealed(before_online, before_session, device.online, device.session,
                                       device.offline_reason)
        self.drops += [{"device_id": device_id, "center_code": center_code, "at": now, "reason": reason}] * count
        if verdict in presence_rule.APPLIED:
            self.samples.add(device_id, center_code, payload, now)
        return verdict

    def write(self, connection: Connection, now: datetime, retention: Retention) -> None:
        """Write what the batch's heartbeats changed: rows in key order (two workers on PostgreSQL then lock
        the same rows in the same order), then drops and samples, the history pruned once per device."""
        if self.touched:
            statement = (update(_DEVICES).where(_DEVICES.c.device_id == bindparam("key"))
                         .values({name: bindparam(name) for name in STATE_COLUMNS}))
            connection.execute(statement, list(_rows(self.touched)))
        if self.drops:
            connection.execute(insert(DeviceDrop), self.drops)
        self.samples.write_rows(connection, now, retention)


def known_centers(connection: Connection, codes: Collection[str]) -> set[str]:
    """Which of these centers are stored (one SELECT)."""
    if not codes:
        return set()
    return set(connection.execute(select(_CENTERS.c.code).where(_CENTERS.c.code.in_(sorted(codes)))).scalars())


def refresh_centers(connection: Connection, codes: Collection[str], now: datetime) -> None:
    """As ensure_center for each message of a batch: any message of a center refreshes its edge_last_seen
    (in key order, as the device rows)."""
    if codes:
        connection.execute(update(_CENTERS).where(_CENTERS.c.code.in_(sorted(codes))).values(edge_last_seen=now))


def _rows(touched: dict[str, KnownDevice]) -> Iterable[dict[str, Any]]:
    for device_id in sorted(touched):
        yield {"key": device_id, **touched[device_id].values()}
