"""`python -m fleet users ...` and `python -m fleet tokens ...`: manage users without the web pages.

    python -m fleet users create --username admin --role county_admin --password-stdin
    python -m fleet users list
    python -m fleet users set-display-name --username wang --display-name 王主任
    python -m fleet tokens create --username ci --name prometheus     # prints the token once

Errors print `fleet: message` to stderr and exit 1. Every change is in the audit log (user "cli").
"""

from __future__ import annotations

import argparse
import getpass
import sys

from fleet import audit
from fleet.auth.principal import CLI_USER
from fleet.auth.roles import ROLES
from fleet.auth.tokens import create_token
from fleet.auth.users import check_display_name, create_user, find_user, set_password
from fleet.db import create_db_engine, init_db, read_session, write_session
from fleet.settings import Settings

COMMANDS = ("users", "tokens")


def parse_args(argv: list[str]) -> argparse.Namespace:
    # --database-url is accepted before or after the subcommand.
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--database-url", default=argparse.SUPPRESS,
                          help="default: FLEET_DATABASE_URL or a SQLite file under FLEET_DATA_DIR")
    parser = argparse.ArgumentParser(prog="python -m fleet", description="Manage fleet users and API tokens.",
                                     parents=[database])
    groups = parser.add_subparsers(dest="group", required=True)

    users = groups.add_parser("users", help="dashboard users").add_subparsers(dest="action", required=True)
    create = users.add_parser("create", help="create a user", parents=[database])
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--division-prefix", help="6 or 9 digits; required (9) for town_operator")
    create.add_argument("--display-name", help="the person's name as shown to colleagues, e.g. 王主任")
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin (else prompt)")
    password = users.add_parser("set-password", help="set a user's password", parents=[database])
    password.add_argument("--username", required=True)
    password.add_argument("--password-stdin", action="store_true")
    shown = users.add_parser("set-display-name", help="set (or clear, with '') a user's display name",
                             parents=[database])
    shown.add_argument("--username", required=True)
    shown.add_argument("--display-name", required=True)
    users.add_parser("list", help="list users", parents=[database])

    tokens = groups.add_parser("tokens", help="API tokens").add_subparsers(dest="action", required=True)
    token = tokens.add_parser("create", help="create an API token for a user and print it (once)", parents=[database])
    token.add_argument("--username", required=True)
    token.add_argument("--name", required=True, help="what it is for, e.g. prometheus")
    return parser.parse_args(argv)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("密码 password: ")
    if getpass.getpass("再次输入 again: ") != first:
        raise ValueError("passwords differ")
    return first


def run(argv: list[str]) -> int:
    args = parse_args(argv)
    settings = Settings.from_env()
    if getattr(args, "database_url", None):
        settings = settings.model_copy(update={"database_url": args.database_url})
    engine = create_db_engine(settings.database_url)
    try:
        init_db(engine)
        return _dispatch(args, engine)
    except ValueError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()


def _dispatch(args: argparse.Namespace, engine) -> int:  # noqa: ANN001 (an Engine)
    if args.group == "users" and args.action == "create":
        password = _read_password(args.password_stdin)
        with write_session(engine) as session:
            user = create_user(session, args.username, args.role, password, args.division_prefix,
                               args.display_name)
            audit.record(session, CLI_USER, "user.create", target=user.username,
                         detail={"role": user.role, "division_prefix": user.division_prefix})
        print(f"created user {user.username} ({user.role}, scope {user.division_prefix or 'whole county'})")
        return 0
    if args.group == "users" and args.action == "set-password":
        password = _read_password(args.password_stdin)
        with write_session(engine) as session:
            user = find_user(session, args.username)
            if user is None:
                raise ValueError(f"no user {args.username!r}")
            set_password(session, user, password)
            audit.record(session, CLI_USER, "user.password", target=user.username)
        print(f"password of {args.username} changed")
        return 0
    if args.group == "users" and args.action == "set-display-name":
        with write_session(engine) as session:
            user = find_user(session, args.username)
            if user is None:
                raise ValueError(f"no user {args.username!r}")
            user.display_name = check_display_name(args.display_name)
            session.add(user)
            audit.record(session, CLI_USER, "user.display_name", target=user.username,
                         detail={"display_name": user.display_name})
        print(f"display name of {args.username}: {user.display_name or '-'}")
        return 0
    if args.group == "users" and args.action == "list":
        from sqlmodel import select

        from fleet.auth.models import User

        with read_session(engine) as session:
            for user in session.exec(select(User).order_by(User.username)).all():
                state = "disabled" if user.disabled else "active"
                print(f"{user.username}\t{user.display_name or '-'}\t{user.role}\t{user.division_prefix or '-'}"
                      f"\t{state}")
        return 0
    if args.group == "tokens" and args.action == "create":
        with write_session(engine) as session:
            user = find_user(session, args.username)
            if user is None:
                raise ValueError(f"no user {args.username!r}")
            row, token = create_token(session, user, args.name)
            audit.record(session, CLI_USER, "token.create", target=user.username,
                         detail={"token": row.name, "hint": row.hint})
        print(token)
        return 0
    raise ValueError(f"unknown command {args.group} {args.action}")
