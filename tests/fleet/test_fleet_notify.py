"""Webhook notifications against an HTTP server of ours on loopback: formats, retries, never fatal."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from fleet_testkit import wait_for

from fleet.notify import Notification, Notifier, WebhookTarget, deliver, render
from fleet.settings import Settings
from tools.mosquitto import free_port


class Receiver:
    """Records every POST; answers the first `fail_first` with `fail_status`, then with `answer`."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.fail_first = 0
        self.fail_status = 500
        self.answer: dict = {"errcode": 0, "errmsg": "ok"}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.bodies.append(body)
                receiver.paths.append(self.path)
                failing = len(receiver.bodies) <= receiver.fail_first
                data = json.dumps(receiver.answer).encode()
                self.send_response(receiver.fail_status if failing else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


NOTE = Notification(title="【严重告警】3号窗口排队显示屏离线", lines=["离线（连接断开）", "中心：445202101001"],
                    center_code="445202101001", event="alert.opened", data={"alert_id": 7})


def test_wecom_dingtalk_and_plain_json_bodies(receiver: Receiver) -> None:
    wecom = WebhookTarget(kind="wecom", url=receiver.url)
    dingtalk = WebhookTarget(kind="dingtalk", url=receiver.url + "?access_token=t", secret="SEC123")
    plain = WebhookTarget(kind="json", url=receiver.url)
    for target in (wecom, dingtalk, plain):
        assert deliver(target, render(target, NOTE), attempts=1)
    assert receiver.bodies[0] == {"msgtype": "markdown", "markdown": {
        "content": "### 【严重告警】3号窗口排队显示屏离线\n> 离线（连接断开）\n> 中心：445202101001"}}
    assert receiver.bodies[1]["msgtype"] == "markdown"
    assert receiver.bodies[1]["markdown"]["title"] == NOTE.title
    assert receiver.bodies[1]["markdown"]["text"].startswith("### 【严重告警】")
    query = parse_qs(urlsplit(receiver.paths[1]).query)
    assert query["access_token"] == ["t"] and query["timestamp"] and query["sign"]  # DingTalk 加签
    assert receiver.bodies[2] == {"event": "alert.opened", "title": NOTE.title, "lines": NOTE.lines,
                                  "center_code": "445202101001", "data": {"alert_id": 7}}


def test_failures_are_retried_with_backoff_and_logged(receiver: Receiver, caplog) -> None:
    receiver.fail_first = 2
    waits: list[float] = []
    target = WebhookTarget(kind="wecom", url=receiver.url)
    assert deliver(target, render(target, NOTE), attempts=5, backoff_s=1.0, wait=lambda s: bool(waits.append(s)))
    assert len(receiver.bodies) == 3 and waits == [1.0, 2.0]
    assert "attempt 1 of 5: HTTP 500" in caplog.text
    assert "/hook" in caplog.text and "access_token" not in caplog.text


def test_a_robot_error_code_counts_as_a_failure(receiver: Receiver) -> None:
    receiver.answer = {"errcode": 310000, "errmsg": "keywords not in content"}
    target = WebhookTarget(kind="dingtalk", url=receiver.url)
    assert not deliver(target, render(target, NOTE), attempts=2, backoff_s=0.01, wait=lambda s: False)
    assert len(receiver.bodies) == 2


def test_the_notifier_never_raises_and_filters_by_division_prefix(receiver: Receiver, caplog) -> None:
    dead = WebhookTarget(kind="json", url=f"http://127.0.0.1:{free_port()}/nobody")
    other_town = WebhookTarget(kind="json", url=receiver.url, prefix="445202102")
    own_town = WebhookTarget(kind="wecom", url=receiver.url, prefix="445202101")
    notifier = Notifier([dead, other_town, own_town], attempts=2, backoff_s=0.01).start()
    try:
        assert notifier.notify(NOTE) == 2  # the dead target and the own town's robot
        wait_for(lambda: notifier.delivered == 1 and notifier.failed == 1, "both deliveries to end")
    finally:
        notifier.stop()
    assert [b.get("msgtype") for b in receiver.bodies] == ["markdown"]
    assert "giving up" in caplog.text


def test_targets_come_from_the_environment_as_json() -> None:
    settings = Settings.from_env({"FLEET_NOTIFY_WEBHOOKS": json.dumps(
        [{"kind": "wecom", "url": "http://127.0.0.1:1/x"},
         {"kind": "dingtalk", "url": "http://h/y", "secret": "SEKRIT-42"}])})
    assert [t.kind for t in settings.notify_webhooks] == ["wecom", "dingtalk"]
    assert "SEKRIT-42" not in repr(settings.notify_webhooks[1])
