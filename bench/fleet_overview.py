"""Fleet overview page and alert sweep time with 100,000 devices in the database (printed, never asserted).

A province-sized registry (20,000 centers, 5 devices each) in SQLite; a county
administrator, who sees everything, loads the overview page and the JSON list of
centers through the real app (FastAPI TestClient: no network, the full stack).
Then one evaluation of every alert rule (`run_alert_sweep`, what the sweeper runs
every few seconds), the first opening the alerts, the next ones finding them open.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient  # noqa: E402
from sqlmodel import Session  # noqa: E402

from fleet.alerts.evaluate import run_alert_sweep  # noqa: E402
from fleet.app import create_app  # noqa: E402
from fleet.auth.bootstrap import ensure_user  # noqa: E402
from fleet.db import create_db_engine, init_db  # noqa: E402
from fleet.models import Center, Device  # noqa: E402
from fleet.settings import Settings  # noqa: E402
from protocol.identity import device_id_from_mac  # noqa: E402

CENTERS = 20_000
DEVICES_PER_CENTER = 5
RUNS = 5


def populate(database_url: str) -> None:
    now = datetime.now(UTC)
    engine = create_db_engine(database_url)
    init_db(engine)
    with Session(engine) as session:
        for c in range(CENTERS):
            code = f"4452{c // 2000:02d}{(c // 100) % 20 + 100:03d}{c % 100 + 1:03d}"
            center = Center.new(code, now)
            center.edge_online, center.edge_last_seen = c % 50 != 0, now
            session.add(center)
            for d in range(DEVICES_PER_CENTER):
                n = c * DEVICES_PER_CENTER + d
                session.add(Device(device_id=device_id_from_mac(n.to_bytes(6, "big")), center_code=code,
                                   role="queue_display" if d % 2 == 0 else "rating_pad", window=d // 2 + 1,
                                   board="esp32", fw="0.1.0", online=n % 37 != 0, session=1, last_seen=now,
                                   updated=now))
            if c % 2000 == 1999:
                session.commit()
        session.commit()
    engine.dispose()


def timed(client: TestClient, path: str) -> list[float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        reply = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert reply.status_code == 200, reply.status_code
    return times


def timed_sweeps(settings: Settings) -> list[float]:
    engine = create_db_engine(settings.database_url)
    times = []
    for _ in range(RUNS):
        with Session(engine) as session:
            start = time.perf_counter()
            run_alert_sweep(session, datetime.now(UTC), settings)
            session.commit()
            times.append((time.perf_counter() - start) * 1000)
    engine.dispose()
    return times


def main() -> None:
    global CENTERS, RUNS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centers", type=int, default=CENTERS, help=f"centers to create (default {CENTERS:,})")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"loads of each page (default {RUNS})")
    args = parser.parse_args()
    CENTERS, RUNS = args.centers, args.runs
    work = Path(tempfile.mkdtemp(prefix="bench-overview-"))
    settings = Settings(data_dir=work, database_url=f"sqlite:///{work / 'fleet.db'}", ingest_enabled=False)
    start = time.perf_counter()
    populate(settings.database_url)  # before the app starts its background jobs
    print(f"{CENTERS:,} centers and {CENTERS * DEVICES_PER_CENTER:,} devices written in "
          f"{time.perf_counter() - start:.1f} s")
    ensure_user(settings.database_url, "admin", "county_admin", "bench-password")
    app = create_app(settings)
    with TestClient(app, base_url="https://testserver") as client:  # session cookies are HTTPS-only
        page = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        client.post("/login", data={"username": "admin", "password": "bench-password", "csrf_token": token,
                                    "next": "/"}, follow_redirects=False)
        for path, what in (("/", "overview page"), ("/api/centers", "GET /api/centers")):
            times = timed(client, path)
            print(f"{what} with {CENTERS * DEVICES_PER_CENTER:,} devices: median {statistics.median(times):.0f} ms, "
                  f"worst {max(times):.0f} ms ({RUNS} loads)")
    times = timed_sweeps(settings)
    print(f"alert sweep with {CENTERS * DEVICES_PER_CENTER:,} devices: first {times[0]:.0f} ms (opens the alerts), "
          f"then median {statistics.median(times[1:] or times):.0f} ms ({RUNS} sweeps)")


if __name__ == "__main__":
    main()
