"""The center broker's `passwd` and `acl` files, built from the registrations and protocol.topics.

The acl does not grow with the devices (the passwd does, one hash line each), so that both files of a
county-level center still fit the one `broker_accounts` message (protocol.messages.MAX_PAYLOAD_BYTES):

- A registered device's broker user name is its device id, so `pattern` lines with %u (the user name,
  which the broker has checked against the password) give every device the topics under its own id,
  sc/<center>/device/<its id>/...: write on what devices publish, readwrite on its presence and command
  ack (read back, see READ_BACK) and on its command (WRITE_OWN), read on its desired configuration.
  One set of lines serves both roles: a pattern cannot tell a display from a rating pad, so a queue
  display may now publish a rating under its own id. The edge agent must therefore check that a rating
  comes from a rating pad (today it does not: edge_agent.adapters.center_link hands any device's rating
  to queue.record_rating, which checks only the request, window and ticket).
- Window-scoped topics (what a window's display shows, its rating request) cannot be keyed on the user:
  every account of this center may read them for every window (`+`). The trade-off is small: they carry
  what the hall display shows anyway (ticket number, service, staff name); it also lets any device see
  an open rating request's id, which the rating check above must not rely on being secret.
- A pattern applies to every account of the broker, so check what the others gain. The edge agent
  (`edge-<code>`) and a pack slot (`p<pack>-<n>`) get sc/<center>/device/<their user name>/...: not a
  device id (protocol.identity.check_device_id), so nobody else subscribes to such a topic by name and
  the edge drops what arrives there as outside the contract; and read on the window topics, which the
  edge publishes itself and the slots (below) have anyway. Nothing for another center.
- A device provisioned offline keeps the user name of the pack slot it took, which %u cannot map to its
  device id: such a device has its own `user` section with the same device topics (about 600 bytes of
  acl each, until it is registered again online with its own credentials).

The broker binds every client id to its user name (CENTER_BROKER_SETTINGS, in the broker's own config):
MQTT closes a client's connection when another connects with the same client id, and with ids free to pick,
any account could keep a device or the edge agent (`edge-<code>`) off the broker. So no acl line may rely on
the client id (%c is the user name now) and nobody can connect as an account without its password.

Unbound credential-pack slots: nobody knows yet which device, role or window will take them. Each has a
`user` section for *any* device id of this center (`+`): a device provisioned offline publishes under its
own id before the fleet knows it. Since the edge serves only registered devices (it drops the rest:
edge_agent.adapters.center_link), the section holds only what such a device needs before its slot is bound:
its birth and will, and the provisioning laptop's self-test (SLOT_WRITTEN, SLOT_READ). That is the price of
provisioning without the network, for the holders of slot passwords only; it ends when the slot is bound
(provision sync) and the files are written again, and the device is served from then on. Each unbound
slot costs about 620 bytes of the message (its section, its check account and two passwd lines), so a
pack holds at most service.MAX_PACK slots.

Check accounts: the provisioning laptop watches the device it has just set up (its birth, its signed
self-test) on this broker; with client ids bound to user names, it cannot use the device's account while
the device is connected. It logs in as protocol.identity.check_account(<the account>) with the same
password: read on the device's presence and command acknowledgements, write on its command topic (the
device refuses commands without its key's signature). The files hold check accounts only for the latest
MAX_CHECK_ACCOUNTS registrations of the center within CHECK_ACCOUNT_S, and for every unbound slot (for
the one device that takes it), so they do not eat into the room the devices need.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, col, select

from fleet.models import utcnow
from fleet.registration.models import DeviceRegistration, EdgeCredential, PackSlot
from fleet.registration.mosquitto_hash import passwd_line
from protocol import messages, topics
from protocol.identity import check_account

PUBLISHER_EDGE = "edge agent"
# The firmware subscribes to its own retained presence, to repair a stale will (protocol.md, Presence rule 5).
READ_BACK = (topics.DEVICE_PRESENCE,)
# In an acl `pattern`, %u is replaced by the user name; a placeholder the topic builder accepts stands for it
# (or for + in a section of any device) while the topic is rendered.
_DEVICE_PLACEHOLDER = "dev-000000000000"
BY_USER = "%u"
ANY_DEVICE = "+"
# What the listener of a center broker needs besides the two files (its mosquitto.conf): no anonymous
# clients, and client ids bound to user names, so no account can take over another's connection.
CENTER_BROKER_SETTINGS = ("allow_anonymous false", "use_username_as_clientid true")
# Check accounts for provisioning (see above): how long after a registration, and how many at most.
CHECK_ACCOUNT_S = 3600
MAX_CHECK_ACCOUNTS = 4
CHECK_READ = (topics.DEVICE_PRESENCE, topics.DEVICE_COMMAND_ACK)
CHECK_WRITE = (topics.DEVICE_COMMAND,)
# An unbound slot's device: the edge serves no device the fleet has not registered (its health, ratings and
# reported configuration would be dropped there), so until the slot is bound it needs only its birth and will
# (read back too) and the provisioning laptop's self-test: the command and its acknowledgement.
SLOT_WRITTEN = (topics.DEVICE_PRESENCE, topics.DEVICE_COMMAND_ACK)
SLOT_READ = (topics.DEVICE_COMMAND,)


@dataclass(frozen=True)
class BrokerFiles:
    center: str
    passwd: str
    acl: str
    devices: int
    unbound_slots: int
    edge: bool
    # (device id, role, window) of every device registered to the center: sent with the files, the edge serves
    # only these devices, as what they were registered as (edge_agent.adapters.center_link).
    registered: tuple[tuple[str, str, int], ...] = ()


def _parties(text: str) -> set[str]:
    """'edge agent, fleet' -> {'edge agent', 'fleet'}; 'fleet (relayed by the edge agent)' -> both."""
    parties = {part.strip() for part in text.split(",")}
    if "relayed by the edge agent" in text:
        parties.add(PUBLISHER_EDGE)
    return parties


def _role_names(role: str) -> set[str]:
    return {"device", role.replace("_", " ")}


def center_topics() -> list[topics.Topic]:
    return [spec for spec in topics.TOPICS if topics.CENTER_BROKER in spec.brokers]


def device_topic_names(role: str) -> tuple[list[str], list[str]]:
    """(written, read) topic names of a device of `role` on its center broker, from the TOPICS registry."""
    names = _role_names(role)
    written = [spec.name for spec in center_topics() if _parties(spec.publisher) & names]
    read = [spec.name for spec in center_topics() if _parties(spec.subscriber) & names]
    return written, read


def any_device_topic_names() -> tuple[list[str], list[str]]:
    """(written, read) topic names of a device of either role: a pattern cannot tell the roles apart."""
    written: list[str] = []
    read: list[str] = []
    for role in messages.DEVICE_ROLES:
        role_written, role_read = device_topic_names(role)
        written += [name for name in role_written if name not in written]
        read += [name for name in role_read if name not in read]
    return written, read


def _keyed_by(name: str) -> set[str]:
    return {segment[1:-1] for segment in topics.topic(name).segments if segment.startswith("{")}


def edge_topic_names() -> tuple[list[str], list[str]]:
    written = [spec.name for spec in center_topics() if PUBLISHER_EDGE in _parties(spec.publisher)]
    read = [spec.name for spec in center_topics() if PUBLISHER_EDGE in _parties(spec.subscriber)]
    return written, read


def _acl_lines(keyword: str, written: list[str], read: list[str], render) -> list[str]:
    lines = []
    for name in written:
        access = "readwrite" if name in READ_BACK else "write"
        lines.append(f"{keyword} {access} {render(name)}")
    lines += [f"{keyword} read {render(name)}" for name in read if name not in written]
    return lines


def _device_scoped() -> tuple[list[str], list[str]]:
    """(written, read) of a device that sit under its own device id; every topic a device writes must."""
    written, read = any_device_topic_names()
    unkeyed = [name for name in written if "device" not in _keyed_by(name)]
    if unkeyed:
        raise ValueError(f"devices publish {unkeyed}, which is not under the device's id: no acl line can "
                         "keep a device from publishing it as another")
    return written, [name for name in read if "device" in _keyed_by(name)]


def _under(center: str, device: str):
    """topic name -> its topic in `center` under `device` (a device id, %u or +)."""
    def render(name: str) -> str:
        return topics.subscription(name, center=center, device=_DEVICE_PLACEHOLDER).replace(
            _DEVICE_PLACEHOLDER, device)
    return render


def device_patterns(center: str, stands_for: str = BY_USER) -> list[str]:
    """Every device topic of `center` under the id that `stands_for` (%u) names, for both roles."""
    written, read = _device_scoped()
    return _acl_lines("pattern", written, read, _under(center, stands_for))


def window_patterns(center: str) -> list[str]:
    """Read on the window-scoped topics devices subscribe to, for every window of `center` (+)."""
    _written, read = any_device_topic_names()
    return [f"pattern read {topics.subscription(name, center=center)}"
            for name in read if "device" not in _keyed_by(name)]


def slot_acl(slot: PackSlot) -> list[str]:
    """A `user` section for an unbound slot: what a device needs before it is registered, for any device id of
    its center (SLOT_WRITTEN, SLOT_READ)."""
    render = _under(slot.center_code, ANY_DEVICE)
    return [f"user {slot.username}", *_acl_lines("topic", list(SLOT_WRITTEN), list(SLOT_READ), render)]


def check_acl(username: str, center: str, device: str) -> list[str]:
    """A `user` section for the check account of `username`: watch `device` (+ for a slot's), command it."""
    render = _under(center, device)
    return [f"user {check_account(username)}", *(f"topic read {render(name)}" for name in CHECK_READ),
            *(f"topic write {render(name)}" for name in CHECK_WRITE)]


def checked_registrations(devices: list[DeviceRegistration], now: datetime) -> list[DeviceRegistration]:
    """The registrations whose check account the files hold at `now` (the latest few of the last hour)."""
    since = now - timedelta(seconds=CHECK_ACCOUNT_S)
    recent = [row for row in devices if since < row.registered_at <= now]
    recent.sort(key=lambda row: (row.registered_at, row.device_id), reverse=True)
    return recent[:MAX_CHECK_ACCOUNTS]


def device_acl(row: DeviceRegistration) -> list[str]:
    """A `user` section for a device whose broker user is not its device id (it took a pack slot)."""
    written, read = _device_scoped()
    render = lambda name: topics.build(name, center=row.center_code, device=row.device_id)  # noqa: E731
    return [f"user {row.broker_username}", *_acl_lines("topic", written, read, render)]


def edge_acl(row: EdgeCredential) -> list[str]:
    written, read = edge_topic_names()
    render = lambda name: topics.subscription(name, center=row.center_code)  # noqa: E731
    return [f"user {row.username}", *_acl_lines("topic", written, read, render)]


def broker_files(session: Session, center: str, now: datetime | None = None,
                 max_checks: int = MAX_CHECK_ACCOUNTS) -> BrokerFiles:
    """`passwd` and `acl` for the broker of `center` at `now` (the caller checked the code and the user's scope).

    `now` decides which check accounts of recent registrations the files hold (at most `max_checks`); the
    periodic delivery job makes a new version when they expire.
    """
    now = now or utcnow()
    devices = list(session.exec(select(DeviceRegistration).where(DeviceRegistration.center_code == center)
                                .order_by(col(DeviceRegistration.device_id))).all())
    slots = list(session.exec(select(PackSlot).where(PackSlot.center_code == center, col(PackSlot.device_id).is_(None))
                              .order_by(col(PackSlot.pack_id), col(PackSlot.username))).all())
    edge = session.get(EdgeCredential, center)
    checked = checked_registrations(devices, now)[:max_checks]
    passwd = [passwd_line(row.broker_username, row.broker_password_hash) for row in devices]
    passwd += [passwd_line(slot.username, slot.password_hash) for slot in slots]
    passwd += [passwd_line(check_account(row.broker_username), row.broker_password_hash) for row in checked]
    passwd += [passwd_line(check_account(slot.username), slot.password_hash) for slot in slots]
    acl = [f"# center broker of {center}, written by the fleet (python -m fleet broker-files); do not edit", ""]
    if edge is not None:
        passwd.append(passwd_line(edge.username, edge.password_hash))
        acl += ["# the edge agent", *edge_acl(edge), ""]
    acl += ["# every device whose broker user is its device id (%u): its own topics, either role",
            *device_patterns(center, BY_USER), "",
            "# what the hall display shows: every account of this center may read every window's topics",
            *window_patterns(center), ""]
    for row in devices:
        if row.broker_username != row.device_id:
            acl += [f"# {row.device_id}, {row.role} at window {row.window}, provisioned offline (pack slot)",
                    *device_acl(row), ""]
    for slot in slots:
        acl += [f"# unbound credential-pack slot {slot.username}: any device id of this center, until bound",
                *slot_acl(slot), ""]
    if checked or slots:
        acl.append(f"# provisioning check accounts: {len(checked)} recent registration(s), {len(slots)} slot(s)")
    for row in checked:
        acl += [*check_acl(row.broker_username, center, row.device_id), ""]
    for slot in slots:
        acl += [*check_acl(slot.username, center, ANY_DEVICE), ""]
    registered = tuple((row.device_id, row.role, row.window) for row in devices)
    return BrokerFiles(center, "\n".join(passwd) + ("\n" if passwd else ""), "\n".join(acl) + "\n",
                       len(devices), len(slots), edge is not None, registered)


def write_broker_files(files: BrokerFiles, out_dir: Path) -> tuple[Path, Path]:
    """Write `passwd` and `acl` into `out_dir` (mode 0600, each replaced whole); returns their paths."""
    return write_passwd_and_acl(files.passwd, files.acl, out_dir)


def write_passwd_and_acl(passwd: str, acl: str, out_dir: Path) -> tuple[Path, Path]:
    """`passwd` and `acl` files of a Mosquitto (the center's or the county's) in `out_dir`, mode 0600."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in (("passwd", passwd), ("acl", acl)):
        path = out_dir / name
        tmp = out_dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
        paths.append(path)
    return paths[0], paths[1]
