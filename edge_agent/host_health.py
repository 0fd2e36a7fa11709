"""The Raspberry Pi under the agent, for county IT: version, data disk, CPU temperature, clock, database size.

County IT looks after 300 centers it cannot visit: a Pi whose SD card fills up stops issuing tickets, one
that overheats in a closed cabinet in summer throttles or resets, and one whose clock is wrong dates every
ticket and rating wrongly (the county's "today" and every waiting time are computed from the edge's
timestamps). So edge_health carries these figures as `host` (docs/protocol.md, edge_health).

Each source may be missing on a given machine, and is then reported as such, never guessed:
- CPU temperature from /sys/class/thermal (absent in most containers and VMs): None;
- clock sync from `timedatectl` (systemd-timesyncd, or any NTP daemon systemd knows), else from chrony's
  `chronyc tracking`, else from the kernel itself (adjtimex: the NTP daemon clears STA_UNSYNC once it
  disciplines the clock); none of them answers: `unknown`.

The figures are read at most once a minute: the summary is made every second, and a figure that changed
on every reading (free bytes, temperature) would make the uplink publish every second.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

CLOCK_SYNCED = "synced"
CLOCK_UNSYNCED = "unsynced"
CLOCK_UNKNOWN = "unknown"

DEVELOPMENT_VERSION = "development"
# Written by the Debian package's build (tools/build_deb.py) beside this module; absent in a source tree.
VERSION_FILE = Path(__file__).resolve().parent / "VERSION"
THERMAL_DIR = Path("/sys/class/thermal")
REFRESH_S = 60.0
COMMAND_TIMEOUT_S = 3.0

# The kernel's timex status bit "clock not synchronised" and adjtimex's answer TIME_ERROR (linux/timex.h).
STA_UNSYNC = 0x0040
TIME_ERROR = 5

Runner = Callable[[list[str]], str | None]


def agent_version(version_file: Path = VERSION_FILE) -> str:
    """The installed package's version, or `development` when the agent runs from a source tree."""
    try:
        return version_file.read_text(encoding="utf-8").strip() or DEVELOPMENT_VERSION
    except OSError:
        return DEVELOPMENT_VERSION


def cpu_temperature_c(thermal_dir: Path = THERMAL_DIR) -> float | None:
    """The CPU's temperature in °C: the zone whose type names the CPU (a Pi's `cpu-thermal`), else the first."""
    zones = sorted(thermal_dir.glob("thermal_zone*")) if thermal_dir.is_dir() else []
    zones.sort(key=lambda zone: "cpu" not in _read(zone / "type").lower())  # stable: CPU zones first
    for zone in zones:
        raw = _read(zone / "temp")
        try:
            return round(int(raw) / 1000, 1)  # millidegrees Celsius
        except ValueError:
            continue
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def run_command(argv: list[str]) -> str | None:
    """The standard output of a command that succeeded, or None (missing, failed, too slow)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def clock_from_timedatectl(run: Runner) -> str | None:
    answer = run(["timedatectl", "show", "--property=NTPSynchronized", "--value"])
    if answer is None:
        return None  # no systemd, or not running under it
    value = answer.strip()
    return {"yes": CLOCK_SYNCED, "no": CLOCK_UNSYNCED}.get(value)


def clock_from_chrony(run: Runner) -> str | None:
    answer = run(["chronyc", "-n", "tracking"])
    if answer is None:
        return None
    for line in answer.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "Leap status":
            return CLOCK_UNSYNCED if "not synchronised" in value.lower() else CLOCK_SYNCED
    return None


class _Timex(ctypes.Structure):
    # struct timex of linux/timex.h on 64-bit Linux (aarch64, x86_64): 4 + 11 longs/timevals, then padding.
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
                ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
                ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
                ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
                ("padding", ctypes.c_int * 11)]


def clock_from_adjtimex() -> str | None:
    """The kernel's view (modes 0 only reads, no privilege needed): synchronised once an NTP daemon said so."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        adjtimex = ctypes.CDLL(name, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    timex = _Timex()
    answer = adjtimex(ctypes.byref(timex))
    if answer < 0:
        return None
    return CLOCK_UNSYNCED if answer == TIME_ERROR or timex.status & STA_UNSYNC else CLOCK_SYNCED


def clock_sync(run: Runner = run_command, kernel: Callable[[], str | None] = clock_from_adjtimex) -> tuple[str, str]:
    """(state, source): the first source that answers, or (unknown, "")."""
    for source, ask in (("timedatectl", lambda: clock_from_timedatectl(run)),
                        ("chrony", lambda: clock_from_chrony(run)), ("adjtimex", kernel)):
        state = ask()
        if state is not None:
            return state, source
    return CLOCK_UNKNOWN, ""


def database_bytes(database: Path) -> int:
    """The database with its write-ahead log and shared-memory file: what it takes on the disk."""
    total = 0
    for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return total


class HostHealth:
    """The `host` figures of edge_health, read again at most every `refresh_s`.

    `in_background`: a refresh after the first runs in a thread and the figures before it are answered
    meanwhile. The agent asks from its event loop, and `timedatectl` goes through D-Bus to a daemon that may
    first have to be started: the kiosk and the callers must not wait for that once a minute.
    """

    def __init__(self, data_dir: Path, database: Path, version: str | None = None,
                 thermal_dir: Path = THERMAL_DIR, clock: Callable[[], tuple[str, str]] = clock_sync,
                 refresh_s: float = REFRESH_S, monotonic: Callable[[], float] = time.monotonic,
                 in_background: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.database = Path(database)
        self.version = version or agent_version()
        self.thermal_dir = thermal_dir
        self.clock = clock
        self.refresh_s = refresh_s
        self.monotonic = monotonic
        self.in_background = in_background
        self._figures: dict | None = None
        self._read_at = 0.0
        self._unsynced_since: float | None = None  # monotonic: a wrong wall clock cannot say how long it was wrong
        self._lock = threading.Lock()

    def figures(self) -> dict:
        with self._lock:
            due = self._figures is None or self.monotonic() - self._read_at >= self.refresh_s
            if due:
                self._read_at = self.monotonic()  # one refresh at a time
            first = self._figures is None
        if due and self.in_background and not first:
            threading.Thread(target=self._refresh, name="host figures", daemon=True).start()
        elif due:
            self._refresh()
        with self._lock:
            return dict(self._figures or {})

    def _refresh(self) -> None:
        figures = self.read()
        with self._lock:
            self._figures = figures

    def read(self) -> dict:
        try:
            disk = shutil.disk_usage(self.data_dir)
            total, free = disk.total, disk.free
        except OSError:
            total = free = None
        state, source = self.clock()
        if state != CLOCK_UNSYNCED:
            self._unsynced_since = None
        elif self._unsynced_since is None:
            self._unsynced_since = self.monotonic()
        unsynced_s = 0 if self._unsynced_since is None else round(self.monotonic() - self._unsynced_since)
        return {"version": self.version, "disk_total_bytes": total, "disk_free_bytes": free,
                "cpu_temp_c": cpu_temperature_c(self.thermal_dir), "clock": state, "clock_source": source,
                "clock_unsynced_s": unsynced_s, "db_bytes": database_bytes(self.database)}
