"""A province in one test (issue 16): two county brokers, each with its own edge agent, bridged into a province
broker by the bridges `python -m fleet province-bridges` writes, two fleet ingest workers on a shared subscription,
PostgreSQL. While tickets are taken at both edges all the time, a worker is SIGKILLed, a county broker restarted
and the other county's bridge cut for a while: afterwards every event is stored exactly once and every edge's
outbox is empty. The larger run is bench/province.py (`make bench`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fleet.registration.province_bridges import bridge_config, connection_state_topic
from protocol.errors import ProtocolError
from tests.support.processes import ROOT
from tests.support.province import Province

pytestmark = pytest.mark.broker

TICKETS_PER_FAULT = 25  # at each edge, while each fault lasts


def test_every_event_is_stored_once_through_a_worker_death_a_county_restart_and_a_cut_bridge(tmp_path,
                                                                                            postgres_url):
    province = Province(tmp_path, postgres_url, counties=2).start()
    try:
        seen = province.run_faults(TICKETS_PER_FAULT)
        # Each fault took hold: the worker died of the kill; behind the stopped county broker (in the outbox) and
        # behind the cut bridge (taken by the county broker, awaiting the fleet's event_ack) every event the edges
        # issued meanwhile waited unconfirmed.
        assert seen["killed_worker_status"] == -9
        assert seen["held_while_county_down"] >= TICKETS_PER_FAULT
        assert seen["held_while_bridge_cut"] >= TICKETS_PER_FAULT
        assert seen["bridge_connections"] >= 2
        province.wait_drained()
        counts = province.counts()
        assert province.mismatches() == {}  # each center: exactly the tickets it issued, none lost, none twice
        assert counts.stored == counts.distinct == counts.issued
        assert counts.issued >= 2 * 4 * TICKETS_PER_FAULT
        assert counts.unconfirmed_left == 0
    finally:
        province.stop()


def test_a_bridge_forwards_the_uplink_and_takes_only_its_own_centers_downlink():
    text = bridge_config("445202", ["445202101002", "445202101001"], "province.example:8883")
    lines = text.splitlines()
    assert "address province.example:8883" in lines
    assert "cleansession false" in lines
    assert "topic sc/+/event/ticket out 1" in lines
    assert "topic sc/+/device/+/health out 0" in lines
    assert "topic sc/445202101001/event/ack in 1" in lines
    assert "topic sc/445202101002/edge/center_config in 1" in lines
    assert not [line for line in lines if line.startswith("topic sc/+/") and line.split()[2] == "in"]
    assert not [line for line in lines if " out " in line and "/event/ack" in line]  # no echo of the downlink
    assert connection_state_topic("445202") == "$SYS/broker/connection/province-445202/state"
    with pytest.raises(ProtocolError):
        bridge_config("445203", ["445202101001"], "province.example:8883")  # another county's center


def test_the_cli_writes_one_file_per_county_of_the_registry(tmp_path):
    from sqlmodel import Session

    from fleet.db import create_db_engine, init_db
    from fleet.models import Center, utcnow

    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    engine = create_db_engine(url)
    init_db(engine)
    with Session(engine) as session:
        for code in ("445202101001", "445202102001", "445203101001"):
            session.add(Center.new(code, utcnow()))
        session.commit()
    engine.dispose()
    (tmp_path / "credentials").write_text("445202 bridge-445202 s3cret\n")
    result = subprocess.run([sys.executable, "-m", "fleet", "province-bridges", "--province", "10.0.0.5:1883",
                             "--out", str(tmp_path / "bridges"), "--credentials", str(tmp_path / "credentials"),
                             "--database-url", url], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in (tmp_path / "bridges").iterdir())
    assert files == ["445202.conf", "445203.conf"]
    first = (tmp_path / "bridges" / "445202.conf").read_text()
    assert "remote_password s3cret" in first and "topic sc/445202102001/event/ack in 1" in first
    assert "445203" not in first.replace("province-445202", "")
    assert oct((tmp_path / "bridges" / "445202.conf").stat().st_mode & 0o777) == "0o600"
