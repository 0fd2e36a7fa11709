"""The watchdog is fed only while every part of the firmware makes progress."""

from case_support import FakeDriver, raises

from firmware.lib.watchdog import ProgressMonitor, WatchdogFeeder


def feeder():
    driver = FakeDriver()
    monitor = ProgressMonitor({"tick": 1000, "link": 5000})
    monitor.start(0)
    return WatchdogFeeder(monitor, driver, log=None), monitor, driver


def test_fed_while_every_part_beats():
    watch, monitor, driver = feeder()
    for now in range(0, 10000, 500):
        monitor.beat("tick", now)
        if now % 4000 == 0:
            monitor.beat("link", now)
        assert watch.feed_if_alive(now)
    assert driver.feeds == 20


def test_a_stalled_loop_stops_feeding():
    watch, monitor, driver = feeder()
    monitor.beat("tick", 500)
    assert watch.feed_if_alive(1400)
    assert not watch.feed_if_alive(1600)  # the ticker has been silent for 1100 ms
    assert not watch.feed_if_alive(3000)
    assert driver.feeds == 1 and watch.starved == ["tick"]
    monitor.beat("tick", 3100)  # it comes back (before the hardware fired): fed again
    assert watch.feed_if_alive(3100) and watch.starved is None


def test_each_part_has_its_own_deadline():
    watch, monitor, driver = feeder()
    for now in range(0, 6000, 200):
        monitor.beat("tick", now)
    assert monitor.stalled(5800) == ["link"]
    assert not watch.feed_if_alive(5800)


def test_no_beat_at_all_is_a_stall_and_unknown_parts_are_refused():
    monitor = ProgressMonitor({"tick": 1000})
    assert monitor.stalled(0) == ["tick"]
    raises(ValueError, monitor.beat, "other", 0)


def test_a_part_silent_for_longer_than_half_the_ticks_period_is_still_stalled():
    from firmware.lib import clock

    half = clock.TICKS_PERIOD // 2
    start = clock.TICKS_PERIOD - 2000
    watch, monitor, driver = feeder()
    monitor.start(start)
    for elapsed in (4000, half - 1, half, half + 500, half + 4000):
        now = (start + elapsed) % clock.TICKS_PERIOD
        monitor.beat("link", now)
        assert not watch.feed_if_alive(now), elapsed
    assert driver.feeds == 0 and watch.starved == ["tick"]
