"""The center broker's accounts: the fleet's `passwd` and `acl`, installed for the local Mosquitto.

The fleet publishes them retained on the county broker (protocol topic broker_accounts); the uplink
hands each message to `receive`. A newer version is written atomically (temp file + rename, mode
0600) to the paths of [center_broker], then Mosquitto is sent SIGHUP, on which it reads both files
again. The installed version is remembered in the data dir, so a restart ignores the retained copy.

The message also lists the devices registered to this center with their role and window; with the
files installed, they are what `place` answers, and the center link serves only those devices, as
what they were registered as (edge_agent.adapters.center_link). An agent without [center_broker]
has no such list (`enforcing` is False) and takes devices as their births say.

Every message is signed by the fleet with this edge's key ([brokers.county] edge_key, issued with the
edge's credentials; protocol.signing.sign_for_edge). The retained copy can be read by others, so the edge's
own password line in it proves nothing: a copy of it, a user of one's own and `pattern readwrite #` made a
message that used to be installed, and its version 999999 kept every real version out.

Whatever is not installed leaves the files in place:
- a repeat of the installed version (the fleet re-publishes it now and then): nothing to do;
- a malformed message: logged and counted;
- a message whose signature does not verify with the edge key (forged, or signed with a key the fleet
  issued since, which this config does not have yet), and any message while no edge key is configured:
  refused before its version is even looked at, logged and counted (`refused`); health is not ok until a
  signed message arrives;
- files that would lock the edge agent out of its own broker (no line for brokers.center.username, or
  a hash its configured brokers.center.password does not match, e.g. the fleet rotated the edge's
  password before the new one reached this config) and any message while that user name or password
  is not configured: refused, and health is not ok until a version is installed;
- an older version (or the installed one with other content): a stale retained copy must not undo a
  newer one, but in steady state it means the fleet's counter went back (its database restored or
  rebuilt) and nothing it sends would be installed any more. Health is not ok and says `stale` with the
  installed `version`; the fleet reads that in the edge's health and makes its next version higher
  (fleet.registration.delivery.note_edge_version). By hand: delete the state file and restart the agent.
Mosquitto is signalled only when the pid file names a running Mosquitto: a stale pid file may by now
hold the pid of any other process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import time
from pathlib import Path

from edge_agent.config import CenterConfig
from protocol import messages, signing
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

STATE_FILE = "broker_accounts.json"
NOT_CONFIGURED = "not configured"
WAITING = "waiting"  # configured, nothing installed by the agent yet
INSTALLED = "installed"
FAILED = "failed"  # the last version could not be written or Mosquitto not reloaded

_PASSWD_LINE = re.compile(r"^[^:\s#]+:\$7\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
_ACL_KEYWORDS = ("#", "user ", "topic ", "pattern ")
# PBKDF2 runs on the agent's event loop: an absurd count in a broken message must not stall it for
# minutes. The fleet writes 1000 (mosquitto_passwd 101); a million takes about a second.
MAX_HASH_ITERATIONS = 1_000_000
PROC = Path("/proc")
MOSQUITTO_PROCESS = "mosquitto"


class LockoutRefused(Exception):
    """Installing these files would lock the edge agent out of its own center broker."""


def verify_mosquitto_password(password: str, stored: str) -> bool:
    """Whether `password` matches a Mosquitto `$7$<iterations>$<salt>$<hash>` (PBKDF2-HMAC-SHA512).

    What Mosquitto checks on CONNECT; the same format as fleet/registration/mosquitto_hash.py, which
    the edge cannot import.
    """
    parts = stored.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "7" or not parts[2].isdigit():
        return False
    iterations = int(parts[2])
    if not 1 <= iterations <= MAX_HASH_ITERATIONS:
        return False
    try:
        salt, expected = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return False
    if not expected:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, len(expected))
    return hmac.compare_digest(digest, expected)


def check_files(passwd: str, acl: str) -> None:
    """ProtocolError when the texts are not Mosquitto files the fleet writes."""
    for number, line in enumerate(passwd.splitlines(), 1):
        if line and not _PASSWD_LINE.match(line):
            raise ProtocolError(f"passwd line {number} is not 'user:$7$...' (only hashes are accepted)")
    for number, line in enumerate(acl.splitlines(), 1):
        if line and not line.startswith(_ACL_KEYWORDS):
            raise ProtocolError(f"acl line {number} is not a comment, user, topic or pattern line")
    if "\0" in passwd or "\0" in acl:
        raise ProtocolError("the files contain a NUL character")


def check_own_account(passwd: str, username: str, password: str) -> None:
    """LockoutRefused unless `passwd` lets the edge agent log in with its configured user and password."""
    hashes = [line.split(":", 1)[1] for line in passwd.splitlines() if line.split(":", 1)[0] == username]
    if not hashes:
        raise LockoutRefused(f"passwd has no line for the edge agent's own user {username}")
    if len(hashes) > 1:
        raise LockoutRefused(f"passwd has {len(hashes)} lines for the edge agent's own user {username}")
    if not verify_mosquitto_password(password, hashes[0]):
        raise LockoutRefused(f"the edge agent's password (brokers.center.password) does not match its user "
                             f"{username} in the new passwd: the fleet issued new edge credentials that are "
                             "not in this agent's config yet; put them in the config and restart the agent")


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` whole with `text` (mode 0600): Mosquitto never reads a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)  # an old temp file may have had another mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def process_name(pid: int, proc: Path = PROC) -> str:
    """The program name of process `pid` (/proc/<pid>/comm); OSError when there is no such process."""
    return (proc / str(pid) / "comm").read_text(encoding="utf-8", errors="replace").strip()


def signal_reload(pid_file: Path, proc: Path = PROC) -> int:
    """Send SIGHUP to the Mosquitto whose pid is in `pid_file`; returns the pid.

    OSError with a clear message otherwise, also when that pid is not a Mosquitto (a stale pid file:
    SIGHUP ends most other programs).
    """
    try:
        text = pid_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise OSError(f"pid file {pid_file} not found: is Mosquitto running with this pid_file?") from None
    try:
        pid = int(text)
    except ValueError:
        raise OSError(f"pid file {pid_file} does not hold a process id: {text[:20]!r}") from None
    if pid <= 1:
        raise OSError(f"pid file {pid_file} holds pid {pid}; refusing to signal it")
    try:
        name = process_name(pid, proc)
    except FileNotFoundError:
        raise OSError(f"no process {pid} (from {pid_file}): Mosquitto is not running") from None
    except OSError as exc:
        raise OSError(f"cannot tell which program process {pid} (from {pid_file}) is: {exc}") from None
    if name != MOSQUITTO_PROCESS:
        raise OSError(f"process {pid} (from {pid_file}) is {name!r}, not Mosquitto: the pid file is stale "
                      "(is Mosquitto running with this pid_file?); not signalled")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise OSError(f"no process {pid} (from {pid_file}): Mosquitto is not running") from None
    except PermissionError:
        raise OSError(f"not allowed to signal process {pid} (from {pid_file}): run the agent as "
                      "Mosquitto's user") from None
    return pid


def _registered(devices: object) -> dict[str, tuple[str, int]]:
    """The `devices` list of a broker_accounts message (or the state file) as device id -> (role, window)."""
    try:
        checked = messages.check_registered_devices(devices if isinstance(devices, list) else [])
    except ProtocolError as exc:
        log.warning("broker accounts: saved device list unreadable (%s); none until the fleet sends it", exc)
        return {}
    return {device_id: (role, window) for device_id, role, window in checked}


class BrokerAccounts:
    """Adapter: installs the fleet's center-broker files and reloads the local Mosquitto."""

    name = "broker_accounts"

    def __init__(self, config: CenterConfig) -> None:
        self.files = config.center_broker_files
        self.own_username = config.center_broker.username
        self.own_password = config.center_broker.password
        self.center = config.code
        self.edge_key = config.edge_key
        self.state_path = config.data_dir / STATE_FILE
        self.version = 0
        self.installed_at: float | None = None
        self.state = NOT_CONFIGURED if self.files is None else WAITING
        self.ignored = 0  # messages neither installed nor a repeat of the installed version
        self.refused = 0  # of those, messages whose signature did not verify with the edge key
        self.unverified = ""  # why the last message was refused for its signature, until a signed one arrives
        self.last_error = ""  # why the last message was not installed
        # Why health is not ok ("" when it is): stays until a version is installed (or, for a stale
        # version, until the fleet sends back what is installed).
        self.config_problem = self._config_problem()
        self.problem = self.config_problem
        self.stale = False  # the problem is an older version from the fleet
        self.registered: dict[str, tuple[str, int]] = {}  # device id -> (role, window), of the installed version
        self._registered_known = True  # False: the installed version was saved without its devices

    def _config_problem(self) -> str:
        """Why this agent cannot check new files against its own account ("" when it can)."""
        if self.files is None:
            return ""
        if not self.own_username:
            return ("[center_broker] is configured but brokers.center.username is not: the agent cannot check "
                    "that the fleet's files keep its own account, so it installs none; set brokers.center "
                    "username and password to the edge credentials the fleet issued")
        if self.own_password is None:
            return (f"[center_broker] is configured but brokers.center.password is not: the agent cannot check "
                    f"that the fleet's files let its user {self.own_username} in, so it installs none")
        if self.edge_key is None:
            return ("[center_broker] is configured but brokers.county.edge_key is not: the agent cannot tell the "
                    "fleet's files from forged ones, so it installs none; set it to the edge key the fleet issued "
                    "with the edge's credentials")
        return ""

    @property
    def enforcing(self) -> bool:
        """Whether the fleet's list of registered devices decides who may speak on the center broker."""
        return self.files is not None

    def place(self, device_id: str) -> tuple[str, int] | None:
        """(role, window) the device is registered as in this center; None when it is not registered here."""
        return self.registered.get(device_id)

    async def start(self) -> None:
        if self.files is None:
            return
        if self.config_problem:
            log.error("broker accounts: %s", self.config_problem)
        try:
            saved = json.loads(self.state_path.read_text(encoding="utf-8"))
            self.version, self.installed_at = int(saved["version"]), float(saved["installed_at"])
            self.state = INSTALLED
            # Saved by an agent before devices came with the files: none until the fleet sends them again.
            self.registered = _registered(saved.get("devices", []))
            self._registered_known = "devices" in saved
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("broker accounts: %s unreadable (%s); the next version from the fleet is installed",
                        self.state_path, exc)

    async def stop(self) -> None:
        """Nothing runs between messages."""

    def health(self) -> dict:
        # `stale` and `version` go to the fleet in edge_health: it moves its counter past a version installed here.
        return {"ok": self.state != FAILED and not self.problem, "state": self.state, "version": self.version,
                "installed_at": self.installed_at, "ignored": self.ignored, "refused": self.refused,
                "last_error": self.last_error, "problem": self.problem, "stale": self.stale,
                "registered_devices": len(self.registered)}

    def receive(self, raw: bytes) -> bool:
        """One broker_accounts message from the county; True when it was installed."""
        if self.files is None:
            log.info("broker accounts: received, but [center_broker] is not configured; ignored")
            return False
        try:
            payload = messages.decode("broker_accounts", raw)
        except ProtocolError as exc:
            self.ignored += 1
            self.last_error = f"ignored a message: {exc}"
            log.warning("broker accounts: malformed message ignored, the files in place stay: %s", exc)
            return False
        if not self._signed(payload):
            return False
        try:
            if payload["version"] <= self.version:
                return self._not_newer(payload)
            check_files(payload["passwd"], payload["acl"])
        except ProtocolError as exc:
            self.ignored += 1
            self.last_error = f"ignored a message: {exc}"
            log.warning("broker accounts: malformed message ignored, the files in place stay: %s", exc)
            return False
        version = payload["version"]
        try:
            if self.config_problem:
                raise LockoutRefused(self.config_problem)
            check_own_account(payload["passwd"], self.own_username or "", self.own_password or "")
        except LockoutRefused as exc:
            self.ignored += 1
            self.problem = self.last_error = f"v{version} refused, v{self.version} stays in place: {exc}"
            self.stale = False
            log.error("broker accounts: v%d refused, the files in place stay: %s", version, exc)
            return False
        return self._install(payload)

    def _signed(self, payload: dict) -> bool:
        """Whether the fleet signed `payload` with this edge's key; a refusal is counted and shown in health."""
        if self.edge_key is not None and signing.verify_for_edge(self.edge_key, self.center, payload):
            if self.unverified:  # the fleet's own messages verify again
                if self.problem == self.unverified:
                    self.problem = ""
                self.unverified = ""
            return True
        self.ignored += 1
        self.refused += 1
        why = ("brokers.county.edge_key is not configured" if self.edge_key is None else
               "its signature does not verify with brokers.county.edge_key (forged, or signed with an edge key "
               "the fleet issued since, which is not in this agent's config yet)")
        self.unverified = self.last_error = f"v{payload['version']} refused, v{self.version} stays in place: {why}"
        if not self.config_problem:  # that one says more, and stays until the config is fixed
            self.problem = self.unverified
        log.error("broker accounts: %s", self.unverified)
        return False

    def _not_newer(self, payload: dict) -> bool:
        """A version not above the installed one: never installed, but a reset fleet counter is reported."""
        version = payload["version"]
        if version == self.version and self._installed_files_are(payload):
            log.info("broker accounts: v%d received again, it is installed", version)
            if not self._registered_known:  # installed by an agent that did not keep the list
                self.registered, self._registered_known = _registered(payload["devices"]), True
                self._remember(version)
            if self.stale:  # the fleet is back in step with what is installed
                self.problem, self.stale = "", False
            return False
        self.ignored += 1
        if version == self.version:
            what = (f"version {version} from the fleet differs from the installed files of version {version} "
                    "(changed by hand on this edge, or the fleet reused the number)")
        else:
            what = f"version {version} from the fleet is older than the installed version {self.version}"
        reason = (f"{what}; if the fleet's database was restored or rebuilt, its version counter went back and "
                  f"no file the fleet sends is installed until it passes {self.version}: delete "
                  f"{self.state_path} on this edge and restart the agent to install the fleet's current files")
        self.problem = self.last_error = reason
        self.stale = True
        log.warning("broker accounts: ignored, the files in place stay: %s", reason)
        return False

    def _remember(self, version: int) -> None:
        """Keep the installed version and its registered devices in the data dir, for the next start."""
        devices = [[device_id, role, window] for device_id, (role, window) in sorted(self.registered.items())]
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.state_path, json.dumps({"version": version, "installed_at": self.installed_at,
                                                          "devices": devices}))
        except OSError as exc:
            log.warning("broker accounts: installed v%d not remembered in %s: %s", version, self.state_path, exc)

    def _installed_files_are(self, payload: dict) -> bool:
        """Whether the files in place hold what `payload` holds (unreadable files: no)."""
        assert self.files is not None
        try:
            return (self.files.password_file.read_text(encoding="utf-8") == payload["passwd"]
                    and self.files.acl_file.read_text(encoding="utf-8") == payload["acl"])
        except (OSError, UnicodeDecodeError):
            return False

    def _install(self, payload: dict) -> bool:
        version = payload["version"]
        try:
            write_atomically(self.files.acl_file, payload["acl"])
            write_atomically(self.files.password_file, payload["passwd"])
        except OSError as exc:
            self.state = FAILED
            self.problem = self.last_error = f"v{version} not written: {exc}"
            log.error("broker accounts: v%d not written to %s / %s: %s", version, self.files.password_file,
                      self.files.acl_file, exc)
            return False
        self.version, self.installed_at = version, time.time()
        self.registered, self._registered_known = _registered(payload["devices"]), True
        self.problem, self.stale = "", False
        self._remember(version)
        try:
            pid = signal_reload(self.files.pid_file)
        except OSError as exc:
            # The files are in place: Mosquitto reads them when it (re)starts.
            self.state = FAILED
            self.problem = self.last_error = f"v{version} written, Mosquitto not reloaded: {exc}"
            log.error("broker accounts: v%d written, Mosquitto not reloaded: %s", version, exc)
            return True
        self.state, self.last_error = INSTALLED, ""
        log.info("broker accounts: v%d installed, Mosquitto (pid %d) reloaded", version, pid)
        return True
