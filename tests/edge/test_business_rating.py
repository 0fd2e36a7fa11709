"""The window's business system finishes a case and asks for its rating (edge_agent.business, /api/business/rating).

Its 办件编号 and 事项 are bound to the rating request and reach the county on every rating_event of it; the call
is idempotent on the case number, and refused without the center's credential.
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import pytest
import uvicorn

from edge_agent.agent import EdgeAgent
from edge_agent.business import token_sha256
from edge_agent.config import ConfigError, parse_config
from edge_agent.queue.service import QueueError
from protocol import topics
from tests.edge.test_pages import center_config
from tests.edge.test_rating_reason import FINISHED, PAD, RAW, Clock, rating
from tests.edge.test_voice import FAKE_PLAYER
from tests.support.loop import LoopThread
from tests.support.staff import signed_in
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

TOKEN = "business-system-token-of-the-center-0001"
CASE = "4452021010012026010500017"
MATTER = "城乡居民养老保险参保登记"
TWO_WINDOWS = {**RAW, "windows": [*RAW["windows"], {"number": 2, "services": ["A"], "staff_no": "1002",
                                                    "staff_name": "李强"}]}


def rating_events(service) -> list[dict]:
    return [json.loads(row.payload) for row in service.store.pending(1000)
            if topics.parse(row.topic)[0] == topics.RATING_EVENT]


@pytest.fixture
def serving(tmp_path):
    from edge_agent.queue.service import QueueService
    from edge_agent.store import EdgeStore

    store = EdgeStore(tmp_path / "edge.sqlite3")
    clock = Clock(FINISHED - 60)
    service = QueueService(store, parse_config(TWO_WINDOWS), clock)
    service.login(3, "1003")
    service.issue_ticket("A")
    service.issue_ticket("A")
    service.call_next(3)
    clock.now = FINISHED
    yield service, clock
    store.close()


def test_the_case_number_is_bound_to_the_rating_and_a_repeated_call_changes_nothing(serving) -> None:
    service, clock = serving
    change, repeated = service.finish_for_case(3, CASE, MATTER)
    assert (change.ticket.number, repeated) == ("A001", False)
    assert service.rating_request_payload(3)["state"] == "open"
    again, repeated = service.finish_for_case(3, CASE, MATTER)  # the answer was lost: the system asks again
    assert (again.ticket.number, again.request_id, repeated) == ("A001", change.request_id, True)
    with pytest.raises(QueueError, match=f"办件编号 {CASE} 已在3号窗口请求过评价"):
        service.finish_for_case(2, CASE, MATTER)
    assert service.record_rating(PAD, rating(service, 1)).accepted
    assert service.record_rating(PAD, rating(service, 1, reason="efficiency")).accepted
    events = rating_events(service)
    assert [(e["score"], e.get("reason"), e["case_no"], e["matter"]) for e in events] == \
        [(1, None, CASE, MATTER), (1, "efficiency", CASE, MATTER)]


def test_after_staff_pressed_finish_the_open_request_is_bound_to_the_case(serving) -> None:
    service, _clock = serving
    finished = service.finish(3)  # 办结 on the caller first, then the business system calls
    change, repeated = service.finish_for_case(3, CASE, MATTER)
    assert (change.ticket.number, change.request_id, repeated) == ("A001", finished.request_id, False)
    assert service.finish_for_case(3, CASE, MATTER)[1] is True
    assert service.record_rating(PAD, rating(service, 4)).accepted
    [event] = rating_events(service)
    assert (event["score"], event["case_no"], event["matter"]) == (4, CASE, MATTER)
    # Rated already: nothing is open and nothing is served, so another case finds nothing to bind.
    with pytest.raises(QueueError, match="当前没有正在办理的号码"):
        service.finish_for_case(3, CASE + "9", MATTER)


def test_a_request_closed_unanswered_still_names_its_case(serving) -> None:
    service, clock = serving
    service.finish_for_case(3, CASE, MATTER)
    clock.now += 3600
    assert service.close_silent_requests() == 1
    [event] = rating_events(service)
    assert (event["score"], event["outcome"], event["case_no"]) == (0, "pad_offline", CASE)


def test_the_token_hash_in_the_config_must_be_sha256_hex() -> None:
    with pytest.raises(ConfigError, match="business_system.token_sha256: must be the 64 hex digits"):
        parse_config({**RAW, "business_system": {"token_sha256": "secret"}})
    assert parse_config({**RAW, "business_system": {"token_sha256": token_sha256(TOKEN)}}).business_token_sha256 \
        == token_sha256(TOKEN)


@pytest.fixture
def serve_agent(tmp_path, center_broker, county_broker):
    loop = LoopThread().__enter__()
    running = []

    def start(**extra) -> str:
        script = tmp_path / "fake_player.py"
        script.write_text(FAKE_PLAYER)
        port = free_port()
        raw = center_config(tmp_path, center_broker.port, county_broker.port, port,
                            [sys.executable, str(script), str(tmp_path / "played.log")])
        raw["voice"]["enabled"] = False
        config = parse_config({**raw, **extra})

        async def serve():
            from edge_agent.web.app import create_app

            agent = EdgeAgent(config)
            await agent.start()
            server = uvicorn.Server(uvicorn.Config(create_app(agent), host="127.0.0.1", port=port,
                                                   log_level="warning", lifespan="off"))
            server.install_signal_handlers = lambda: None
            return agent, server, asyncio.create_task(server.serve())

        running.append(loop.run(serve()))
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{base}/api/health").status_code == 200, what="the agent serving")
        return base

    yield start

    async def stop(agent, server, task):
        server.should_exit = True
        await task
        await agent.stop()

    for item in running:
        loop.run(stop(*item))
    loop.__exit__()


def call(base: str, token: str | None, **body) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{base}/api/business/rating", json={"window": 3, "case_no": CASE, "matter": MATTER, **body},
                      headers=headers)


@pytest.mark.broker
def test_the_interface_refuses_every_call_when_the_center_has_no_credential(serve_agent) -> None:
    base = serve_agent()
    refused = call(base, TOKEN)
    assert refused.status_code == 403
    assert "缺少 [business_system] token_sha256" in refused.json()["detail"]


@pytest.mark.broker
def test_the_interface_finishes_the_windows_ticket_for_the_right_token_only(serve_agent) -> None:
    base = serve_agent(business_system={"token_sha256": token_sha256(TOKEN)})
    caller = signed_in(base, 3)
    httpx.post(f"{base}/api/tickets", json={"service": "A"}).raise_for_status()
    caller.press("next")
    for wrong in (None, "not-the-token", TOKEN + "x"):
        refused = call(base, wrong)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert "业务系统凭据无效" in refused.json()["detail"]
    assert call(base, TOKEN, window=9).status_code == 404
    assert call(base, TOKEN, case_no="no spaces").status_code == 422
    first = call(base, TOKEN)
    assert first.status_code == 200, first.text
    assert (first.json()["ticket"], first.json()["repeated"]) == ("A001", False)
    again = call(base, TOKEN)
    assert again.json() | {"repeated": False} == first.json() and again.json()["repeated"] is True
    caller.close()
