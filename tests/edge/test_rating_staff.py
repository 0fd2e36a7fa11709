"""A rating is charged to the staff member who served the resident (signed in when the rating was requested),
not to whoever sits at the window when the pad's answer arrives: the county's report counts 满意率 and 差评 per
staff member from the rating's staff_no (docs/reports.md), and its served count from the finished ticket's."""

from __future__ import annotations

from edge_agent.queue.service import PAD_ANSWER_GRACE_S
from protocol import messages
from tests.edge.test_queue_operations import clock, issue, make_queue  # noqa: F401  (fixtures)
from tests.edge.test_rating_coverage import answer, rating_events


def serve_and_hand_over(queue, clock) -> None:  # noqa: F811
    """王芳 (1003) serves A001 at window 3 and signs out; 张敏 (1001) takes window 3 over before the answer."""
    issue(queue, clock)
    queue.call_next(3)
    clock.advance(60)
    queue.finish(3)
    clock.advance(10)
    queue.logout(3)
    queue.logout(1)
    queue.login(3, "1001")


def test_a_rating_and_its_reason_arriving_after_a_hand_over_count_for_who_served(make_queue, clock):  # noqa: F811
    queue = make_queue()
    serve_and_hand_over(queue, clock)
    assert answer(queue, 3, 1, "r-bad").accepted
    request = queue.store.query("SELECT request_id FROM rating_requests")[0][0]
    assert queue.record_rating("dev-pad", {"rating_id": "r-bad", "request_id": request, "ticket": "A001",
                                           "window": 3, "score": 1, "reason": "efficiency"}).accepted
    assert [(e["score"], e.get("reason"), e["staff_no"]) for e in rating_events(queue)] == [
        (1, None, "1003"), (1, "efficiency", "1003")]


def test_a_request_closed_pad_offline_after_a_hand_over_counts_for_who_served(make_queue, clock):  # noqa: F811
    queue = make_queue()
    serve_and_hand_over(queue, clock)
    clock.advance(queue.config.rating_timeout_s + PAD_ANSWER_GRACE_S + 1)
    assert queue.close_silent_requests() == 1
    assert [(e["outcome"], e["staff_no"]) for e in rating_events(queue)] == [(messages.RATING_PAD_OFFLINE, "1003")]
