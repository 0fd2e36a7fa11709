"""The ID card reader adapter against a simulated reader on a pseudo-terminal (real SAM frames)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from edge_agent.adapters.id_card import IdCardReader, IdCardReaderConfig
from edge_agent.simulators.id_card_reader import FIND, READ, SELECT, Fault, SamReaderSimulator, sample_text_block
from tests.support.loop import LoopThread
from tests.support.waiting import wait_until


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    with LoopThread() as loop:
        yield loop


@pytest.fixture
def simulator() -> Iterator[SamReaderSimulator]:
    simulator = SamReaderSimulator().start()
    yield simulator
    simulator.stop()


def lift_and_present(simulator: SamReaderSimulator, block: bytes) -> None:
    """Lift the card for as long as a hand does: at least one poll of the reader finds nothing."""
    simulator.lift()
    finds = simulator.count(FIND)
    wait_until(lambda: simulator.count(FIND) > finds + 1, what="a poll with no card")
    simulator.present(block)


def start_reader(loop: LoopThread, path: str, data_dir, cards: list) -> IdCardReader:
    reader = IdCardReader(IdCardReaderConfig(path, 115200, poll_interval_s=0.05), data_dir, cards.append)
    reader.reopen_after_s = 0.1
    reader.read_timeout_s = 1.5  # the silence and truncation tests wait this long
    loop.run(reader.start())
    return reader


def test_a_presented_card_is_delivered_once_until_it_is_lifted(loop, simulator, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    cards: list = []
    reader = start_reader(loop, simulator.path, tmp_path, cards)
    try:
        wait_until(lambda: reader.health()["state"] == "ready", what="the reader answering")
        block = sample_text_block(name="李秀兰", birth_date="19500102", sex_code="2")
        number = block[122:158].decode("utf-16-le")
        simulator.present(block)
        wait_until(lambda: cards, what="the card delivered")
        card = cards[0]
        assert (card.name, card.sex, card.id_masked[-4:]) == ("李秀兰", "女", number[-4:])
        # Real readers fail "find" after a read until the card is presented again.
        finds = simulator.count(FIND)
        wait_until(lambda: simulator.count(FIND) > finds + 3, what="more polling")
        assert len(cards) == 1
        lift_and_present(simulator, block)
        wait_until(lambda: len(cards) == 2, what="the card presented again")
        assert cards[1].id_hash == card.id_hash  # same person, same hash in this center
        health = reader.health()
        assert health["cards_read"] == 2 and health["last_card_at"]
        wait_until(lambda: reader.health()["ok"], what="the reader ready")
    finally:
        loop.run(reader.stop())
    assert number not in caplog.text and number[:17] not in caplog.text


def test_a_reader_that_keeps_finding_the_card_does_not_deliver_it_twice(loop, tmp_path):
    simulator = SamReaderSimulator(sticky=True).start()
    cards: list = []
    reader = start_reader(loop, simulator.path, tmp_path, cards)
    try:
        simulator.present(sample_text_block())
        wait_until(lambda: cards, what="the card delivered")
        reads = simulator.count(READ)
        finds = simulator.count(FIND)
        wait_until(lambda: simulator.count(FIND) > finds + 3, what="more polling")
        assert len(cards) == 1 and simulator.count(READ) == reads
        simulator.lift()  # find fails once: the next presentation is a new one
        wait_until(lambda: simulator.count(FIND) > finds + 6, what="polling with no card")
        simulator.present(sample_text_block())
        wait_until(lambda: len(cards) == 2, what="the card delivered again")
    finally:
        loop.run(reader.stop())
        simulator.stop()


@pytest.mark.parametrize("fault", [
    Fault("bad_checksum", READ),
    Fault("status", READ, status=0x41),
    Fault("status", SELECT, status=0x81),
    Fault("garbage", FIND),
    Fault("truncated", READ),
    Fault("silence", READ),
])
def test_faults_are_logged_and_survived(loop, simulator, tmp_path, caplog, fault):
    cards: list = []
    reader = start_reader(loop, simulator.path, tmp_path, cards)
    try:
        simulator.inject(fault)
        simulator.present(sample_text_block())
        if fault.kind == "garbage":  # bytes before a good frame are skipped without complaint
            wait_until(lambda: cards, what="the card delivered despite the garbage")
        else:
            wait_until(lambda: reader.health()["errors"] >= 1, what="the fault noticed")
            assert reader.health()["last_error"] and not cards
            # The reader may consider the card read already: the resident presents it again.
            simulator.lift()
            simulator.present(sample_text_block())
            wait_until(lambda: cards, what="the card delivered after the fault")
        assert len(cards) == 1
        wait_until(lambda: reader.health()["ok"], what="the reader ready")
    finally:
        loop.run(reader.stop())


def test_a_corrupt_text_block_is_refused_and_the_next_card_is_read(loop, simulator, tmp_path):
    cards: list = []
    reader = start_reader(loop, simulator.path, tmp_path, cards)
    try:
        simulator.present(sample_text_block(ethnicity_code="77"))
        wait_until(lambda: "could not be parsed" in reader.health()["last_error"], what="the refusal")
        lift_and_present(simulator, sample_text_block())
        wait_until(lambda: cards, what="the good card")
        assert len(cards) == 1
    finally:
        loop.run(reader.stop())


def test_a_silent_reader_is_not_responding_then_recovers(loop, simulator, tmp_path):
    cards: list = []
    reader = start_reader(loop, simulator.path, tmp_path, cards)
    try:
        wait_until(lambda: reader.health()["ok"], what="ready")
        for _ in range(3):
            simulator.inject(Fault("silence", FIND))
        health = wait_until(lambda: (h := reader.health())["state"] == "not responding" and h, what="not responding")
        assert health["ok"] is False
        wait_until(lambda: reader.health()["ok"], what="answering again")
    finally:
        loop.run(reader.stop())


def test_an_unplugged_reader_is_offline_and_a_missing_port_is_retried(loop, tmp_path):
    simulator = SamReaderSimulator().start()
    cards: list = []
    reader = start_reader(loop, simulator.path, tmp_path, cards)
    try:
        wait_until(lambda: reader.health()["ok"], what="ready")
        simulator.stop()
        health = wait_until(lambda: (h := reader.health())["state"] == "offline" and h, what="offline after unplugging")
        assert health["ok"] is False
    finally:
        loop.run(reader.stop())
    missing = start_reader(loop, str(tmp_path / "ttyUSB9"), tmp_path, cards)
    try:
        wait_until(lambda: missing.health()["state"] == "offline", what="offline")
        assert "cannot open" in missing.health()["last_error"]
    finally:
        loop.run(missing.stop())


def test_a_failing_card_handler_does_not_stop_the_reader(loop, simulator, tmp_path):
    delivered: list = []

    def handler(card):
        delivered.append(card)
        raise RuntimeError(f"boom {card.name}")

    reader = start_reader(loop, simulator.path, tmp_path, [])
    reader.on_card = handler
    try:
        simulator.present(sample_text_block())
        wait_until(lambda: delivered, what="first delivery")
        lift_and_present(simulator, sample_text_block())
        wait_until(lambda: len(delivered) == 2, what="second delivery")
    finally:
        loop.run(reader.stop())


def test_an_unexpected_error_reopens_the_port_and_logs_no_card_data(loop, simulator, tmp_path, monkeypatch, caplog):
    from edge_agent.adapters import id_card

    real_take_reply = id_card.take_reply
    failed = []

    def failing_once(buffer):
        if not failed and bytes(buffer).startswith(b"\xaa\xaa\xaa\x96\x69"):
            failed.append(True)
            raise RuntimeError(bytes(buffer).hex())  # as if a bug put the bytes read into its message
        return real_take_reply(buffer)

    monkeypatch.setattr(id_card, "take_reply", failing_once)
    cards: list = []
    reader = start_reader(loop, simulator.path, tmp_path, cards)
    try:
        wait_until(lambda: "unexpected RuntimeError" in reader.health()["last_error"], what="the error")
        simulator.present(sample_text_block())
        wait_until(lambda: cards, what="the card read after the port was reopened")
    finally:
        loop.run(reader.stop())
    assert "aaaaaa9669" not in caplog.text
