"""python -m fleet.devconfig key ...: a device's signing key, for provisioning until it registers keys itself.

    python -m fleet.devconfig key generate dev-a4cf12ab34cd   # prints the new key once (hex): write it to the device
    python -m fleet.devconfig key set dev-a4cf12ab34cd --key-file key.hex
    python -m fleet.devconfig key show dev-a4cf12ab34cd       # fingerprint only

The database and the key secret come from FLEET_* variables (fleet.settings) or --database-url.
Every change is in the audit log (user "cli").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleet import audit
from fleet.auth.principal import CLI_USER
from fleet.db import create_db_engine, init_db, write_session
from fleet.devconfig.keys import DeviceKeyError, KeyBox, generate_key, parse_key_hex, set_key
from fleet.devconfig.models import DeviceKey
from fleet.models import Device, utcnow
from fleet.settings import Settings


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fleet.devconfig")
    parser.add_argument("--database-url")
    sub = parser.add_subparsers(dest="what", required=True)
    key = sub.add_parser("key", help="a device's signing key").add_subparsers(dest="action", required=True)
    for action in ("generate", "set", "show"):
        one = key.add_parser(action)
        one.add_argument("device_id")
        if action == "set":
            one.add_argument("--key-file", type=Path, required=True, help="a file holding the key as hex")
    return parser.parse_args(argv)


def run(argv: list[str], settings: Settings | None = None) -> int:
    args = parse_args(argv)
    settings = settings or Settings.from_env()
    if args.database_url:
        settings = settings.model_copy(update={"database_url": args.database_url})
    engine = create_db_engine(settings.database_url)
    init_db(engine)
    box = KeyBox.from_settings(settings)
    now = utcnow()
    try:
        with write_session(engine) as session:
            device = session.get(Device, args.device_id)
            center = device.center_code if device else None
            if args.action == "show":
                row = session.get(DeviceKey, args.device_id)
                print(f"{args.device_id}: {'key ' + row.fingerprint if row else 'no key'}")
                return 0 if row else 1
            if args.action == "generate":
                key = generate_key(session, box, args.device_id, CLI_USER.username, now)
            else:
                key = parse_key_hex(args.key_file.read_text())
                set_key(session, box, args.device_id, key, CLI_USER.username, now)
            row = session.get(DeviceKey, args.device_id)
            audit.record(session, CLI_USER, "device.key", target=f"{center or ''} {args.device_id}".strip(),
                         detail={"fingerprint": row.fingerprint, "action": args.action}, center_code=center, at=now)
    except (DeviceKeyError, ValueError, OSError) as exc:
        print(f"fleet.devconfig: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if args.action == "generate":
        print(key.hex())  # the one time the key is shown
    else:
        print(f"{args.device_id}: key {row.fingerprint}")
    return 0
