"""`make demo` behaves like the systemd services of a real center: a crashed process is started again, with a
message, up to a limit (issue 19: the demo died with its first crashed process)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.support.waiting import wait_until
from tests.test_demo import DemoRun
from tools.demo import RestartLimit
from tools.mosquitto import free_port


def pid_of(run_dir: Path, module: str) -> int:
    """The pid of the demo's process running `python -m module` (from the demo's own pid file)."""
    for line in (run_dir / "pids").read_text().split():
        try:
            cmdline = Path(f"/proc/{line}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if module.encode() in cmdline and str(run_dir).encode() in b" ".join(cmdline):
            return int(line)
    raise AssertionError(f"no {module} process in {run_dir / 'pids'}")


def test_restarts_are_limited_to_so_many_within_a_window():
    limit = RestartLimit(times=5, within_s=600)
    assert [limit.allow(t) for t in (0, 10, 20, 30, 40)] == [True] * 5
    assert limit.allow(50) is False  # a sixth within ten minutes: something is really broken
    assert limit.allow(601) is True  # the first restart is more than ten minutes old
    assert limit.count(601) == 5


@pytest.mark.broker
def test_a_sigkilled_edge_agent_is_started_again_and_the_kiosk_works(tmp_path):
    run_dir = tmp_path / "run"
    demo = DemoRun(run_dir, free_port(), tmp_path / "demo.txt")
    try:
        kiosk = demo.urls()["kiosk"].removesuffix("/kiosk")
        first = httpx.post(f"{kiosk}/api/tickets", json={"service": "A"}, timeout=10)
        assert first.json()["number"] == "A001"

        killed = pid_of(run_dir.resolve(), "edge_agent")
        os.kill(killed, signal.SIGKILL)  # a crash: no clean stop
        wait_until(lambda: "demo: edge exited" in demo.text() and "starting it again" in demo.text(), 60,
                   "the demo to say it starts the edge again")
        assert demo.process.poll() is None, demo.text()

        def ticket() -> dict | None:
            response = httpx.post(f"{kiosk}/api/tickets", json={"service": "A"}, timeout=10)
            return response.json() if response.status_code == 200 else None

        again = wait_until(ticket, 60, "the kiosk to issue tickets again")
        assert again["number"] == "A002"  # the same center, its queue kept on disk
        assert pid_of(run_dir.resolve(), "edge_agent") != killed
        assert demo.process.poll() is None
    finally:
        code = demo.interrupt()
    assert code == 0, demo.text()
