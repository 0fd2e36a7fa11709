"""Appointments: from the config, imported through the API, checked in within their slot."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from edge_agent.agent import EdgeAgent
from edge_agent.appointments import Appointment, check_in_refusal, mask_name, parse_appointments
from edge_agent.config import ConfigError, parse_config
from edge_agent.web.app import create_app
from tests.support.staff import ADMIN_HASH, ADMIN_PASSWORD

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


def raw(tmp_path, appointments) -> dict:
    return {"center": {"code": "445202101001"}, "services": [{"prefix": "A", "name": "社保业务"}],
            "windows": [{"number": 1, "services": ["A"]}], "appointments": appointments,
            "storage": {"data_dir": str(tmp_path / "data")}, "voice": {"enabled": False},
            "admin": {"password_hash": ADMIN_HASH}}


def test_names_are_masked_and_slot_times_are_shanghai_time(tmp_path):
    assert (mask_name("张三丰"), mask_name("李四"), mask_name("王*"), mask_name("")) == ("张**", "李*", "王*", "")
    config = parse_config(raw(tmp_path, [{"code": "YY1", "service": "A", "slot_start": "2026-01-05 09:00",
                                          "slot_end": "2026-01-05 09:30", "name": "张三丰"}]))
    (appointment,) = config.appointments
    assert appointment == Appointment("YY1", "A", at("2026-01-05 09:00"), at("2026-01-05 09:30"), "张**")


def test_bad_appointments_are_reported_with_their_path(tmp_path):
    with pytest.raises(ConfigError) as error:
        parse_config(raw(tmp_path, [
            {"code": "YY1", "service": "Z", "slot_start": "2026-01-05 09:00", "slot_end": "2026-01-05 09:30"},
            {"code": "YY2", "service": "A", "slot_start": "soon", "slot_end": "2026-01-05 09:30"},
            {"code": "YY3", "service": "A", "slot_start": "2026-01-05 10:00", "slot_end": "2026-01-05 09:30"},
            {"code": "YY3", "service": "A", "slot_start": "2026-01-05 08:00", "slot_end": "2026-01-05 09:30"},
        ]))
    text = str(error.value)
    for expected in ("appointments[0].service: unknown service 'Z'", "appointments[1].slot_start",
                     "appointments[2].slot_end: must be after slot_start", "code 'YY3' is listed twice"):
        assert expected in text


def test_check_in_opens_early_minutes_before_the_slot_and_closes_at_its_end():
    appointment = Appointment("YY1", "A", at("2026-01-05 09:00"), at("2026-01-05 09:30"))
    assert "09:00开始" in check_in_refusal(appointment, at("2026-01-05 08:44"), 15)
    assert check_in_refusal(appointment, at("2026-01-05 08:45"), 15) is None
    assert check_in_refusal(appointment, at("2026-01-05 09:30"), 15) is None
    assert "已过" in check_in_refusal(appointment, at("2026-01-05 09:31"), 15)


def test_appointments_are_imported_through_the_api_all_or_nothing(tmp_path):
    agent = EdgeAgent(parse_config(raw(tmp_path, [])))
    try:
        client = TestClient(create_app(agent))
        assert client.post("/api/appointments", json=[]).status_code == 401  # the center administrator's
        client.post("/api/admin/login", json={"password": ADMIN_PASSWORD}).raise_for_status()
        good = {"code": "YY9", "service": "A", "slot_start": "2026-01-05 09:00", "slot_end": "2026-01-05 09:30",
                "name": "赵六"}
        refused = client.post("/api/appointments", json=[good, {"code": "YY10", "service": "Q"}])
        assert refused.status_code == 400 and "body[1].service" in refused.json()["detail"]
        assert client.get("/api/appointments").json() == []
        assert client.post("/api/appointments", json=[good]).json() == {"imported": 1}
        (stored,) = client.get("/api/appointments").json()
        assert (stored["code"], stored["name"], stored["ticket"]) == ("YY9", "赵*", None)
        assert client.post("/api/appointments", content=b"not json",
                           headers={"content-type": "application/json"}).status_code == 400
        assert client.post("/api/appointments", json={"code": "x"}).status_code == 400
        assert parse_appointments([good], {"A"}, []) == [Appointment("YY9", "A", at("2026-01-05 09:00"),
                                                                     at("2026-01-05 09:30"), "赵*")]
    finally:
        agent.retained.close()
        agent.awaiting.close()
        agent.store.close()
