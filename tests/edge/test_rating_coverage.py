"""Every served ticket ends with a rating request, and every request ends one of four ways (rated, 未评价,
skipped by staff, pad offline), so the county's rating coverage (rated / served) cannot be dodged."""

from __future__ import annotations

from edge_agent.queue.service import FINISHED, PAD_ANSWER_GRACE_S, UNRATED
from protocol import messages, topics
from tests.edge.test_queue_operations import clock, issue, make_queue  # noqa: F401  (fixtures)


def rating_events(queue) -> list[dict]:
    return [messages.decode("rating_event", r.payload) for r in queue.store.pending(1000)
            if topics.parse(r.topic)[0] == topics.RATING_EVENT]


def answer(queue, window: int, score: int, rating_id: str = "r1"):
    request = queue.rating_request_payload(window)
    return queue.record_rating("dev-pad", {"rating_id": rating_id, "request_id": request["request_id"],
                                           "ticket": request["ticket"], "window": window, "score": score})


def test_next_on_a_ticket_being_served_asks_for_its_rating_first(make_queue, clock):  # noqa: F811
    queue = make_queue()
    changes = []
    queue.listeners.append(changes.append)
    a1, a2 = issue(queue, clock), issue(queue, clock)
    queue.call_next(3)
    clock.advance(60)
    queue.call_next(3)  # 下一位 with A001 still being served: 办结 first
    assert [c.ticket.number for c in changes if c.kind == FINISHED] == [a1.number]
    request = queue.rating_request_payload(3)
    assert (request["ticket"], request["state"]) == (a1.number, "open")
    assert answer(queue, 3, 5).accepted  # the resident of A001 rates while A002 is being served
    assert queue.display_payload(3)["ticket"] == a2.number


def test_every_request_ends_rated_timed_out_skipped_or_with_the_pad_offline(make_queue, clock):  # noqa: F811
    queue = make_queue()
    changes = []
    queue.listeners.append(changes.append)
    for _ in range(4):
        issue(queue, clock)
    timeout = queue.config.rating_timeout_s

    def serve() -> None:
        clock.advance(5)
        queue.call_next(3)
        clock.advance(5)
        queue.finish(3)

    serve()
    assert answer(queue, 3, 4, "r-rated").accepted  # A001 rated
    serve()
    assert answer(queue, 3, 0, "r-timeout").accepted  # A002: the pad timed out, 未评价
    serve()  # A003: nobody presses ...
    serve()  # ... and staff finish A004 before the pad's time-out: A003 skipped
    clock.advance(timeout + PAD_ANSWER_GRACE_S - 1)
    assert queue.close_silent_requests() == 0  # an online pad still has time to say 未评价
    clock.advance(2)
    assert queue.close_silent_requests() == 1  # A004: no word from the pad at all
    assert queue.rating_request_payload(3)["state"] == "closed"
    assert changes[-1].kind == UNRATED  # the pad's retained request is republished closed

    by_ticket = {e["ticket"]: (e["score"], e.get("outcome")) for e in rating_events(queue)}
    assert by_ticket == {"A001": (4, None), "A002": (0, None), "A003": (0, messages.RATING_SKIPPED),
                         "A004": (0, messages.RATING_PAD_OFFLINE)}
    outcomes = dict(queue.store.query("SELECT t.number, r.outcome FROM rating_requests r JOIN tickets t "
                                      "ON t.id = r.ticket_id"))
    assert outcomes == {"A001": "rated", "A002": "timeout", "A003": "skipped", "A004": "pad_offline"}


def test_a_pad_back_from_an_outage_still_rates_a_request_closed_as_offline(make_queue, clock):  # noqa: F811
    queue = make_queue()
    issue(queue, clock)
    queue.call_next(3)
    queue.finish(3)
    request = queue.rating_request_payload(3)
    clock.advance(queue.config.rating_timeout_s + PAD_ANSWER_GRACE_S + 1)
    queue.close_silent_requests()
    late = queue.record_rating("dev-pad", {"rating_id": "r-late", "request_id": request["request_id"],
                                           "ticket": request["ticket"], "window": 3, "score": 2, "age_ms": 95_000})
    assert late.accepted
    assert [e["score"] for e in rating_events(queue)] == [0, 2]  # the fleet counts the ticket rated
    assert not answer(queue, 3, 5, "r-again").accepted  # once rated, always once
