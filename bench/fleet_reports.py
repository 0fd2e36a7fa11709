"""The county's report (fleet.reports) over a month of a busy county: time to build it by center, window and
staff, and to write it as XLSX (printed, never asserted).

A county of 30 centers with 5 windows each, 150 tickets a day per center (issued, called, finished, rated),
staff signing in and out twice a day, 22 working days: about 400,000 ticket events, 100,000 ratings and
26,000 sign-ins in SQLite. `--centers` and `--days` for a smaller or larger run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402
from sqlmodel import Session  # noqa: E402

from fleet.alerts.evaluate import hours_lookup  # noqa: E402
from fleet.db import create_db_engine, init_db  # noqa: E402
from fleet.models import AttendanceEvent, Center, RatingEvent, TicketEvent  # noqa: E402
from fleet.reports import export  # noqa: E402
from fleet.reports.figures import build_report  # noqa: E402
from fleet.settings import Settings  # noqa: E402

BEIJING = ZoneInfo("Asia/Shanghai")
WINDOWS = 5
TICKETS_PER_DAY = 150
FIRST = date(2026, 11, 2)


def working_days(count: int) -> list[date]:
    days, day = [], FIRST
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def populate(database_url: str, centers: int, days: list[date]) -> int:
    engine = create_db_engine(database_url)
    init_db(engine)
    events = 0
    with Session(engine) as session:
        codes = [f"445202{100 + c // 3:03d}{c % 3 + 1:03d}" for c in range(centers)]
        for code in codes:
            session.add(Center.new(code, datetime.now(BEIJING)))
        session.commit()
        for code in codes:
            tickets, ratings, attendance = [], [], []
            for day in days:
                opening = datetime.combine(day, datetime.min.time(), tzinfo=BEIJING).timestamp() + 8.5 * 3600
                for window in range(1, WINDOWS + 1):
                    staff = f"{window:04d}"
                    for kind, at in (("sign_in", 0), ("sign_out", 3.5 * 3600), ("sign_in", 5.5 * 3600),
                                     ("sign_out", 9 * 3600)):
                        attendance.append({"center_code": code, "event_id": f"{day}-{staff}-{kind}-{at}", "kind": kind,
                                           "window": window, "staff_no": staff, "ts": opening + at + window * 60})
                for n in range(TICKETS_PER_DAY):
                    number, window = f"A{n + 1:03d}", n % WINDOWS + 1
                    issued = opening + n * 120
                    for kind, at in (("issued", 0), ("called", 600), ("finished", 1200)):
                        served = kind != "issued"
                        tickets.append({"center_code": code, "event_id": f"{day}-{number}-{kind}", "kind": kind,
                                        "ticket": number, "service": "A", "window": window if served else None,
                                        "staff_no": f"{window:04d}" if served else None, "ts": issued + at})
                    ratings.append({"center_code": code, "event_id": f"{day}-{number}-r",
                                    "rating_id": f"{day}-{number}", "ticket": number, "service": "A",
                                    "window": window, "staff_no": f"{window:04d}",
                                    "score": (5, 5, 4, 3, 5, 1, 0)[n % 7], "ts": issued + 1210})
            session.execute(insert(TicketEvent), tickets)
            session.execute(insert(RatingEvent), ratings)
            session.execute(insert(AttendanceEvent), attendance)
            session.commit()
            events += len(tickets) + len(ratings) + len(attendance)
    engine.dispose()
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--centers", type=int, default=30)
    parser.add_argument("--days", type=int, default=22)
    args = parser.parse_args()
    days = working_days(args.days)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/fleet.db", data_dir=Path(tmp), ingest_enabled=False)
        start = time.perf_counter()
        events = populate(settings.database_url, args.centers, days)
        print(f"seeded {events:,} events ({args.centers} centers, {len(days)} working days) "
              f"in {time.perf_counter() - start:.1f} s")
        engine = create_db_engine(settings.database_url)
        now = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=BEIJING)
        with Session(engine) as session:
            hours_of = hours_lookup(session, settings)
            for by in ("county", "center", "window", "staff"):
                start = time.perf_counter()
                report = build_report(session, by, days[0], days[-1], BEIJING, now, hours_of)
                built = time.perf_counter() - start
                start = time.perf_counter()
                size = len(export.to_xlsx("绩效报表", *export.report_table(report)))
                print(f"report by {by:7s}: {len(report['rows']):4d} rows built in {built * 1000:7.0f} ms, "
                      f"XLSX {size / 1024:.0f} KiB in {(time.perf_counter() - start) * 1000:.0f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
