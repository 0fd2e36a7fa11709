"""What the edge tells a pad about its rating (rating_ack) comes from record_rating's outcome.

Stored: accepted now, or accepted before (a re-send whose first acknowledgement was lost: the pad must
forget it). Refused: never to be taken, so re-sending is pointless. A rating the database could not write
raises, and gets no acknowledgement at all (tests/edge/test_rating_full_disk.py).
"""

from __future__ import annotations

import pytest

from edge_agent.config import parse_config
from edge_agent.queue.service import QueueService
from edge_agent.store import EdgeStore
from protocol import messages

CENTER = "445202101001"
RAW = {
    "center": {"code": CENTER, "name": "示例镇便民服务中心"},
    "services": [{"prefix": "A", "name": "社保业务"}],
    "windows": [{"number": 3, "services": ["A"], "staff_no": "1003", "staff_name": "王芳"}],
}
PAD = "dev-020000000003"


@pytest.fixture
def service(tmp_path):
    store = EdgeStore(tmp_path / "edge.sqlite3")
    service = QueueService(store, parse_config(RAW))
    service.login(3, "1003")
    yield service
    store.close()


def served(service: QueueService) -> dict:
    """A resident served at window 3: the open rating request."""
    service.issue_ticket("A")
    service.call_next(3)
    service.finish(3)
    return service.rating_request_payload(3)


def rating(request: dict, rating_id: str, score: int, **extra) -> dict:
    return messages.make("rating_submitted", rating_id=rating_id, request_id=request["request_id"],
                         ticket=request["ticket"], window=3, score=score, **extra)


def test_a_rating_sent_again_is_stored_not_refused(service) -> None:
    request = served(service)
    first = service.record_rating(PAD, rating(request, "r1", 5))
    assert first.accepted and first.stored
    again = service.record_rating(PAD, rating(request, "r1", 5))
    assert not again.accepted and again.stored  # the pad is told "stored" and forgets it


def test_a_reason_sent_again_is_stored_not_refused(service) -> None:
    request = served(service)
    assert service.record_rating(PAD, rating(request, "r1", 2)).stored
    reason = service.record_rating(PAD, rating(request, "r1", 2, reason=messages.REASON_ATTITUDE))
    assert reason.accepted and reason.stored
    again = service.record_rating(PAD, rating(request, "r1", 2, reason=messages.REASON_ATTITUDE))
    assert not again.accepted and again.stored


def test_a_rating_that_can_never_be_taken_is_refused(service) -> None:
    request = served(service)
    assert service.record_rating(PAD, rating(request, "r1", 5)).stored
    other = service.record_rating(PAD, rating(request, "r2", 1))  # the ticket already has its rating
    assert not other.accepted and not other.stored and "already rated" in other.reason
    unknown = service.record_rating(PAD, rating(dict(request, request_id="rq-none"), "r3", 4))
    assert not unknown.stored and unknown.reason == "no such rating request"
