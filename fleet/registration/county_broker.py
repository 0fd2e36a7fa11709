"""The county broker's `passwd` and `acl`, built from the edges' accounts, the fleet's own and protocol.topics.

The county broker has two parties, and every topic on it belongs to one of them as its writer:

- the fleet writes what it sends down: topics whose publisher is the fleet (desired configuration and
  commands, relayed by each edge to its devices; event_ack; broker_accounts). Its accounts (`fleet-<name>`,
  one per ingest worker: FleetBrokerAccount) may write them for every center and read everything else, for
  every center (the ingest's subscriptions, shared ones included);
- each center's edge agent (`edge-<code>`, issued with its edge credentials: EdgeCountyAccount) writes the
  rest under its own center only: its presence, health and events, and what it relays from its devices.
  It reads the fleet's topics of its own center only, so no edge sees another center's broker files or
  commands. It writes none of the fleet's topics, not even its own center's: an ack or broker files of its
  own making would be refused by its own agent anyway (they are signed), but nothing else should see them.

An edge could otherwise publish under any center: events, births and health for a center it does not
serve. Nothing in an acl line depends on the client id: the broker binds client ids to user names
(COUNTY_BROKER_SETTINGS), so no account can connect with another's client id and take its connection over
(an edge's client id `edge-<code>` is easy to guess). That is also why each ingest worker has an account of
its own: two workers with one user name would keep taking each other's connection.

The files grow by one passwd line and one acl section (about 900 bytes) per center: `python -m fleet
county-broker-files` writes them (county IT installs them and reloads the broker: kill -HUP) after new edge
credentials or a new fleet account.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from fleet.registration.models import EdgeCountyAccount, FleetBrokerAccount
from fleet.registration.mosquitto_hash import passwd_line
from protocol import topics

# The county broker's listener, besides the two files: no anonymous clients, client ids bound to user names.
COUNTY_BROKER_SETTINGS = ("allow_anonymous false", "use_username_as_clientid true")
FLEET = "fleet"
# Where each ingest worker sends itself a probe (fleet.ingest.Ingest.sweep: it judges heartbeat silence only up
# to what it has caught up on): outside the contract's sc/ tree, read and written by the fleet's accounts only.
INGEST_PROBE_ROOT = "fleet/ingest"


@dataclass(frozen=True)
class CountyFiles:
    passwd: str
    acl: str
    edges: int
    fleet_accounts: int


def county_topics() -> list[topics.Topic]:
    return [spec for spec in topics.TOPICS if topics.COUNTY_BROKER in spec.brokers]


def _publishers(spec: topics.Topic) -> set[str]:
    """Who publishes `spec` on the county broker: "fleet (relayed by the edge agent)" is the fleet there."""
    return {part.split("(")[0].strip() for part in spec.publisher.split(",")}


def fleet_topic_names() -> list[str]:
    """What the fleet writes on the county broker; everything else there is an edge's to write."""
    return [spec.name for spec in county_topics() if FLEET in _publishers(spec)]


def edge_topic_names() -> tuple[list[str], list[str]]:
    """(written, read) by a center's edge agent on the county broker, within its own center."""
    fleet_writes = fleet_topic_names()
    written = [spec.name for spec in county_topics() if spec.name not in fleet_writes]
    return written, fleet_writes


def edge_acl(row: EdgeCountyAccount) -> list[str]:
    written, read = edge_topic_names()
    return [f"user {row.username}",
            *(f"topic write {topics.subscription(name, center=row.center_code)}" for name in written),
            *(f"topic read {topics.subscription(name, center=row.center_code)}" for name in read)]


def fleet_acl(row: FleetBrokerAccount) -> list[str]:
    written, read = edge_topic_names()  # the fleet reads what edges write, and writes what they read
    return [f"user {row.username}",
            *(f"topic read {topics.subscription(name)}" for name in written),
            *(f"topic write {topics.subscription(name)}" for name in read),
            f"topic readwrite {INGEST_PROBE_ROOT}/#"]


def county_files(session: Session) -> CountyFiles:
    """`passwd` and `acl` for the county broker: every edge with a county account and every fleet account."""
    edges = list(session.exec(select(EdgeCountyAccount).order_by(col(EdgeCountyAccount.center_code))).all())
    fleet = list(session.exec(select(FleetBrokerAccount).order_by(col(FleetBrokerAccount.username))).all())
    passwd = [passwd_line(row.username, row.password_hash) for row in fleet]
    passwd += [passwd_line(row.username, row.password_hash) for row in edges]
    acl = ["# county broker, written by the fleet (python -m fleet county-broker-files); do not edit", ""]
    for row in fleet:
        acl += ["# the fleet: reads what every edge writes, writes what edges read", *fleet_acl(row), ""]
    for row in edges:
        acl += [f"# the edge agent of center {row.center_code}: its own center only", *edge_acl(row), ""]
    return CountyFiles("\n".join(passwd) + ("\n" if passwd else ""), "\n".join(acl) + "\n", len(edges), len(fleet))
