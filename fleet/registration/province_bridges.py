"""Mosquitto bridges from each county broker into the province broker, for a province on Mosquitto.

    python -m fleet province-bridges --province HOST:PORT --out DIR [--county CODE ...]
        [--credentials FILE] [--cafile CA.pem]

writes DIR/<county>.conf for every county with a center in the registry (or those named): the lines for that
county broker's mosquitto.conf (or its conf.d/). Each county broker then forwards its centers' uplink (presence,
health, events, reports: every county-broker topic an edge or device publishes) to the province broker, where the
ingest workers share the stream, and takes from the province only the downlink of its own centers (event acks,
configuration, commands, firmware, broker accounts: what the fleet publishes), topic by topic, so a county never
receives another county's downlink. Regenerate a county's file and reload its broker after a new center.

The bridge keeps a persistent session on both sides (`cleansession false`): while the link is down the county
broker queues the uplink and the province broker the downlink for it. That is a convenience, not the guarantee:
events stay in each edge's outbox until the fleet's event_ack comes back through the bridge, so a cut link or a
restarted broker costs time, never an event (tests/test_province.py). docs/deployment.md has the whole shape.

The credentials file has one line per county, `<county> <username> <password>`, for the province broker's
accounts the bridges use; a county without one connects without (a province broker that allows it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import select

from fleet.db import create_db_engine, init_db, read_session
from fleet.models import Center
from fleet.settings import Settings
from protocol import topics
from protocol.errors import ProtocolError
from protocol.identity import check_center_code, county_code

COMMAND = "province-bridges"

# Every county-broker topic is either published by the fleet (downlink, into the county) or by an edge or a device
# (uplink, out to the province): its publisher in protocol.topics says which.
FROM_THE_FLEET = "fleet"


@dataclass(frozen=True)
class BridgeAccount:
    username: str
    password: str


def county_topics() -> tuple[list[topics.Topic], list[topics.Topic]]:
    """(uplink, downlink): the county broker's topics, by who publishes them."""
    on_county = [t for t in topics.TOPICS if topics.COUNTY_BROKER in t.brokers]
    downlink = [t for t in on_county if t.publisher.startswith(FROM_THE_FLEET)]
    uplink = [t for t in on_county if not t.publisher.startswith(FROM_THE_FLEET)]
    return uplink, downlink


def bridge_name(county: str) -> str:
    return "province-" + county


def connection_state_topic(county: str) -> str:
    """Where the county broker says whether its bridge is up ("1") or down ("0"), retained (notifications)."""
    return "$SYS/broker/connection/%s/state" % bridge_name(county)


def bridge_config(county: str, centers: Iterable[str], province: str, account: BridgeAccount | None = None,
                  cafile: str | None = None) -> str:
    """The mosquitto.conf lines of county `county`'s bridge to the province broker at `province` (host:port),
    for its `centers` (12-digit codes, all in that county)."""
    codes = sorted(set(centers))
    for code in codes:
        if county_code(code) != county:
            raise ProtocolError("center %s is not in county %s" % (code, county))
    host, _, port = province.rpartition(":")
    if not host or not port.isdigit():
        raise ProtocolError("the province broker is host:port, not %r" % province)
    uplink, downlink = county_topics()
    lines = [
        "# Bridge of county %s into the province broker, written by python -m fleet %s." % (county, COMMAND),
        "# %d center(s); regenerate and reload this broker after a new center." % len(codes),
        "connection %s" % bridge_name(county),
        "address %s:%s" % (host, port),
        "remote_clientid %s" % bridge_name(county),
        "local_clientid %s-local" % bridge_name(county),
        # Persistent sessions on both sides: what the link misses while down is queued, not dropped.
        "cleansession false",
        "bridge_protocol_version mqttv311",
        "try_private true",
        "restart_timeout 1 30",
        "keepalive_interval 30",
        "start_type automatic",
        # The link's state, retained on this (county) broker only: connection_state_topic().
        "notifications true",
        "notifications_local_only true",
    ]
    if account:
        lines += ["remote_username %s" % account.username, "remote_password %s" % account.password]
    if cafile:
        lines += ["bridge_cafile %s" % cafile]
    lines.append("# uplink: whatever the county's edges and devices publish for the county")
    lines += ["topic %s out %d" % (topics.subscription(t.name), t.qos) for t in uplink]
    lines.append("# downlink: only this county's centers'")
    lines += ["topic %s in %d" % (topics.subscription(t.name, center=code), t.qos)
              for code in codes for t in downlink]
    return "\n".join(lines) + "\n"


def centers_by_county(codes: Iterable[str]) -> dict[str, list[str]]:
    counties: dict[str, list[str]] = {}
    for code in codes:
        counties.setdefault(county_code(check_center_code(code)), []).append(code)
    return {county: sorted(found) for county, found in sorted(counties.items())}


def read_credentials(path: Path) -> dict[str, BridgeAccount]:
    accounts = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3:
            raise ProtocolError("%s:%d: expected '<county> <username> <password>'" % (path, number))
        accounts[fields[0]] = BridgeAccount(fields[1], fields[2])
    return accounts


def write_bridges(centers: Iterable[str], province: str, out_dir: Path, counties: Iterable[str] = (),
                  accounts: dict[str, BridgeAccount] | None = None, cafile: str | None = None) -> list[Path]:
    """One <county>.conf per county in `out_dir` (only `counties`, when given); the files written."""
    grouped = centers_by_county(centers)
    wanted = set(counties) or set(grouped)
    missing = sorted(wanted - set(grouped))
    if missing:
        raise ProtocolError("no center of county %s in the registry" % ", ".join(missing))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for county in sorted(wanted):
        path = out_dir / ("%s.conf" % county)
        # Mode 0600: the file may carry the bridge's password.
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(bridge_config(county, grouped[county], province, (accounts or {}).get(county), cafile))
        written.append(path)
    return written


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fleet " + COMMAND,
                                     description="Mosquitto bridges from the county brokers into the province broker.")
    parser.add_argument(COMMAND)
    parser.add_argument("--province", required=True, help="the province broker, host:port")
    parser.add_argument("--out", required=True, help="directory to write <county>.conf into")
    parser.add_argument("--county", action="append", default=[], help="only this county (6 digits); repeatable")
    parser.add_argument("--credentials", type=Path, help="lines '<county> <username> <password>' (mode 0600)")
    parser.add_argument("--cafile", help="CA of the province broker's TLS certificate (bridge_cafile)")
    parser.add_argument("--database-url", help="default: FLEET_DATABASE_URL or a SQLite file under FLEET_DATA_DIR")
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    args = parse_args(argv)
    settings = Settings.from_env()
    engine = create_db_engine(args.database_url or settings.database_url)
    try:
        init_db(engine)
        with read_session(engine) as session:
            codes = list(session.exec(select(Center.code)).all())
        accounts = read_credentials(args.credentials) if args.credentials else {}
        written = write_bridges(codes, args.province, Path(args.out), args.county, accounts, args.cafile)
    except ProtocolError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fleet: cannot write into {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    for path in written:
        print(f"wrote {path}")
    print("include each in its county broker's configuration and reload it; the province broker needs "
          "persistence and an account per bridge that may write sc/# and read the downlink")
    return 0
