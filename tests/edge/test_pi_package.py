"""The edge agent's Debian package, as far as a machine without systemd running allows (issue 15).

The package is built (tools/build_deb.py, dpkg-deb) and unpacked into a throw-away root (`dpkg -x`), where its
postinst's work (`setup configure`) runs: its scripts take every path from where they lie. systemd-analyze
verifies the units; the agent then starts from the installed files, through the installed `service-center`
command, against a real Mosquitto running the config generated from the center's TOML; and a backup made
while it serves, restored after more tickets were taken, gives back the queue as it was.

What only a Pi shows (users, systemctl, X and Chromium on the HDMI outputs) is in docs/deployment.md's
checklist, not here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from edge_agent.adapters.broker_accounts import verify_mosquitto_password
from fleet.registration.broker_files import CENTER_BROKER_SETTINGS
from tests.support.waiting import wait_until
from tools.build_deb import UNITS, build
from tools.mosquitto import find_mosquitto, free_port, port_is_open

VERSION = "0.1.0+r999"
CODE = "445202101001"
EDGE_USER = f"edge-{CODE}"
EDGE_PASSWORD = "center-broker-secret"


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("deb"), VERSION)


@pytest.fixture(scope="module")
def installed(deb, tmp_path_factory) -> Path:
    """The package unpacked into a throw-away root, and its postinst's work done there."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    # The virtual environment is made for real; instead of pip fetching the pinned packages, it gets this
    # test run's (the same pins, from the same requirements.txt).
    env = {**os.environ, "SC_EDGE_BASE_PYTHON": sys._base_executable,
           "SC_EDGE_SITE_PACKAGES": sysconfig.get_paths()["purelib"]}
    subprocess.run([str(root / "usr/lib/service-center-edge/setup"), "configure"], check=True, env=env)
    return root


def test_the_package_builds_versioned_with_its_units(deb):
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture"], check=True,
                            capture_output=True, text=True).stdout
    assert fields.splitlines() == ["Package: service-center-edge", f"Version: {VERSION}", "Architecture: all"]
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    for path in ("./usr/sbin/service-center", "./usr/lib/service-center-edge/app/edge_agent/agent.py",
                 "./usr/lib/service-center-edge/app/protocol/messages.py",
                 "./usr/lib/service-center-edge/app/edge_agent/VERSION",
                 "./usr/lib/systemd/journald.conf.d/service-center-edge.conf",
                 *[f"./lib/systemd/system/{unit}" for unit in UNITS]):
        assert path in listing
    assert "__pycache__" not in listing


def test_setup_makes_the_layout_the_config_and_the_venv(installed):
    assert (installed / "usr/lib/service-center-edge/app/edge_agent/VERSION").read_text().strip() == VERSION
    config = installed / "etc/service-center/center.toml"
    assert config.read_text() == (installed / "usr/share/doc/service-center-edge/center.toml.example").read_text()
    assert config.stat().st_mode & 0o777 == 0o640  # it holds the broker passwords
    for directory in ("data", "broker", "generated", "screens", "packages"):
        assert (installed / "var/lib/service-center-edge" / directory).is_dir()
    assert (installed / "var/backups/service-center-edge").stat().st_mode & 0o777 == 0o700
    version = subprocess.run([str(installed / "usr/sbin/service-center"), "version"], check=True,
                             capture_output=True, text=True).stdout
    assert version.strip() == VERSION
    # Until the technician has set the center's code, the broker does not start (its ExecStartPre fails).
    unconfigured = subprocess.run([str(installed / "usr/sbin/service-center"), "configure"], capture_output=True,
                                  text=True)
    assert unconfigured.returncode == 1 and unconfigured.stderr.startswith("service-center: ")
    assert "center.code" in unconfigured.stderr
    # The installed agent's code, run by the virtual environment the setup made.
    python = installed / "var/lib/service-center-edge/venv/bin/python"
    where = subprocess.run([str(python), "-c", "import edge_agent, fastapi; print(edge_agent.__file__)"], check=True,
                           capture_output=True, text=True, cwd=installed,
                           env={**os.environ, "PYTHONPATH": str(installed / "usr/lib/service-center-edge/app")})
    assert where.stdout.strip().startswith(str(installed / "usr/lib/service-center-edge/app"))


def test_systemd_analyze_verify_accepts_the_units(installed, tmp_path):
    """The units as installed; only the package's own command is pointed into the throw-away root (verify
    checks that every command exists, and /usr/sbin/service-center is not installed on this machine)."""
    command = installed / "usr/sbin/service-center"
    for unit in UNITS:
        text = (installed / "lib/systemd/system" / unit).read_text()
        (tmp_path / unit).write_text(text.replace("/usr/sbin/service-center", str(command)))
    names = [name.replace("@.service", "@kiosk.service") for name in UNITS]
    answer = subprocess.run(["systemd-analyze", "verify", "--man=no", *[str(tmp_path / name) for name in names]],
                            capture_output=True, text=True)
    assert answer.returncode == 0, answer.stderr
    problems = [line for line in answer.stderr.splitlines() if "service-center" in line]
    assert problems == []


def write_center_config(root: Path, center_port: int, http_port: int, county_port: int) -> Path:
    """The technician's TOML, with the Pi's paths inside the throw-away root."""
    state = root / "var/lib/service-center-edge"
    config = root / "etc/service-center/center.toml"
    config.write_text(f"""
[center]
code = "{CODE}"
name = "示例镇便民服务中心"

[[services]]
prefix = "A"
name = "社保业务"

[[services]]
prefix = "B"
name = "医保业务"

[[windows]]
number = 1
services = ["A", "B"]
staff_no = "1001"
staff_name = "张敏"

[brokers.center]
host = "127.0.0.1"
port = {center_port}
username = "{EDGE_USER}"
password = "{EDGE_PASSWORD}"

[brokers.county]
host = "127.0.0.1"
port = {county_port}

[center_broker]
password_file = "{state}/broker/passwd"
acl_file = "{state}/broker/acl"
pid_file = "{root}/run/service-center-broker/mosquitto.pid"

[http]
host = "127.0.0.1"
port = {http_port}

[storage]
data_dir = "{state}/data"

[printer]
kind = "none"

[voice]
enabled = false
""", encoding="utf-8")
    return config


class Installed:
    """The installed `service-center` command and the processes it starts, as systemd would start them."""

    def __init__(self, root: Path, center_port: int, http_port: int) -> None:
        self.root = root
        self.command = str(root / "usr/sbin/service-center")
        self.center_port = center_port
        self.http_port = http_port
        self.processes: list[subprocess.Popen] = []

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.command, *args], capture_output=True, text=True, timeout=120)

    def start(self, argv: list[str], log: str) -> subprocess.Popen:
        handle = open(self.root / log, "ab")
        process = subprocess.Popen(argv, stdout=handle, stderr=handle, cwd=self.root / "var/lib/service-center-edge")
        handle.close()
        self.processes.append(process)
        return process

    def start_broker(self) -> subprocess.Popen:
        """service-center-broker.service: ExecStartPre, then ExecStart."""
        (self.root / "run/service-center-broker").mkdir(parents=True, exist_ok=True)  # its RuntimeDirectory
        configured = self.run("configure")
        assert configured.returncode == 0, configured.stderr
        broker = self.start([find_mosquitto(), "-c",
                             str(self.root / "var/lib/service-center-edge/generated/mosquitto.conf")], "broker.log")
        wait_until(lambda: port_is_open(self.center_port) or broker.poll() is not None, what="the center broker")
        assert broker.poll() is None, (self.root / "broker.log").read_text()
        return broker

    def start_agent(self) -> subprocess.Popen:
        """service-center-edge.service's ExecStart."""
        return self.start([self.command, "agent"], "agent.log")

    def health(self) -> dict | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/api/health", timeout=2).json()
        except httpx.HTTPError:
            return None

    def wait_connected(self, agent: subprocess.Popen) -> dict:
        def connected() -> dict | None:
            assert agent.poll() is None, (self.root / "agent.log").read_text()
            health = self.health()
            return health if health and health["center_broker"]["ok"] else None
        return wait_until(connected, timeout=60, what="the installed agent on its center broker")

    def stop(self, process: subprocess.Popen) -> int:
        process.send_signal(signal.SIGTERM)  # what systemctl stop sends
        return process.wait(timeout=60)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def pi(installed, county_broker):
    config = installed / "etc/service-center/center.toml"
    example = config.read_text()
    center = Installed(installed, free_port(), free_port())
    write_center_config(installed, center.center_port, center.http_port, county_broker.port)
    yield center
    center.close()
    config.write_text(example)  # the module's other tests see the root as installed


def test_the_installed_agent_starts_against_the_generated_broker_config(pi):
    broker = pi.start_broker()
    generated = (pi.root / "var/lib/service-center-edge/generated/mosquitto.conf").read_text().splitlines()
    assert f"listener {pi.center_port}" in generated  # every interface: the boards come over the LAN
    for setting in CENTER_BROKER_SETTINGS:  # the fleet's rules for a center broker, repeated by the edge
        assert setting in generated
    # The agent's own account, written before the fleet sends the center's accounts.
    user, _, stored = (pi.root / "var/lib/service-center-edge/broker/passwd").read_text().strip().partition(":")
    assert user == EDGE_USER and verify_mosquitto_password(EDGE_PASSWORD, stored)

    agent = pi.start_agent()
    health = pi.wait_connected(agent)
    assert health["storage"]["ok"]
    assert (pi.root / "var/lib/service-center-edge/data/edge.sqlite3").exists()
    state = httpx.get(f"http://127.0.0.1:{pi.http_port}/api/state", timeout=5).json()
    assert state["center"]["code"] == CODE
    assert pi.stop(agent) == 0
    assert pi.stop(broker) == 0


def queue_of(pi: Installed) -> dict:
    state = httpx.get(f"http://127.0.0.1:{pi.http_port}/api/state", timeout=5).json()
    return {"business_day": state["business_day"],
            "windows": {w["number"]: w["waiting"] for w in state["windows"]},
            "services": {s["prefix"]: s["waiting"] for s in state["services"]}}


def take_ticket(pi: Installed, service: str) -> str:
    answer = httpx.post(f"http://127.0.0.1:{pi.http_port}/api/tickets", json={"service": service}, timeout=10)
    answer.raise_for_status()
    return answer.json()["number"]


def test_backup_while_serving_then_restore_gives_back_the_same_queue(pi):
    pi.start_broker()
    agent = pi.start_agent()
    pi.wait_connected(agent)
    taken = [take_ticket(pi, service) for service in ("A", "B", "A")]
    salt = pi.root / "var/lib/service-center-edge/data/id_card_salt"
    salt.write_bytes(b"the center's salt")  # made by the agent at the first card; here before the backup
    before = queue_of(pi)
    assert before["windows"][1] == taken

    made = pi.run("backup")  # the nightly timer's command, while the agent serves
    assert made.returncode == 0, made.stderr
    archives = sorted((pi.root / "var/backups/service-center-edge").glob(f"edge-{CODE}-*.tar"))
    assert len(archives) == 1

    later = take_ticket(pi, "B")  # after the backup: gone once it is restored
    salt.write_bytes(b"another salt")
    assert queue_of(pi)["windows"][1] == [*taken, later]

    refused = pi.run("restore", str(archives[0]))  # not under a running agent
    assert refused.returncode == 1 and "stop it first" in refused.stderr
    assert pi.stop(agent) == 0
    restored = pi.run("restore", str(archives[0]))
    assert restored.returncode == 0, restored.stderr
    assert salt.read_bytes() == b"the center's salt"

    agent = pi.start_agent()
    pi.wait_connected(agent)
    assert queue_of(pi) == before
    assert take_ticket(pi, "B") == later  # the numbers go on from the restored queue
    assert pi.stop(agent) == 0


def test_rollback_takes_the_newest_kept_package_below_the_running_version(installed, tmp_path_factory):
    """`service-center rollback --dry-run`: what it would install, in dpkg's order of versions (r1000 > r999)."""
    kept = installed / "var/lib/service-center-edge/packages"
    for version in ("0.1.0+r990", "0.1.0+r998", "0.1.0+r1000"):
        deb = build(tmp_path_factory.mktemp("kept"), version)
        deb.rename(kept / deb.name)
    command = str(installed / "usr/sbin/service-center")
    answer = subprocess.run([command, "rollback", "--dry-run"], capture_output=True, text=True, check=True)
    assert answer.stdout.splitlines() == [f"rolling back from {VERSION} to 0.1.0+r998",
                                          f"would install {kept / 'service-center-edge_0.1.0+r998_all.deb'}"]
    # With the database: only when a backup from before the upgrade is there to restore.
    refused = subprocess.run([command, "rollback", "--with-database", "--dry-run"], capture_output=True, text=True)
    assert refused.returncode == 1 and "no backup from before the upgrade" in refused.stderr


def test_every_package_the_agent_imports_is_installed_on_the_pi():
    """The Pi's virtual environment has EDGE_REQUIREMENTS and what they require: a new import in the agent
    of anything else would run here and fail on every Pi."""
    import ast
    import re
    from importlib import metadata

    from tools.build_deb import APP_PACKAGES, EDGE_REQUIREMENTS, REPO

    def name(distribution: str) -> str:
        return re.sub(r"[-_.]+", "-", distribution).lower()

    installed, pending = set(), [name(requirement) for requirement in EDGE_REQUIREMENTS]
    while pending:  # what the requirements pull in, as pip would install it here (no extras)
        current = pending.pop()
        if current in installed:
            continue
        try:
            requires = metadata.requires(current) or []
        except metadata.PackageNotFoundError:
            continue  # required only under a marker that does not hold here (e.g. an older Python)
        installed.add(current)
        for line in requires:
            if "extra ==" not in line:
                pending.append(name(re.split(r"[ ;<>=!~\[(]", line, maxsplit=1)[0]))
    providers = metadata.packages_distributions()
    imported = set()
    for package in APP_PACKAGES:
        for source in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    third_party = {module for module in imported
                   if module not in sys.stdlib_module_names and module not in (*APP_PACKAGES, "__future__")}
    missing = {module: providers.get(module) for module in third_party
               if not any(name(dist) in installed for dist in providers.get(module, []))}
    assert missing == {}
