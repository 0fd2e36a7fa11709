"""Catch-up after a one-hour county outage (printed, never asserted).

A province's fleet: 20,000 centers of 5 devices (100,000 devices), all known to the fleet, each center with
its edge key (acks are signed and sent as in the field). The county link was down for an hour: the edges
kept their events in their outboxes, and their devices' heartbeats of that hour were dropped at the edges
(health is state, QoS 0: the next heartbeat says it all; edge_agent.adapters.uplink counts them). When the
link is back, every edge forwards its outbox (QoS 1: a day's tickets, ratings and sign-ins, `--visits` per
center) while the devices' heartbeats come again, one per device every 30 s. One ingest worker, a real
Mosquitto, SQLite (`--postgres`: a real PostgreSQL server, fsync on). Printed: the time from the link's
return until every event is stored and the worker has caught up, the rates, how many heartbeats came and
were stored meanwhile, and the worker's largest inbox.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.db import create_db_engine, init_db, write_session  # noqa: E402
from fleet.devconfig.keys import KeyBox  # noqa: E402
from fleet.ingest import Ingest  # noqa: E402
from fleet.models import Center, Device  # noqa: E402
from fleet.registration.models import EdgeCountyAccount  # noqa: E402
from fleet.registration.service import edge_username  # noqa: E402
from fleet.settings import Settings  # noqa: E402
from protocol import identity, messages, topics  # noqa: E402
from tools.mosquitto import MosquittoBroker  # noqa: E402
from tools.postgres import PostgresServer  # noqa: E402

DEVICES_PER_CENTER = 5
HEALTH_INTERVAL_S = 30
EVENT_TOPICS = (topics.TICKET_EVENT, topics.RATING_EVENT, topics.ATTENDANCE_EVENT)


def center_code(n: int) -> str:
    return f"4452{n // 2000:02d}{(n // 100) % 20 + 100:03d}{n % 100 + 1:03d}"


def device_id(n: int) -> str:
    return identity.device_id_from_mac(n.to_bytes(6, "big"))


def seed(engine, box: KeyBox, centers: int, now: datetime) -> None:
    """The registry as the fleet knows it before the outage: centers, devices online, edge keys issued."""
    with write_session(engine) as session:
        connection = session.connection()
        for start in range(0, centers, 2000):
            codes = [center_code(n) for n in range(start, min(start + 2000, centers))]
            rows = []
            for code in codes:
                center = Center.new(code, now)
                center.edge_online, center.edge_last_seen = True, now
                rows.append(center.model_dump())
            connection.execute(insert(Center), rows)
            connection.execute(insert(Device), [
                Device(device_id=device_id(n), center_code=center_code(n // DEVICES_PER_CENTER),
                       role="queue_display" if n % 2 == 0 else "rating_pad", window=n % DEVICES_PER_CENTER // 2 + 1,
                       board="esp32", fw="0.1.0", online=True, session=1, last_seen=now, updated=now).model_dump()
                for n in range(start * DEVICES_PER_CENTER, (start + len(codes)) * DEVICES_PER_CENTER)])
            connection.execute(insert(EdgeCountyAccount), [
                {"center_code": code, "username": edge_username(code), "password_hash": "-", "issued_at": now,
                 "sealed_key": box.seal(edge_username(code), code.encode() * 2), "key_fingerprint": "bench",
                 "issued_by": "bench"} for code in codes])


def day_of_events(centers: int, visits: int) -> list[tuple[str, bytes]]:
    """What the outboxes hold: per visit a ticket issued, called and finished and its rating (1 in 50 a 差评,
    which opens a case), a sign-in and a sign-out per window; in the order the edges would send them side by
    side (visit after visit across the centers)."""
    out = []
    ts = 1767576000.0
    for code in map(center_code, range(centers)):
        for window in (1, 2):
            for kind in ("sign_in", "sign_out"):
                out.append((topics.build(topics.ATTENDANCE_EVENT, center=code), messages.encode(
                    "attendance_event", {"v": 1, "event_id": f"{code}-{kind}-{window}", "kind": kind,
                                         "window": window, "staff_no": f"0{window}12", "ts": ts})))
    for visit in range(visits):
        for n in range(centers):
            code = center_code(n)
            ticket = f"A{visit + 1:03d}"
            for kind in ("issued", "called", "finished"):
                out.append((topics.build(topics.TICKET_EVENT, center=code), messages.encode("ticket_event", {
                    "v": 1, "event_id": f"{code}-t-{visit}-{kind}", "kind": kind, "ticket": ticket,
                    "service": "shebao", "service_name": "社保业务", "window": 1 + visit % 2, "staff_no": "0112",
                    "ts": ts + visit * 60})))
            out.append((topics.build(topics.RATING_EVENT, center=code), messages.encode("rating_event", {
                "v": 1, "event_id": f"{code}-r-{visit}", "rating_id": f"{device_id(n * DEVICES_PER_CENTER)}-1-{visit}",
                "ticket": ticket, "service": "shebao", "window": 1 + visit % 2, "staff_no": "0112",
                "score": 2 if (n + visit) % 50 == 0 else 5, "ts": ts + visit * 60 + 30})))
    return out


def forward_outboxes(port: int, centers: int, visits: int, started: multiprocessing.Event) -> None:
    """The edges' forwarders: every kept event, QoS 1, as fast as the broker takes them."""
    backlog = day_of_events(centers, visits)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-edges-outboxes")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    started.wait()
    pending: deque[mqtt.MQTTMessageInfo] = deque()
    for topic, payload in backlog:
        pending.append(client.publish(topic, payload, qos=1))
        if len(pending) > 30_000:  # message ids are 16 bits: one client keeps fewer unacknowledged
            pending.popleft().wait_for_publish(timeout=600)
    for info in pending:
        info.wait_for_publish(timeout=600)
    client.loop_stop()
    client.disconnect()


def live_health(port: int, devices: int, started: multiprocessing.Event, stop: multiprocessing.Event,
                sent: multiprocessing.Value) -> None:
    """The devices' heartbeats once the link is back: each device every HEALTH_INTERVAL_S, spread evenly."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-edges-health")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    names = [topics.build(topics.DEVICE_HEALTH, center=center_code(n // DEVICES_PER_CENTER), device=device_id(n))
             for n in range(devices)]
    per_tick = devices / HEALTH_INTERVAL_S / 10  # ten ticks a second
    started.wait()
    begun, n = time.monotonic(), 0
    while not stop.is_set():
        due = int((time.monotonic() - begun) * 10 * per_tick)
        while n < due:
            payload = messages.encode("health", {"v": 1, "session": 1, "uptime_s": 3600.0 + n, "free_heap": 60000,
                                                 "rssi": -60, "reconnects": 1})
            client.publish(names[n % devices], payload, qos=0)
            n += 1
        time.sleep(0.1)
    sent.value = n
    client.loop_stop()
    client.disconnect()


class WatchedIngest(Ingest):
    """The ingest, with the largest inbox it had and the time its writer spent storing."""

    largest_inbox = 0
    busy_s = 0.0

    def store_batch(self, batch: list[tuple[str, bytes]]) -> None:
        self.largest_inbox = max(self.largest_inbox, self._inbox.qsize() + len(batch))
        began = time.perf_counter()
        super().store_batch(batch)
        self.busy_s += time.perf_counter() - began


def counted(ingest: Ingest, names: tuple[str, ...], outcomes: tuple[str, ...]) -> int:
    return sum(count for (name, outcome), count in ingest.message_counts.snapshot().items()
               if name in names and outcome in outcomes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centers", type=int, default=20_000, help="centers of 5 devices (default 20,000)")
    parser.add_argument("--visits", type=int, default=10, help="visits per center in the day (default 10)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    devices = args.centers * DEVICES_PER_CENTER
    work = Path(tempfile.mkdtemp(prefix="bench-catchup-"))
    postgres = PostgresServer().start(durable=True) if args.postgres else None
    # The backlog waits at the broker while the worker stores (fleet.ingest.INBOX_LIMIT): a queue that holds it,
    # as docs/deployment.md asks of a county broker (Mosquitto's default of 1,000 drops the rest, which the edges
    # then send again after their ack time-out; these publishers do not).
    broker = MosquittoBroker(work, "county", settings=["max_queued_messages 2000000"]).start()
    try:
        url = postgres.create_database() if postgres else f"sqlite:///{work / 'fleet.db'}"
        settings = Settings(data_dir=work, database_url=url, broker_port=broker.port,
                            mqtt_client_id="bench-catchup", ingest_enabled=False)
        engine = create_db_engine(url)
        init_db(engine)
        box = KeyBox(b"bench-catchup-server-secret-0123456789")
        began = time.perf_counter()
        seed(engine, box, args.centers, datetime.now(UTC))
        print(f"{args.centers:,} centers, {devices:,} devices and their edge keys written in "
              f"{time.perf_counter() - began:.0f} s ({engine.dialect.name})")
        ingest = WatchedIngest(settings, engine, box=box)
        ingest.start()
        while not ingest.connected:
            time.sleep(0.05)
        started, stop = multiprocessing.Event(), multiprocessing.Event()
        sent = multiprocessing.Value("q", 0)
        outboxes = multiprocessing.Process(target=forward_outboxes, args=(broker.port, args.centers, args.visits,
                                                                           started))
        health = multiprocessing.Process(target=live_health, args=(broker.port, devices, started, stop, sent))
        outboxes.start()
        health.start()
        expected = args.centers * (4 + 4 * args.visits)
        time.sleep(2 + expected / 200_000)  # the publishers build their messages before the link comes back
        started.set()
        link_back = time.perf_counter()
        stored = 0
        while stored < expected and time.perf_counter() - link_back < 3600:
            time.sleep(0.5)
            stored = counted(ingest, EVENT_TOPICS, ("stored", "duplicate"))
        drained = time.perf_counter() - link_back
        busy = ingest.busy_s
        stop.set()
        health.join()
        outboxes.join()
        ingest.send_probe()  # the heartbeats sent before the stop are stored once the probe is back
        probe_sent = ingest.clock()
        while ingest.caught_up_at is None or ingest.caught_up_at < probe_sent:
            time.sleep(0.1)
        heartbeats = counted(ingest, (topics.DEVICE_HEALTH,), ("applied",))
        print(f"outboxes after a one-hour outage: {expected:,} events ({args.visits} visits a center) of "
              f"{args.centers:,} centers, with {devices:,} devices' heartbeats every {HEALTH_INTERVAL_S} s")
        print(f"caught up in {drained:.0f} s: {stored:,} events stored, {stored / drained:,.0f} events/s, "
              f"{counted(ingest, EVENT_TOPICS, ('error',)):,} not stored; heartbeats meanwhile {sent.value:,} sent, "
              f"{heartbeats:,} stored; largest inbox {ingest.largest_inbox:,} messages; the writer stored "
              f"{busy / drained:.0%} of the time")
        ingest.stop()
        engine.dispose()
        return 0 if stored >= expected else 1
    finally:
        broker.stop()
        if postgres:
            postgres.stop()


if __name__ == "__main__":
    sys.exit(main())
