"""Two writers make a center's next configuration version at once (fleet.centerconfig.service.note_config).

A staffing page's save and the periodic center_config job (after a catalogue edit) both number the center's next
version; on PostgreSQL (READ COMMITTED, several transactions at once) both took the same number and the page's
save failed with a 500 (unique uq_center_config_version), seen in tests/test_county_runs_centers.py. SQLite lets
one writer in at a time (write_session's BEGIN IMMEDIATE), so the case is PostgreSQL's.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlmodel import Session, select
from test_fleet_center_config import CENTER, seed_center

from fleet.auth.principal import CLI_USER
from fleet.centerconfig import service
from fleet.centerconfig.models import CenterConfigVersion
from fleet.db import write_session
from tests.support.waiting import wait_until

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def waiting_backends(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one()


def test_a_version_made_while_another_transaction_makes_one_gets_the_next_number(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer in at a time: no two transactions number a version at once")
    with write_session(engine) as session:
        seed_center(session)
        assert service.note_config(session, CENTER, NOW).version == 1

    # The page's save: 王芳's new 职务 and its version, not yet committed.
    page_save = write_session(engine)
    session = page_save.__enter__()
    service.save_member(session, CLI_USER, CENTER, "1003", "王芳", "首席代办员", [], [], NOW)
    assert service.note_config(session, CENTER, NOW).version == 2
    session.flush()

    # Meanwhile the job (another process, say) notes a change of its own: 赵丽's 职务.
    failures: list[BaseException] = []

    def job() -> None:
        try:
            with write_session(engine) as other:
                service.save_member(other, CLI_USER, CENTER, "1009", "赵丽", "机动岗", [3], ["1003"], NOW)
                service.note_config(other, CENTER, NOW)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    worker = threading.Thread(target=job)
    worker.start()
    wait_until(lambda: waiting_backends(engine) > 0, what="the job waiting for the page's transaction")
    page_save.__exit__(None, None, None)  # the page's save commits
    worker.join(30)

    assert not worker.is_alive() and failures == []
    with Session(engine) as check:
        versions = check.exec(select(CenterConfigVersion.version).where(CenterConfigVersion.center_code == CENTER)
                              .order_by(CenterConfigVersion.version)).all()
        assert versions == [1, 2, 3]
        latest = service.config_view(check, CENTER)
    roster = {member["staff_no"]: member["title"] for member in latest["roster"]}
    assert (latest["version"], roster["1003"], roster["1009"]) == (3, "首席代办员", "机动岗")
