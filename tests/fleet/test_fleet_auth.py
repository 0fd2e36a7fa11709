"""Users, roles, scopes, sessions, CSRF and API tokens (fleet.auth), through the real app."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fleet_testkit import ADMIN, PASSWORD, add_user
from sqlmodel import Session, select

from fleet.app import create_app
from fleet.audit import AuditEntry
from fleet.auth.deps import WriterDep, ensure_changeable
from fleet.auth.models import LOCK_BY_USER, ApiToken, LoginLock, User, WebSession
from fleet.ingest import handle_message
from fleet.settings import Settings
from protocol import topics
from protocol.identity import device_id_from_mac

REPO = Path(__file__).resolve().parents[2]
TOWN_A = "445202101"  # 示例镇
TOWN_B = "445202102"
CENTER_A = TOWN_A + "001"
CENTER_A2 = TOWN_A + "002"
CENTER_B = TOWN_B + "003"
DEVICE_A = device_id_from_mac("a4:cf:12:00:0a:01")
DEVICE_B = device_id_from_mac("a4:cf:12:00:0b:01")


def seed(engine) -> None:
    birth = {"v": 1, "state": "online", "board": "esp32-s3", "fw": "1.2.0", "contract": 1, "session": 1}
    for center, device in ((CENTER_A, DEVICE_A), (CENTER_B, DEVICE_B)):
        handle_message(engine, topics.build(topics.EDGE_PRESENCE, center=center),
                       json.dumps({**birth, "role": "edge_agent"}).encode())
        handle_message(engine, topics.build(topics.DEVICE_PRESENCE, center=center, device=device),
                       json.dumps({**birth, "role": "queue_display", "window": 1}).encode())
        handle_message(engine, topics.build(topics.DEVICE_HEALTH, center=center, device=device),
                       json.dumps({"v": 1, "session": 1, "uptime_s": 5, "rssi": -60}).encode())
    handle_message(engine, topics.build(topics.EDGE_PRESENCE, center=CENTER_A2),
                   json.dumps({**birth, "role": "edge_agent"}).encode())


@pytest.fixture
def app(fleet_settings) -> FastAPI:
    app = create_app(fleet_settings)

    # A state-changing route as the configuration and alert pages write them.
    @app.post("/test-only/change/{code}")
    def change(code: str, user: WriterDep) -> dict:
        ensure_changeable(user, code)
        return {"changed": code, "by": user.username}

    seed(app.state.engine)
    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csrf_of(client: TestClient, path: str = "/") -> str:
    html = client.get(path).text
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client: TestClient, username: str = ADMIN, password: str = PASSWORD, next_url: str = "/"):
    token = csrf_of(client, "/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                       "next": next_url}, follow_redirects=False)


def test_login_sets_a_signed_httponly_lax_cookie_and_passwords_are_argon2(app) -> None:
    add_user(app.state.engine)
    with TestClient(app) as client:
        assert client.get("/", headers={"Accept": "text/html"}, follow_redirects=False).headers["location"] == \
            "/login?next=%2F"
        assert login(client, password="wrong-password").status_code == 401
        response = login(client, next_url="/centers/" + CENTER_A)
        assert response.status_code == 303 and response.headers["location"] == "/centers/" + CENTER_A
        cookie = next(v for k, v in response.headers.multi_items()
                      if k == "set-cookie" and v.startswith("fleet_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert client.get("/api/me").json()["username"] == ADMIN

        # A tampered cookie is no session.
        value = client.cookies["fleet_session"]
        client.cookies.set("fleet_session", value[:-1] + ("0" if value[-1] != "0" else "1"))
        assert client.get("/api/me").status_code == 401

    with Session(app.state.engine) as session:
        user = session.exec(select(User).where(User.username == ADMIN)).one()
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
        assert not any(value in row.id_hash for row in session.exec(select(WebSession)).all())
        actions = [(e.action, e.username, e.target) for e in session.exec(select(AuditEntry)).all()]
    assert ("login.failed", "system", ADMIN) in actions and ("login", ADMIN, ADMIN) in actions


def test_login_form_needs_its_csrf_token_and_next_stays_on_site(app) -> None:
    add_user(app.state.engine)
    with TestClient(app) as client:
        client.get("/login")
        forged = client.post("/login", data={"username": ADMIN, "password": PASSWORD, "csrf_token": "forged"},
                             follow_redirects=False)
        assert forged.status_code == 403 and "fleet_session" not in client.cookies
        assert login(client, next_url="//evil.example/x").headers["location"] == "/"


def test_state_changes_from_a_browser_need_the_csrf_token(app) -> None:
    add_user(app.state.engine)
    with TestClient(app) as client:
        login(client)
        assert client.post(f"/test-only/change/{CENTER_A}").status_code == 403
        assert client.post(f"/test-only/change/{CENTER_A}", data={"csrf_token": "wrong"}).status_code == 403
        token = csrf_of(client)
        assert client.post(f"/test-only/change/{CENTER_A}", data={"csrf_token": token}).json()["by"] == ADMIN
        assert client.post(f"/test-only/change/{CENTER_A}", headers={"X-CSRF-Token": token}).status_code == 200
        assert client.post("/logout", data={}).status_code == 403  # logout too
        assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
        assert client.get("/api/me").status_code == 401


def test_api_tokens_are_hashed_revocable_and_need_no_csrf(app) -> None:
    token = add_user(app.state.engine)
    with TestClient(app) as client:
        assert client.post(f"/test-only/change/{CENTER_A}", headers=bearer(token)).status_code == 200
        with Session(app.state.engine) as session:
            rows = session.exec(select(ApiToken)).all()
            assert len(rows) == 1 and token not in rows[0].token_hash and rows[0].last_used is not None
        admin = TestClient(app)  # not entered: a second lifespan would start a second sweeper that nothing stops
        login(admin)
        page = admin.get("/users").text
        assert token not in page  # shown once, at creation only
        csrf = csrf_of(admin, "/users")
        assert admin.post(f"/tokens/{2**63}/revoke", data={"csrf_token": csrf}).status_code == 422
        assert admin.post("/tokens/999/revoke", data={"csrf_token": csrf}).status_code == 404
        admin.post(f"/tokens/{rows[0].id}/revoke", data={"csrf_token": csrf})
        assert client.get("/api/centers", headers=bearer(token)).status_code == 401


def test_town_operator_sees_and_changes_only_their_town(app) -> None:
    token = add_user(app.state.engine, "town-a", "town_operator", TOWN_A)
    with TestClient(app, headers=bearer(token)) as client:
        assert [c["code"] for c in client.get("/api/centers").json()] == [CENTER_A, CENTER_A2]
        assert [d["device_id"] for d in client.get("/api/devices").json()] == [DEVICE_A]
        assert client.get("/api/devices", params={"center": CENTER_B}).json() == []
        assert client.get(f"/api/centers/{CENTER_B}").status_code == 404
        assert client.get(f"/api/devices/{DEVICE_B}/health").status_code == 404
        assert len(client.get(f"/api/devices/{DEVICE_A}/health").json()) == 1
        assert client.get(f"/centers/{CENTER_B}").status_code == 404
        assert client.get(f"/devices/{DEVICE_B}").status_code == 404
        assert client.get(f"/centers/{CENTER_A}").status_code == 200
        page = client.get("/").text
        assert CENTER_A in page and CENTER_B not in page and TOWN_B not in page
        assert client.get("/users").status_code == 403  # not an administrator
        assert client.post(f"/test-only/change/{CENTER_A}").status_code == 200
        assert client.post(f"/test-only/change/{CENTER_B}").status_code == 404


def test_read_only_user_sees_their_scope_and_changes_nothing(app) -> None:
    token = add_user(app.state.engine, "viewer", "read_only", TOWN_B)
    with TestClient(app, headers=bearer(token)) as client:
        assert [c["code"] for c in client.get("/api/centers").json()] == [CENTER_B]
        assert client.post(f"/test-only/change/{CENTER_B}").status_code == 403
        assert client.post("/users", data={"username": "x", "role": "read_only", "password": "p" * 10}
                           ).status_code == 403


def test_admin_creates_a_user_and_a_token_and_it_is_audited(app) -> None:
    add_user(app.state.engine)
    with TestClient(app) as client:
        login(client)
        csrf = csrf_of(client, "/users")
        bad = client.post("/users", data={"username": "op", "role": "town_operator", "password": "long-enough-1",
                                          "csrf_token": csrf})
        assert bad.status_code == 400  # a town operator needs a 9-digit prefix
        created = client.post("/users", data={"username": "op", "role": "town_operator", "password": "long-enough-1",
                                              "division_prefix": TOWN_A, "display_name": " 王主任 ",
                                              "csrf_token": csrf}, follow_redirects=False)
        assert created.status_code == 303
        with Session(app.state.engine) as session:
            op = session.exec(select(User).where(User.username == "op")).one()
        assert op.display_name == "王主任" and "王主任" in client.get("/users").text
        page = client.post(f"/users/{op.id}/tokens", data={"name": "script", "csrf_token": csrf}).text
        token = re.search(r'id="new-token">([^<]+)<', page).group(1)
    with TestClient(app, headers=bearer(token)) as client:
        assert client.get("/api/me").json() == {"username": "op", "role": "town_operator", "division_prefix": TOWN_A,
                                                "can_write": True}
        # A town operator reads entries about their centers and their own actions, not the county's.
        assert not any(e["action"] == "user.create" for e in client.get("/api/audit").json())
    with TestClient(app) as client:
        login(client)
        entries = client.get("/api/audit").json()
    create = next(e for e in entries if e["action"] == "user.create")
    assert create["username"] == ADMIN and create["target"] == "op" and create["via"] == "session"
    assert create["source"] == "testclient" and json.loads(create["detail"])["division_prefix"] == TOWN_A
    assert any(e["action"] == "token.create" and e["target"] == "op" for e in entries)


def test_disabled_user_loses_sessions_and_tokens(app) -> None:
    token = add_user(app.state.engine, "op", "town_operator", TOWN_A)
    add_user(app.state.engine)
    with TestClient(app) as op:
        assert login(op, "op").status_code == 303
        admin = TestClient(app)  # not entered: a second lifespan would start a second sweeper that nothing stops
        login(admin)
        with Session(app.state.engine) as session:
            op_id = session.exec(select(User.id).where(User.username == "op")).one()
        admin.post(f"/users/{op_id}/disable", data={"csrf_token": csrf_of(admin, "/users")})
        assert op.get("/api/me").status_code == 401
        assert op.get("/api/me", headers=bearer(token)).status_code == 401
        assert login(op, "op").status_code == 401


def test_changing_a_password_ends_the_users_other_sessions(app) -> None:
    """A new password is what one does after a session was stolen: the thief's session must end with the old
    password. The browser that changed it stays signed in; every other one (and the CLI's change) ends."""
    from fleet.auth.users import find_user, set_password
    from fleet.db import write_session

    add_user(app.state.engine)
    add_user(app.state.engine, "op", "town_operator", TOWN_A)
    with TestClient(app) as mine:
        thief, op = TestClient(app), TestClient(app)  # not entered: see test_disabled_user_loses_sessions_and_tokens
        for client, name in ((mine, ADMIN), (thief, ADMIN), (op, "op")):
            assert login(client, name).status_code == 303
        with Session(app.state.engine) as session:
            admin_id = session.exec(select(User.id).where(User.username == ADMIN)).one()
        changed = mine.post(f"/users/{admin_id}/password", data={"password": "a-new-secret-2",
                                                                   "csrf_token": csrf_of(mine, "/users")},
                            follow_redirects=False)
        assert changed.status_code == 303
        assert mine.get("/api/me").status_code == 200
        assert thief.get("/api/me").status_code == 401
        assert login(thief, ADMIN, "a-new-secret-2").status_code == 303  # signing in again works

        assert op.get("/api/me").status_code == 200
        with write_session(app.state.engine) as session:  # what `python -m fleet users set-password` calls
            set_password(session, find_user(session, "op"), "another-secret-3")
        assert op.get("/api/me").status_code == 401


def test_a_user_name_starting_with_a_center_code_files_nothing_under_that_center(app) -> None:
    """Entries are scoped by the center they are about, never by digits a user name happens to start with:
    anyone can make a failed login of any name, and the center's town operator would read it as theirs."""
    add_user(app.state.engine)
    town = add_user(app.state.engine, "town-a", "town_operator", TOWN_A)
    with TestClient(app) as stranger:
        assert login(stranger, CENTER_A + "-admin", "wrong-password").status_code == 401
    with TestClient(app) as admin:
        login(admin)
        created = admin.post("/users", data={"username": CENTER_A + "ops", "role": "read_only",
                                             "password": "long-enough-1", "division_prefix": TOWN_B,
                                             "csrf_token": csrf_of(admin, "/users")}, follow_redirects=False)
        assert created.status_code == 303
    with Session(app.state.engine) as session:
        entries = session.exec(select(AuditEntry).where(AuditEntry.target.startswith(CENTER_A))).all()
    assert sorted(e.action for e in entries) == ["login.failed", "user.create"]
    assert {e.center_code for e in entries} == {None}
    with TestClient(app, headers=bearer(town)) as client:
        assert [e for e in client.get("/api/audit").json() if e["target"].startswith(CENTER_A)] == []


@pytest.mark.sqlite_only(reason="the CLI as a county first runs it, on a SQLite file; the users and tokens it "
                                 "writes are also made on PostgreSQL by tests/test_end_to_end.py")
def test_cli_creates_the_first_admin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = subprocess.run([sys.executable, "-m", "fleet", "users", "create", "--username", "admin", "--role",
                             "county_admin", "--password-stdin", "--database-url", url],
                            input="a-long-password\n", capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    again = subprocess.run([sys.executable, "-m", "fleet", "--database-url", url, "users", "create", "--username",
                            "admin", "--role", "county_admin", "--password-stdin"],
                           input="a-long-password\n", capture_output=True, text=True, cwd=REPO, timeout=60)
    assert again.returncode == 1 and again.stderr.startswith("fleet: ") and "exists" in again.stderr
    token = subprocess.run([sys.executable, "-m", "fleet", "tokens", "create", "--username", "admin", "--name",
                            "ci", "--database-url", url], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert token.returncode == 0, token.stderr
    named = subprocess.run([sys.executable, "-m", "fleet", "users", "set-display-name", "--username", "admin",
                            "--display-name", "王主任", "--database-url", url],
                           capture_output=True, text=True, cwd=REPO, timeout=60)
    assert named.returncode == 0, named.stderr

    app = create_app(Settings(database_url=url, ingest_enabled=False))  # Secure cookies: log in over https
    with TestClient(app, base_url="https://testserver") as client:
        assert login(client, "admin", "a-long-password").status_code == 303
        assert client.get("/api/me", headers=bearer(token.stdout.strip())).json()["role"] == "county_admin"
    with Session(app.state.engine) as session:
        assert session.exec(select(User.display_name).where(User.username == "admin")).one() == "王主任"



class Clock:
    """A clock the test moves forward (the app reads it for every request)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def test_failed_logins_lock_the_user_name_until_the_lock_expires(fleet_settings) -> None:
    clock = Clock()
    app = create_app(fleet_settings, clock=clock)
    add_user(app.state.engine)
    add_user(app.state.engine, "op", "town_operator", TOWN_A)
    with TestClient(app) as client:
        for _ in range(4):
            assert login(client, password="wrong-password").status_code == 401
        locking = login(client, password="wrong-password")  # the 5th within 15 minutes
        assert locking.status_code == 429 and int(locking.headers["retry-after"]) == 15 * 60
        assert "登录失败次数过多，已暂时锁定，请 15 分钟后再试。" in locking.text
        clock.advance(minutes=5)
        refused = login(client)  # even the right password, while locked
        assert refused.status_code == 429 and "请 10 分钟后再试" in refused.text
        assert "fleet_session" not in client.cookies
        client.get("/login?lang=en")  # the English switch
        english = login(client, password="wrong-password")
        assert english.status_code == 429 and "Try again in 10 minutes" in english.text
        assert login(client, "op").status_code == 303  # the lock is the user name's, not everybody's

    # Counted in the database: another replica on the same database refuses too.
    replica = create_app(fleet_settings, clock=clock)
    with TestClient(replica) as other:
        assert login(other).status_code == 429
        clock.advance(minutes=10, seconds=1)  # the lock has expired
        assert login(other).status_code == 303
    with Session(app.state.engine) as session:
        locks = session.exec(select(AuditEntry).where(AuditEntry.action == "login.locked")).all()
    assert [(e.username, e.target, json.loads(e.detail)["failures"]) for e in locks] == [("system", ADMIN, 5)]


def test_after_a_lock_expires_the_count_starts_again(fleet_settings) -> None:
    clock = Clock()
    app = create_app(fleet_settings.model_copy(update={"login_max_failures": 2, "login_lockout_s": 60}),
                     clock=clock)
    add_user(app.state.engine)
    with TestClient(app) as client:
        assert login(client, password="wrong-password").status_code == 401
        assert login(client, password="wrong-password").status_code == 429
        clock.advance(seconds=61)
        assert login(client, password="wrong-password").status_code == 401  # one failure, not three
        assert login(client).status_code == 303  # and a success clears the count
        client.cookies.clear()
        assert login(client, password="wrong-password").status_code == 401
        assert login(client, password="wrong-password").status_code == 429  # locked again: the row extended


def test_failed_logins_from_one_address_lock_that_address(fleet_settings) -> None:
    clock = Clock()
    app = create_app(fleet_settings.model_copy(update={"login_max_failures_per_source": 3}), clock=clock)
    add_user(app.state.engine)
    with TestClient(app, client=("192.0.2.7", 50000)) as guesser:
        for name in ("alice", "bob"):
            assert login(guesser, name, "wrong-password").status_code == 401
        assert login(guesser, "carol", "wrong-password").status_code == 429  # three names, one address
        assert login(guesser).status_code == 429  # from there, nobody logs in for now
    with TestClient(app, client=("192.0.2.8", 50000)) as colleague:
        assert login(colleague).status_code == 303
    with Session(app.state.engine) as session:
        [lock] = session.exec(select(AuditEntry).where(AuditEntry.action == "login.locked")).all()
    assert lock.target == "192.0.2.7" and json.loads(lock.detail)["by"] == "source"


def session_cookies(response) -> dict[str, str]:
    return {v.split("=", 1)[0]: v for k, v in response.headers.multi_items() if k == "set-cookie"}


def test_session_cookies_are_secure_by_default(fleet_settings) -> None:
    assert Settings().session_cookie_secure
    assert not Settings.from_env({"FLEET_SESSION_COOKIE_SECURE": "0"}).session_cookie_secure
    app = create_app(fleet_settings.model_copy(update={"session_cookie_secure": True}))
    add_user(app.state.engine)
    with TestClient(app, base_url="https://testserver") as client:
        form = client.get("/login")
        assert "Secure" in session_cookies(form)["fleet_login_csrf"]
        cookie = session_cookies(login(client))["fleet_session"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert client.get("/api/me").json()["username"] == ADMIN
    with TestClient(app) as plain:  # a browser on plain http never returns the Secure login cookie
        refused = login(plain)
        assert refused.status_code == 403 and "请通过 HTTPS 地址登录" in refused.text


def test_plain_http_setting_drops_only_the_secure_flag(app) -> None:
    add_user(app.state.engine)
    with TestClient(app) as client:
        cookie = session_cookies(login(client))["fleet_session"]
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_parallel_wrong_passwords_count_up_to_the_limit_and_no_more(fleet_settings) -> None:
    """Guesses sent at once are checked one after another: no more than the limit pass before the lock."""
    limit, guessers = 3, 12
    clock = Clock()
    app = create_app(fleet_settings.model_copy(update={"login_max_failures": limit}), clock=clock)
    add_user(app.state.engine)
    with TestClient(app):  # the app's lifespan; every guesser below is its own browser, at its own address
        clients = [TestClient(app, client=(f"192.0.2.{n + 1}", 50000), raise_server_exceptions=False)
                   for n in range(guessers)]
        tokens = [csrf_of(client, "/login") for client in clients]
        start = threading.Barrier(guessers)

        def guess(n: int) -> int:
            start.wait()
            return clients[n].post("/login", data={"username": ADMIN, "password": "wrong-password",
                                                   "csrf_token": tokens[n]}, follow_redirects=False).status_code

        with ThreadPoolExecutor(guessers) as pool:
            statuses = sorted(pool.map(guess, range(guessers)))
        assert statuses == [401] * (limit - 1) + [429] * (guessers - limit + 1)  # no 500s either
        assert login(clients[0]).status_code == 429  # locked, even for the right password
    with Session(app.state.engine) as session:
        entries = session.exec(select(AuditEntry).where(AuditEntry.target == ADMIN)).all()
        lock = session.get(LoginLock, (LOCK_BY_USER, ADMIN))
    assert sum(e.action == "login.failed" for e in entries) == limit  # passwords checked: the limit, no more
    assert [json.loads(e.detail)["failures"] for e in entries if e.action == "login.locked"] == [limit]
    assert lock is not None and lock.failures == limit
