"""The center broker's accounts: the fleet's `passwd` and `acl`, installed for the local Mosquitto.

The fleet publishes them retained on the county broker (protocol topic broker_accounts); the uplink
hands each message to `receive`. A newer version is written atomically (temp file + rename, mode
0600) to the paths of [center_broker], then Mosquitto is sent SIGHUP, on which it reads both files
again. An older or repeated version, a malformed message, or files without the edge agent's own
account (they would lock the agent out of its own broker) are logged and ignored: the files in place
stay. The installed version is remembered in the data dir, so a restart ignores the retained copy.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import time
from pathlib import Path

from edge_agent.config import CenterConfig
from protocol import messages
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

STATE_FILE = "broker_accounts.json"
NOT_CONFIGURED = "not configured"
WAITING = "waiting"  # configured, nothing installed by the agent yet
INSTALLED = "installed"
FAILED = "failed"  # the last version could not be written or Mosquitto not reloaded

_PASSWD_LINE = re.compile(r"^[^:\s#]+:\$7\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
_ACL_KEYWORDS = ("#", "user ", "topic ", "pattern ")


def check_files(passwd: str, acl: str, own_username: str | None) -> None:
    """ProtocolError when the texts are not Mosquitto files the fleet writes, or lack our own account."""
    users = set()
    for number, line in enumerate(passwd.splitlines(), 1):
        if not line:
            continue
        if not _PASSWD_LINE.match(line):
            raise ProtocolError(f"passwd line {number} is not 'user:$7$...' (only hashes are accepted)")
        users.add(line.split(":", 1)[0])
    for number, line in enumerate(acl.splitlines(), 1):
        if line and not line.startswith(_ACL_KEYWORDS):
            raise ProtocolError(f"acl line {number} is not a comment, user, topic or pattern line")
    if "\0" in passwd or "\0" in acl:
        raise ProtocolError("the files contain a NUL character")
    if own_username and own_username not in users:
        raise ProtocolError(f"passwd has no account for the edge agent's own user {own_username}")


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


def signal_reload(pid_file: Path) -> int:
    """Send SIGHUP to the pid in `pid_file`; returns the pid. OSError with a clear message otherwise."""
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
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise OSError(f"no process {pid} (from {pid_file}): Mosquitto is not running") from None
    except PermissionError:
        raise OSError(f"not allowed to signal process {pid} (from {pid_file}): run the agent as "
                      "Mosquitto's user") from None
    return pid


class BrokerAccounts:
    """Adapter: installs the fleet's center-broker files and reloads the local Mosquitto."""

    name = "broker_accounts"

    def __init__(self, config: CenterConfig) -> None:
        self.files = config.center_broker_files
        self.own_username = config.center_broker.username
        self.state_path = config.data_dir / STATE_FILE
        self.version = 0
        self.installed_at: float | None = None
        self.state = NOT_CONFIGURED if self.files is None else WAITING
        self.ignored = 0
        self.last_error = ""

    async def start(self) -> None:
        if self.files is None:
            return
        try:
            saved = json.loads(self.state_path.read_text(encoding="utf-8"))
            self.version, self.installed_at = int(saved["version"]), float(saved["installed_at"])
            self.state = INSTALLED
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("broker accounts: %s unreadable (%s); the next version from the fleet is installed",
                        self.state_path, exc)

    async def stop(self) -> None:
        """Nothing runs between messages."""

    def health(self) -> dict:
        return {"ok": self.state != FAILED, "state": self.state, "version": self.version,
                "installed_at": self.installed_at, "ignored": self.ignored, "last_error": self.last_error}

    def receive(self, raw: bytes) -> bool:
        """One broker_accounts message from the county; True when it was installed."""
        if self.files is None:
            log.info("broker accounts: received, but [center_broker] is not configured; ignored")
            return False
        try:
            payload = messages.decode("broker_accounts", raw)
            if payload["version"] <= self.version:
                log.info("broker accounts: v%d ignored, v%d is installed", payload["version"], self.version)
                return False
            check_files(payload["passwd"], payload["acl"], self.own_username)
        except ProtocolError as exc:
            self.ignored += 1
            self.last_error = f"ignored a message: {exc}"
            log.warning("broker accounts: malformed message ignored, the files in place stay: %s", exc)
            return False
        return self._install(payload)

    def _install(self, payload: dict) -> bool:
        version = payload["version"]
        try:
            write_atomically(self.files.acl_file, payload["acl"])
            write_atomically(self.files.password_file, payload["passwd"])
        except OSError as exc:
            self.state, self.last_error = FAILED, f"v{version} not written: {exc}"
            log.error("broker accounts: v%d not written to %s / %s: %s", version, self.files.password_file,
                      self.files.acl_file, exc)
            return False
        self.version, self.installed_at = version, time.time()
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.state_path, json.dumps({"version": version, "installed_at": self.installed_at}))
        except OSError as exc:
            log.warning("broker accounts: installed v%d not remembered in %s: %s", version, self.state_path, exc)
        try:
            pid = signal_reload(self.files.pid_file)
        except OSError as exc:
            # The files are in place: Mosquitto reads them when it (re)starts.
            self.state, self.last_error = FAILED, f"v{version} written, Mosquitto not reloaded: {exc}"
            log.error("broker accounts: v%d written, Mosquitto not reloaded: %s", version, exc)
            return True
        self.state, self.last_error = INSTALLED, ""
        log.info("broker accounts: v%d installed, Mosquitto (pid %d) reloaded", version, pid)
        return True
