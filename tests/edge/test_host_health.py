"""The Pi's figures for county IT (edge_health `host`): version, disk, CPU temperature, clock sync, database size."""

from __future__ import annotations

from pathlib import Path

from edge_agent import host_health
from edge_agent.agent import EdgeAgent
from edge_agent.config import parse_config
from edge_agent.host_health import CLOCK_SYNCED, CLOCK_UNKNOWN, CLOCK_UNSYNCED, HostHealth
from protocol import messages
from tests.edge.test_staff_sign_in import raw_config
from tests.support.waiting import wait_until

# What these commands print on Raspberry Pi OS (Debian 12): timedatectl of systemd 252, chronyc of chrony 4.3.
CHRONY_SYNCED = """Reference ID    : C0A80101 (192.168.1.1)
Stratum         : 3
System time     : 0.000012345 seconds fast of NTP time
Leap status     : Normal
"""
CHRONY_UNSYNCED = """Reference ID    : 00000000 ()
Stratum         : 0
Leap status     : Not synchronised
"""


def runner(answers: dict[str, str | None]):
    """Commands by name -> their output; a name not listed is a command that is not installed."""
    return lambda argv: answers.get(argv[0])


def no_kernel() -> None:
    return None


def test_clock_sync_asks_timedatectl_then_chrony_then_the_kernel():
    assert host_health.clock_sync(runner({"timedatectl": "yes\n"}), no_kernel) == (CLOCK_SYNCED, "timedatectl")
    assert host_health.clock_sync(runner({"timedatectl": "no\n"}), no_kernel) == (CLOCK_UNSYNCED, "timedatectl")
    # No systemd running (timedatectl fails): chrony answers.
    assert host_health.clock_sync(runner({"chronyc": CHRONY_SYNCED}), no_kernel) == (CLOCK_SYNCED, "chrony")
    assert host_health.clock_sync(runner({"chronyc": CHRONY_UNSYNCED}), no_kernel) == (CLOCK_UNSYNCED, "chrony")
    assert host_health.clock_sync(runner({}), lambda: CLOCK_UNSYNCED) == (CLOCK_UNSYNCED, "adjtimex")
    assert host_health.clock_sync(runner({}), no_kernel) == (CLOCK_UNKNOWN, "")


def test_the_kernel_answers_adjtimex_on_this_machine():
    """Read-only adjtimex needs no privilege; whatever the clock's state here, the kernel gives one."""
    assert host_health.clock_from_adjtimex() in (CLOCK_SYNCED, CLOCK_UNSYNCED)


def test_cpu_temperature_prefers_the_cpu_zone_and_is_none_without_thermal_zones(tmp_path):
    assert host_health.cpu_temperature_c(tmp_path / "absent") is None
    assert host_health.cpu_temperature_c(tmp_path) is None
    for name, kind, millidegrees in (("thermal_zone0", "gpu-thermal", "39000"), ("thermal_zone1", "cpu-thermal",
                                                                                   "51234")):
        zone = tmp_path / name
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(millidegrees + "\n")
    assert host_health.cpu_temperature_c(tmp_path) == 51.2


def test_version_is_the_packages_or_development(tmp_path):
    assert host_health.agent_version(tmp_path / "VERSION") == "development"
    (tmp_path / "VERSION").write_text("0.1.0+r812\n")
    assert host_health.agent_version(tmp_path / "VERSION") == "0.1.0+r812"


def test_figures_are_read_again_only_after_the_refresh_interval(tmp_path: Path):
    now = [100.0]
    asked = []

    def clock() -> tuple[str, str]:
        asked.append(now[0])
        return CLOCK_SYNCED, "timedatectl"

    database = tmp_path / "edge.sqlite3"
    database.write_bytes(b"x" * 4096)
    (tmp_path / "edge.sqlite3-wal").write_bytes(b"x" * 1000)
    host = HostHealth(tmp_path, database, version="1.2.3", thermal_dir=tmp_path / "none", clock=clock,
                      refresh_s=60, monotonic=lambda: now[0])
    figures = host.figures()
    assert figures["version"] == "1.2.3" and figures["db_bytes"] == 5096 and figures["cpu_temp_c"] is None
    assert figures["clock"] == CLOCK_SYNCED and figures["clock_source"] == "timedatectl"
    assert 0 < figures["disk_free_bytes"] <= figures["disk_total_bytes"]
    now[0] += 59
    host.figures()
    assert asked == [100.0]
    now[0] += 1
    host.figures()
    assert asked == [100.0, 160.0]


def test_the_county_gets_the_host_figures_in_edge_health(tmp_path):
    agent = EdgeAgent(parse_config(raw_config(tmp_path)))
    try:
        agent.queue.issue_ticket("A")
        summary = agent.health_summary()
        messages.validate("edge_health", {"v": 1, **summary})
        host = summary["host"]
        assert host["version"] == "development"  # run from the source tree
        assert host["db_bytes"] > 0 and host["disk_free_bytes"] > 0
        assert host["clock"] in (CLOCK_SYNCED, CLOCK_UNSYNCED, CLOCK_UNKNOWN)
        assert "cpu_temp_c" in host
    finally:
        agent.store.close()


def test_how_long_the_clock_has_been_unsynced_is_counted_on_the_monotonic_clock(tmp_path: Path):
    """The county alerts on a clock unsynced for a while; the wall clock is the one that may be wrong."""
    now = [1000.0]
    states = iter([CLOCK_UNSYNCED, CLOCK_UNSYNCED, CLOCK_UNSYNCED, CLOCK_SYNCED, CLOCK_UNSYNCED])
    host = HostHealth(tmp_path, tmp_path / "edge.sqlite3", version="1", thermal_dir=tmp_path,
                      clock=lambda: (next(states), "chrony"), refresh_s=60, monotonic=lambda: now[0])
    readings = []
    for _ in range(5):
        readings.append(host.figures()["clock_unsynced_s"])
        now[0] += 60
    assert readings == [0, 60, 120, 0, 0]


def test_in_the_background_a_slow_clock_source_never_holds_up_the_caller(tmp_path: Path):
    """The agent asks from its event loop: after the first reading, a refresh runs in a thread."""
    import threading

    now = [0.0]
    release = threading.Event()
    answers = iter([(CLOCK_SYNCED, "timedatectl"), (CLOCK_UNSYNCED, "timedatectl")])

    def slow_clock() -> tuple[str, str]:
        answer = next(answers)
        if answer[0] == CLOCK_UNSYNCED:
            release.wait(timeout=30)  # timedatectl waiting for its daemon
        return answer

    host = HostHealth(tmp_path, tmp_path / "edge.sqlite3", version="1", thermal_dir=tmp_path, clock=slow_clock,
                      refresh_s=60, monotonic=lambda: now[0], in_background=True)
    assert host.figures()["clock"] == CLOCK_SYNCED  # the first reading is made at once
    now[0] = 60
    assert host.figures()["clock"] == CLOCK_SYNCED  # answered while the refresh waits
    release.set()
    wait_until(lambda: host.figures()["clock"] == CLOCK_UNSYNCED, what="the refreshed figures")
