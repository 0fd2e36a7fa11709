"""Rules behind the counter's screens: estimates and transfers count staffed windows only, the hall's calls
follow the windows, green channel can be undone, the ticket says what happens, a silent speaker is told."""

from __future__ import annotations

import pytest
from escpos.printer import Dummy

from edge_agent.adapters.printer import TicketSlip, render_ticket
from edge_agent.queue.service import QueueError
from edge_agent.readiness import center_readiness, voice_problem
from tests.edge.test_queue_operations import clock, issue, make_queue  # noqa: F401  (fixtures)
from tests.support.escpos_decoder import decode


def test_estimates_count_staffed_windows_only(make_queue, clock):  # noqa: F811
    queue = make_queue(staffed=False, default_service_min=5)
    for _ in range(9):
        issue(queue, clock, "A")
    assert queue.estimate_wait_s("A", 9) is None  # nobody signed in: no promise at all
    queue.login(3, "1003")  # only window 3 serves 社保 now
    assert queue.estimate_wait_s("A", 9) == 9 * 5 * 60  # not 预计很快就到您
    assert queue.estimate_wait_s("B", 0) is None  # no staffed window serves 医保 (window 1 and 2 are empty)


def test_a_transfer_to_an_unstaffed_window_or_to_its_own_queue_is_refused(make_queue, clock):  # noqa: F811
    queue = make_queue(staffed=False)
    queue.login(3, "1003")
    issue(queue, clock, "A")
    queue.call_next(3)
    with pytest.raises(QueueError, match="1号窗口无人值守"):
        queue.transfer(3, to_window=1)
    with pytest.raises(QueueError, match="已在社保业务队列中"):
        queue.transfer(3, to_service="A")
    queue.login(1, "1001")
    assert queue.transfer(3, to_window=1).target_window == 1


def test_green_channel_given_by_mistake_is_undone(make_queue, clock):  # noqa: F811
    queue = make_queue()
    a1, a2 = issue(queue, clock, "A"), issue(queue, clock, "A")
    queue.mark_green(a2.number)
    assert queue.snapshot()["windows"][2]["waiting"] == [a2.number, a1.number]
    queue.unmark_green(a2.number)
    queue.unmark_green(a2.number)  # twice: nothing more happens
    assert queue.snapshot()["windows"][2]["waiting"] == [a1.number, a2.number]


def test_the_calls_to_answer_end_with_skip_transfer_finish_and_pause(make_queue, clock):  # noqa: F811
    queue = make_queue()
    for _ in range(4):
        issue(queue, clock, "A")
    queue.call_next(3)
    clock.advance(10)
    queue.call_next(1)
    calling = queue.snapshot()["calling"]
    assert [(c["ticket"], c["window"]) for c in calling] == [("A002", 1), ("A001", 3)]  # latest first
    queue.skip(1)
    assert [c["ticket"] for c in queue.snapshot()["calling"]] == ["A001"]
    queue.transfer(3, to_service="B")
    assert queue.snapshot()["calling"] == []
    clock.advance(10)
    queue.call_next(3)
    queue.finish(3)
    assert queue.snapshot()["calling"] == []
    assert [c["ticket"] for c in queue.snapshot()["recent_calls"]][:1] == ["A003"]  # history keeps it


def test_the_ticket_names_its_windows_and_what_happens_to_a_missed_number():
    printer = Dummy()
    render_ticket(printer, TicketSlip("示例镇便民服务中心", "社保业务", "A001", 0, 1_795_400_000.0, "ref",
                                      windows=(1, 3)))
    texts = decode(printer.output).texts()
    assert "办理窗口：1、3号窗口" in texts
    assert "过号请持本票到办理窗口，可重新排队" in texts
    assert "过号请重新取号" not in texts


@pytest.mark.parametrize(("error", "told"), [
    ("speaking A001 failed: aplay exited with 1: aplay: main:831: audio open error: No such file or directory",
     "叫号喇叭无声：未找到声卡"),
    ("speaking A001 failed: aplay exited with 1: ALSA lib confmisc.c:855: cannot find card '0'",
     "叫号喇叭无声：未找到声卡"),
    ("espeak-ng is not installed; calls are shown but not spoken", "叫号语音无法播报：未安装语音合成程序"),
    ("speaking A001 failed: aplay did not finish within 30 s", "叫号喇叭无声：播放失败"),
])
def test_a_silent_speaker_is_told_in_chinese_and_counts_for_readiness(error, told):
    voice = {"ok": False, "enabled": True, "last_error": error}
    assert voice_problem(voice) == told
    ok, reasons = center_readiness({"voice": voice}, [])
    assert not ok and reasons == [told]
    assert voice_problem({**voice, "enabled": False}) == ""  # switched off on purpose: nothing to tell


def test_the_county_is_told_why_the_calls_are_silent_in_chinese(tmp_path):
    from edge_agent.agent import EdgeAgent
    from edge_agent.config import parse_config
    from fleet.alerts.rules import health_conditions
    from tests.edge.test_staff_sign_in import raw_config

    agent = EdgeAgent(parse_config({**raw_config(tmp_path), "voice": {"enabled": True}}))
    try:
        agent.voice.last_error = "speaking A001 failed: aplay exited with 1: ALSA lib: cannot find card '0'"
        summary = agent.health_summary()
    finally:
        agent.store.close()
    assert summary["components"]["voice"] == {"ok": False, "state": "no_sound_card"}
    [condition] = [c for c in health_conditions("445202101001", summary) if c.facts.get("component") == "voice"]
    assert condition.message == "叫号喇叭无声：未找到声卡"  # was "voice故障 · 状态：error"
    assert "请检查喇叭" in condition.reason
