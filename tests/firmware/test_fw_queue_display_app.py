"""QueueDisplayApp: a pure state machine, driven with explicit now_ms."""

from __future__ import annotations

from firmware.queue_display.app import BLINK_MS, OFFLINE_AFTER_MS, QueueDisplayApp
from firmware.sim.hardware import SimPanel
from protocol import messages


def display(state: str = messages.DISPLAY_SERVING, ticket: str = "A001", text: str = "请A001号到3号窗口",
            call_seq: int = 1, window: int = 3) -> dict:
    return messages.make("window_display", window=window, state=state, ticket=ticket, text=text, call_seq=call_seq)


def test_idle_until_told_otherwise() -> None:
    app = QueueDisplayApp(3)
    assert app.lines() == ["3号窗口", "欢迎光临"]
    assert not app.blinking and not app.offline


def test_a_call_shows_ticket_and_text_and_blinks_for_a_while() -> None:
    app = QueueDisplayApp(3)
    app.on_link(True, 0)
    assert app.on_display(display(), 1000)
    assert app.lines() == ["A001", "请A001号到3号窗口"]
    assert app.blinking
    app.tick(1000 + BLINK_MS - 1)
    assert app.blinking
    app.tick(1000 + BLINK_MS)
    assert not app.blinking
    assert app.lines() == ["A001", "请A001号到3号窗口"]


def test_serving_without_text_composes_the_call() -> None:
    app = QueueDisplayApp(3)
    app.on_display(display(ticket="B012", text=""), 0)
    assert app.lines() == ["B012", "请B012号到3号窗口"]


def test_same_call_seq_again_does_not_blink_but_a_new_one_does() -> None:
    app = QueueDisplayApp(3)
    app.on_display(display(call_seq=7), 0)
    app.tick(BLINK_MS)
    assert not app.blinking
    app.on_display(display(call_seq=7), BLINK_MS + 10, retained=True)  # re-delivered after a reconnect
    assert not app.blinking
    app.on_display(display(ticket="A002", text="请A002号到3号窗口", call_seq=8), BLINK_MS + 20, retained=True)
    assert app.blinking  # a call made while we were offline is still news
    assert app.lines()[0] == "A002"


def test_first_retained_state_after_boot_does_not_blink() -> None:
    app = QueueDisplayApp(3)
    app.on_display(display(call_seq=41), 0, retained=True)
    assert app.lines() == ["A001", "请A001号到3号窗口"]
    assert not app.blinking


def test_paused_and_back_to_idle() -> None:
    app = QueueDisplayApp(3)
    app.on_display(display(), 0)
    app.on_display(display(state=messages.DISPLAY_PAUSED, ticket="", text="", call_seq=1), 100)
    assert app.lines() == ["3号窗口", "暂停服务"]
    assert not app.blinking
    app.on_display(display(state=messages.DISPLAY_IDLE, ticket="", text="", call_seq=1), 200)
    assert app.lines() == ["3号窗口", "欢迎光临"]


def test_messages_for_another_window_are_ignored() -> None:
    app = QueueDisplayApp(3)
    assert not app.on_display(display(window=4), 0)
    assert app.lines() == ["3号窗口", "欢迎光临"]


def test_offline_mark_only_after_more_than_ten_seconds_down() -> None:
    app = QueueDisplayApp(3)
    app.on_link(True, 0)
    app.on_display(display(), 0)
    app.on_link(False, 5000)
    app.tick(5000 + OFFLINE_AFTER_MS)
    assert not app.offline
    assert app.lines() == ["A001", "请A001号到3号窗口"]
    app.tick(5000 + OFFLINE_AFTER_MS + 1)
    assert app.offline
    assert app.lines() == ["A001", "请A001号到3号窗口", "网络中断"]
    app.on_link(True, 20000)
    assert not app.offline
    assert app.lines() == ["A001", "请A001号到3号窗口"]


def test_never_connected_since_boot_also_gets_the_offline_mark() -> None:
    app = QueueDisplayApp(3)
    app.tick(100)
    app.tick(100 + OFFLINE_AFTER_MS + 1)
    assert app.lines() == ["3号窗口", "欢迎光临", "网络中断"]


def test_a_short_blip_shows_no_mark() -> None:
    app = QueueDisplayApp(3)
    app.on_link(True, 0)
    app.on_link(False, 1000)
    app.tick(3000)
    app.on_link(True, 3000)
    app.tick(30000)
    assert not app.offline


def test_render_hands_the_lines_to_the_panel() -> None:
    app = QueueDisplayApp(3)
    panel = SimPanel()
    app.on_display(display(), 0)
    app.render(panel)
    assert panel.lines == ["A001", "请A001号到3号窗口"]


def test_blink_phase_alternates_while_blinking() -> None:
    app = QueueDisplayApp(3)
    app.on_display(display(), 0)
    phases = {app.blink_on(t) for t in range(0, 2000, 100)}
    assert phases == {True, False}
    app.tick(BLINK_MS)
    assert app.blink_on(BLINK_MS + 700)


def test_changes_counter_moves_whenever_the_lines_do() -> None:
    app = QueueDisplayApp(3)
    steps = [
        lambda: app.tick(0),
        lambda: app.on_link(True, 10),
        lambda: app.on_display(display(), 20),
        lambda: app.tick(30),
        lambda: app.on_display(display(), 40),
        lambda: app.on_display(display(state=messages.DISPLAY_PAUSED, ticket="", text=""), 50),
        lambda: app.on_link(False, 60),
        lambda: app.tick(60 + OFFLINE_AFTER_MS + 1),
        lambda: app.tick(60 + OFFLINE_AFTER_MS + 2),
        lambda: app.on_link(True, 60 + OFFLINE_AFTER_MS + 3),
    ]
    for step in steps:
        before_lines, before_changes = app.lines(), app.changes
        step()
        if app.lines() != before_lines:
            assert app.changes != before_changes


def test_text_written_by_the_edge_is_shown_when_paused_or_idle() -> None:
    app = QueueDisplayApp(3)
    app.on_display(display(state=messages.DISPLAY_PAUSED, ticket="", text="暂停服务 14:00恢复"), 0)
    assert app.lines() == ["3号窗口", "暂停服务 14:00恢复"]
    app.on_display(display(state=messages.DISPLAY_IDLE, ticket="", text="欢迎光临"), 10)
    assert app.lines() == ["3号窗口", "欢迎光临"]
