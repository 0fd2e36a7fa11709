"""The county broker's accounts, for county IT on the fleet's server.

    python -m fleet county-broker-account fleet-<name>    # a fleet account (one per ingest worker); prints its
                                                          # password once: FLEET_BROKER_USERNAME / _PASSWORD
    python -m fleet county-broker-files --out DIR         # the county broker's passwd and acl (mode 0600)

Install both files as the county broker's `password_file` and `acl_file`, with COUNTY_BROKER_SETTINGS on its
listener, and reload it (`kill -HUP`) after every new edge credentials or fleet account. Errors print
`fleet: message` to stderr and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import Engine

from fleet import audit
from fleet.auth.principal import CLI_USER
from fleet.db import create_db_engine, init_db, write_session
from fleet.models import utcnow
from fleet.registration.broker_files import write_passwd_and_acl
from fleet.registration.county_broker import COUNTY_BROKER_SETTINGS, CountyFiles, county_files
from fleet.registration.service import RegistrationError, issue_fleet_account
from fleet.settings import Settings

FILES = "county-broker-files"
ACCOUNT = "county-broker-account"
COMMANDS = (FILES, ACCOUNT)


def write_county_files(engine: Engine, out_dir: Path) -> tuple[CountyFiles, Path, Path]:
    """Write the county broker's `passwd` and `acl` into `out_dir` (mode 0600, each replaced whole)."""
    with write_session(engine) as session:
        files = county_files(session)
        audit.record(session, CLI_USER, "county_broker_files.export", target="county",
                     detail={"edges": files.edges, "fleet_accounts": files.fleet_accounts}, at=utcnow())
    passwd, acl = write_passwd_and_acl(files.passwd, files.acl, out_dir)
    return files, passwd, acl


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fleet", description="The county broker's accounts.")
    sub = parser.add_subparsers(dest="command", required=True)
    files = sub.add_parser(FILES, help="write the county broker's passwd and acl")
    files.add_argument("--out", required=True, help="directory to write passwd and acl into")
    account = sub.add_parser(ACCOUNT, help="a new password for a fleet account (rotates it); printed once")
    account.add_argument("username", help="fleet-<name>, e.g. fleet-ingest-1: one per ingest worker")
    for command in (files, account):
        command.add_argument("--database-url", help="default: FLEET_DATABASE_URL or a SQLite file under FLEET_DATA_DIR")
    return parser.parse_args(argv)


def run(argv: list[str], settings: Settings | None = None) -> int:
    args = parse_args(argv)
    settings = settings or Settings.from_env()
    if args.database_url:
        settings = settings.model_copy(update={"database_url": args.database_url})
    engine = create_db_engine(settings.database_url)
    try:
        init_db(engine)
        if args.command == ACCOUNT:
            with write_session(engine) as session:
                password = issue_fleet_account(session, CLI_USER, args.username, utcnow())
            print(f"{args.username} {password}")
            print("give this worker FLEET_BROKER_USERNAME / FLEET_BROKER_PASSWORD, then write the county broker's "
                  f"files again (python -m fleet {FILES}) and reload it")
            return 0
        files, passwd, acl = write_county_files(engine, Path(args.out))
    except RegistrationError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fleet: cannot write into {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"wrote {passwd} and {acl}: {files.edges} edge account(s), {files.fleet_accounts} fleet account(s)")
    if not files.fleet_accounts:
        print(f"no fleet account yet: the fleet cannot connect (python -m fleet {ACCOUNT} fleet-<name>)")
    print("the county broker's listener needs: " + "; ".join(COUNTY_BROKER_SETTINGS))
    return 0
