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
  device id: such a device has its own `user` section with the same device topics (about 540 bytes of
  acl each, until it is registered again online with its own credentials).

Unbound credential-pack slots: nobody knows yet which device, role or window will take them. While a
center has any, the acl ends with `pattern` lines for this center only, where %c (the MQTT client id,
which the firmware sets to its device id) stands for the device: a slot can then act as *any* device id
of this center, for both roles, and so can every other account that connects with a device's id as its
client id. That is the price of provisioning without the network; it ends when the slots are bound
(provision sync) and the files are written again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, col, select

from fleet.registration.models import DeviceRegistration, EdgeCredential, PackSlot
from fleet.registration.mosquitto_hash import passwd_line
from protocol import messages, topics

PUBLISHER_EDGE = "edge agent"
# The firmware subscribes to its own retained presence, to repair a stale will (protocol.md, Presence rule 5).
# The provisioning laptop connects with the device's own new credentials to see its birth and run its
# self-test (provisioning/device_check.py): it reads the device's acknowledgements and sends the command on
# the device's own command topic. Still only the device's own topics; a command without the device key's
# signature is refused by the device anyway.
READ_BACK = (topics.DEVICE_PRESENCE, topics.DEVICE_COMMAND_ACK)
WRITE_OWN = (topics.DEVICE_COMMAND,)
# In an acl `pattern`, %u is replaced by the user name and %c by the client id; a placeholder the topic
# builder accepts stands for them while the topic is rendered.
_DEVICE_PLACEHOLDER = "dev-000000000000"
BY_USER = "%u"
BY_CLIENT_ID = "%c"


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
    lines += [f"{keyword} {'readwrite' if name in WRITE_OWN else 'read'} {render(name)}"
              for name in read if name not in written]
    return lines


def _device_scoped() -> tuple[list[str], list[str]]:
    """(written, read) of a device that sit under its own device id; every topic a device writes must."""
    written, read = any_device_topic_names()
    unkeyed = [name for name in written if "device" not in _keyed_by(name)]
    if unkeyed:
        raise ValueError(f"devices publish {unkeyed}, which is not under the device's id: no acl line can "
                         "keep a device from publishing it as another")
    return written, [name for name in read if "device" in _keyed_by(name)]


def device_patterns(center: str, stands_for: str) -> list[str]:
    """Every device topic of `center` under the id that `stands_for` (%u or %c) names, for both roles."""
    written, read = _device_scoped()

    def render(name: str) -> str:
        return topics.subscription(name, center=center, device=_DEVICE_PLACEHOLDER).replace(
            _DEVICE_PLACEHOLDER, stands_for)

    return _acl_lines("pattern", written, read, render)


def window_patterns(center: str) -> list[str]:
    """Read on the window-scoped topics devices subscribe to, for every window of `center` (+)."""
    _written, read = any_device_topic_names()
    return [f"pattern read {topics.subscription(name, center=center)}"
            for name in read if "device" not in _keyed_by(name)]


def slot_patterns(center: str) -> list[str]:
    """An unbound slot: the device topics of the device its client id names (%c)."""
    return device_patterns(center, BY_CLIENT_ID)


def device_acl(row: DeviceRegistration) -> list[str]:
    """A `user` section for a device whose broker user is not its device id (it took a pack slot)."""
    written, read = _device_scoped()
    render = lambda name: topics.build(name, center=row.center_code, device=row.device_id)  # noqa: E731
    return [f"user {row.broker_username}", *_acl_lines("topic", written, read, render)]


def edge_acl(row: EdgeCredential) -> list[str]:
    written, read = edge_topic_names()
    render = lambda name: topics.subscription(name, center=row.center_code)  # noqa: E731
    return [f"user {row.username}", *_acl_lines("topic", written, read, render)]


def broker_files(session: Session, center: str) -> BrokerFiles:
    """`passwd` and `acl` for the broker of `center` (the caller checked the code and the user's scope)."""
    devices = list(session.exec(select(DeviceRegistration).where(DeviceRegistration.center_code == center)
                                .order_by(col(DeviceRegistration.device_id))).all())
    slots = list(session.exec(select(PackSlot).where(PackSlot.center_code == center, col(PackSlot.device_id).is_(None))
                              .order_by(col(PackSlot.pack_id), col(PackSlot.username))).all())
    edge = session.get(EdgeCredential, center)
    passwd = [passwd_line(row.broker_username, row.broker_password_hash) for row in devices]
    passwd += [passwd_line(slot.username, slot.password_hash) for slot in slots]
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
    if slots:
        acl += [f"# {len(slots)} unbound credential-pack slot(s): any device id (client id) of this center",
                *slot_patterns(center), ""]
    registered = tuple((row.device_id, row.role, row.window) for row in devices)
    return BrokerFiles(center, "\n".join(passwd) + ("\n" if passwd else ""), "\n".join(acl) + "\n",
                       len(devices), len(slots), edge is not None, registered)


def write_broker_files(files: BrokerFiles, out_dir: Path) -> tuple[Path, Path]:
    """Write `passwd` and `acl` into `out_dir` (mode 0600, each replaced whole); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in (("passwd", files.passwd), ("acl", files.acl)):
        path = out_dir / name
        tmp = out_dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
        paths.append(path)
    return paths[0], paths[1]
