"""Run a real Mosquitto broker as our own process, with our own config file.

Used by the demo and the tests alike. Never touches the system service.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class BrokerError(RuntimeError):
    pass


class BrokerPortTaken(BrokerError):
    """The port was taken by another program before the broker could listen on it."""


def find_mosquitto() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerError("mosquitto is not installed: run tools/install-system-deps.sh")


# Its own source of randomness: a test that seeds the `random` module (alike in every worker) must not make the
# test workers pick the same ports.
_PORTS = random.SystemRandom()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now, for a server started next.

    Picked below the kernel's ephemeral range: a port from that range (what bind to port 0 gives) is also what
    every outgoing connection takes as its source port, so with many clients about (two test suites side by side)
    the server's bind then failed with "address already in use" now and then. Below it only servers bind.
    """
    low, _high = _ephemeral_range()
    if low > 12000:
        for _ in range(50):
            port = _PORTS.randrange(low - 10000, low)
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            if not port_is_open(port):  # another program's listener on the wildcard address
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def listening_inodes(port: int) -> set[str] | None:
    """The socket inodes listening on TCP `port` (IPv4), from /proc/net/tcp; None where there is no /proc."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    inodes = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(fields[9])
    return inodes


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds the socket listening on `port` (None: this system cannot tell)."""
    inodes = listening_inodes(port)
    if inodes is None:
        return None
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return None if not os.path.isdir("/proc/self/fd") else False
    return any(link == f"socket:[{inode}]" for inode in inodes for link in links)


class MosquittoBroker:
    """One Mosquitto process listening on 127.0.0.1:port.

    The config, log and (optional) password/ACL files live in `run_dir`.
    """

    def __init__(self, run_dir: Path, name: str, port: int | None = None,
                 password_file: Path | None = None, acl_file: Path | None = None, persistent: bool = False,
                 pid_file: Path | None = None, settings: Sequence[str] = ()) -> None:
        self.run_dir = Path(run_dir)
        self.name = name
        self.port = port or free_port()
        # A port we picked ourselves may be taken by another program before the broker binds it (tests run side
        # by side): then the first start picks another. A port given by the caller, or kept for a restart, stays.
        self._port_chosen_here = port is None
        self.password_file = password_file
        self.acl_file = acl_file
        self.persistent = persistent  # keep sessions and retained messages across restarts
        self.pid_file = pid_file  # Mosquitto writes its pid there (what an edge agent signals to reload)
        # More lines for the listener, e.g. a center broker's fleet.registration.broker_files.CENTER_BROKER_SETTINGS
        # (client ids bound to user names).
        self.settings = tuple(settings)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.run_dir / f"{self.name}.conf"

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def write_config(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"# {self.name} broker, written by tools/mosquitto.py",
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
            f"persistence {'true' if self.persistent else 'false'}",
            f"persistence_location {self.run_dir}/",
            f"persistence_file {self.name}.db",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if not any(line.startswith("max_queued_messages ") for line in self.settings):
            lines.append("max_queued_messages 100000")
        if os.geteuid() == 0:
            # Mosquitto drops root to the 'mosquitto' user, which cannot write our run dir.
            lines.append("user root")
        if self.password_file:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file:
            lines.append(f"acl_file {self.acl_file}")
        if self.pid_file:
            lines.append(f"pid_file {self.pid_file}")
        lines += self.settings
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        for _attempt in range(5 if self._port_chosen_here else 1):
            try:
                return self._start_on_port(timeout)
            except BrokerPortTaken:
                if not self._port_chosen_here:
                    raise
                self.port = free_port()
        raise BrokerError(f"{self.name} broker: every port tried was taken by another program")

    def _start_on_port(self, timeout: float) -> MosquittoBroker:
        if port_is_open(self.port):
            raise BrokerPortTaken(f"{self.name} broker: port {self.port} is already in use")
        self.write_config()
        self.process = subprocess.Popen(
            [find_mosquitto(), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                self.process = None
                # Mosquitto says why in its log file (appended to by every start: the text after the last one's).
                logged = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                if "Address already in use" in err + logged.rsplit(" starting", 1)[-1]:
                    raise BrokerPortTaken(f"{self.name} broker: port {self.port} is already in use")
                raise BrokerError(f"{self.name} broker exited: {err.strip()} (see {self.log_path})")
            # Open is not enough: another program that took the port in the meantime answers too, and a test
            # would then talk to somebody else's broker. Ours is up when our process holds the listening socket.
            if port_is_open(self.port) and listens_on(self.process.pid, self.port) is not False:
                self._port_chosen_here = False  # from now on the port is the broker's address: kept on restart
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"{self.name} broker did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads its password_file and acl_file again (the listener stays up)."""
        if self.process is None or self.process.poll() is not None:
            raise BrokerError(f"{self.name} broker is not running")
        self.process.send_signal(signal.SIGHUP)

    def restart(self) -> None:
        self.stop()
        deadline = time.monotonic() + 5
        while port_is_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.start()

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
