"""The simulator as a person uses it: `python -m firmware.sim` and its control page in Chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fw_helpers import CENTER, Recorder

from firmware.sim import sim_mac
from protocol import identity, messages, topics
from tools.mosquitto import free_port, port_is_open

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def simulator(center_broker, tmp_path: Path) -> Iterator[str]:
    http_port = free_port()
    log = (tmp_path / "sim.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "firmware.sim", "--center", CENTER, "--broker", center_broker.url,
         "--windows", "3", "--state-dir", str(tmp_path / "state"), "--http-port", str(http_port),
         "--health-interval", "10", "--keepalive", "5"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 15
        while not port_is_open(http_port):
            assert process.poll() is None, (tmp_path / "sim.log").read_text()
            assert time.monotonic() < deadline, "simulator did not serve its page"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{http_port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(10) == 0
        finally:
            if process.poll() is None:
                process.kill()
            log.close()


def wait_for(predicate, timeout: float = 10, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def state(base: str) -> dict:
    with urllib.request.urlopen(base + "/state.json", timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.broker
def test_state_json_and_press_endpoint(simulator: str, center_broker) -> None:
    wait_for(lambda: all(w[k]["online"] for w in state(simulator)["windows"] for k in ("display", "pad")),
             what="all devices online")
    snapshot = state(simulator)
    assert snapshot["center"] == CENTER
    assert [w["window"] for w in snapshot["windows"]] == [1, 2, 3]
    pad = snapshot["windows"][2]["pad"]
    assert pad["device_id"] == identity.device_id_from_mac(sim_mac(CENTER, messages.ROLE_RATING_PAD, 3))
    request = urllib.request.Request(simulator + "/press", data=json.dumps({"window": 3, "score": 5}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read()) == {"ok": True, "sent": False, "window": 3, "score": 5}


@pytest.mark.broker
@pytest.mark.browser
def test_control_page_shows_a_call_and_sends_a_rating(simulator: str, center_broker, page) -> None:
    pad_id = identity.device_id_from_mac(sim_mac(CENTER, messages.ROLE_RATING_PAD, 3))
    rating_topic = topics.build(topics.RATING_SUBMITTED, center=CENTER, device=pad_id)
    edge = Recorder(center_broker.port, rating_topic)
    try:
        page.goto(simulator + "/")
        assert page.title() == "模拟设备"
        page.get_by_role("heading", name="模拟设备").wait_for()
        display = page.locator("#display-3")
        assert "欢迎光临" in display.inner_text()

        call = messages.make("window_display", window=3, state="serving", ticket="A001", text="请A001号到3号窗口",
                             call_seq=1)
        edge.publish(topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=3),
                     messages.encode("window_display", call), retain=True)
        page.locator("#display-3", has_text="请A001号到3号窗口").wait_for(timeout=10000)

        request = messages.make("rating_request", request_id="req-1", window=3, state="open", ticket="A001",
                                staff_no="1024", staff_name="张三")
        edge.publish(topics.build(topics.RATING_REQUEST, center=CENTER, window=3),
                     messages.encode("rating_request", request), retain=True)
        page.locator("#pad-3", has_text="请对本次服务进行评价").wait_for(timeout=10000)
        assert "张三" in page.locator("#pad-3").inner_text()

        window3 = page.locator("section.window[data-window='3']")
        window3.get_by_role("button", name="非常满意", exact=True).click()
        page.locator("#result-3", has_text="已提交评价").wait_for(timeout=10000)
        page.locator("#pad-3", has_text="谢谢您的评价").wait_for(timeout=10000)
        wait_for(lambda: edge.payloads(rating_topic), what="rating_submitted from the page")
        rating = messages.decode("rating_submitted", edge.payloads(rating_topic)[0])
        assert (rating["ticket"], rating["window"], rating["score"]) == ("A001", 3, 5)

        window3.get_by_role("button", name="不满意", exact=True).click()  # a second press is refused
        page.locator("#result-3", has_text="当前没有待评价的业务").wait_for(timeout=10000)
        assert len(edge.payloads(rating_topic)) == 1
    finally:
        edge.close()


@pytest.mark.broker
@pytest.mark.browser
def test_after_a_bad_rating_the_buttons_ask_its_reason(simulator: str, center_broker, page) -> None:
    pad_id = identity.device_id_from_mac(sim_mac(CENTER, messages.ROLE_RATING_PAD, 3))
    rating_topic = topics.build(topics.RATING_SUBMITTED, center=CENTER, device=pad_id)
    edge = Recorder(center_broker.port, rating_topic)
    try:
        page.goto(simulator + "/")
        window3 = page.locator("section.window[data-window='3']")
        request = messages.make("rating_request", request_id="req-7", window=3, state="open", ticket="A007",
                                staff_no="1024", staff_name="张三")
        edge.publish(topics.build(topics.RATING_REQUEST, center=CENTER, window=3),
                     messages.encode("rating_request", request), retain=True)
        page.locator("#pad-3", has_text="请对本次服务进行评价").wait_for(timeout=10000)
        window3.get_by_role("button", name="非常不满意", exact=True).click()
        page.locator("#pad-3", has_text="请选择不满意原因").wait_for(timeout=10000)
        wait_for(lambda: edge.payloads(rating_topic), what="the score, sent at the press")
        assert window3.locator("button").all_inner_texts() == ["服务态度", "服务效率", "服务水平", "一次性告知不到位",
                                                               "其他"]
        window3.get_by_role("button", name="服务效率", exact=True).click()
        page.locator("#result-3", has_text="已提交原因").wait_for(timeout=10000)
        page.locator("#pad-3", has_text="服务效率").wait_for(timeout=10000)
        score = messages.decode("rating_submitted", edge.payloads(rating_topic)[0])
        assert (score["ticket"], score["score"], score.get("reason")) == ("A007", 1, None)
        # The reason follows as the same rating (tests/test_end_to_end.py sees it reach the fleet's case).
        page.locator("section.window[data-window='3'] button", has_text="非常满意").wait_for(timeout=10000)
    finally:
        edge.close()
