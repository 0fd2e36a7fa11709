"""AwaitingAck: a rating waits for the edge's rating_ack, goes again after the time-out or a reconnect."""

from firmware.lib import clock
from firmware.lib.awaiting_ack import AwaitingAck

TIMEOUT_MS = 20000


def test_a_message_waits_for_its_acknowledgement_not_for_its_puback():
    awaiting = AwaitingAck(TIMEOUT_MS)
    assert awaiting.should_send(1)
    awaiting.sending(1, "r-1", None, 0)
    awaiting.delivered(1, 10)  # PUBACKed: still awaited
    assert awaiting.key == 1 and not awaiting.should_send(1)
    assert not awaiting.tick(10 + TIMEOUT_MS - 1)
    assert awaiting.acknowledged("r-1", None) == 1
    assert awaiting.key is None and awaiting.should_send(2)
    assert not awaiting.tick(10 + 2 * TIMEOUT_MS)  # nothing awaited: nothing to send again


def test_without_an_acknowledgement_it_goes_again_after_the_time_out():
    awaiting = AwaitingAck(TIMEOUT_MS)
    awaiting.sending(7, "r-7", None, 1000)
    awaiting.delivered(7, 1000)
    assert not awaiting.tick(1000 + TIMEOUT_MS - 1) and not awaiting.should_send(7)
    assert awaiting.tick(1000 + TIMEOUT_MS)  # once ...
    assert not awaiting.tick(1000 + TIMEOUT_MS + 200)  # ... not again until it was sent
    assert awaiting.should_send(7)
    awaiting.sending(7, "r-7", None, 1000 + TIMEOUT_MS + 300)
    assert awaiting.resends == 1 and not awaiting.should_send(7)
    assert awaiting.acknowledged("r-7", None) == 7


def test_a_reconnect_sends_the_awaited_message_again():
    awaiting = AwaitingAck(TIMEOUT_MS)
    assert not awaiting.link_up()  # nothing awaited
    awaiting.sending(3, "r-3", None, 0)
    awaiting.delivered(3, 0)
    assert awaiting.link_up() and awaiting.should_send(3)


def test_a_send_on_the_new_link_spends_a_due_latched_while_it_was_down():
    # The publish waited for the link and went again (DUP) on the new one: PUBACKed there, it waits afresh.
    awaiting = AwaitingAck(TIMEOUT_MS)
    awaiting.sending(3, "r-3", None, 0)
    assert awaiting.tick(TIMEOUT_MS) and awaiting.link_up()
    awaiting.delivered(3, 5 * TIMEOUT_MS)
    assert not awaiting.should_send(3)
    assert not awaiting.tick(6 * TIMEOUT_MS - 1) and awaiting.tick(6 * TIMEOUT_MS)


def test_the_acknowledgement_of_a_score_is_not_one_of_its_reason():
    # A 差评 goes at the press and again with its reason (same rating_id): a late acknowledgement of the score
    # (a re-sent copy answered twice) must not make the pad forget the reason the edge has not stored.
    awaiting = AwaitingAck(TIMEOUT_MS)
    awaiting.sending(1, "r-1", None, 0)
    assert awaiting.acknowledged("r-1", None) == 1
    awaiting.sending(2, "r-1", "efficiency", 10)
    assert awaiting.acknowledged("r-1", None) is None
    assert awaiting.acknowledged("r-1", "attitude") is None
    assert awaiting.acknowledged("r-0", "efficiency") is None
    assert awaiting.key == 2
    assert awaiting.acknowledged("r-1", "efficiency") == 2


def test_an_acknowledgement_of_nothing_awaited_is_ignored():
    awaiting = AwaitingAck(TIMEOUT_MS)
    assert awaiting.acknowledged("r-9", None) is None
    awaiting.sending(4, "r-4", None, 0)
    assert awaiting.acknowledged("r-4", None) == 4
    assert awaiting.acknowledged("r-4", None) is None  # the answer to a re-sent copy


def test_the_time_out_holds_across_the_ticks_wrap():
    awaiting = AwaitingAck(TIMEOUT_MS)
    sent = clock.TICKS_PERIOD - 5000  # sent 5 s before the counter wraps
    awaiting.sending(1, "r-1", None, sent)
    assert not awaiting.tick(clock.ticks_add(sent, TIMEOUT_MS - 1))
    assert awaiting.tick(clock.ticks_add(sent, TIMEOUT_MS))
