"""SIGKILL the edge agent while residents take tickets: nothing issued is lost, no number is issued twice,
and after a restart every window's display shows again what it showed."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import paho.mqtt.client as mqtt
import pytest

from protocol import topics
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.processes import Program
from tests.support.staff import signed_in
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker


def retained_displays(port: int) -> dict[int, dict]:
    """What a display of each window would get from the center broker if it booted now."""
    got: dict[int, dict] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.__setitem__(json.loads(m.payload)["window"], json.loads(m.payload))
    client.connect("127.0.0.1", port)
    client.subscribe(topics.subscription(topics.WINDOW_DISPLAY, center=CENTER_CODE), qos=1)
    client.loop_start()
    try:
        return wait_until(lambda: dict(got) if len(got) == 3 else None, what="three retained displays")
    finally:
        client.loop_stop()
        client.disconnect()


def stored_tickets(db_path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT service, seq, number FROM tickets ORDER BY id").fetchall()


def test_sigkill_during_a_burst_of_tickets_loses_nothing_and_displays_come_back(tmp_path, center_broker,
                                                                                county_broker):
    port = free_port()
    config = write_edge_config(tmp_path / "edge", center_broker.port, county_broker.port, port)
    base = f"http://127.0.0.1:{port}"
    agent = Program(["-m", "edge_agent", "--config", str(config)], tmp_path / "edge.log", f"{base}/api/health")
    agent.start()
    try:
        # Windows in three different states: serving B001, serving A001 after a recall, paused.
        for service in "AB":
            httpx.post(f"{base}/api/tickets", json={"service": service}).raise_for_status()
        window = {n: signed_in(base, n, pins_set=n > 1) for n in (1, 2, 3)}
        assert window[2].press("next").json()["ticket"] == "B001"
        assert window[3].press("next").json()["ticket"] == "A001"
        window[3].press("recall").raise_for_status()
        window[1].press("pause").raise_for_status()
        wait_until(lambda: retained_displays(center_broker.port)[1]["state"] == "paused", what="window 1 paused")
        before = retained_displays(center_broker.port)
        assert (before[2]["ticket"], before[3]["ticket"], before[3]["call_seq"]) == ("B001", "A001", 2)

        accepted: list[str] = []
        lock = threading.Lock()
        killed = threading.Event()

        def take(client: httpx.Client, i: int) -> None:
            if killed.is_set():
                return
            try:
                response = client.post(f"{base}/api/tickets", json={"service": "AB"[i % 2]})
            except httpx.HTTPError:
                return  # the agent died under this request: the resident saw no number
            if response.status_code == 200:
                with lock:
                    accepted.append(response.json()["number"])

        with httpx.Client(timeout=10, limits=httpx.Limits(max_connections=16)) as client, \
                ThreadPoolExecutor(16) as pool:
            for i in range(600):
                pool.submit(take, client, i)
            wait_until(lambda: len(accepted) >= 60, timeout=60, what="a burst of tickets under way")
            agent.stop(signal.SIGKILL)
            killed.set()
        assert agent.process.returncode == -signal.SIGKILL

        center_broker.restart()  # and the broker forgot every retained display
        agent.start()
        db = tmp_path / "edge" / "data" / "edge.sqlite3"
        tickets = stored_tickets(db)
        numbers = [number for _, _, number in tickets]
        assert len(numbers) == len(set(numbers)), "a number was issued twice"
        assert set(accepted) <= set(numbers), "a ticket a resident was given is gone"
        assert len(numbers) < 602, "the kill came after the burst: nothing was proven"
        for service in "AB":  # numbering continuous: 1..n, no gap, and the next one is n+1
            seqs = [seq for s, seq, _ in tickets if s == service]
            assert seqs == list(range(1, len(seqs) + 1))
            after = httpx.post(f"{base}/api/tickets", json={"service": service}).json()["number"]
            assert after == f"{service}{len(seqs) + 1:03d}"

        assert retained_displays(center_broker.port) == before  # republished from the store
        windows = httpx.get(f"{base}/api/state").json()["windows"]
        assert [(w["number"], w["state"], w["ticket"]) for w in windows] == [
            (1, "paused", ""), (2, "serving", "B001"), (3, "serving", "A001")]
    finally:
        agent.stop()
