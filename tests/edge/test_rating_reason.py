"""A 差评's reason: the pad sends the score at the press, then the same rating again with `reason`."""

from __future__ import annotations

import json

import pytest

from edge_agent.config import parse_config
from edge_agent.queue.service import QueueService
from edge_agent.store import EdgeStore
from protocol import messages, topics

CENTER = "445202101001"
RAW = {
    "center": {"code": CENTER, "name": "示例镇便民服务中心"},
    "services": [{"prefix": "A", "name": "社保业务"}],
    "windows": [{"number": 3, "services": ["A"], "staff_no": "1003", "staff_name": "王芳"}],
}
PAD = "dev-020000000003"
FINISHED = 1_795_400_000.0


class Clock:
    """The edge's clock, moved only by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def center(tmp_path):
    store = EdgeStore(tmp_path / "edge.sqlite3")
    clock = Clock(FINISHED - 60)
    service = QueueService(store, parse_config(RAW), clock)
    service.login(3, "1003")
    service.issue_ticket("A")
    service.call_next(3)
    clock.now = FINISHED
    service.finish(3)
    yield service, clock
    store.close()


def rating(service: QueueService, score: int = 1, **extra) -> dict:
    request = service.rating_request_payload(3)
    return messages.make("rating_submitted", rating_id="dev-020000000003-9f3b1c7d2e40",
                         request_id=request["request_id"], ticket=request["ticket"], window=3, score=score, **extra)


def rating_events(service: QueueService) -> list[dict]:
    return [json.loads(row.payload) for row in service.store.pending(1000)
            if topics.parse(row.topic)[0] == topics.RATING_EVENT]


def test_the_reason_sent_after_the_score_is_stored_and_forwarded_as_the_ratings_second_event(center) -> None:
    service, clock = center
    clock.now = FINISHED + 5
    assert service.record_rating(PAD, rating(service)).accepted
    clock.now = FINISHED + 12
    outcome = service.record_rating(PAD, rating(service, reason=messages.REASON_EFFICIENCY))
    assert outcome.accepted, outcome.reason
    first, second = rating_events(service)
    assert "reason" not in first
    assert second["reason"] == "efficiency"
    same = ("rating_id", "ticket", "service", "window", "staff_no", "score", "ts")
    assert {k: second[k] for k in same} == {k: first[k] for k in same}  # the same rating, dated at the press
    assert second["event_id"] != first["event_id"]
    assert service.store.query("SELECT score, reason FROM ratings") == [(1, "efficiency")]


def test_the_reason_counts_once_and_only_for_its_own_rating(center) -> None:
    service, clock = center
    service.record_rating(PAD, rating(service))
    assert not service.record_rating(PAD, rating(service)).accepted  # a duplicate delivery, as before
    assert not service.record_rating(PAD, rating(service, score=2, reason="skill")).accepted  # another score
    assert service.record_rating(PAD, rating(service, reason="attitude")).accepted
    again = service.record_rating(PAD, rating(service, reason="other"))
    assert not again.accepted and "reason" in again.reason
    assert [e.get("reason") for e in rating_events(service)] == [None, "attitude"]
    assert service.store.query("SELECT reason FROM ratings") == [("attitude",)]
