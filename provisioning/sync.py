"""`provision sync`: send the registrations made offline (from credential packs) to the fleet.

Idempotent: a registration the fleet has already bound (an earlier sync that was cut short) is
answered again and marked synced; synced ones are never sent twice. Every outcome goes in the
provisioning records; exit 1 when any registration could not be sent.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from provisioning import credential_pack
from provisioning.errors import ProvisionError
from provisioning.fleet_registration import FleetUnreachable, options_from_arguments, post_registration
from provisioning.records import DEFAULT_RECORDS, ProvisioningRecord, append_record, current_technician

FACT_KEYS = ("device_id", "center", "window", "role", "board", "mac", "image_sha256", "provisioned_by",
             "provisioned_at", "pack_slot")


def do_sync(args: argparse.Namespace, out: TextIO) -> int:
    records_path = Path(args.records) if args.records else DEFAULT_RECORDS
    options = options_from_arguments(args.fleet, args.token, None, records_path)
    if options.url is None:
        raise ProvisionError("sync needs the fleet: --fleet URL and --token, or FLEET_URL and FLEET_TOKEN")
    todo: dict[tuple[str, str], dict] = {}
    for entry in credential_pack.read_pending(options.pending):
        key = (entry.get("device_id"), entry.get("pack_slot"))
        if entry.get("status") == credential_pack.SYNCED:
            todo.pop(key, None)
        else:
            todo[key] = entry
    if not todo:
        print(f"nothing to sync: no pending registrations in {options.pending}", file=out)
        return 0
    done: dict[tuple[str, str], str] = {}
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
                record.outcome, record.fleet_registration, record.error = "sync failed", "pending", str(exc)
                print(f"✗ {entry.get('device_id')}: {exc}", file=out, flush=True)
            else:
                done[key] = datetime.now(UTC).isoformat(timespec="seconds")
                record.outcome, record.fleet_registration = "synced", f"synced: pack slot {key[1]}"
                print(f"✓ {entry.get('device_id')}: pack slot {key[1]} registered with the fleet", file=out,
                      flush=True)
            append_record(record, records_path)
    finally:
        if done:
            credential_pack.mark_synced(options.pending, done)
    left = len(todo) - len(done)
    print(f"{len(done)} registered, {left} still pending", file=out)
    if failed:
        raise ProvisionError(f"{failed} of {len(todo)} pending registrations were refused by the fleet (see above); "
                             f"they stay in {options.pending}")
    return 0
