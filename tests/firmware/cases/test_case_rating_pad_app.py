"""RatingPadApp: one rating per request, the timeout, the remembered requests, the configuration."""

from case_support import DEVICE, scratch_dir

from firmware.lib.recent import RecentIds
from firmware.rating_pad.app import THANKS_MS, RatingPadApp
from protocol import messages


def request(state="open", request_id="rq-1", ticket="A001", window=3, **extra):
    fields = {"staff_no": "1024", "staff_name": "张三", "timeout_s": 30}
    fields.update(extra)
    if state == "closed":
        fields = {}
    return messages.make("rating_request", request_id=request_id, window=window, state=state, ticket=ticket,
                         **fields)


def test_a_press_counts_only_while_a_request_is_open():
    app = RatingPadApp(3, DEVICE)
    assert app.press(5, 0) is None
    app.on_request(request(), 0)
    assert app.lines() == ["张三 工号1024", "请对本次服务进行评价"]
    payload = app.press(5, 100)
    messages.validate("rating_submitted", payload)
    assert (payload["request_id"], payload["ticket"], payload["window"], payload["score"]) == ("rq-1", "A001", 3, 5)
    assert payload["rating_id"].startswith(DEVICE + "-")
    assert app.lines() == ["谢谢您的评价", "非常满意"]
    assert app.press(4, 200) is None  # one rating per ticket
    app.tick(100 + THANKS_MS)
    assert app.lines() == ["3号窗口", "欢迎光临"]


def test_no_press_before_the_timeout_sends_unrated_once():
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(timeout_s=30), 1000)
    assert app.tick(30999) is None
    payload = app.tick(31000)
    assert payload["score"] == messages.UNRATED and payload["ticket"] == "A001"
    assert app.tick(40000) is None and not app.is_open
    assert app.press(5, 40001) is None


def test_each_rating_has_its_own_id():
    ids = []
    for n in range(20):
        app = RatingPadApp(3, DEVICE)
        app.on_request(request(request_id="rq-%d" % n), 0)
        ids.append(app.press(3, 1)["rating_id"])
    assert len(set(ids)) == 20


def test_closed_and_other_windows():
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(window=4), 0)
    assert not app.is_open
    app.on_request(request(), 0)
    app.on_request(request(state="closed"), 10)
    assert not app.is_open and app.press(5, 20) is None
    app.on_request(request(), 30)  # closed once: a re-delivered open does not reopen
    assert not app.is_open


def test_a_rated_request_stays_rated_across_a_reboot():
    path = scratch_dir("rated") + "/rated.json"
    app = RatingPadApp(3, DEVICE, rated=RecentIds(path, log=None))
    app.on_request(request(), 0)
    assert app.press(2, 10) is not None
    rebooted = RatingPadApp(3, DEVICE, rated=RecentIds(path, log=None))
    rebooted.on_request(request(), 0)  # the retained request, delivered again after the reboot
    assert not rebooted.is_open and rebooted.press(2, 10) is None
    rebooted.on_request(request(request_id="rq-2", ticket="A002"), 20)
    assert rebooted.is_open


def test_a_reboot_during_an_open_request_reopens_it():
    path = scratch_dir("rated") + "/rated.json"
    app = RatingPadApp(3, DEVICE, rated=RecentIds(path, log=None))
    app.on_request(request(), 0)
    rebooted = RatingPadApp(3, DEVICE, rated=RecentIds(path, log=None))
    rebooted.on_request(request(), 0)
    assert rebooted.is_open and rebooted.press(4, 1)["score"] == 4


def test_the_desired_configuration_is_used():
    app = RatingPadApp(3, DEVICE)
    app.apply_config({"prompt_text": "请您评价", "thanks_text": "感谢评价", "rating_timeout_s": 10})
    app.on_request(request(timeout_s=60), 0)
    assert app.lines()[1] == "请您评价"
    assert app.timeout_s() == 10  # the county's setting wins over the request's
    assert app.tick(9999) is None
    app.on_request(request(request_id="rq-2"), 0)
    assert app.tick(10000)["score"] == 0
    app.on_request(request(request_id="rq-3"), 20000)
    app.press(5, 20001)
    assert app.lines()[0] == "感谢评价"
    app.apply_config({})
    app.on_request(request(request_id="rq-4", timeout_s=45), 30000)
    assert app.timeout_s() == 45 and app.lines()[1] == "请对本次服务进行评价"


def test_timeouts_end_even_when_the_next_tick_comes_more_than_half_the_ticks_period_later():
    # A tick more than 2**29 ms after the request (the app driven again after a long pause, across the
    # counter's wrap) finds the request long timed out and the thanks long over, not still to come.
    from firmware.lib import clock

    late = clock.TICKS_PERIOD // 2 + 1000
    start = clock.TICKS_PERIOD - 500
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(timeout_s=30), start)
    payload = app.tick((start + late) % clock.TICKS_PERIOD)
    assert payload is not None and payload["score"] == messages.UNRATED and not app.is_open
    app.on_request(request(request_id="rq-2"), start)
    app.press(4, start)
    assert app.lines()[0] == "谢谢您的评价"
    app.tick((start + late) % clock.TICKS_PERIOD)
    assert app.lines() == ["3号窗口", "欢迎光临"]


def test_a_bad_rating_goes_at_once_and_its_reason_follows_as_the_same_rating():
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(), 0)
    rated = app.press(1, 0)
    assert rated["score"] == 1 and "reason" not in rated
    assert app.lines() == ["请选择不满意原因", "服务态度", "按亮灯的键选此项"]
    app.tick(RatingPadApp.REASON_SPOT_MS)
    assert app.lines()[1] == "服务效率"
    reason = app.press(4, RatingPadApp.REASON_SPOT_MS + 1)  # the second button from the left
    messages.validate("rating_submitted", reason)
    assert (reason["rating_id"], reason["score"], reason["reason"]) == (rated["rating_id"], 1, "efficiency")
    assert app.lines() == ["谢谢您的评价", "服务效率"]
    assert app.press(4, RatingPadApp.REASON_SPOT_MS + 2) is None


def test_the_reason_step_ends_without_one_at_its_time_out_or_the_next_request():
    app = RatingPadApp(3, DEVICE)
    app.on_request(request(), 0)
    app.press(2, 0)
    assert app.tick(RatingPadApp.REASON_TIMEOUT_S * 1000) is None
    assert not app.asking_reason and app.lines() == ["谢谢您的评价", "不满意"]
    app.on_request(request(request_id="rq-2", ticket="A002"), 40000)
    app.press(2, 40001)
    app.on_request(request(request_id="rq-3", ticket="A003"), 41000)
    assert not app.asking_reason
    assert app.press(4, 41001)["ticket"] == "A003"
