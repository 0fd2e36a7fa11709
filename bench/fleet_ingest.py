"""Fleet ingest figures (printed, never asserted).

20,000 simulated devices publish their health through a real Mosquitto, from
a separate publisher process. The same stream is received by a bare paho
subscriber that only counts (the broker's raw loopback rate) and by one fleet
ingest worker writing to SQLite, then to PostgreSQL (a real server, fsync on):
a first round of devices new to the fleet, then rounds of devices it knows
(the sustained rate, and its ratio to the raw rate).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.db import create_db_engine, init_db  # noqa: E402
from fleet.ingest import Ingest  # noqa: E402
from fleet.settings import Settings  # noqa: E402
from protocol import identity, messages, topics  # noqa: E402
from tools.mosquitto import MosquittoBroker  # noqa: E402
from tools.postgres import PostgresServer  # noqa: E402

DEVICES = 20_000
ROUNDS = 3  # health messages per device
CENTERS = 200


def device_topics() -> list[tuple[str, str]]:
    out = []
    for n in range(DEVICES):
        center = f"445202{101 + n % CENTERS // 100:03d}{n % 100 + 1:03d}"
        out.append((center, identity.device_id_from_mac(n.to_bytes(6, "big"))))
    return out


def publish_health(port: int, rounds: int) -> None:
    """The publisher process: every device's health, `rounds` times, QoS 0 as the contract says."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    pairs = device_topics()
    for _ in range(rounds):
        for center, device in pairs:
            payload = messages.encode("health", messages.make("health", session=1, uptime_s=100.0, free_heap=60000,
                                                              rssi=-60, reconnects=0))
            client.publish(topics.build(topics.DEVICE_HEALTH, center=center, device=device), payload, qos=0)
    time.sleep(1)
    client.loop_stop()
    client.disconnect()


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.lock = threading.Lock()

    def tick(self) -> None:
        with self.lock:
            now = time.perf_counter()
            if not self.count:
                self.first = now
            self.count += 1
            self.last = now

    def rate(self) -> float:
        return (self.count - 1) / (self.last - self.first) if self.count > 1 else 0.0


def wait_for(counter: Counter, expected: int, idle_s: float = 5.0) -> None:
    """Until `expected` arrived, or nothing arrived for idle_s (QoS 0 may drop under pressure)."""
    last_seen, last_count = time.monotonic(), -1
    while counter.count < expected and time.monotonic() - last_seen < idle_s:
        if counter.count != last_count:
            last_seen, last_count = time.monotonic(), counter.count
        time.sleep(0.1)


def raw_rate(port: int) -> tuple[float, int]:
    counter = Counter()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscriber.on_message = lambda *_: counter.tick()
    subscriber.connect("127.0.0.1", port)
    subscriber.subscribe(topics.subscription(topics.DEVICE_HEALTH), qos=0)
    subscriber.loop_start()
    time.sleep(0.5)
    publisher = multiprocessing.Process(target=publish_health, args=(port, ROUNDS))
    publisher.start()
    wait_for(counter, DEVICES * ROUNDS)
    publisher.join()
    subscriber.loop_stop()
    subscriber.disconnect()
    return counter.rate(), counter.count


def ingest_rate(port: int, work: Path, database_url: str) -> tuple[tuple[float, int], tuple[float, int]]:
    """The rate of a first round (every device new to the fleet), then of ROUNDS rounds of known devices."""
    counter = Counter()

    class CountingIngest(Ingest):
        def store_batch(self, batch: list[tuple[str, bytes]]) -> None:
            super().store_batch(batch)  # counted once stored, not when it arrived
            for topic_text, _ in batch:
                if topic_text != self.probe_topic:
                    counter.tick()

    # A group of its own: the previous run's worker keeps its persistent session, and the broker would give it
    # half of a shared stream (a worker gone for good takes its share until its session expires).
    name = "bench-ingest-" + database_url.split(":")[0].split("+")[0]
    settings = Settings(data_dir=work, database_url=database_url, broker_port=port, mqtt_client_id=name,
                        ingest_group=name)
    engine = create_db_engine(settings.database_url)
    init_db(engine)
    ingest = CountingIngest(settings, engine)
    ingest.start()
    while not ingest.connected:
        time.sleep(0.05)
    figures = []
    for rounds in (1, ROUNDS):
        counter.__init__()
        publisher = multiprocessing.Process(target=publish_health, args=(port, rounds))
        publisher.start()
        wait_for(counter, DEVICES * rounds)
        publisher.join()
        figures.append((counter.rate(), counter.count))
    ingest.stop()
    engine.dispose()
    return figures[0], figures[1]


def main() -> None:
    global DEVICES, ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=DEVICES, help=f"simulated devices (default {DEVICES:,})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"health messages per device (default {ROUNDS})")
    args = parser.parse_args()
    DEVICES, ROUNDS = args.devices, args.rounds
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    broker = MosquittoBroker(work, "county").start()
    try:
        raw, raw_count = raw_rate(broker.port)
        print(f"broker raw loopback, paho subscriber that only counts: {raw:,.0f} msg/s "
              f"({raw_count:,} of {DEVICES * ROUNDS:,} health messages received)")
        postgres = PostgresServer().start(durable=True)
        try:
            for name, url in (("SQLite", f"sqlite:///{work / 'fleet.db'}"), ("PostgreSQL", postgres.create_database())):
                (first, first_count), (rate, count) = ingest_rate(broker.port, work, url)
                print(f"fleet ingest into {name}, first contact of {DEVICES:,} devices: {first:,.0f} msg/s "
                      f"({first_count:,} of {DEVICES:,} received)")
                print(f"fleet ingest into {name}, {DEVICES:,} known devices: {rate:,.0f} msg/s "
                      f"({count:,} of {DEVICES * ROUNDS:,} received) = {rate / raw:.0%} of the raw rate")
        finally:
            postgres.stop()
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
