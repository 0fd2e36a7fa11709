"""Fleet overview page and alert sweep time with 100,000 devices in the database (printed, never asserted).

A province-sized registry (20,000 centers, 5 devices each) in SQLite by default; `--postgres` on a real
PostgreSQL server of our own (tools/postgres.py), `--national` a country's 3,000,000 devices (600,000 centers)
on PostgreSQL. First `--runs` evaluations of every alert rule (`run_alert_sweep`, what the sweeper runs every
few seconds): the first opens the alerts (every offline device and edge), the next ones find them open. Then
a county administrator, who sees everything, loads the overview page and the JSON list of centers through
the real app (FastAPI TestClient: no network, the full stack), with those alerts open.

The clock is fixed on a working day at 10:00 in Beijing, an hour after every device was last heard of: the
centers are open and every offline device has been offline long enough to be alerted, whenever this runs.
Division codes are laid out as a country's: 300 centers a county, 15 a town. Every center whose edge is
online keeps its latest edge_health summary (all well), as the ingest stores them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session  # noqa: E402

from fleet.alerts.evaluate import run_alert_sweep, summary_is_notable  # noqa: E402
from fleet.alerts.models import CenterHealthReport  # noqa: E402
from fleet.app import create_app  # noqa: E402
from fleet.auth.bootstrap import ensure_user  # noqa: E402
from fleet.db import create_db_engine, init_db  # noqa: E402
from fleet.models import Center, Device  # noqa: E402
from fleet.settings import Settings  # noqa: E402
from protocol.identity import county_code, device_id_from_mac, town_code  # noqa: E402
from tools.postgres import PostgresServer  # noqa: E402

CENTERS = 20_000
NATIONAL_CENTERS = 600_000
DEVICES_PER_CENTER = 5
CENTERS_PER_COUNTY = 300
CENTERS_PER_TOWN = 15
RUNS = 5
NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # a Wednesday, 10:00 in Beijing: the centers are open
LAST_HEARD = NOW - timedelta(hours=1)
BATCH = 20_000  # rows a statement


def center_code_of(c: int) -> str:
    """The `c`th center's 12-digit division code: county (6 digits), town (3), village (3)."""
    county = 110_000 + c // CENTERS_PER_COUNTY
    town = (c % CENTERS_PER_COUNTY) // CENTERS_PER_TOWN + 100
    return f"{county:06d}{town:03d}{c % CENTERS_PER_TOWN + 1:03d}"


def center_rows(centers: int) -> Iterator[dict]:
    for c in range(centers):
        code = center_code_of(c)
        yield {"code": code, "county_code": county_code(code), "town_code": town_code(code),
               "edge_online": c % 50 != 0, "edge_last_seen": LAST_HEARD, "first_seen": LAST_HEARD}


def device_rows(centers: int) -> Iterator[dict]:
    for c in range(centers):
        code = center_code_of(c)
        for d in range(DEVICES_PER_CENTER):
            n = c * DEVICES_PER_CENTER + d
            yield {"device_id": device_id_from_mac(n.to_bytes(6, "big")), "center_code": code,
                   "role": "queue_display" if d % 2 == 0 else "rating_pad", "window": d // 2 + 1, "board": "esp32",
                   "fw": "0.1.0", "online": n % 37 != 0, "session": 1, "last_seen": LAST_HEARD,
                   "updated": LAST_HEARD}


def batches(rows: Iterator[dict]) -> Iterator[list[dict]]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def copy_rows(engine: Engine, table: str, rows: Iterator[dict]) -> None:
    """PostgreSQL's COPY, far faster than INSERTs for millions of rows (datetimes as the naive UTC stored)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        first = next(rows)
        columns = list(first)
        quoted = ", ".join(f'"{column}"' for column in columns)  # `window` is a keyword in PostgreSQL
        with cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
            for row in itertools.chain([first], rows):
                copy.write_row([value.replace(tzinfo=None) if isinstance(value, datetime) else value
                                for value in row.values()])
        raw.commit()
    finally:
        raw.close()


def health_rows(centers: int) -> Iterator[dict]:
    """The latest edge_health summary of every center whose edge is online: all is well (3 windows staffed)."""
    summary = {"ready": True, "reasons": [], "components": {"printer": {"ok": True, "state": "ok"},
                                                            "center_broker": {"ok": True, "state": "connected"}},
               "windows": {str(w): {"state": "open", "staff_no": f"100{w}"} for w in (1, 2, 3)},
               "staff": {f"100{w}": "张伟" for w in (1, 2, 3)}, "outbox": 0, "uptime_s": 3600,
               "host": {"disk_total_bytes": 32 * 10**9, "disk_free_bytes": 24 * 10**9, "clock": "synced"},
               "ts": LAST_HEARD.timestamp(), "v": 1}
    text = json.dumps(summary, ensure_ascii=False)
    notable = summary_is_notable("", summary, LAST_HEARD)  # as the ingest marks it (fleet.alerts.evaluate)
    for c in range(centers):
        if c % 50 != 0:
            yield {"center_code": center_code_of(c), "ready": True, "summary": text, "ts": summary["ts"],
                   "received_at": LAST_HEARD, "notable": notable}


def populate(database_url: str, centers: int) -> None:
    engine = create_db_engine(database_url)
    init_db(engine)
    if engine.dialect.name == "postgresql":
        copy_rows(engine, "center", center_rows(centers))
        copy_rows(engine, "device", device_rows(centers))
        copy_rows(engine, "center_health_report", health_rows(centers))
        with engine.connect() as connection:  # a live server's statistics, as autovacuum keeps them
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    else:
        with engine.begin() as connection:
            for batch in batches(center_rows(centers)):
                connection.execute(insert(Center), batch)
            for batch in batches(device_rows(centers)):
                connection.execute(insert(Device), batch)
            for batch in batches(health_rows(centers)):
                connection.execute(insert(CenterHealthReport), batch)
    engine.dispose()


def timed(client: TestClient, path: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        reply = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert reply.status_code == 200, reply.status_code
    return times


def timed_sweeps(settings: Settings, runs: int) -> tuple[list[float], int]:
    """Times of `runs` sweeps, and how many alerts the first one opened."""
    engine = create_db_engine(settings.database_url)
    times, opened = [], 0
    for run in range(runs):
        with Session(engine) as session:
            start = time.perf_counter()
            changes = run_alert_sweep(session, NOW + timedelta(seconds=10 * run), settings)
            session.commit()
            times.append((time.perf_counter() - start) * 1000)
            opened = opened or len(changes)
    engine.dispose()
    return times, opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centers", type=int, default=None,
                        help=f"centers to create (default {CENTERS:,}; {NATIONAL_CENTERS:,} with --national)")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"loads of each page, and sweeps (default {RUNS})")
    parser.add_argument("--postgres", action="store_true", help="on PostgreSQL (a server of our own) not SQLite")
    parser.add_argument("--national", action="store_true",
                        help=f"a country: {NATIONAL_CENTERS:,} centers on PostgreSQL (writing them takes minutes)")
    args = parser.parse_args()
    centers = args.centers or (NATIONAL_CENTERS if args.national else CENTERS)
    devices = centers * DEVICES_PER_CENTER
    work = Path(tempfile.mkdtemp(prefix="bench-overview-"))
    postgres = PostgresServer().start() if args.postgres or args.national else None
    try:
        database_url = postgres.create_database() if postgres else f"sqlite:///{work / 'fleet.db'}"
        database = "PostgreSQL" if postgres else "SQLite"
        settings = Settings(data_dir=work, database_url=database_url, ingest_enabled=False)
        start = time.perf_counter()
        populate(settings.database_url, centers)  # before the app starts its background jobs
        print(f"{centers:,} centers and {devices:,} devices written to {database} in "
              f"{time.perf_counter() - start:.1f} s")
        times, opened = timed_sweeps(settings, args.runs)
        print(f"alert sweep with {devices:,} devices on {database}: first {times[0]:.0f} ms (opens {opened:,} "
              f"alerts), then median {statistics.median(times[1:] or times):.0f} ms ({args.runs} sweeps)")
        ensure_user(settings.database_url, "admin", "county_admin", "bench-password")
        # Not started (no `with`): the app's periodic jobs would sweep and recompute beside the pages measured.
        client = TestClient(create_app(settings, clock=lambda: NOW), base_url="https://testserver")  # HTTPS cookies
        page = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        client.post("/login", data={"username": "admin", "password": "bench-password", "csrf_token": token,
                                    "next": "/"}, follow_redirects=False)
        for path, what in (("/", "overview page"), ("/api/centers", "GET /api/centers")):
            times = timed(client, path, args.runs)
            print(f"{what} with {devices:,} devices on {database} (the alerts open): "
                  f"median {statistics.median(times):.0f} ms, worst {max(times):.0f} ms ({args.runs} loads)")
        client.app.state.engine.dispose()
    finally:
        if postgres:
            postgres.stop()


if __name__ == "__main__":
    main()
