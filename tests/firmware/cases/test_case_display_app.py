"""QueueDisplayApp: what the window's screen shows, driven with explicit now_ms."""

from case_support import FakePanel

from firmware.queue_display.app import BLINK_MS, OFFLINE_AFTER_MS, QueueDisplayApp
from protocol import messages


def display(state="serving", ticket="A001", text="请A001号到3号窗口", call_seq=1, window=3):
    return messages.make("window_display", window=window, state=state, ticket=ticket, text=text, call_seq=call_seq)


def test_idle_then_a_call():
    app = QueueDisplayApp(3)
    assert app.lines() == ["3号窗口", "欢迎光临"]
    assert app.on_display(display(), 0)
    assert app.lines() == ["A001", "请A001号到3号窗口"]
    assert app.blinking


def test_the_staff_on_duty_shows_with_the_idle_text():
    app = QueueDisplayApp(3)
    idle = display(state="idle", ticket="", text="欢迎光临", call_seq=0)
    idle["staff"] = "王芳 工号1003"  # 亮牌上岗: the edge says who is signed in at the window
    assert app.on_display(idle, 0)
    assert app.lines() == ["3号窗口", "欢迎光临 王芳 工号1003"]
    app.apply_config({"idle_text": "示例镇欢迎您"})
    assert app.lines() == ["3号窗口", "示例镇欢迎您 王芳 工号1003"]
    assert app.on_display(display(call_seq=1), 10)  # a call: the number and its call text, as before
    assert app.lines() == ["A001", "请A001号到3号窗口"]
    assert app.on_display(display(state="idle", ticket="A001", text="欢迎光临", call_seq=1), 20)  # signed out
    assert app.lines() == ["3号窗口", "示例镇欢迎您"]


def test_other_windows_are_ignored():
    app = QueueDisplayApp(3)
    assert not app.on_display(display(window=4), 0)
    assert app.lines() == ["3号窗口", "欢迎光临"]


def test_a_retained_state_at_boot_does_not_blink_but_a_new_call_does():
    app = QueueDisplayApp(3)
    app.on_display(display(call_seq=7), 0, retained=True)
    assert not app.blinking
    app.on_display(display(ticket="A002", text="请A002号到3号窗口", call_seq=8), 100)
    assert app.blinking and app.blink_on(100) and not app.blink_on(700)
    app.tick(100 + BLINK_MS)
    assert not app.blinking


def test_paused_and_offline():
    app = QueueDisplayApp(3)
    app.on_display(display(state="paused", ticket="", text=""), 0)
    assert app.lines() == ["3号窗口", "暂停服务"]
    app.on_link(True, 0)
    app.on_link(False, 1000)
    app.tick(1000 + OFFLINE_AFTER_MS)
    assert app.lines()[-1] != "网络中断"
    app.tick(1001 + OFFLINE_AFTER_MS)
    assert app.lines()[-1] == "网络中断"
    app.on_link(True, 20000)
    assert app.lines() == ["3号窗口", "暂停服务"]


def test_the_desired_configuration_is_used():
    app = QueueDisplayApp(3)
    changes = app.changes
    app.apply_config({"idle_text": "欢迎来到示例镇", "blink_s": 2, "brightness": 40})
    assert app.changes > changes
    app.on_display(display(state="idle", ticket="", text="欢迎光临"), 0)
    assert app.lines() == ["3号窗口", "欢迎来到示例镇"]
    app.on_display(display(call_seq=2), 0)
    app.tick(1999)
    assert app.blinking
    app.tick(2000)
    assert not app.blinking
    app.apply_config({"blink_s": 0})
    app.on_display(display(call_seq=3), 3000)
    assert not app.blinking
    app.apply_config({})
    app.on_display(display(state="idle", ticket="", text=""), 4000)
    assert app.lines() == ["3号窗口", "欢迎光临"]


def test_render_draws_the_lines():
    app = QueueDisplayApp(3)
    panel = FakePanel()
    app.on_display(display(), 0)
    app.render(panel)
    assert panel.lines[:2] == ["A001", "请A001号到3号窗口"]


def test_the_offline_mark_stays_through_an_outage_longer_than_half_the_ticks_period():
    from firmware.lib import clock

    start = clock.TICKS_PERIOD - 3000  # the counter wraps 3 s into the outage
    app = QueueDisplayApp(3)
    app.on_link(True, start)
    app.on_link(False, start)
    for elapsed in (0, OFFLINE_AFTER_MS + 1, 60000):
        app.tick((start + elapsed) % clock.TICKS_PERIOD)
    assert app.lines()[-1] == "网络中断"
    for elapsed in range(clock.TICKS_PERIOD // 2 - 1000, clock.TICKS_PERIOD // 2 + 60000, 200):
        app.tick((start + elapsed) % clock.TICKS_PERIOD)
        assert app.lines()[-1] == "网络中断", elapsed
    app.on_link(True, start)
    assert app.lines()[-1] != "网络中断"


def test_a_blink_ends_even_when_the_next_tick_comes_more_than_half_the_ticks_period_later():
    from firmware.lib import clock

    start = clock.TICKS_PERIOD - 500
    app = QueueDisplayApp(3)
    app.on_display(display(), start)
    assert app.blinking
    app.tick((start + clock.TICKS_PERIOD // 2 + 1000) % clock.TICKS_PERIOD)
    assert not app.blinking
