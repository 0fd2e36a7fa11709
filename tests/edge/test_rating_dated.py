"""A rating is dated when the resident pressed: the pad's age_ms before its arrival, within the request's life."""

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
OPENED = 1_795_400_000.0


class Clock:
    """The edge's clock, moved only by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def center(tmp_path):
    store = EdgeStore(tmp_path / "edge.sqlite3")
    clock = Clock(OPENED - 60)
    service = QueueService(store, parse_config(RAW), clock)
    service.login(3, "1003")
    service.issue_ticket("A")
    service.call_next(3)
    clock.now = OPENED
    service.finish(3)  # the rating request opens now
    yield service, clock
    store.close()


def rate(service: QueueService, **extra) -> dict:
    """Record a rating of the open request; the rating_event the edge queued for the county."""
    request = service.rating_request_payload(3)
    rating = messages.make("rating_submitted", rating_id="r1", request_id=request["request_id"],
                           ticket=request["ticket"], window=3, score=1, **extra)
    assert service.record_rating(PAD, rating).accepted
    events = [json.loads(row.payload) for row in service.store.pending(1000)
              if topics.parse(row.topic)[0] == topics.RATING_EVENT]
    assert len(events) == 1
    return events[0]


def test_a_rating_held_through_an_outage_is_dated_when_it_was_pressed(center) -> None:
    service, clock = center
    clock.now = OPENED + 3600  # arrives an hour after the request opened, pressed 40 minutes ago
    event = rate(service, age_ms=40 * 60 * 1000)
    assert event["ts"] == pytest.approx(OPENED + 3600 - 2400)


def test_a_rating_is_never_dated_before_its_request_opened(center) -> None:
    service, clock = center
    clock.now = OPENED + 10
    event = rate(service, age_ms=3_600_000)  # the pad's clock and ours disagree: not before the request
    assert event["ts"] == OPENED


def test_a_rating_without_an_age_is_dated_when_it_arrived(center) -> None:
    # The pad rebooted since the press (or is older than age_ms): all we know is when it came.
    service, clock = center
    clock.now = OPENED + 90
    assert rate(service)["ts"] == OPENED + 90


def test_a_fresh_rating_is_dated_now_not_in_the_future(center) -> None:
    service, clock = center
    clock.now = OPENED + 20
    assert rate(service, age_ms=0)["ts"] == OPENED + 20
    closed_at = service.store.query("SELECT closed_at FROM rating_requests")[0][0]
    assert closed_at == OPENED + 20
