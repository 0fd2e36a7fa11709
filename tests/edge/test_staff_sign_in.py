"""Staff act only after signing in (工号 + PIN, a session bound to one window); the center administrator sets
PINs and imports appointments; no other web page and nobody on the LAN without a session acts on the queue.

The app runs in-process (FastAPI's TestClient, real SQLite); the rules of sign-in run with a driven clock.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from fastapi.testclient import TestClient

from edge_agent.agent import EdgeAgent
from edge_agent.config import parse_config
from edge_agent.queue.service import QueueService
from edge_agent.sign_in import LOCKOUT_S, MAX_FAILURES, SignIn, SignInRefused
from edge_agent.store import EdgeStore
from edge_agent.web.app import MAX_APPOINTMENTS_BODY
from tests.edge.test_pages import StandInCard
from tests.support.staff import ADMIN_HASH, ADMIN_PASSWORD, PINS

START = 1_795_400_000.0  # 2026-11-23 09:33 Shanghai


def raw_config(tmp_path) -> dict:
    return {
        "center": {"code": "445202101001", "name": "示例镇便民服务中心"},
        "services": [{"prefix": "A", "name": "社保业务"}, {"prefix": "B", "name": "医保业务"}],
        "windows": [{"number": 1, "services": ["A", "B"], "staff_no": "1001", "staff_name": "张敏"},
                    {"number": 2, "services": ["B"], "staff_no": "1002", "staff_name": "李强"},
                    {"number": 3, "services": ["A"], "staff_no": "1003", "staff_name": "王芳"}],
        "staff": [{"staff_no": "1009", "name": "赵丽", "windows": [1, 2]}],
        "storage": {"data_dir": str(tmp_path / "data")}, "voice": {"enabled": False},
        "admin": {"password_hash": ADMIN_HASH},
    }


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def desk(tmp_path):
    """The sign-in rules over a real store and queue, with a clock the test drives."""
    clock = Clock()
    store = EdgeStore(tmp_path / "edge.sqlite3")
    config = parse_config(raw_config(tmp_path))
    queue = QueueService(store, config, clock)
    sign_in = SignIn(store, config, queue, clock)
    for staff_no, pin in PINS.items():
        sign_in.set_pin(staff_no, pin)
    yield sign_in, queue, clock
    store.close()


@pytest.fixture
def client(tmp_path):
    agent = EdgeAgent(parse_config(raw_config(tmp_path)))
    for staff_no, pin in PINS.items():
        agent.sign_in.set_pin(staff_no, pin)
    try:
        yield TestClient(create_app_for(agent)), agent
    finally:
        agent.store.close()


def create_app_for(agent: EdgeAgent):
    from edge_agent.web.app import create_app

    return create_app(agent)


def leaves(tree) -> list:
    if isinstance(tree, dict):
        return [leaf for value in tree.values() for leaf in leaves(value)]
    if isinstance(tree, list):
        return [leaf for value in tree for leaf in leaves(value)]
    return [tree]


def sign_in(client: TestClient, window: int, staff_no: str, pin: str | None = None):
    return client.post(f"/api/windows/{window}/login", json={"staff_no": staff_no, "pin": pin or PINS[staff_no]})


STAFF_ROUTES = [
    ("/api/windows/3/next", {"ticket": "", "call_seq": 0}), ("/api/windows/3/recall", {"ticket": "", "call_seq": 0}),
    ("/api/windows/3/skip", {"ticket": ""}), ("/api/windows/3/finish", {"ticket": ""}),
    ("/api/windows/3/transfer", {"ticket": "", "service": "B"}), ("/api/windows/3/pause", {}),
    ("/api/windows/3/resume", {}), ("/api/windows/3/logout", {}), ("/api/tickets/A001/requeue", {}),
    ("/api/tickets/A001/green", {}), ("/api/voice", {"enabled": False}),
]
ADMIN_ROUTES = [("post", "/api/appointments", []), ("get", "/api/appointments", None),
                ("post", "/api/admin/staff/1003/pin", {"pin": "123456"}), ("get", "/api/admin/staff", None),
                ("get", "/api/attendance", None)]


def test_every_staff_action_needs_a_session_at_that_window(client):
    client, agent = client
    client.post("/api/tickets", json={"service": "A"})
    for path, body in STAFF_ROUTES:
        assert client.post(path, json=body).status_code == 401, path
    assert agent.queue.window_now(3) == {"ticket": "", "call_seq": 0, "window_state": "open"}

    assert sign_in(client, 1, "1001").status_code == 200  # this browser is window 1's caller
    refused = client.post("/api/windows/3/next", json={"ticket": "", "call_seq": 0})
    assert refused.status_code == 403 and "1号窗口" in refused.json()["detail"]
    assert client.post("/api/windows/1/next", json={"ticket": "", "call_seq": 0}).json()["ticket"] == "A001"


def test_the_administrator_alone_sets_pins_and_imports_appointments(client):
    client, _ = client
    sign_in(client, 3, "1003")  # a staff session is not the administrator's
    for method, path, body in ADMIN_ROUTES:
        if path == "/api/attendance":
            continue  # staff may read the attendance
        answer = client.request(method, path, json=body)
        assert answer.status_code == 401, path
    assert client.post("/api/admin/login", json={"password": "wrong"}).status_code == 400
    assert client.post("/api/admin/login", json={"password": ADMIN_PASSWORD}).status_code == 200
    staff = {m["staff_no"]: m for m in client.get("/api/admin/staff").json()}
    assert staff["1009"]["windows"] == [1, 2] and staff["1003"]["windows"] == [3] and staff["1003"]["has_pin"]
    assert client.post("/api/admin/staff/1003/pin", json={"pin": "12ab"}).status_code == 400  # digits only
    assert client.post("/api/admin/staff/1003/pin", json={"pin": "246810"}).status_code == 200
    assert sign_in(TestClient(client.app), 3, "1003", "246810").status_code == 200


def test_wrong_pins_are_throttled_per_staff_number_and_per_address(desk):
    sign_in_rules, queue, clock = desk
    for _ in range(MAX_FAILURES):
        with pytest.raises(SignInRefused, match="工号或密码错误"):
            sign_in_rules.sign_in(3, "1003", "000000", "10.0.0.7")
    with pytest.raises(SignInRefused, match="尝试次数过多"):
        sign_in_rules.sign_in(3, "1003", PINS["1003"], "10.0.0.8")  # the right PIN, from elsewhere: paused
    clock.now += LOCKOUT_S + 1
    assert sign_in_rules.session(sign_in_rules.sign_in(3, "1003", PINS["1003"], "10.0.0.8")).window == 3

    # One address trying many staff numbers pauses too.
    for n in range(20):
        with pytest.raises(SignInRefused):
            sign_in_rules.sign_in(1, f"99{n:02d}", "000000", "10.0.0.9")
    with pytest.raises(SignInRefused, match="尝试次数过多"):
        sign_in_rules.sign_in(1, "1001", PINS["1001"], "10.0.0.9")


def test_pins_and_session_tokens_are_stored_hashed(desk, tmp_path):
    sign_in_rules, _, _ = desk
    token = sign_in_rules.sign_in(3, "1003", PINS["1003"], "10.0.0.7")
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("edge.sqlite3*"))
    assert PINS["1003"].encode() not in stored and token.encode() not in stored


def test_a_session_is_bound_to_its_window_and_ends_with_sign_out_a_new_sign_in_or_the_day(desk):
    sign_in_rules, queue, clock = desk
    with pytest.raises(SignInRefused, match="不能在3号窗口登录"):
        sign_in_rules.sign_in(3, "1009", PINS["1009"], "10.0.0.7")  # a stand-in for windows 1 and 2 only
    stand_in = sign_in_rules.sign_in(2, "1009", PINS["1009"], "10.0.0.7")
    assert sign_in_rules.session(stand_in).window == 2

    first = sign_in_rules.sign_in(3, "1003", PINS["1003"], "10.0.0.7")
    sign_in_rules.sign_out(first)
    assert sign_in_rules.session(first) is None and queue.window_states()[3].staff_no is None

    again = sign_in_rules.sign_in(3, "1003", PINS["1003"], "10.0.0.7")
    clock.now += 24 * 3600  # the next business day
    assert sign_in_rules.session(again) is None
    assert queue.window_states()[3].staff_no is None and queue.window_states()[3].state == "closed"
    record = [r for r in queue.attendance() if r["window"] == 3]
    assert len(record) == 2 and all(r["logout_at"] is not None for r in record)


def test_a_new_pin_ends_the_sessions_opened_with_the_old_one(desk):
    sign_in_rules, _, _ = desk
    token = sign_in_rules.sign_in(3, "1003", PINS["1003"], "10.0.0.7")
    sign_in_rules.set_pin("1003", "135790")
    assert sign_in_rules.session(token) is None


def test_requests_from_another_site_or_not_json_are_refused(client):
    client, agent = client
    sign_in(client, 3, "1003")
    client.post("/api/tickets", json={"service": "A"})
    # What a page of another site can send without a preflight: a text/plain POST with the cookie.
    plain = client.post("/api/windows/3/next", content=json.dumps({"ticket": "", "call_seq": 0}),
                        headers={"content-type": "text/plain"})
    assert plain.status_code == 415
    form = client.post("/api/tickets", data={"service": "A"})
    assert form.status_code == 415
    other = client.post("/api/windows/3/next", json={"ticket": "", "call_seq": 0},
                        headers={"origin": "http://attacker.example"})
    assert other.status_code == 403
    assert agent.queue.window_now(3)["ticket"] == ""  # nothing was called
    own = client.post("/api/windows/3/next", json={"ticket": "", "call_seq": 0},
                      headers={"origin": "http://testserver"})
    assert own.status_code == 200 and own.json()["ticket"] == "A001"


def test_the_public_state_carries_only_the_staff_numbers_on_duty_and_no_card_token(client):
    client, agent = client
    sign_in(client, 3, "1003")
    agent.kiosk.present_card(StandInCard("张三丰", "男", date(1950, 3, 1)), date(2026, 11, 23))
    state = client.get("/api/state").json()
    values = set(leaves(state))
    # 亮牌上岗: the hall shows the 工号 of whoever serves at a window (issue 13), no other staff number.
    assert values & set(PINS) == {"1003"}
    assert "王芳" in values  # names are public (公开), as the hall shows them
    assert set(state["kiosk"]["card"]) == {"name_masked", "green", "expires_at"}


def test_the_appointment_import_caps_its_body_and_counts_duplicates_in_one_pass(client):
    client, _ = client
    client.post("/api/admin/login", json={"password": ADMIN_PASSWORD})
    too_big = b"[" + b" " * MAX_APPOINTMENTS_BODY + b"]"
    assert client.post("/api/appointments", content=too_big,
                       headers={"content-type": "application/json"}).status_code == 413
    day = [{"code": f"YY{i:05d}", "service": "A", "slot_start": "2026-11-23 09:00", "slot_end": "2026-11-23 09:30"}
           for i in range(20_000)]
    duplicated = client.post("/api/appointments", json=[*day, day[7], day[19_999]])
    assert duplicated.status_code == 400
    assert "YY00007" in duplicated.json()["detail"] and "YY19999" in duplicated.json()["detail"]
    assert client.post("/api/appointments", json=day).json() == {"imported": 20_000}
