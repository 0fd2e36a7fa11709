"""Helpers for the fleet tests: sample identities, polling, an edge-like MQTT publisher."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol import messages, topics
from protocol.identity import device_id_from_mac
from tests.support.waiting import wait_until

CENTER = "445202101001"
OTHER_CENTER = "445202102003"
DISPLAY = device_id_from_mac("a4:cf:12:00:00:01")
PAD = device_id_from_mac("a4:cf:12:00:00:02")


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """wait_until with the argument order the fleet tests use (the time-out only stops a hung test: 30 s, as a
    loaded machine needs)."""
    return wait_until(condition, timeout, what)


class EdgePublisher:
    """Publishes on the county broker what an edge agent relays, with the contract's QoS and retain flags."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-test-" + uuid.uuid4().hex[:8],
                                  protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, name: str, payload: dict[str, Any], **params: Any) -> None:
        spec = topics.topic(name)
        raw = messages.encode(spec.payload, dict(payload))
        self.raw(topics.build(name, **params), raw, qos=spec.qos, retain=spec.retained)

    def raw(self, topic: str, raw: bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, raw, qos=qos, retain=retain).wait_for_publish(5)

    def birth(self, device: str, role: str, session: int, window: int | None = None, center: str = CENTER,
              fw: str = "1.0.0") -> None:
        payload = {"state": "online", "session": session, "role": role, "board": "esp32-s3", "fw": fw,
                   "contract": 1, "mac": device[4:]}
        if window is not None:
            payload["window"] = window
        self.send(topics.DEVICE_PRESENCE, payload, center=center, device=device)

    def will(self, device: str, role: str, session: int, center: str = CENTER) -> None:
        self.send(topics.DEVICE_PRESENCE, {"state": "offline", "session": session, "role": role},
                  center=center, device=device)

    def health(self, device: str, session: int, uptime_s: float = 10, center: str = CENTER) -> None:
        self.send(topics.DEVICE_HEALTH, {"session": session, "uptime_s": uptime_s, "rssi": -60},
                  center=center, device=device)

    def edge_birth(self, session: int = 1, center: str = CENTER) -> None:
        self.send(topics.EDGE_PRESENCE, {"state": "online", "session": session, "role": "edge_agent",
                                         "board": "rpi4", "fw": "edge-0.1", "contract": 1}, center=center)

    def edge_will(self, session: int = 1, center: str = CENTER) -> None:
        self.send(topics.EDGE_PRESENCE, {"state": "offline", "session": session, "role": "edge_agent"},
                  center=center)

    def ticket(self, event_id: str, ts: float, kind: str = "issued", ticket: str = "A001", window: int | None = 3,
               center: str = CENTER) -> None:
        payload: dict[str, Any] = {"event_id": event_id, "kind": kind, "ticket": ticket, "service": ticket[0],
                                   "service_name": "社保业务", "ts": ts}
        if window is not None:
            payload["window"] = window
        self.send(topics.TICKET_EVENT, payload, center=center)

    def rating(self, event_id: str, ts: float, score: int = 5, ticket: str = "A001", window: int = 3,
               center: str = CENTER) -> None:
        self.send(topics.RATING_EVENT, {"event_id": event_id, "rating_id": "r-" + event_id, "ticket": ticket,
                                        "service": ticket[0], "window": window, "staff_no": "0007",
                                        "score": score, "ts": ts}, center=center)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# Users: every page and API needs a login (fleet.auth).
ADMIN = "admin"
PASSWORD = "correct-horse-1"


def add_user(engine, username: str = ADMIN, role: str = "county_admin", prefix: str | None = None,
             password: str = PASSWORD) -> str:
    """Create a user in the fleet's database and return an API token of theirs."""
    from fleet.auth.tokens import create_token
    from fleet.auth.users import create_user
    from fleet.db import write_session

    with write_session(engine) as session:
        user = create_user(session, username, role, password, prefix)
        _row, token = create_token(session, user, "tests")
    return token


def add_user_to(database_url: str, username: str = ADMIN, role: str = "county_admin", prefix: str | None = None,
                password: str = PASSWORD) -> str:
    """add_user on a database the test does not hold an engine for (a fleet subprocess's)."""
    from fleet.db import create_db_engine, init_db

    engine = create_db_engine(database_url)
    try:
        init_db(engine)
        return add_user(engine, username, role, prefix, password)
    finally:
        engine.dispose()


def log_in(page, base: str, username: str = ADMIN, password: str = PASSWORD) -> None:
    """Log in through the login page in Chromium, as `username` whoever was logged in before."""
    page.context.clear_cookies()
    page.goto(base + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_selector("#nav")


def save_staff_member(page, base: str, center: str, staff_no: str, name: str, title: str, window: int) -> None:
    """Add or edit a member of a center's roster on its staffing page, as a town operator does."""
    page.goto(f"{base}/centers/{center}/staffing")
    form = page.locator("#staff-form")
    form.locator("input[name=staff_no]").fill(staff_no)
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=title]").fill(title)
    form.locator(f"input[name=windows][value='{window}']").check()
    page.click("#staff-submit")
    page.wait_for_url(f"{base}/centers/{center}/staffing")
