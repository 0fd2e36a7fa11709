"""Edge agent figures (printed, never asserted):

- 下一位 to the window's display message on the center broker: p50 and p99
- tickets issued per second with the store on disk (the queue service alone, and through HTTP)
- outbox drain rate after an outage of the county broker
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.config import parse_config  # noqa: E402
from edge_agent.queue.service import QueueService  # noqa: E402
from edge_agent.store import EdgeStore  # noqa: E402
from protocol import topics  # noqa: E402
from tests.support.centers import CENTER_CODE, write_edge_config  # noqa: E402
from tests.support.processes import Program  # noqa: E402
from tools.mosquitto import MosquittoBroker, free_port  # noqa: E402

CALLS = 300
TICKETS = 2000
OUTAGE_EVENTS = 3000


def queue_service_rate(work: Path) -> float:
    raw = {"center": {"code": CENTER_CODE}, "services": [{"prefix": "A", "name": "社保业务"}],
           "windows": [{"number": 1, "services": ["A"]}]}
    store = EdgeStore(work / "rate.sqlite3")
    queue = QueueService(store, parse_config(raw))
    start = time.perf_counter()
    for _ in range(TICKETS):
        queue.issue_ticket("A")
    elapsed = time.perf_counter() - start
    store.close()
    return TICKETS / elapsed


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    print(f"queue service, store on disk (WAL, synchronous=FULL): {queue_service_rate(work):.0f} tickets/s")

    center = MosquittoBroker(work, "center").start()
    county = MosquittoBroker(work, "county").start()
    port = free_port()
    config = write_edge_config(work / "edge", center.port, county.port, port, printer="none")
    agent = Program(["-m", "edge_agent", "--config", str(config), "--log-level", "WARNING"], work / "edge.log",
                    f"http://127.0.0.1:{port}/api/health").start()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=10) as http:
            start = time.perf_counter()
            for _ in range(TICKETS // 4):
                http.post(f"{base}/api/tickets", json={"service": "A"})
            print(f"through HTTP (one kiosk, keep-alive): {TICKETS // 4 / (time.perf_counter() - start):.0f} tickets/s")

            arrived = threading.Event()
            display = topics.build(topics.WINDOW_DISPLAY, center=CENTER_CODE, window=3)
            watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            watcher.on_message = lambda c, u, m: arrived.set() if m.topic == display and not m.retain else None
            watcher.connect("127.0.0.1", center.port)
            watcher.subscribe(display, qos=1)
            watcher.loop_start()
            time.sleep(0.5)  # let the retained message arrive first
            latencies = []
            seen = {"ticket": "", "call_seq": 0}  # what window 3's caller shows: each 下一位 names it
            for _ in range(CALLS):
                arrived.clear()
                start = time.perf_counter()
                seen = http.post(f"{base}/api/windows/3/next", json=seen).json()["window"]
                arrived.wait(10)
                latencies.append((time.perf_counter() - start) * 1000)
            watcher.loop_stop()
            watcher.disconnect()
            latencies.sort()
            print(f"下一位 -> display message on the center broker, {CALLS} calls: "
                  f"p50 {statistics.median(latencies):.1f} ms, p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms")

            http.get(f"{base}/api/health")
            county.stop()
            for _ in range(OUTAGE_EVENTS):
                http.post(f"{base}/api/tickets", json={"service": "A"})
            waiting = http.get(f"{base}/api/health").json()["county_uplink"]["outbox"]
            county.start()
            while not http.get(f"{base}/api/health").json()["county_uplink"]["ok"]:
                time.sleep(0.05)
            start = time.perf_counter()
            while http.get(f"{base}/api/health").json()["county_uplink"]["outbox"] > 0:
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            print(f"outbox drain after an outage: {waiting} events in {elapsed:.2f} s "
                  f"= {waiting / elapsed:.0f} events/s")
    finally:
        agent.stop()
        center.stop()
        county.stop()


if __name__ == "__main__":
    main()
