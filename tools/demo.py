"""`make demo`: a county in miniature on this machine, until Ctrl-C.

Starts a county broker and a center broker (our own Mosquitto processes),
the fleet service, the edge agent of a sample center and simulated devices
for its three windows, then prints where to look. The simulated devices are
registered with the fleet first, as provisioning registers a board, and run
with the broker account and device key the fleet issued: county IT can
configure them and send them commands from the dashboard. Both brokers run
with accounts, as a county's do: the fleet writes the county broker's files
(its own account, the edge's) and the center broker's (the edge's, the
devices'), the edge gets its credentials and edge key from the fleet and
installs the center broker's files the fleet sends it (signed), and every
party connects with its own account. Ctrl-C stops every process it started;
a stale run left behind (e.g. after a kill -9) is cleaned up at the next
start, so `make demo` always starts cleanly. A
process that crashes is started again with a message, as the systemd
services of a real center are: at most 5 times within 10 minutes, then the
demo stops.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import httpx
from sqlalchemy import Engine

from edge_agent.config import load_config
from edge_agent.sign_in import hash_secret
from firmware.sim import sim_devices
from fleet.auth.bootstrap import ensure_user, issue_token
from fleet.auth.principal import CLI_USER
from fleet.catalogue.service import seed_center
from fleet.centers.models import LEVEL_TOWN
from fleet.centers.profile import center_profile, save_profile
from fleet.db import create_db_engine, init_db, write_session
from fleet.models import utcnow
from fleet.registration.broker_files import CENTER_BROKER_SETTINGS, write_passwd_and_acl
from fleet.registration.county_broker import COUNTY_BROKER_SETTINGS
from fleet.registration.county_cli import write_county_files
from fleet.registration.service import issue_fleet_account
from provisioning.fleet_registration import post_registration
from tools.mosquitto import MosquittoBroker, free_port, port_is_open

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CONFIG = ROOT / "edge_agent" / "sample-center.toml"
CENTER_CODE = "445202101001"
WINDOWS = 3
# The fleet dashboard needs a login; the demo makes (or resets) this county administrator.
DEMO_USER = "admin"
DEMO_PASSWORD = "demo-admin"
# The center's administrator (/admin) and the PINs the demo gives the sample staff to sign in at the callers.
CENTER_ADMIN_PASSWORD = "demo-center"
STAFF_PINS = {"1001": "111111", "1002": "222222", "1003": "333333", "1009": "999999"}
STAFF_WINDOWS = {"1001": "window 1", "1002": "window 2", "1003": "window 3", "1009": "any window, stand-in"}
# Who the fleet records as having provisioned the simulated devices.
TECHNICIAN = "make demo"
SIM_BOARD = "sim"
# The fleet's account on the county broker (its ingest's client id too: the broker binds ids to user names).
FLEET_ACCOUNT = "fleet-demo"


def firmware_image_sha256() -> str:
    """What the simulator runs, as provisioning hashes an image: sha256 over the sorted (path, sha256) pairs."""
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("firmware/**/*.py"), *ROOT.glob("protocol/**/*.py")]):
        digest.update(f"{path.relative_to(ROOT)}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def seed_catalogue(engine: Engine) -> None:
    """The sample center's items go into the county's catalogue (kept by its town, enabled at the center), as
    a county starts its 事项清单 from the centers it runs: the fleet then has the guides it sends the center."""
    sample = load_config(SAMPLE_CONFIG)
    with write_session(engine) as session:
        seed_center(session, CLI_USER, sample.code, [asdict(item) for item in sample.items],
                    [{"prefix": s.prefix, "name": s.name} for s in sample.services], utcnow())


def seed_registry(engine: Engine) -> None:
    """The sample center is in the county's register under its name (统一标识) and phones from its TOML, so the
    dashboard names it beside its code; once written, county IT's own edits are left alone."""
    sample = load_config(SAMPLE_CONFIG)
    with write_session(engine) as session:
        if not center_profile(session, sample.code)["registered"]:
            save_profile(session, CLI_USER, sample.code, {
                "name": sample.name, "level": LEVEL_TOWN, "consult_phone": sample.consult_phone,
                "complaint_phone": sample.complaint_phone}, utcnow())


def write_secret(path: Path, text: str) -> None:
    """A file only this user may read (it holds an API token or device credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


# As systemd's Restart=on-failure with StartLimitBurst=5 and StartLimitIntervalSec=600 would for the services of a
# real center: a crashed process is started again, and one that keeps crashing is given up on.
RESTARTS = 5
RESTARTS_WITHIN_S = 600.0


class RestartLimit:
    """At most `times` restarts within `within_s` seconds; the caller passes the time (monotonic seconds)."""

    def __init__(self, times: int = RESTARTS, within_s: float = RESTARTS_WITHIN_S) -> None:
        self.times = times
        self.within_s = within_s
        self.restarts: list[float] = []

    def count(self, now: float) -> int:
        """Restarts within the window that ends now."""
        self.restarts = [t for t in self.restarts if now - t < self.within_s]
        return len(self.restarts)

    def allow(self, now: float) -> bool:
        """May the process be started again now? (counted when it may)"""
        if self.count(now) >= self.times:
            return False
        self.restarts.append(now)
        return True


def pick_port(preferred: int) -> int:
    return preferred if not port_is_open(preferred) else free_port()


def stop_stale_run(run_dir: Path) -> None:
    """Stop processes a previous demo in this run dir left behind."""
    pid_file = run_dir / "pids"
    if not pid_file.exists():
        return
    for line in pid_file.read_text().split():
        try:
            pid = int(line)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (ValueError, OSError):
            continue
        if str(run_dir) in cmdline:  # only ours: the run dir is in every command line we start
            os.kill(pid, signal.SIGTERM)
    pid_file.unlink()


class Demo:
    def __init__(self, run_dir: Path, base_port: int) -> None:
        self.run_dir = run_dir
        self.ports = {
            "county": pick_port(base_port), "center": pick_port(base_port + 1),
            "fleet": pick_port(base_port + 2), "edge": pick_port(base_port + 3), "devices": pick_port(base_port + 4),
        }
        self.brokers: list[MosquittoBroker] = []
        self.programs: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, list[str]] = {}  # how each program was started, to start it again
        self.envs: dict[str, dict[str, str]] = {}  # and with which environment of its own (credentials)
        self.limits: dict[str, RestartLimit] = {}

    def _record_pids(self) -> None:
        pids = [b.process.pid for b in self.brokers if b.process] + [p.pid for p in self.programs.values()]
        (self.run_dir / "pids").write_text("\n".join(str(p) for p in pids) + "\n")

    def _start_program(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.run_dir / f"{name}.log", "ab")
        env = env if env is not None else self.envs.get(name, {})
        # The demo dashboard is plain http on 127.0.0.1: session cookies without the Secure flag.
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "FLEET_SESSION_COOKIE_SECURE": "0", **env}
        self.programs[name] = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log, stderr=log,
                                               env=full_env)
        log.close()  # the child has its own copy
        self.commands[name], self.envs[name] = args, env
        self._record_pids()

    def _wait_http(self, name: str, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.programs[name].poll() is not None:
                raise RuntimeError(f"{name} exited; its log: {self.run_dir / (name + '.log')}")
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer at {url}")

    def write_edge_config(self, edge: dict[str, str]) -> Path:
        """The sample center's config with the demo's ports and what the fleet issued to its edge (`edge`: the
        answer of POST /api/centers/<code>/edge-credentials), installing the center broker's files it sends."""
        text = SAMPLE_CONFIG.read_text(encoding="utf-8")
        text = text.replace("port = 1883", f"port = {self.ports['center']}")
        text = text.replace("port = 1884", f"port = {self.ports['county']}")
        text = text.replace("port = 8080", f"port = {self.ports['edge']}")
        text = text.replace("[brokers.center]\n", f'[brokers.center]\nusername = "{edge["username"]}"\n'
                                                   f'password = "{edge["password"]}"\n')
        text = text.replace("[brokers.county]\n", f'[brokers.county]\nusername = "{edge["county_username"]}"\n'
                                                   f'password = "{edge["county_password"]}"\n'
                                                   f'edge_key = "{edge["edge_key"]}"\n')
        files = self.center_files_dir
        text += (f'\n[center_broker]\npassword_file = "{files / "passwd"}"\nacl_file = "{files / "acl"}"\n'
                 f'pid_file = "{files / "mosquitto.pid"}"\n')
        text += f'\n[admin]\npassword_hash = "{hash_secret(CENTER_ADMIN_PASSWORD)}"\n'
        path = self.run_dir / "edge" / "center.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_secret(path, text)  # it holds the edge's passwords and key
        return path

    @property
    def center_files_dir(self) -> Path:
        return self.run_dir / "brokers" / "center-accounts"

    @property
    def county_files_dir(self) -> Path:
        return self.run_dir / "brokers" / "county-accounts"

    def county_accounts(self, fleet_db: str) -> str:
        """What county IT does on the fleet's server: a fleet account (its password, new at every start, is
        returned for the fleet's environment) and the county broker's files with every account issued so far."""
        engine = create_db_engine(fleet_db)
        try:
            init_db(engine)
            with write_session(engine) as session:
                password = issue_fleet_account(session, CLI_USER, FLEET_ACCOUNT, utcnow())
            seed_catalogue(engine)
            seed_registry(engine)
            write_county_files(engine, self.county_files_dir)
        finally:
            engine.dispose()
        return password

    def write_county_files(self, fleet_db: str) -> None:
        engine = create_db_engine(fleet_db)
        try:
            write_county_files(engine, self.county_files_dir)
        finally:
            engine.dispose()

    def edge_credentials(self, fleet_db: str) -> dict[str, str]:
        """The center's edge is set up as county IT sets one up: credentials from the fleet (new at every start:
        the demo writes the edge's config each time), the county broker's files written again with its account
        (and the broker reloaded), and the center broker's first files from the fleet."""
        headers = {"Authorization": f"Bearer {self.provisioning_token(fleet_db)}"}
        answer = httpx.post(self.url("fleet", f"/api/centers/{CENTER_CODE}/edge-credentials"), headers=headers,
                            timeout=30)
        answer.raise_for_status()
        self.write_county_files(fleet_db)
        next(b for b in self.brokers if b.name == "county").reload()
        files = httpx.get(self.url("fleet", f"/api/centers/{CENTER_CODE}/broker-files"), headers=headers, timeout=30)
        files.raise_for_status()
        write_passwd_and_acl(files.json()["passwd"], files.json()["acl"], self.center_files_dir)
        return answer.json()

    def _wait_registered_devices(self, timeout: float = 60) -> None:
        """Until the edge has installed the center broker's files with every simulated device's account."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                accounts = httpx.get(self.url("edge", "/api/health"), timeout=2).json().get("broker_accounts", {})
                if accounts.get("registered_devices", 0) >= 2 * WINDOWS and accounts.get("state") == "installed":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the edge did not install the devices' broker accounts; see {self.run_dir / 'edge.log'}")

    def _start_broker(self, name: str, files: Path, settings: tuple[str, ...], pid: bool = False) -> None:
        broker = MosquittoBroker(self.run_dir / "brokers", name, self.ports[name], password_file=files / "passwd",
                                 acl_file=files / "acl", pid_file=files / "mosquitto.pid" if pid else None,
                                 settings=settings)
        self.brokers.append(broker.start())
        self._record_pids()

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        stop_stale_run(self.run_dir)
        county_url = f"mqtt://127.0.0.1:{self.ports['county']}"
        center_url = f"mqtt://127.0.0.1:{self.ports['center']}"
        (self.run_dir / "fleet").mkdir(exist_ok=True)
        fleet_db = f"sqlite:///{self.run_dir / 'fleet' / 'fleet.db'}"
        ensure_user(fleet_db, DEMO_USER, "county_admin", DEMO_PASSWORD)
        fleet_password = self.county_accounts(fleet_db)
        self._start_broker("county", self.county_files_dir, COUNTY_BROKER_SETTINGS)
        self._start_program("fleet", [
            "-m", "fleet", "--database-url", fleet_db,
            "--broker", county_url, "--host", "127.0.0.1", "--port", str(self.ports["fleet"]),
            "--heartbeat-timeout", "30"], env={"FLEET_BROKER_USERNAME": FLEET_ACCOUNT,
                                               "FLEET_BROKER_PASSWORD": fleet_password,
                                               "FLEET_MQTT_CLIENT_ID": FLEET_ACCOUNT})
        self._wait_http("fleet", self.url("fleet", "/healthz"))
        edge = self.edge_credentials(fleet_db)
        # The center broker's files are the edge's to keep from now on: it installs what the fleet sends and
        # reloads this Mosquitto (its pid file).
        self._start_broker("center", self.center_files_dir, CENTER_BROKER_SETTINGS, pid=True)
        self._start_program("edge", ["-m", "edge_agent", "--config", str(self.write_edge_config(edge))])
        self._wait_http("edge", self.url("edge", "/api/health"))
        credentials = self.register_devices(fleet_db)
        self._wait_registered_devices()
        self._start_program("devices", [
            "-m", "firmware.sim", "--center", CENTER_CODE, "--broker", center_url, "--windows", str(WINDOWS),
            "--state-dir", str(self.run_dir / "devices"), "--http-port", str(self.ports["devices"]),
            "--health-interval", "10", "--credentials", str(credentials),
            # DEMO_OTA_TRIAL_S: how long an updated device must stay healthy before it keeps the new firmware
            # (a board's 30 s by default; tests shorten it).
            *(["--trial-healthy", os.environ["DEMO_OTA_TRIAL_S"]] if os.environ.get("DEMO_OTA_TRIAL_S") else [])])
        self.set_staff_pins()
        self._wait_http("devices", self.url("devices", "/state.json"))

    def provisioning_token(self, fleet_db: str) -> str:
        """The API token the demo registers devices with, as a technician's: kept in the run dir across runs."""
        path = self.run_dir / "fleet" / "provisioning-token"
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            me = httpx.get(self.url("fleet", "/api/me"), headers={"Authorization": f"Bearer {token}"}, timeout=10)
            if me.status_code == 200:
                return token
        token = issue_token(fleet_db, DEMO_USER, "make demo: registers the simulated devices")
        write_secret(path, token + "\n")
        return token

    def register_devices(self, fleet_db: str) -> Path:
        """Register every simulated device with the fleet, as `provision device --fleet` registers a board.

        The fleet's answers (broker account, device key) are saved for the simulator, which writes them
        into each device's config.json. A rerun offers what the devices hold (`keep`), so nothing rotates and
        configurations signed before still verify, as a re-provisioned board keeps its credentials.
        """
        path = self.run_dir / "devices" / "credentials.json"
        held: dict[str, dict] = {}
        if path.exists():
            try:
                held = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                held = {}
        token = self.provisioning_token(fleet_db)
        image = firmware_image_sha256()
        issued: dict[str, dict] = {}
        for device_id, role, window, mac in sim_devices(CENTER_CODE, list(range(1, WINDOWS + 1))):
            body: dict = {"device_id": device_id, "center": CENTER_CODE, "window": window, "role": role,
                          "board": SIM_BOARD, "mac": mac, "image_sha256": image, "provisioned_by": TECHNICIAN}
            keep = held.get(device_id) if isinstance(held.get(device_id), dict) else {}
            keep = {name: keep.get(name) for name in ("broker_username", "broker_password", "device_key")}
            if all(isinstance(value, str) and value for value in keep.values()):
                body["keep"] = keep
            answer = post_registration(self.url("fleet").rstrip("/"), token, body)
            issued[device_id] = {name: answer[name] for name in ("broker_username", "broker_password", "device_key")}
        write_secret(path, json.dumps(issued, indent=2) + "\n")
        return path

    def set_staff_pins(self) -> None:
        """What a center administrator does on /admin: give each staff member a PIN."""
        with httpx.Client(base_url=self.url("edge")) as admin:
            admin.post("/api/admin/login", json={"password": CENTER_ADMIN_PASSWORD}).raise_for_status()
            for staff_no, pin in STAFF_PINS.items():
                admin.post(f"/api/admin/staff/{staff_no}/pin", json={"pin": pin}).raise_for_status()

    def url(self, name: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def describe(self) -> str:
        lines = [
            "",
            "示例镇便民服务中心 (445202101001) is running. Open:",
            f"  fleet dashboard (county IT)   {self.url('fleet')}",
            f"    log in as                   {DEMO_USER} / {DEMO_PASSWORD}",
            f"  kiosk 取号                     {self.url('edge', '/kiosk')}",
        ]
        lines += [f"  window {w} staff caller 呼叫器   {self.url('edge', f'/staff/{w}')}"
                  for w in range(1, WINDOWS + 1)]
        lines += [f"    staff sign in 工号 / 密码     {staff_no} / {pin} ({STAFF_WINDOWS[staff_no]})"
                  for staff_no, pin in STAFF_PINS.items()]
        lines += [
            f"  center admin 中心管理           {self.url('edge', '/admin')}",
            f"    password                    {CENTER_ADMIN_PASSWORD}",
            f"  hall display 综合屏            {self.url('edge', '/hall')}",
            f"  simulated devices 模拟设备      {self.url('devices')}",
            f"  county broker                 mqtt://127.0.0.1:{self.ports['county']}",
            f"  center broker                 mqtt://127.0.0.1:{self.ports['center']}",
            f"  logs, databases, printer bytes {self.run_dir}",
            "Press Ctrl-C to stop everything.",
        ]
        return "\n".join(lines)

    def restart_crashed(self, now: float) -> str | None:
        """Start again every process that has died (a message for each); the name of one past its limit, if any.

        `now`: monotonic seconds, for the limit of RESTARTS within RESTARTS_WITHIN_S per process.
        """
        dead = [(name, process.returncode) for name, process in self.programs.items() if process.poll() is not None]
        dead += [(f"{broker.name} broker", broker.process.returncode if broker.process else None)
                 for broker in self.brokers if broker.process is None or broker.process.poll() is not None]
        for name, code in dead:
            limit = self.limits.setdefault(name, RestartLimit())
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            if not limit.allow(now):
                print(f"demo: {name} exited ({how}) again: {limit.times} restarts within "
                      f"{limit.within_s / 60:g} minutes are enough; stopping (see the logs in {self.run_dir})",
                      file=sys.stderr, flush=True)
                return name
            print(f"demo: {name} exited ({how}); starting it again ({limit.count(now)} of {limit.times} restarts "
                  f"within {limit.within_s / 60:g} minutes; its log is in {self.run_dir})", file=sys.stderr,
                  flush=True)
            try:
                self._start_again(name)
            except Exception as exc:  # e.g. its port was taken meanwhile: counted, tried again next round
                print(f"demo: {name} could not be started again: {exc}", file=sys.stderr, flush=True)
        return None

    def _start_again(self, name: str) -> None:
        if name in self.programs:
            self._start_program(name, self.commands[name])
            return
        broker = next(b for b in self.brokers if f"{b.name} broker" == name)
        broker.stop()  # reaps what is left of the old process
        broker.start()
        self._record_pids()

    def stop(self) -> None:
        for process in reversed(list(self.programs.values())):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.programs.items():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                print(f"demo: {name} did not stop; killing it", file=sys.stderr)
                process.kill()
                process.wait(5)
        for broker in reversed(self.brokers):
            broker.stop()
        (self.run_dir / "pids").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path(os.environ.get("DEMO_RUN_DIR", ROOT / ".run" / "demo")))
    parser.add_argument("--base-port", type=int, default=int(os.environ.get("DEMO_BASE_PORT", "18830")))
    args = parser.parse_args(argv)

    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    demo = Demo(args.run_dir.resolve(), args.base_port)
    try:
        demo.start()
        print(demo.describe(), flush=True)
        while not stopping:
            if demo.restart_crashed(time.monotonic()) is not None:
                return 1
            time.sleep(0.5)
        print("\nstopping ...", flush=True)
        return 0
    except Exception as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.stop()


if __name__ == "__main__":
    sys.exit(main())
