"""Ratings made while the broker is unreachable wait on flash, survive a reboot, and arrive exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fw_helpers import CENTER, AcknowledgingEdge, make_device, run, until

from protocol import identity, messages, topics
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

MAC = "02:00:00:00:00:09"
DEVICE = identity.device_id_from_mac(MAC)
RATING = topics.build(topics.RATING_SUBMITTED, center=CENTER, device=DEVICE)
REQUEST = topics.build(topics.RATING_REQUEST, center=CENTER, window=3)


def open_request(request_id: str, ticket: str) -> bytes:
    return messages.encode("rating_request", messages.make(
        "rating_request", request_id=request_id, window=3, state="open", ticket=ticket, timeout_s=60))


def test_offline_ratings_survive_a_reboot_and_are_sent_once(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        edge = AcknowledgingEdge(center_broker.port, RATING)
        edge.publish(REQUEST, open_request("rq-1", "A001"), retain=True)
        pad = make_device(center_broker.port, tmp_path, mac=MAC)
        task = asyncio.create_task(pad.run())
        await until(lambda: pad.app.is_open, what="request open")
        pad.client.port = free_port()  # the edge's broker becomes unreachable
        pad.client.abort()
        await until(lambda: not pad.client.up, what="link down")
        assert pad.press(5) is True  # the resident is not kept waiting
        await until(lambda: pad.client.last_error.startswith("connect:"), what="a failed reconnect")
        assert len(pad.outbox) == 1 and list((tmp_path / "outbox").iterdir())
        pad.client.abort(stop=True)  # power cut: nothing more is sent
        await task

        # Reboot while the broker is still unreachable: the rated request does not reopen
        # (its retained copy is delivered again), and the rating is still on flash.
        rebooted = make_device(center_broker.port, tmp_path, mac=MAC)
        assert len(rebooted.outbox) == 1 and "rq-1" in rebooted.app.rated
        task = asyncio.create_task(rebooted.run())
        await until(lambda: rebooted.client.up, what="up after reboot")
        await until(lambda: edge.payloads(RATING), what="the stored rating arrives")
        await until(lambda: len(rebooted.outbox) == 0, what="deleted once the edge acknowledged it")
        assert list((tmp_path / "outbox").iterdir()) == []
        assert not rebooted.app.is_open
        assert rebooted.press(4) is False
        ratings = [messages.decode("rating_submitted", p) for p in edge.payloads(RATING)]
        assert len(ratings) == 1
        assert (ratings[0]["request_id"], ratings[0]["ticket"], ratings[0]["score"]) == ("rq-1", "A001", 5)

        edge.publish(REQUEST, open_request("rq-2", "A002"), retain=True)
        await until(lambda: rebooted.app.is_open, what="the next request opens")
        assert rebooted.press(3) is True
        await until(lambda: len(edge.payloads(RATING)) == 2, what="second rating")
        second = messages.decode("rating_submitted", edge.payloads(RATING)[1])
        assert second["rating_id"] != ratings[0]["rating_id"] and second["ticket"] == "A002"
        await rebooted.stop()
        await task
        edge.close()

    run(scenario())


def test_a_full_outbox_refuses_the_press_and_keeps_what_it_has(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        pad = make_device(free_port(), tmp_path, mac=MAC)  # no broker at all
        pad.outbox.limit = 2
        for n in range(3):
            pad.app.on_request(messages.make("rating_request", request_id=f"rq-{n}", window=3, state="open",
                                             ticket=f"A00{n}"), 0)
            accepted = pad.press(5)
            assert accepted is (n < 2)
        assert pad.app.is_open  # the third resident's request stays open: the press was not taken
        assert "outbox full" in pad.last_error and len(pad.outbox) == 2

    run(scenario())
