"""`provision sync`: send the registrations made offline (from credential packs) to the fleet.

Idempotent: a registration the fleet has already bound (an earlier sync that was cut short) is
answered again and marked synced; synced ones are never sent twice, nor superseded ones (the device
was provisioned again since). A conflict (409: the slot is another device's, or the device was
registered again after this offline provisioning) is final and marked refused; other refusals stay
pending. Every outcome goes in the provisioning records; exit 1 when any registration could not be sent.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from provisioning import credential_pack
from provisioning.errors import ProvisionError
from provisioning.fleet_registration import (
    IN_CLEAR_NOTE,
    FleetRefused,
    FleetUnreachable,
    options_from_arguments,
    post_registration,
)
from provisioning.records import (
    DEFAULT_RECORDS,
    ProvisioningRecord,
    append_record,
    check_records_writable,
    current_technician,
)

CONFLICT = 409
FACT_KEYS = ("device_id", "center", "window", "role", "board", "mac", "image_sha256", "provisioned_by",
             "provisioned_at", "pack_slot")


def do_sync(args: argparse.Namespace, out: TextIO) -> int:
    records_path = Path(args.records) if args.records else DEFAULT_RECORDS
    check_records_writable(records_path)
    options = options_from_arguments(args.fleet, args.token, None, records_path, args.insecure)
    if options.url is None:
        raise ProvisionError("sync needs the fleet: --fleet URL and --token, or FLEET_URL and FLEET_TOKEN")
    todo: dict[tuple[str, str], dict] = {}
    for entry in credential_pack.read_pending(options.pending):
        key = (entry.get("device_id"), entry.get("pack_slot"))
        if entry.get("status") == credential_pack.PENDING:
            todo[key] = entry
        else:
            todo.pop(key, None)
    if not todo:
        print(f"nothing to sync: no pending registrations in {options.pending}", file=out)
        return 0
    done: dict[tuple[str, str], tuple[str, str]] = {}
    failed = 0
    try:
        for key, entry in todo.items():
            body = {name: entry.get(name) for name in FACT_KEYS}
            record = ProvisioningRecord(technician=args.technician or current_technician(), port="-",
                                        center=str(entry.get("center")), window=entry.get("window"),
                                        role=str(entry.get("role")), board=entry.get("board"),
                                        device_id=entry.get("device_id"), image_sha256=entry.get("image_sha256"))
            try:
                post_registration(options.url, options.token or "", body)
            except FleetUnreachable as exc:
                record.outcome, record.fleet_registration, record.error = "sync failed", "pending", str(exc)
                append_record(record, records_path)
                raise
            except ProvisionError as exc:
                failed += 1
                final = isinstance(exc, FleetRefused) and exc.status == CONFLICT
                if final:
                    done[key] = (credential_pack.REFUSED, _now())
                state = "refused (final)" if final else "pending"
                record.outcome, record.fleet_registration, record.error = "sync failed", state, str(exc)
                print(f"✗ {entry.get('device_id')}: {exc}" + (" (not sent again)" if final else ""), file=out,
                      flush=True)
            else:
                done[key] = (credential_pack.SYNCED, _now())
                record.outcome, record.fleet_registration = "synced", f"synced: pack slot {key[1]}" + (
                    IN_CLEAR_NOTE if options.in_clear else "")
                print(f"✓ {entry.get('device_id')}: pack slot {key[1]} registered with the fleet", file=out,
                      flush=True)
            append_record(record, records_path)
    finally:
        if done:
            credential_pack.mark_done(options.pending, done)
    synced = sum(1 for status, _ in done.values() if status == credential_pack.SYNCED)
    print(f"{synced} registered, {len(todo) - len(done)} still pending", file=out)
    if failed:
        raise ProvisionError(f"{failed} of {len(todo)} pending registrations were refused by the fleet (see above); "
                             f"those not marked final stay pending in {options.pending}")
    return 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
