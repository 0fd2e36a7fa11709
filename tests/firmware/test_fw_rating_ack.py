"""A rating stays on the pad until the edge acknowledges it (rating_ack), not until the broker's PUBACK.

Against a real Mosquitto; the test plays the edge agent (it acknowledges, or stays silent as an edge that
could not store the rating), and drives the firmware's clock, so a time-out passes when the test says.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fw_helpers import CENTER, DrivenClock, Recorder, make_device, run, until

from firmware.lib.runtime import DeviceRuntime
from protocol import identity, messages, topics

pytestmark = pytest.mark.broker

MAC = "02:00:00:00:00:07"
DEVICE = identity.device_id_from_mac(MAC)
RATING = topics.build(topics.RATING_SUBMITTED, center=CENTER, device=DEVICE)
ACK = topics.build(topics.RATING_ACK, center=CENTER, device=DEVICE)
MARKER = "test/marker"
TIMEOUT_MS = DeviceRuntime.RATING_ACK_TIMEOUT_S * 1000


def open_request(pad: DeviceRuntime, request_id: str, ticket: str) -> None:
    pad.app.on_request(messages.make("rating_request", request_id=request_id, window=3, state="open",
                                     ticket=ticket), 0)


def ratings(edge: Recorder) -> list[dict]:
    return [messages.decode("rating_submitted", raw) for raw in edge.payloads(RATING)]


def acknowledge(edge: Recorder, rating: dict, status: str = messages.RATING_STORED, error: str | None = None) -> None:
    ack = messages.make("rating_ack", rating_id=rating["rating_id"], reason=rating.get("reason"), status=status,
                        error=error)
    edge.publish(ACK, messages.encode("rating_ack", ack))


async def let_time_pass(ticks: DrivenClock, pad: DeviceRuntime, ms: int) -> None:
    """Move the firmware's clock by ms and wait until its ticker has seen it."""
    target = pad.uptime_ms + ms
    ticks.advance(ms)
    await until(lambda: pad.uptime_ms >= target, what="a tick after the clock moved")


async def everything_sent_has_arrived(pad: DeviceRuntime, edge: Recorder) -> None:
    """A marker the pad publishes after anything it has sent: once it is at the edge, so is the rest."""
    count = len(edge.payloads(MARKER))
    await pad.client.publish(MARKER, b"marker", qos=1)
    await until(lambda: len(edge.payloads(MARKER)) > count, what="the marker")


def test_a_rating_the_edge_did_not_acknowledge_is_sent_again_and_kept_until_it_is(
        center_broker, tmp_path: Path, monkeypatch) -> None:
    ticks = DrivenClock(monkeypatch)

    async def scenario() -> None:
        edge = Recorder(center_broker.port, RATING, MARKER)  # the edge agent, with a full disk: it says nothing
        pad = make_device(center_broker.port, tmp_path, mac=MAC)
        task = asyncio.create_task(pad.run())
        await until(lambda: pad.client.up, what="connected")
        open_request(pad, "rq-1", "A001")
        assert pad.press(5)
        await until(lambda: ratings(edge), what="the rating at the edge")
        first = ratings(edge)[0]

        # PUBACKed, not acknowledged: kept, and not sent again before its time-out.
        await let_time_pass(ticks, pad, TIMEOUT_MS - 1)
        await everything_sent_has_arrived(pad, edge)
        assert len(pad.outbox) == 1 and len(ratings(edge)) == 1
        # A press meanwhile waits behind it.
        open_request(pad, "rq-2", "A002")
        assert pad.press(4)

        await let_time_pass(ticks, pad, 1)
        await until(lambda: len(ratings(edge)) == 2, what="the rating sent again after its time-out")
        again = ratings(edge)[1]
        assert again["rating_id"] == first["rating_id"] and again["age_ms"] == TIMEOUT_MS
        await everything_sent_has_arrived(pad, edge)
        assert len(ratings(edge)) == 2 and len(pad.outbox) == 2  # the second waits its turn

        acknowledge(edge, again)  # stored at last
        await until(lambda: len(ratings(edge)) == 3, what="the next rating, once the first was acknowledged")
        assert ratings(edge)[2]["request_id"] == "rq-2" and len(pad.outbox) == 1
        # A late answer to the first copy names a rating no longer awaited: nothing happens.
        acknowledge(edge, first)
        acknowledge(edge, ratings(edge)[2], messages.RATING_REFUSED, "rating request is closed")
        await until(lambda: len(pad.outbox) == 0, what="the refused rating forgotten too")
        assert pad.refused_by_edge == 1
        assert list((tmp_path / "outbox").iterdir()) == []
        await pad.stop()
        await task
        edge.close()

    run(scenario())


def test_a_reconnect_sends_the_awaited_rating_again(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        edge = Recorder(center_broker.port, RATING)
        pad = make_device(center_broker.port, tmp_path, mac=MAC)
        task = asyncio.create_task(pad.run())
        await until(lambda: pad.client.up, what="connected")
        open_request(pad, "rq-1", "A001")
        assert pad.press(3)
        await until(lambda: ratings(edge), what="the rating at the edge")
        # The link drops: an acknowledgement the edge sent meanwhile would be lost, so the rating goes again.
        pad.client.abort()
        await until(lambda: len(ratings(edge)) == 2, what="the rating again after the reconnect")
        assert ratings(edge)[0]["rating_id"] == ratings(edge)[1]["rating_id"]
        acknowledge(edge, ratings(edge)[1])
        await until(lambda: len(pad.outbox) == 0, what="forgotten once acknowledged")
        await pad.stop()
        await task
        edge.close()

    run(scenario())


def test_the_acknowledgement_of_a_bad_score_does_not_free_its_reason(center_broker, tmp_path: Path,
                                                                     monkeypatch) -> None:
    DrivenClock(monkeypatch)  # no time-out: only acknowledgements move the outbox

    async def scenario() -> None:
        edge = Recorder(center_broker.port, RATING, MARKER)
        pad = make_device(center_broker.port, tmp_path, mac=MAC)
        task = asyncio.create_task(pad.run())
        await until(lambda: pad.client.up, what="connected")
        open_request(pad, "rq-1", "A001")
        assert pad.press(2)  # 不满意: the score goes at once, then the pad asks why
        assert pad.press(4)  # the second button: 服务效率, the same rating again with its reason
        await until(lambda: ratings(edge), what="the score at the edge")
        await everything_sent_has_arrived(pad, edge)
        score = ratings(edge)[0]
        assert len(ratings(edge)) == 1 and "reason" not in score  # the reason waits for the score's answer
        acknowledge(edge, score)
        await until(lambda: len(ratings(edge)) == 2, what="the reason after the score was acknowledged")
        reason = ratings(edge)[1]
        assert (reason["rating_id"], reason["reason"]) == (score["rating_id"], messages.REASON_EFFICIENCY)
        heard = pad.received
        acknowledge(edge, score)  # the score's answer again (a re-sent copy): not the reason's
        await until(lambda: pad.received > heard, what="the pad to get it")
        assert len(pad.outbox) == 1
        acknowledge(edge, reason)
        await until(lambda: len(pad.outbox) == 0, what="the reason acknowledged")
        await pad.stop()
        await task
        edge.close()

    run(scenario())
