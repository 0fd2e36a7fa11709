"""A resident's callback phone at the county (fleet.cases.contact): sealed in its 差评's case only, shown only to
the case's assignee, in no list, API answer, audit entry or log, erased a set number of days after closing."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from fleet_testkit import CENTER, add_user
from sqlmodel import Session, select
from test_fleet_cases import FRIDAY, rating

from fleet.alerts.operations import callback_phone_job
from fleet.app import create_app
from fleet.cases.contact import ContactBox
from fleet.cases.models import FollowUpCase
from fleet.ingest import handle_message
from protocol import topics

PHONE = "13912345678"
LANDLINE = "075812345678"


def phone_message(engine, event_id: str, rating_id: str, phone: str = PHONE, settings=None) -> str:
    payload = {"v": 1, "event_id": event_id, "rating_id": rating_id, "ticket": "A001", "window": 3, "phone": phone,
               "ts": FRIDAY.timestamp() + 120}
    return handle_message(engine, topics.build(topics.CALLBACK_PHONE, center=CENTER), json.dumps(payload).encode(),
                          FRIDAY + timedelta(minutes=2), settings=settings)


def the_case(engine) -> FollowUpCase:
    with Session(engine) as session:
        return session.exec(select(FollowUpCase)).one()


def database_bytes(database_url: str) -> bytes:
    path = Path(database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_the_number_is_sealed_in_its_case_and_shown_to_the_assignee_alone(fleet_settings, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    now = FRIDAY + timedelta(hours=1)
    app = create_app(fleet_settings, clock=lambda: now)
    engine = app.state.engine
    assert phone_message(engine, "p0", "r-r1", settings=fleet_settings) == "waiting"  # its rating is not here yet
    rating(engine, "r1", 1, FRIDAY)
    assert phone_message(engine, "p1", "r-r1", settings=fleet_settings) == "stored"
    case = the_case(engine)
    assert case.callback_phone_sealed is not None and PHONE not in case.callback_phone_sealed
    assert ContactBox(b"another server secret").open(case.id, case.callback_phone_sealed) is None

    admin = {"Authorization": f"Bearer {add_user(engine)}"}
    town = {"Authorization": f"Bearer {add_user(engine, 'town-a', 'town_operator', CENTER[:9])}"}
    with TestClient(app) as client:
        page = client.get(f"/cases/{case.id}", headers=town).text
        assert 'data-state="hidden">群众已留电话（仅责任人可见）<' in page and PHONE not in page  # not assigned
        assert client.post(f"/api/cases/{case.id}/assign", json={"assignee": "town-a"},
                           headers=town).status_code == 200
        assert f'id="case-phone" colspan="3" data-state="shown">{PHONE}<' in \
            client.get(f"/cases/{case.id}", headers=town).text
        assert PHONE not in client.get(f"/cases/{case.id}", headers=admin).text  # the county admin is no assignee
        for url in ("/api/cases", f"/api/cases/{case.id}", "/cases", "/api/audit", "/audit"):
            for who in (town, admin):
                answer = client.get(url, headers=who)
                assert PHONE not in answer.text and "callback_phone_sealed" not in answer.text, url
        # The resident corrected the number at the kiosk: the later one replaces it.
        assert phone_message(engine, "p2", "r-r1", LANDLINE, settings=fleet_settings) == "stored"
        assert f'data-state="shown">{LANDLINE}<' in client.get(f"/cases/{case.id}", headers=town).text
        history = client.get(f"/api/cases/{case.id}", headers=town).json()["actions"]
        assert [(a["action"], a["note"]) for a in history if a["action"] == "callback_phone"] == \
            [("callback_phone", "群众留下回访电话（仅责任人可见）")] * 2
    app.state.engine.dispose()
    if fleet_settings.database_url.startswith("sqlite"):  # on PostgreSQL the sealed column is all there is to see
        assert PHONE.encode() not in database_bytes(fleet_settings.database_url)
        assert LANDLINE.encode() not in database_bytes(fleet_settings.database_url)
    assert PHONE not in caplog.text and LANDLINE not in caplog.text


def test_a_number_for_a_rating_that_is_no_bad_one_is_acknowledged_and_not_kept(engine, fleet_settings) -> None:
    rating(engine, "r1", 4, FRIDAY)
    assert phone_message(engine, "p1", "r-r1", settings=fleet_settings) == "discarded"
    with Session(engine) as session:
        assert session.exec(select(FollowUpCase)).all() == []


def test_the_number_is_erased_the_set_number_of_days_after_the_case_closed(fleet_settings) -> None:
    settings = fleet_settings.model_copy(update={"callback_phone_keep_days": 7})
    clock = [FRIDAY + timedelta(hours=1)]
    app = create_app(settings, clock=lambda: clock[0])
    engine = app.state.engine
    rating(engine, "r1", 2, FRIDAY)
    phone_message(engine, "p1", "r-r1", settings=settings)
    town = {"Authorization": f"Bearer {add_user(engine, 'town-a', 'town_operator', CENTER[:9])}"}
    with TestClient(app) as client:
        case_id = the_case(engine).id
        for action, body in (("assign", {"assignee": "town-a"}), ("callback", {"result": "reached", "note": "已回访"}),
                             ("rectification", {"kind": "explained", "note": "已解释"}), ("close", {})):
            assert client.post(f"/api/cases/{case_id}/{action}", json=body, headers=town).status_code == 200
        closed_at = the_case(engine).closed_at
        assert closed_at == clock[0]
        assert callback_phone_job(engine, settings, closed_at + timedelta(days=7) - timedelta(seconds=1)) == 0
        assert f'data-state="shown">{PHONE}<' in client.get(f"/cases/{case_id}", headers=town).text
        erased_at = closed_at + timedelta(days=7)
        assert callback_phone_job(engine, settings, erased_at) == 1
        assert callback_phone_job(engine, settings, erased_at + timedelta(days=1)) == 0
        case = the_case(engine)
        assert (case.callback_phone_sealed, case.callback_phone_erased_at) == (None, erased_at)
        page = client.get(f"/cases/{case_id}", headers=town).text
        assert 'data-state="erased">已按期删除<' in page and PHONE not in page
        # The edge sends it again (an ack lost): it is not kept again.
        assert phone_message(engine, "p1", "r-r1", settings=settings) == "discarded"
        assert the_case(engine).callback_phone_sealed is None
