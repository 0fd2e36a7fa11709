"""python -m fleet: run the fleet service (web + ingest) until SIGINT/SIGTERM.

`python -m fleet users ...` / `python -m fleet tokens ...` manage users instead (fleet/auth/cli.py);
`python -m fleet broker-files ...` writes a center broker's passwd and acl (fleet/registration/cli.py);
`python -m fleet county-broker-files|county-broker-account ...` the county broker's (fleet/registration/county_cli.py);
`python -m fleet province-bridges ...` the county brokers' bridges into a province broker
(fleet/registration/province_bridges.py).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

import uvicorn

from fleet.app import create_app
from fleet.auth import cli as user_cli
from fleet.registration import cli as registration_cli
from fleet.registration import county_cli, province_bridges
from fleet.settings import Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fleet", description="County fleet service: ingest + dashboard.")
    parser.add_argument("--database-url", help="SQLAlchemy URL, e.g. sqlite:///data/fleet.db "
                        "(default: FLEET_DATABASE_URL or a SQLite file under FLEET_DATA_DIR)")
    parser.add_argument("--broker", help="county broker, mqtt://host:port "
                        "(default: FLEET_BROKER_URL or 127.0.0.1:1883)")
    parser.add_argument("--no-ingest", action="store_true", help="serve the API and dashboard only")
    parser.add_argument("--host", help="HTTP listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default 8000)")
    parser.add_argument("--heartbeat-timeout", type=float, help="seconds of silence before a device is offline (90)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace, base: Settings | None = None) -> Settings:
    settings = base or Settings.from_env()
    if args.broker:
        settings = settings.with_broker_url(args.broker)
    update: dict[str, object] = {}
    if args.database_url:
        update["database_url"] = args.database_url
    if args.no_ingest:
        update["ingest_enabled"] = False
    if args.host:
        update["http_host"] = args.host
    if args.port is not None:
        update["http_port"] = args.port
    if args.heartbeat_timeout is not None:
        update["heartbeat_timeout_s"] = args.heartbeat_timeout
    return Settings.model_validate({**settings.model_dump(), **update})


def _exit_cleanly(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in user_cli.COMMANDS for arg in argv[:3]):
        return user_cli.run(argv)
    if argv[:1] == [registration_cli.COMMAND]:
        return registration_cli.run(argv)
    if argv[:1] and argv[0] in county_cli.COMMANDS:
        return county_cli.run(argv)
    if argv[:1] == [province_bridges.COMMAND]:
        return province_bridges.run(argv)
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 2
    # While serving, uvicorn handles SIGINT/SIGTERM itself: it stops accepting, runs the
    # lifespan shutdown (which stops the ingest), restores these handlers and re-raises the
    # signal to the process, which then lands here and exits with status 0, not -SIGTERM.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    app = create_app(settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level=args.log_level,
                log_config=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
