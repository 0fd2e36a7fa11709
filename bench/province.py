"""A province on real brokers, with faults (issue 16): the counts, and the time the system took to catch up.

County brokers (Mosquitto, with the bridges `python -m fleet province-bridges` writes) bridged into a province
broker, a real edge agent per center, two fleet ingest workers on a shared subscription, PostgreSQL. Tickets are
taken at every edge all the time while a worker is SIGKILLed, a county broker restarted and another county's
bridge cut (tests/support/province.py; tests/test_province.py runs a small one). Prints what was issued, stored
(and how many distinct) and left in the outboxes, and the time from the end of the faults until every event was
stored and every outbox empty. Exits 1 if an event was lost or stored twice.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.province import Province  # noqa: E402
from tools.postgres import PostgresServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counties", type=int, default=3, help="county brokers (default 3)")
    parser.add_argument("--centers", type=int, default=2, help="centers (edge agents) per county (default 2)")
    parser.add_argument("--tickets", type=int, default=150,
                        help="tickets taken at every edge while each fault lasts (default 150)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-province-"))
    postgres = PostgresServer().start()
    started = time.monotonic()
    province = Province(work, postgres.create_database(), counties=args.counties,
                        centers_per_county=args.centers)
    try:
        province.start()
        seen = province.run_faults(args.tickets)
        faults_over = time.monotonic()
        province.wait_drained()
        drained = time.monotonic()
        counts = province.counts()
        lost_or_twice = province.mismatches()
    finally:
        province.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"province: {counts.counties} county brokers bridged into one, {counts.edges} edge agents, "
          "2 ingest workers, PostgreSQL")
    print(f"faults while events flowed: a worker SIGKILLed (exit {seen['killed_worker_status']}), county 0's broker "
          f"restarted ({seen['held_while_county_down']}+ events held unconfirmed per edge meanwhile), "
          f"the last county's bridge cut ({seen['held_while_bridge_cut']}+ held per edge)")
    print(f"tickets issued at the edges: {counts.issued:,}; stored by the fleet: {counts.stored:,} "
          f"({counts.distinct:,} distinct); unconfirmed at the edges: {counts.unconfirmed_left}")
    print(f"caught up {drained - faults_over:.1f} s after the last ticket was taken; "
          f"whole run {drained - started:.0f} s")
    if lost_or_twice or counts.stored != counts.issued:
        print(f"LOST OR TWICE (center: issued, stored): {lost_or_twice}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
