"""An adapter's long-running loop outlives its errors: logged, recorded, started again (issue 19)."""

from __future__ import annotations

import asyncio
import logging

from edge_agent.adapters.base import keep_running
from tests.support.aio import run_async  # a browser test before it leaves a running loop in this thread


def test_a_loop_that_fails_is_logged_recorded_and_started_again(caplog):
    runs: list[int] = []
    recorded: list[str] = []
    second_run = asyncio.Event()

    async def loop() -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            raise RuntimeError("database or disk is full")
        second_run.set()
        await asyncio.Event().wait()  # a loop runs until it is cancelled

    async def scenario() -> None:
        task = asyncio.create_task(keep_running("forwarder", loop, lambda exc: recorded.append(str(exc)),
                                                backoff_min_s=0.01))
        await asyncio.wait_for(second_run.wait(), 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()  # cancellation still ends it: the adapter can stop

    with caplog.at_level(logging.ERROR):
        run_async(scenario())
    assert runs == [1, 2]
    assert recorded == ["database or disk is full"]
    assert "forwarder: its loop failed" in caplog.text and "database or disk is full" in caplog.text


def test_detail_false_logs_only_the_type_of_the_error(caplog):
    started = asyncio.Event()

    async def loop() -> None:
        if not started.is_set():
            started.set()
            raise ValueError("card 445202199001011234")  # what a reader sent must not reach the log
        await asyncio.Event().wait()

    async def scenario() -> None:
        task = asyncio.create_task(keep_running("id_card", loop, detail=False, backoff_min_s=0.01))
        await asyncio.wait_for(started.wait(), 10)  # the error is logged in the same step as it is raised
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.ERROR):
        run_async(scenario())
    assert "ValueError" in caplog.text and "445202" not in caplog.text
