"""考勤 leaves the Pi: every sign-in and sign-out is an attendance_event in the outbox, in the same transaction."""

from __future__ import annotations

from protocol import messages, topics
from tests.edge.test_queue_operations import clock, make_queue  # noqa: F401  (fixtures)


def attendance(queue) -> list[tuple]:
    return [(e["kind"], e["window"], e["staff_no"], e.get("staff_name"), e.get("reason"))
            for e in (messages.decode("attendance_event", r.payload) for r in queue.store.pending(1000)
                      if topics.parse(r.topic)[0] == topics.ATTENDANCE_EVENT)]


def test_sign_ins_and_sign_outs_are_events_for_the_county(make_queue, clock):  # noqa: F811
    queue = make_queue(staffed=False)
    queue.login(3, "1003")
    queue.login(3, "1003")  # again: nothing new
    clock.advance(3600)
    queue.login(3, "1009")  # a stand-in takes over window 3
    clock.advance(600)
    queue.logout(3)
    queue.login(1, "1001")
    clock.advance(24 * 3600)
    queue.end_of_day_logout(1, queue.today())
    assert attendance(queue) == [
        ("sign_in", 3, "1003", "王芳", None),
        ("sign_out", 3, "1003", "王芳", "replaced"),
        ("sign_in", 3, "1009", "赵丽", None),
        ("sign_out", 3, "1009", "赵丽", "signed_out"),
        ("sign_in", 1, "1001", "张敏", None),
        ("sign_out", 1, "1001", "张敏", "day_end"),
    ]


def test_the_health_summary_says_since_when_a_window_is_unstaffed(tmp_path):
    from edge_agent.agent import EdgeAgent
    from edge_agent.config import parse_config
    from tests.edge.test_staff_sign_in import raw_config

    agent = EdgeAgent(parse_config(raw_config(tmp_path)))
    try:
        agent.queue.login(3, "1003")
        agent.queue.logout(3)
        signed_out_at = agent.queue.attendance()[-1]["logout_at"]
        agent.queue.login(1, "1001")
        windows = agent.health_summary()["windows"]
        assert windows["1"]["staff_no"] == "1001" and "unstaffed_since" not in windows["1"]
        assert windows["3"]["unstaffed_since"] == signed_out_at  # the fleet's 空岗 counts from here
        assert windows["2"]["unstaffed_since"] == 0.0  # never staffed: from the opening
    finally:
        agent.store.close()
