import json
import sqlite3

import pytest

from edge_agent.config import parse_config
from edge_agent.queue.service import CALLED, FINISHED, ISSUED, RATED, QueueError, QueueService
from edge_agent.store import EdgeStore
from protocol import messages, topics

CENTER = "445202101001"
RAW = {
    "center": {"code": CENTER, "name": "示例镇便民服务中心"},
    "services": [{"prefix": "A", "name": "社保业务"}, {"prefix": "B", "name": "医保业务"}],
    "windows": [{"number": 1, "services": ["A", "B"], "staff_no": "1001", "staff_name": "张敏"},
                {"number": 3, "services": ["A"], "staff_no": "1003", "staff_name": "王芳"}],
}


class Clock:
    def __init__(self, now: float = 1_795_400_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def queue(tmp_path):
    store = EdgeStore(tmp_path / "edge.sqlite3")
    service = QueueService(store, parse_config(RAW), Clock())
    for window in service.config.windows:  # windows call only with their staff signed in
        service.login(window.number, window.staff_no)
    yield service
    store.close()


def outbox_payloads(queue: QueueService) -> list[tuple[str, dict]]:
    return [(topics.parse(row.topic)[0], json.loads(row.payload)) for row in queue.store.pending(1000)]


def rating_for(request: dict, score: int, rating_id: str = "r1") -> dict:
    return messages.make("rating_submitted", rating_id=rating_id, request_id=request["request_id"],
                         ticket=request["ticket"], window=request["window"], score=score)


def test_numbers_count_per_service(queue):
    assert [queue.issue_ticket(s).ticket.number for s in "AABA"] == ["A001", "A002", "B001", "A003"]
    assert queue.issue_ticket("A").people_ahead == 3


def test_unknown_service_is_refused_in_chinese(queue):
    with pytest.raises(QueueError, match="没有这项业务"):
        queue.issue_ticket("Z")


def test_windows_call_the_earliest_ticket_of_their_services(queue):
    queue.issue_ticket("B")
    queue.issue_ticket("A")
    assert queue.call_next(3).number == "A001"  # window 3 serves A only
    assert queue.call_next(1).number == "B001"
    assert queue.call_next(3) is None
    display = queue.display_payload(3)
    assert display["state"] == messages.DISPLAY_IDLE


def test_call_sets_the_display_and_finish_opens_one_rating(queue):
    changes = []
    queue.listeners.append(changes.append)
    queue.issue_ticket("A")
    queue.call_next(3)
    display = queue.display_payload(3)
    assert (display["ticket"], display["text"], display["call_seq"]) == ("A001", "请A001号到3号窗口", 1)
    finished = queue.finish(3)
    request = queue.rating_request_payload(3)
    assert request["request_id"] == finished.request_id
    assert (request["state"], request["ticket"], request["staff_name"]) == ("open", "A001", "王芳")

    assert queue.record_rating("dev-020000000003", rating_for(request, 5)).accepted
    second = queue.record_rating("dev-020000000003", rating_for(request, 1, rating_id="r2"))
    assert not second.accepted and "already rated" in second.reason
    assert queue.rating_request_payload(3)["state"] == "closed"
    assert [c.kind for c in changes] == [ISSUED, CALLED, FINISHED, RATED]

    names = [name for name, _ in outbox_payloads(queue)]
    assert names == [topics.ATTENDANCE_EVENT] * 2 + [topics.TICKET_EVENT] * 3 + [topics.RATING_EVENT]  # 2 sign-ins
    rating_event = outbox_payloads(queue)[-1][1]
    assert (rating_event["ticket"], rating_event["score"], rating_event["staff_no"]) == ("A001", 5, "1003")


def test_a_duplicate_delivery_of_the_same_rating_is_not_counted_twice(queue):
    queue.issue_ticket("A")
    queue.call_next(3)
    queue.finish(3)
    request = queue.rating_request_payload(3)
    assert queue.record_rating("dev-020000000003", rating_for(request, 4)).accepted
    again = queue.record_rating("dev-020000000003", rating_for(request, 4))
    assert not again.accepted and "duplicate" in again.reason
    assert queue.store.query("SELECT COUNT(*) FROM ratings")[0][0] == 1


def test_a_rating_for_another_window_or_unknown_request_is_refused(queue):
    queue.issue_ticket("A")
    queue.call_next(3)
    queue.finish(3)
    request = queue.rating_request_payload(3)
    wrong_window = dict(rating_for(request, 5), window=1)
    assert not queue.record_rating("dev-020000000001", wrong_window).accepted
    unknown = dict(rating_for(request, 5), request_id="nope")
    assert not queue.record_rating("dev-020000000003", unknown).accepted


def test_finish_without_a_ticket_is_refused(queue):
    with pytest.raises(QueueError, match="没有正在办理"):
        queue.finish(3)
    with pytest.raises(QueueError, match="没有9号窗口"):
        queue.call_next(9)


def test_numbers_continue_after_a_restart_and_are_never_reused(tmp_path):
    clock = Clock()
    store = EdgeStore(tmp_path / "edge.sqlite3")
    QueueService(store, parse_config(RAW), clock).issue_ticket("A")
    store.close()
    store = EdgeStore(tmp_path / "edge.sqlite3")
    assert QueueService(store, parse_config(RAW), clock).issue_ticket("A").ticket.number == "A002"
    with pytest.raises(sqlite3.IntegrityError):  # the database itself refuses a duplicate number
        with store.transaction() as db:
            db.execute("INSERT INTO tickets (business_day, service, seq, number, status, issued_at) "
                       "SELECT business_day, service, seq, number, status, issued_at FROM tickets LIMIT 1")
    store.close()
