"""One ingest worker's storing cost, without a broker (printed, never asserted).

Health messages of `--devices` devices in 200 centers, `--rounds` per device,
go through `fleet.ingest.handle_batch` in batches of WRITE_BATCH, exactly as
the writer thread stores them. `--history N` first gives every device N older
heartbeats (a fleet in steady state, whose history is full); `--profile`
prints the functions that cost most (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from fleet.db import create_db_engine, init_db, write_session  # noqa: E402
from fleet.health_history import HealthSample, Retention  # noqa: E402
from fleet.ingest import WRITE_BATCH, handle_batch  # noqa: E402
from protocol import identity, messages, topics  # noqa: E402
from tools.postgres import PostgresServer  # noqa: E402

CENTERS = 200


def device_topics(devices: int) -> list[str]:
    out = []
    for n in range(devices):
        center = f"445202{101 + n % CENTERS // 100:03d}{n % 100 + 1:03d}"
        device = identity.device_id_from_mac(n.to_bytes(6, "big"))
        out.append(topics.build(topics.DEVICE_HEALTH, center=center, device=device))
    return out


def seed_history(engine, names: list[str], samples: int, now: datetime) -> None:
    """`samples` heartbeats per device, a minute apart, ending a minute before `now`."""
    rows = []
    with write_session(engine) as session:
        for name in names:
            _, params = topics.parse(name)
            for i in range(samples):
                rows.append({"device_id": params["device"], "center_code": params["center"], "session": 1,
                             "uptime_s": 60.0 * i, "at": now - timedelta(minutes=samples - i)})
            if len(rows) > 50_000:
                session.execute(insert(HealthSample), rows)
                rows = []
        if rows:
            session.execute(insert(HealthSample), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--history", type=int, default=0, help="older heartbeats per device before the run")
    parser.add_argument("--max-samples", type=int, default=Retention.max_samples)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="on PostgreSQL (a real server, fsync on)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-profile-"))
    postgres = PostgresServer().start(durable=True) if args.postgres else None
    engine = create_db_engine(postgres.create_database() if postgres else f"sqlite:///{work / 'fleet.db'}")
    init_db(engine)
    names = device_topics(args.devices)
    now = datetime.now(UTC)
    retention = Retention(max_samples=args.max_samples)
    payload = messages.encode("health", messages.make("health", session=1, uptime_s=100.0, free_heap=60000,
                                                      rssi=-60, reconnects=0))
    if args.history:
        seed_history(engine, names, args.history, now)
    # The first round creates centers and devices; the figures are of the rounds after it.
    stream = [(name, payload) for name in names]
    for start in range(0, len(stream), WRITE_BATCH):
        handle_batch(engine, stream[start:start + WRITE_BATCH], now, retention)
    stream = stream * args.rounds
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    for start in range(0, len(stream), WRITE_BATCH):
        handle_batch(engine, stream[start:start + WRITE_BATCH], now, retention)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"{len(stream):,} health messages of {args.devices:,} known devices (history {args.history} each): "
          f"{len(stream) / elapsed:,.0f} msg/s stored by one worker into {engine.dialect.name}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    engine.dispose()
    if postgres:
        postgres.stop()


if __name__ == "__main__":
    main()
