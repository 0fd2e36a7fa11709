"""`python -m fleet broker-files --center CODE --out DIR`: write one center broker's `passwd` and `acl`.

Copy both to the center's broker host and reload Mosquitto (`kill -HUP`); the files hold password
hashes only. Errors print `fleet: message` to stderr and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleet import audit
from fleet.auth.principal import CLI_USER
from fleet.db import create_db_engine, init_db, write_session
from fleet.models import utcnow
from fleet.registration.broker_files import CENTER_BROKER_SETTINGS, broker_files, write_broker_files
from fleet.settings import Settings
from protocol.errors import ProtocolError
from protocol.identity import check_center_code

COMMAND = "broker-files"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m fleet {COMMAND}",
                                     description="Write the center broker's passwd and acl files.")
    parser.add_argument("--center", required=True, help="12-digit division code of the center")
    parser.add_argument("--out", required=True, help="directory to write passwd and acl into")
    parser.add_argument("--database-url", help="default: FLEET_DATABASE_URL or a SQLite file under FLEET_DATA_DIR")
    return parser.parse_args(argv)


def run(argv: list[str], settings: Settings | None = None) -> int:
    args = parse_args(argv[1:] if argv and argv[0] == COMMAND else argv)
    settings = settings or Settings.from_env()
    if args.database_url:
        settings = settings.model_copy(update={"database_url": args.database_url})
    try:
        check_center_code(args.center)
    except ProtocolError as exc:
        print(f"fleet: --center: {exc}", file=sys.stderr)
        return 1
    engine = create_db_engine(settings.database_url)
    try:
        init_db(engine)
        with write_session(engine) as session:
            files = broker_files(session, args.center)
            audit.record(session, CLI_USER, "broker_files.export", target=args.center,
                         detail={"devices": files.devices, "unbound_slots": files.unbound_slots,
                                 "edge": files.edge}, center_code=args.center, at=utcnow())
        passwd, acl = write_broker_files(files, Path(args.out))
    except OSError as exc:
        print(f"fleet: cannot write into {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    edge = "with" if files.edge else f"WITHOUT (POST /api/centers/{args.center}/edge-credentials first)"
    print(f"wrote {passwd} and {acl}: {files.devices} device(s), {files.unbound_slots} unbound pack slot(s), "
          f"{edge} the edge agent account")
    print("the center broker's listener needs: " + "; ".join(CENTER_BROKER_SETTINGS))
    return 0
