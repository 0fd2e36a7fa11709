"""Edge health summaries marked `notable` when stored (issue 16: a country's sweep and overview read only those):
the mark is right for each kind of problem, and the sweep and the overview come out as when every summary was
read, also for summaries stored before the mark existed (NULL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from fleet.alerts.evaluate import run_alert_sweep, store_health_report
from fleet.alerts.models import CenterHealthReport
from fleet.auth.principal import CLI_USER
from fleet.models import Center
from fleet.overview import county_overview

MONDAY_10 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # Monday 10:00 in Beijing, a working day
LATER = MONDAY_10 + timedelta(hours=1)  # 11:00, open: every condition has lasted long enough
HOST = {"disk_total_bytes": 32 * 10**9, "disk_free_bytes": 20 * 10**9, "clock": "synced"}
STAFFED = {"1": {"state": "open", "staff_no": "1001"}}


def summary(**changes) -> dict:
    quiet = {"ready": True, "reasons": [], "components": {"printer": {"ok": True, "state": "ok"}},
             "windows": STAFFED, "host": HOST, "ts": MONDAY_10.timestamp()}
    return {**quiet, **changes}


SUMMARIES = {  # center -> (summary, notable)
    "445202101001": (summary(), False),
    "445202101002": (summary(components={}, windows={}), False),
    "445202101003": (summary(ready=False, reasons=["取号打印机缺纸"],
                             components={"printer": {"ok": False, "state": "paper_out"}}), True),
    "445202101004": (summary(ready=False, reasons=["3号窗口评价器离线"]), True),  # a reason alone
    "445202101005": (summary(host={**HOST, "disk_free_bytes": 10**9}), True),  # disk nearly full
    "445202101006": (summary(ts=MONDAY_10.timestamp() - 600), True),  # its clock 10 minutes slow
    "445202101007": (summary(windows={"1": {"state": "paused", "staff_no": "1001",
                                            "since": MONDAY_10.timestamp()}}), True),
    "445202101008": (summary(windows={"1": {"state": "open", "staff_no": "", "unstaffed_since": 0}}), True),
    "445202101009": (summary(components={"camera-2": {"ok": False, "state": "offline"}}), True),
}


def store_all(engine) -> None:
    with Session(engine) as session:
        for code, (payload, _) in SUMMARIES.items():
            center = Center.new(code, MONDAY_10)
            center.edge_online = True
            session.add(center)
            session.flush()
            store_health_report(session, code, payload, MONDAY_10)
        session.commit()


def outcome(engine, settings) -> tuple[list, list]:
    """The sweep's changes and the overview's centers that cannot serve, in a transaction rolled back."""
    with Session(engine) as session:
        changes = sorted((c.kind, c.key, c.message, c.reason) for c in run_alert_sweep(session, LATER, settings))
        not_serving = [(c["code"], c["problems"]) for c in county_overview(session, LATER, settings.tz,
                                                                             CLI_USER)["not_serving"]]
        session.rollback()
    return changes, not_serving


def test_each_kind_of_problem_makes_a_summary_notable(engine) -> None:
    store_all(engine)
    with Session(engine) as session:
        marks = dict(session.exec(select(CenterHealthReport.center_code, CenterHealthReport.notable)).all())
    assert marks == {code: notable for code, (_, notable) in SUMMARIES.items()}


def test_the_sweep_and_the_overview_are_as_when_every_summary_was_read(engine, fleet_settings) -> None:
    store_all(engine)
    marked = outcome(engine, fleet_settings)
    with Session(engine) as session:  # as stored before the mark: every summary is read
        session.exec(update(CenterHealthReport).values(notable=None))
        session.commit()
    assert outcome(engine, fleet_settings) == marked
    changes, not_serving = marked
    assert {key.split(":")[1] for _, key, *_ in changes} == \
        {code for code, (_, notable) in SUMMARIES.items() if notable and code != "445202101004"}
    assert [code for code, _ in not_serving] == ["445202101003", "445202101004"]
