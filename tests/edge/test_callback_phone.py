"""A resident who gave a 差评 leaves a phone number for its callback at the kiosk (edge_agent.callback)."""

from __future__ import annotations

import json
import logging

import pytest

from edge_agent.callback import PHONE_REFUSED, CallbackPhones, checked_phone
from edge_agent.config import parse_config
from edge_agent.queue.service import QueueError, QueueService
from edge_agent.store import EdgeStore
from protocol import topics
from tests.edge.test_rating_reason import FINISHED, PAD, RAW, Clock, rating

MOBILE = "13912345678"
WITH_KEY = {**RAW, "brokers": {"county": {"edge_key": "ab" * 32}}}  # the fleet's acknowledgements are taken


@pytest.fixture
def center(tmp_path):
    """Window 3 has finished A001 and asks for its rating."""
    store = EdgeStore(tmp_path / "edge.sqlite3")
    clock = Clock(FINISHED - 60)
    service = QueueService(store, parse_config(WITH_KEY), clock)
    service.login(3, "1003")
    service.issue_ticket("A")
    service.call_next(3)
    clock.now = FINISHED
    service.finish(3)
    yield service, clock
    store.close()


def phone_messages(service) -> list[dict]:
    return [json.loads(row.payload) for row in service.store.pending(1000)
            if topics.parse(row.topic)[0] == topics.CALLBACK_PHONE]


@pytest.mark.parametrize("typed, digits", [("13912345678", "13912345678"), ("139 1234 5678", "13912345678"),
                                           ("010-12345678", "01012345678"), ("07581234567", "07581234567"),
                                           ("075812345678", "075812345678")])
def test_a_mobile_or_a_landline_with_its_area_code_is_taken_as_digits(typed: str, digits: str) -> None:
    assert checked_phone(typed) == digits


@pytest.mark.parametrize("typed", ["", "1391234567", "139123456789", "12912345678", "1234567", "0012345678",
                                   "13912345678#", "一三九12345678"])
def test_anything_else_is_refused_without_repeating_what_was_typed(typed: str) -> None:
    with pytest.raises(QueueError) as refused:
        checked_phone(typed)
    assert str(refused.value) == PHONE_REFUSED


def test_a_phone_for_todays_bad_rating_goes_to_the_outbox_for_its_rating_and_never_to_a_log(center, caplog) -> None:
    service, _clock = center
    assert service.record_rating(PAD, rating(service, 1)).accepted
    caplog.set_level(logging.DEBUG)
    assert CallbackPhones(service).leave(" a001 ", "139-1234-5678") == "A001"
    [message] = phone_messages(service)
    assert (message["rating_id"], message["ticket"], message["window"], message["phone"]) == \
        ("dev-020000000003-9f3b1c7d2e40", "A001", 3, MOBILE)
    assert "a callback phone was left for the 差评 of A001" in caplog.text
    assert MOBILE not in caplog.text and "1234" not in caplog.text


def test_no_phone_is_taken_for_a_good_rating_an_unrated_or_an_unknown_ticket(center) -> None:
    service, _clock = center
    phones = CallbackPhones(service)
    with pytest.raises(QueueError, match="今天 A001 号没有不满意评价"):
        phones.leave("A001", MOBILE)  # not rated yet
    assert service.record_rating(PAD, rating(service, 4)).accepted
    with pytest.raises(QueueError, match="今天 A001 号没有不满意评价"):
        phones.leave("A001", MOBILE)
    with pytest.raises(QueueError, match="今天 A009 号没有不满意评价"):
        phones.leave("A009", MOBILE)
    with pytest.raises(QueueError, match="请输入您的排队号码"):
        phones.leave("", MOBILE)
    assert phone_messages(service) == []


def test_an_edge_without_its_edge_key_takes_no_phone_it_could_never_forget(tmp_path) -> None:
    store = EdgeStore(tmp_path / "edge.sqlite3")
    try:
        service = QueueService(store, parse_config(RAW), Clock(FINISHED))
        with pytest.raises(QueueError, match="本中心暂不能登记回访电话"):
            CallbackPhones(service).leave("A001", MOBILE)
    finally:
        store.close()


def test_the_store_overwrites_what_it_deletes(center) -> None:
    service, _clock = center
    assert service.store.query("PRAGMA secure_delete") == [(1,)]
