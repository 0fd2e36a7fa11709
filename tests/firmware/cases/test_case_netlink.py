"""LinkSupervisor: kicks a down network link with growing pauses, never blocks."""

from case_support import FakeDriver

from firmware.lib.netlink import LinkSupervisor


def test_an_up_link_is_left_alone():
    driver = FakeDriver(up=True)
    link = LinkSupervisor(driver, grace_ms=1000, log=None)
    for now in range(0, 10000, 100):
        assert link.step(now)
    assert driver.reconnects == 0


def test_a_down_link_is_kicked_after_the_grace_with_backoff():
    driver = FakeDriver(up=False)
    link = LinkSupervisor(driver, grace_ms=1000, backoff_min_ms=1000, backoff_max_ms=4000, log=None)
    tries = []
    for now in range(0, 30000, 50):
        link.step(now)
        if driver.reconnects > len(tries):
            tries.append(now)
    assert tries[0] >= 1000
    gaps = [b - a for a, b in zip(tries, tries[1:])]  # noqa: B905 - MicroPython has no strict
    assert gaps[0] < 1000 + 50 and all(g < 4000 + 50 for g in gaps)
    assert gaps[-1] >= 2000  # grown to the maximum's jitter range [2000, 4000)
    driver.up = True
    assert link.step(30000) and link.attempts == 0 and link.up


def test_a_failing_driver_is_a_down_link_not_a_crash():
    class Broken:
        def is_up(self):
            raise OSError("radio off")

        def reconnect(self):
            raise OSError("still off")

    link = LinkSupervisor(Broken(), grace_ms=0, log=None)
    assert not link.step(0)
    assert "still off" in link.last_error



def test_a_link_down_for_longer_than_half_the_ticks_period_is_still_kicked():
    # Down for a week, across the counter's wrap: the kicks go on at the backoff pace, never stop for days.
    from firmware.lib import clock

    half = clock.TICKS_PERIOD // 2
    driver = FakeDriver(up=False)
    link = LinkSupervisor(driver, grace_ms=1000, backoff_min_ms=1000, backoff_max_ms=4000, log=None)
    start = clock.TICKS_PERIOD - 5000
    # The first minute, then (the ticker's beat going on in between) the minutes around half a period.
    steps = list(range(0, 60000, 200)) + list(range(half - 60000, half + 5 * 60000, 200))
    kicks = []
    for elapsed in steps:
        before = driver.reconnects
        link.step((start + elapsed) % clock.TICKS_PERIOD)
        if driver.reconnects > before:
            kicks.append(elapsed)
    late = [k for k in kicks if k > half]
    assert len(late) >= 5 * 60000 // 4000
    assert max(b - a for a, b in zip(late, late[1:])) <= 4000  # noqa: B905 - MicroPython has no strict
