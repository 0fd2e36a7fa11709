"""Counts this process's open sockets around failed connects. Runs under MicroPython (unix port) and CPython.

Usage: <python> socket_leak_scenario.py SILENT_PORT
SILENT_PORT is a listener on 127.0.0.1 whose accept queue the test has filled, so a connect to it is never
answered (a broker host that does not answer); 255.255.255.255 fails at once with ENETUNREACH (what a
board sees with Wi-Fi down). Prints one JSON line: open file descriptors before, after the failures of
open_connection itself, and after an MQTTClient has retried against both.
"""

import asyncio
import json
import os
import sys

from firmware.lib import mqtt

UNREACHABLE = "255.255.255.255"
ROUNDS = 15


def open_fds():
    return len(os.listdir("/proc/self/fd"))


async def failing_connects(silent_port):
    for _ in range(ROUNDS):
        try:
            await mqtt.open_connection(UNREACHABLE, 1883)
        except OSError:
            pass
        else:
            raise AssertionError("a connect to %s succeeded" % UNREACHABLE)
        try:
            await asyncio.wait_for(mqtt.open_connection("127.0.0.1", silent_port), 0.05)
        except asyncio.TimeoutError:  # noqa: UP041 - MicroPython has no builtin TimeoutError
            pass
        else:
            raise AssertionError("the silent listener answered")


async def retrying_client(host, port):
    client = mqtt.MQTTClient("leak-check", host, port, backoff_min_s=0.01, backoff_max_s=0.02,
                             connect_timeout_s=0.05, log=None)
    attempts = [0]
    attempt = client._open

    async def counted():
        attempts[0] += 1
        return await attempt()

    client._open = counted
    task = asyncio.create_task(client.run())
    while attempts[0] < ROUNDS:
        await asyncio.sleep(0.01)
    await client.disconnect()
    await task


async def main(silent_port):
    before = open_fds()
    await failing_connects(silent_port)
    after_connects = open_fds()
    await retrying_client(UNREACHABLE, 1883)
    await retrying_client("127.0.0.1", silent_port)
    after_client = open_fds()
    print(json.dumps({"before": before, "after_connects": after_connects, "after_client": after_client}))


asyncio.run(main(int(sys.argv[1])))
