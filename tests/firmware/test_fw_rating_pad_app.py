"""RatingPadApp: a pure state machine, driven with explicit now_ms."""

from __future__ import annotations

from firmware.rating_pad.app import BUTTON_SCORES, THANKS_MS, RatingPadApp
from protocol import messages

DEVICE = "dev-02aabbccddee"


def request(state: str = messages.REQUEST_OPEN, request_id: str = "req-1", ticket: str = "A001",
            window: int = 3, **extra) -> dict:
    fields = {"staff_no": "1024", "staff_name": "张三", "timeout_s": 30}
    fields.update(extra)
    return messages.make("rating_request", request_id=request_id, window=window, state=state, ticket=ticket,
                         **fields)


def test_buttons_map_five_to_one() -> None:
    assert BUTTON_SCORES == (5, 4, 3, 2, 1)
    labels = [messages.RATING_LABELS[s] for s in BUTTON_SCORES]
    assert labels == ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]


def test_press_with_nothing_open_is_refused() -> None:
    app = RatingPadApp(3, DEVICE)
    assert app.press(5, 0) is None
    assert app.lines() == ["3号窗口", "欢迎光临"]


def test_open_press_submit_then_a_second_press_is_refused() -> None:
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(), 0)
    assert app.is_open
    assert app.lines() == ["张三 工号1024", "请对本次服务进行评价"]

    payload = app.press(5, 1000)
    assert payload is not None
    assert messages.validate("rating_submitted", payload) is payload
    assert payload["request_id"] == "req-1"
    assert payload["ticket"] == "A001"
    assert payload["window"] == 3
    assert payload["score"] == 5
    assert payload["rating_id"].startswith(DEVICE + "-")
    assert app.lines() == ["谢谢您的评价", "非常满意"]

    assert app.press(4, 1500) is None
    assert app.lines()[0] == "谢谢您的评价"
    app.tick(1000 + THANKS_MS)
    assert app.lines() == ["3号窗口", "欢迎光临"]


def test_rating_ids_are_unique() -> None:
    ids = set()
    for n in range(50):
        app = RatingPadApp(3, DEVICE)
        app.on_request(request(request_id=f"req-{n}"), 0)
        ids.add(app.press(3, 1)["rating_id"])
    assert len(ids) == 50


def test_a_redelivered_request_for_a_rated_ticket_does_not_reopen() -> None:
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(), 0)
    rated = app.press(2, 100)
    assert rated is not None
    app.on_request(request(), 200)  # the retained request again, e.g. after a reconnect
    assert not app.is_open
    again = app.press(2, 300)  # the 差评's reason (一次性告知不到位), not a second rating
    assert (again["rating_id"], again["score"], again["reason"]) == (rated["rating_id"], 2, "not_told_at_once")
    assert app.press(2, 400) is None


def test_the_same_request_again_keeps_its_timer() -> None:
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(timeout_s=30), 0)
    app.on_request(request(timeout_s=30), 20000)
    assert app.tick(30000) is not None


def test_timeout_sends_unrated_exactly_once() -> None:
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(timeout_s=30), 1000)
    assert app.tick(1000 + 29999) is None
    payload = app.tick(1000 + 30000)
    assert payload is not None
    assert payload["score"] == messages.UNRATED
    assert messages.RATING_LABELS[payload["score"]] == "未评价"
    assert payload["request_id"] == "req-1"
    assert app.tick(1000 + 60000) is None
    assert app.press(5, 1000 + 60001) is None
    assert not app.is_open
    app.on_request(request(timeout_s=30), 1000 + 70000)  # re-delivered: stays closed
    assert not app.is_open


def test_default_timeout_when_the_request_has_none() -> None:
    app = RatingPadApp(3, DEVICE, default_timeout_s=5)
    app.on_request(messages.make("rating_request", request_id="r", window=3, state=messages.REQUEST_OPEN,
                                 ticket="A009"), 0)
    assert app.lines() == ["3号窗口", "请对本次服务进行评价"]
    assert app.tick(4999) is None
    assert app.tick(5000)["score"] == 0


def test_closed_request_closes_the_rating() -> None:
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(), 0)
    app.on_request(request(state=messages.REQUEST_CLOSED), 100)
    assert not app.is_open
    assert app.press(5, 200) is None
    assert app.tick(10**6) is None
    app.on_request(request(), 300)  # an out-of-order open for the closed request
    assert not app.is_open


def test_a_new_request_opens_after_a_rated_one() -> None:
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(), 0)
    app.press(5, 10)
    app.on_request(request(request_id="req-2", ticket="A002", staff_name="", staff_no="2048"), 20)
    assert app.is_open
    assert app.lines() == ["工号2048", "请对本次服务进行评价"]
    assert app.press(1, 30)["ticket"] == "A002"


def test_requests_for_another_window_are_ignored_and_bad_scores_refused() -> None:
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(window=4), 0)
    assert not app.is_open
    app.on_request(request(), 0)
    assert app.press(0, 1) is None
    assert app.press(6, 1) is None
    assert app.is_open


def test_changes_counter_moves_whenever_the_lines_do() -> None:
    app = RatingPadApp(3, DEVICE)
    steps = [
        lambda: app.tick(0),
        lambda: app.on_request(request(timeout_s=30), 10),
        lambda: app.press(4, 20),
        lambda: app.tick(20 + THANKS_MS),
        lambda: app.on_request(request(request_id="req-2"), 30000),
        lambda: app.on_request(request(request_id="req-2", state=messages.REQUEST_CLOSED), 30010),
        lambda: app.on_request(request(request_id="req-3"), 30020),
        lambda: app.tick(30020 + 30000),
    ]
    for step in steps:
        before_lines, before_changes = app.lines(), app.changes
        step()
        if app.lines() != before_lines:
            assert app.changes != before_changes


# --- 差评: the reason -------------------------------------------------------------------------------------


def test_a_bad_rating_is_sent_at_the_press_then_its_reason_as_the_same_rating_again() -> None:
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(), 0)
    rated = app.press(1, 1000)  # 非常不满意
    assert rated["score"] == 1 and "reason" not in rated  # the score does not wait for the reason
    assert app.asking_reason and not app.is_open
    assert app.lines() == ["请选择不满意原因", "服务态度", "按亮灯的键选此项"]
    assert app.button_labels() == ["服务态度", "服务效率", "服务水平", "一次性告知不到位", "其他"]
    assert app.tick(1000 + RatingPadApp.REASON_SPOT_MS) is None
    assert app.lines()[1] == "服务效率"
    reason = app.press(4, 1000 + RatingPadApp.REASON_SPOT_MS + 500)  # the second button from the left
    assert messages.validate("rating_submitted", reason) is reason
    assert {k: reason[k] for k in ("rating_id", "request_id", "ticket", "window", "score")} == \
        {k: rated[k] for k in ("rating_id", "request_id", "ticket", "window", "score")}
    assert reason["reason"] == messages.REASON_EFFICIENCY
    assert app.lines() == ["谢谢您的评价", "服务效率"] and not app.asking_reason
    assert app.press(4, 1000 + 3000) is None  # one reason
    assert app.button_labels()[0] == "非常满意"


def test_any_button_picks_its_own_reason_whichever_is_shown() -> None:
    for button, reason in zip(BUTTON_SCORES, messages.RATING_REASONS, strict=True):
        app = RatingPadApp(3, DEVICE)
        app.on_request(request(), 0)
        app.press(2, 0)
        assert app.lines()[1] == "服务态度"  # the first reason on the screen, the others' buttons too
        assert app.press(button, 100)["reason"] == reason


def test_the_reasons_come_round_one_at_a_time_until_the_time_out_ends_the_step_without_one() -> None:
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(), 0)
    app.press(2, 0)
    spot = RatingPadApp.REASON_SPOT_MS
    shown = []
    for n in range(7):
        assert app.tick(n * spot) is None
        shown.append(app.lines()[1])
    assert shown == ["服务态度", "服务效率", "服务水平", "一次性告知不到位", "其他", "服务态度", "服务效率"]
    assert app.tick(RatingPadApp.REASON_TIMEOUT_S * 1000 - 1) is None and app.asking_reason
    assert app.tick(RatingPadApp.REASON_TIMEOUT_S * 1000) is None  # nothing more to send
    assert not app.asking_reason and app.lines() == ["谢谢您的评价", "不满意"]
    assert app.press(3, RatingPadApp.REASON_TIMEOUT_S * 1000 + 1) is None


def test_the_next_residents_request_ends_the_reason_step() -> None:
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(), 0)
    app.press(1, 0)
    app.on_request(request(request_id="req-2", ticket="A002"), 3000)
    assert not app.asking_reason and app.lines() == ["张三 工号1024", "请对本次服务进行评价"]
    payload = app.press(4, 3100)  # a grade for A002, not a reason for A001
    assert (payload["ticket"], payload["score"], payload.get("reason")) == ("A002", 4, None)


def test_a_good_rating_asks_no_reason() -> None:
    for score in (5, 4, 3):
        app = RatingPadApp(3, DEVICE)
        app.on_request(request(), 0)
        app.press(score, 0)
        assert not app.asking_reason and app.lines()[0] == "谢谢您的评价"


def test_the_reason_step_changes_the_counter_whenever_its_lines_do() -> None:
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(), 0)
    steps = [lambda: app.press(1, 0)] + [lambda n=n: app.tick(n * 500) for n in range(1, 70)]
    for step in steps:
        before_lines, before_changes = app.lines(), app.changes
        step()
        if app.lines() != before_lines:
            assert app.changes != before_changes
